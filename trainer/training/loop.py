"""The training loop. Read it top to bottom: set up, then one optimizer step at a time.

It knows nothing of ComfyUI. The model comes in as a `Denoiser` (see below), the adapters as an
`AdapterSet`, the data as `Example`s; progress, cancellation, checkpoints and validation go out
through `TrainHooks`.
"""

import math
import time
from dataclasses import dataclass
from typing import Protocol

import torch

from . import objective
from .data import BatchPlan, all_captions, caption_for, derive_seed, step_generator
from .registries import OPTIMIZERS, TIMESTEP_SAMPLERS, lr_multiplier
from .state import Snapshot


class Denoiser(Protocol):
    """A frozen diffusion model as the loop needs it (ComfyUI's lives in comfy_bridge)."""

    kind: str  # "eps", "v" or "flow"
    sigma_data: float
    device: torch.device

    def sigmas(self, u: torch.Tensor, latent_shape=None) -> torch.Tensor:
        """Noise levels for schedule fractions u in (0, 1); `latent_shape`, when given, is the
        batch's, for families whose training shifts the schedule by image size (Flux.1 dev,
        Qwen-Image, Flux.2)."""

    def noise_scaling(self, sigma, noise, x0) -> torch.Tensor:
        """The noisy latent at `sigma`."""

    def denoise(self, x, sigma, conds: list) -> torch.Tensor:
        """The model's denoised estimate; `conds` holds one encoded caption per sample."""

    def encode_captions(self, texts: list) -> dict:
        """{text: encoded caption} for every text."""


class TrainHooks:
    """Callbacks from the loop. The defaults do nothing."""

    def check_cancel(self):
        """Raise to stop training; called at each step boundary. Any hook (and the denoiser) may
        raise too: train() then checkpoints the last completed step and re-raises."""

    def on_step(self, report):
        pass

    def on_checkpoint(self, snapshot):
        pass

    def on_validate(self, step):
        pass


class NonFiniteLoss(ValueError):
    pass


@dataclass
class StepReport:
    step: int
    total: int
    loss: float
    loss_smooth: float
    lr: float
    seconds: float  # this step
    elapsed: float
    eta: float


@dataclass
class TrainResult:
    snapshot: Snapshot  # the final state: adapters, optimizer, loss history
    resumed_from: int  # the step training started at (0 for a fresh run)
    seconds: float

    @property
    def adapter_state(self):
        return self.snapshot.adapter_state

    @property
    def losses(self):
        return self.snapshot.losses


def train(config, denoiser, adapters, examples, hooks=None, resume=None, recipe=None):
    """Train `adapters` for `config.steps` optimizer steps; `resume` is a state.Snapshot.

    `recipe` is stored in each checkpoint (state.recipe). If anything raises once a step is done
    (ComfyUI's Cancel arrives inside a layer's forward, a progress hook or a validation render), the
    last completed step goes to `hooks.on_checkpoint` before the exception travels on, whatever
    save_every is, so the next run resumes from exactly there."""
    hooks = hooks or TrainHooks()
    params = adapters.trainable_parameters()
    optimizer = OPTIMIZERS[config.optimizer][0](params, config.learning_rate, config.weight_decay)
    start, losses, lrs = 0, [], []
    if resume is not None:
        adapters.load_adapter_state(resume.adapter_state)
        optimizer.load_state_dict(resume.optimizer_state)
        start, losses, lrs = resume.step, list(resume.losses), list(resume.lrs)
    saved = start  # the step of the newest checkpoint on disk (the resumed one counts)

    plan = BatchPlan(examples, config.batch_size, config.seed)
    conds = denoiser.encode_captions(all_captions(examples))
    sample_u = TIMESTEP_SAMPLERS[config.timestep_sampling][0]
    smooth = _Smoother(losses)
    began = time.perf_counter()

    def snapshot(step):
        return Snapshot(step=step, adapter_state=adapters.adapter_state(), optimizer_state=optimizer.state_dict(),
                        losses=list(losses), lrs=list(lrs), config=config.to_dict(), recipe=recipe or {})

    done = start  # steps whose update is in the adapters and the optimizer
    try:
        for step in range(start, config.steps):
            hooks.check_cancel()
            step_began = time.perf_counter()
            lr = config.learning_rate * lr_multiplier(config.schedule, step, config.steps, config.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr

            step_loss = 0.0
            for micro in range(config.grad_accum):
                micro_step = step * config.grad_accum + micro
                loss = _micro_step_loss(config, denoiser, examples, plan, conds, sample_u, micro_step)
                if not math.isfinite(loss.item()):
                    raise _diverged(f"the loss became {loss.item()}", step + 1, lr, config, saved)
                (loss / config.grad_accum).backward()
                step_loss += loss.item() / config.grad_accum

            if config.max_grad_norm > 0:
                norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm).item()
                if not math.isfinite(norm):  # clipping would turn every weight into NaN
                    raise _diverged(f"the gradients became {norm}", step + 1, lr, config, saved)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            lrs.append(lr)
            done = step + 1
            # A finite loss can still leave inf/NaN weights (overflowing gradients, no clipping): never
            # checkpoint or return them, so no NaN LoRA is saved over a good one.
            if (config.save_every and done % config.save_every == 0) or done == config.steps:
                if not _finite(params):
                    raise _diverged("the adapter weights became inf or NaN", done, lr, config, saved)

            now = time.perf_counter()
            per_step = (now - began) / (done - start)
            hooks.on_step(StepReport(step=done, total=config.steps, loss=step_loss, loss_smooth=smooth.add(step_loss),
                                     lr=lr, seconds=now - step_began, elapsed=now - began,
                                     eta=per_step * (config.steps - done)))
            if config.save_every and done % config.save_every == 0 and done < config.steps:
                hooks.on_checkpoint(snapshot(done))
                saved = done
            if config.validate_every and done % config.validate_every == 0 and done < config.steps:
                hooks.on_validate(done)
    except NonFiniteLoss:
        raise
    except BaseException:
        # Gradients of an unfinished step are dropped; the adapters and optimizer hold step `done`.
        optimizer.zero_grad(set_to_none=True)
        if done > saved and _finite(params):
            hooks.on_checkpoint(snapshot(done))
        raise

    return TrainResult(snapshot=snapshot(max(start, config.steps)), resumed_from=start, seconds=time.perf_counter() - began)


