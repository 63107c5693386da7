"""The diffusion training objective, for eps-, v- and flow-parameterised models.

ComfyUI's model wrapper always returns the *denoised* estimate. The loss is computed in the
space the model was trained to predict, recovered from the denoised estimate with the same
formulas ComfyUI's model_sampling classes use (EPS, V_PREDICTION, CONST):

    eps:  x = x0 + s*n,            target n,        pred (x - denoised) / s
    flow: x = (1-s)*x0 + s*n,      target n - x0,   pred (x - denoised) / s
    v:    x = x0 + s*n (sigma_data d), c = sqrt(s^2+d^2)/(s*d), k = d^2/(s^2+d^2):
          target (k*x - x0)*c,     pred (k*x - denoised)*c
"""

import torch

from .registries import LOSSES

KINDS = ("eps", "v", "flow")


def _view(sigma, like):
    return sigma.reshape(sigma.shape[0], *([1] * (like.dim() - 1)))


def prediction_and_target(kind, x_noisy, denoised, x0, sigma, sigma_data=1.0):
    s = _view(sigma, x_noisy)
    if kind in ("eps", "flow"):
        return (x_noisy - denoised) / s, (x_noisy - x0) / s
    if kind == "v":
        d = sigma_data
        k = d * d / (s * s + d * d)
        c = torch.sqrt(s * s + d * d) / (s * d)
        return (k * x_noisy - denoised) * c, (k * x_noisy - x0) * c
    raise ValueError(f"unsupported model parameterisation {kind!r}; LookDev trains {KINDS}")


def snr(kind, sigma):
    if kind == "flow":
        return ((1.0 - sigma) / sigma) ** 2
    return 1.0 / sigma ** 2


def min_snr_weight(kind, sigma, gamma):
    """Min-SNR-gamma (Hang et al. 2023) weights on the per-sample loss; 1 when gamma is 0."""
    if gamma <= 0:
        return torch.ones_like(sigma)
    ratio = snr(kind, sigma)
    clipped = torch.clamp(ratio, max=gamma)
    return clipped / (ratio + 1.0) if kind == "v" else clipped / ratio


def per_sample_loss(loss_name, pred, target):
    elementwise = LOSSES[loss_name][0](pred.float(), target.float())
    return elementwise.reshape(elementwise.shape[0], -1).mean(dim=1)


def sample_noise(shape, generator, noise_offset=0.0, multires_iterations=0, multires_discount=0.3):
    noise = torch.randn(shape, generator=generator)
    if noise_offset > 0:
        # A per-channel constant shift: lets the model move an image's overall brightness.
        noise = noise + noise_offset * torch.randn((shape[0], shape[1]) + (1,) * (len(shape) - 2), generator=generator)
    if multires_iterations > 0:
        noise = pyramid_noise(noise, generator, multires_iterations, multires_discount)
    return noise


def pyramid_noise(noise, generator, iterations, discount):
    """Multi-resolution noise (Whitaker 2023; kohya's --multires_noise_iterations/_discount): white noise
    plus upsampled coarser noise, layer i weighted discount**i, rescaled to unit variance. An epsilon or v
    model's noisiest training step still shows the image's low frequencies (its schedule never reaches
    pure noise) while sampling starts from white noise, so it never learns to make large light and dark
    masses; coarse noise hides them in training too. Each layer shrinks by a random factor in 2..4
    (kohya's choice: no fixed grid), drawn from `generator` for reproducibility."""
    height, width = noise.shape[-2:]
    flat = noise.reshape(1, -1, height, width)  # every image and channel (and video frame) apart
    out = flat.clone()
    for i in range(1, iterations + 1):
        factor = 2.0 + 2.0 * float(torch.rand((), generator=generator))
        h, w = max(1, int(height / factor ** i)), max(1, int(width / factor ** i))
        coarse = torch.randn(flat.shape[:2] + (h, w), generator=generator)
        out = out + torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear",
                                                    align_corners=False) * discount ** i
        if h == 1 or w == 1:
            break
    return (out / out.std()).reshape(noise.shape)