def _finite(params):
    return all(bool(torch.isfinite(p).all()) for p in params)


def _diverged(what, step, lr, config, last_saved):
    kept = f"the last good checkpoint (step {last_saved}) is kept" if last_saved else "no checkpoint was written yet"
    return NonFiniteLoss(
        f"training diverged: {what} at step {step} (learning rate {lr:.3g}). Lower the learning rate "
        f"(e.g. to {config.learning_rate / 4:.2g}), or train in fp32; {kept}.")


def _micro_step_loss(config, denoiser, examples, plan, conds, sample_u, micro_step):
    indices = plan.batch(micro_step)
    x0 = torch.stack([examples[i].latent for i in indices]).to(denoiser.device)
    gen = step_generator(config.seed, micro_step)
    u = sample_u(len(indices), gen).clamp(1e-3, 1.0 - 1e-3)
    noise = objective.sample_noise(tuple(x0.shape), gen, config.noise_offset, config.multires_noise_iterations,
                                   config.multires_noise_discount).to(x0.device, x0.dtype)
    sigma = denoiser.sigmas(u.to(x0.device), tuple(x0.shape))
    x_noisy = denoiser.noise_scaling(sigma, noise, x0)
    captions = [caption_for(examples[i], i, config.seed, micro_step, config.caption_dropout) for i in indices]
    # Adapter dropout draws from torch's global RNG: seed it per micro-step for resumability.
    with torch.random.fork_rng(devices=[] if denoiser.device.type == "cpu" else [denoiser.device]):
        torch.manual_seed(derive_seed(config.seed, "dropout", micro_step))
        denoised = denoiser.denoise(x_noisy, sigma, [conds[c] for c in captions])
    pred, target = objective.prediction_and_target(denoiser.kind, x_noisy, denoised, x0, sigma, denoiser.sigma_data)
    per_sample = objective.per_sample_loss(config.loss, pred, target)
    weights = objective.min_snr_weight(denoiser.kind, sigma.float(), config.min_snr_gamma)
    return (per_sample * weights).mean()


class _Smoother:
    """Bias-corrected exponential moving average, the smoothed curve the UI draws."""

    def __init__(self, history, beta=0.9):
        self.beta, self.value, self.count = beta, 0.0, 0
        for loss in history:
            self.add(loss)

    def add(self, loss):
        self.count += 1
        self.value = self.beta * self.value + (1 - self.beta) * loss
        return self.value / (1 - self.beta ** self.count)


@torch.no_grad()
def evaluation_loss(denoiser, examples, seed=1234, fractions=(0.25, 0.5, 0.75), loss="mse"):
    """Loss on the training set at fixed noise and fixed noise levels: comparable before and
    after training (and between trainers), unlike the noisy per-step loss."""
    total, count = 0.0, 0
    conds = denoiser.encode_captions([ex.captions[0] for ex in examples])
    for index, ex in enumerate(examples):
        x0 = ex.latent.unsqueeze(0).to(denoiser.device)
        for frac in fractions:
            gen = torch.Generator().manual_seed(derive_seed(seed, "eval", index, frac))
            noise = torch.randn(tuple(x0.shape), generator=gen).to(x0.device, x0.dtype)
            sigma = denoiser.sigmas(torch.tensor([frac], device=x0.device))
            x_noisy = denoiser.noise_scaling(sigma, noise, x0)
            denoised = denoiser.denoise(x_noisy, sigma, [conds[ex.captions[0]]])
            pred, target = objective.prediction_and_target(denoiser.kind, x_noisy, denoised, x0, sigma, denoiser.sigma_data)
            total += objective.per_sample_loss(loss, pred, target).sum().item()
            count += 1
    return total / count
