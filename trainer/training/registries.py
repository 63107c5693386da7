"""Named choices the trainer offers; the node's dropdowns are built from these dicts."""

import math

import torch


# --- optimizers: name -> (factory(params, lr, weight_decay), description) -------------------

class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023): sign of an interpolated momentum. Half AdamW's state memory;
    wants a learning rate 3-10x lower than AdamW."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                exp_avg = state["exp_avg"]
                param.mul_(1 - group["lr"] * group["weight_decay"])
                update = exp_avg.mul(beta1).add_(param.grad, alpha=1 - beta1).sign_()
                param.add_(update, alpha=-group["lr"])
                exp_avg.mul_(beta2).add_(param.grad, alpha=1 - beta2)


def _adamw(params, lr, weight_decay):
    # torch's fused kernel updates every adapter tensor in one call, where the default runs ~10
    # small ops per tensor: several ms per step with a few hundred adapter tensors on a CPU.
    params = list(params)
    fused = all(p.device.type in _fused_adamw_devices() for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def _fused_adamw_devices():
    from torch.torch_version import TorchVersion

    return ("cuda", "cpu") if TorchVersion(torch.__version__) >= "2.4" else ("cuda",)


OPTIMIZERS = {
    "AdamW": (_adamw,
              "AdamW: the reliable default for LoRA (lr 1e-4 to 5e-4)."),
    "Lion": (lambda params, lr, wd: Lion(params, lr=lr, weight_decay=wd),
             "Lion: less optimizer memory; use a 3-10x lower learning rate than AdamW."),
    "SGD (momentum)": (lambda params, lr, wd: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd),
                       "SGD with momentum: least memory, needs a much higher learning rate (~1e-2)."),
    "Adagrad": (lambda params, lr, wd: torch.optim.Adagrad(params, lr=lr, weight_decay=wd),
                "Adagrad: per-weight step sizes that shrink over time; forgiving with tiny datasets."),
}


# --- learning-rate schedules: name -> (multiplier(progress in [0,1]), description) ----------

SCHEDULES = {
    "constant": (lambda p: 1.0, "Constant learning rate after warmup."),
    "cosine": (lambda p: 0.5 * (1.0 + math.cos(math.pi * p)), "Cosine decay to zero: the usual choice."),
    "linear": (lambda p: 1.0 - p, "Linear decay to zero."),
    "cosine with floor": (lambda p: 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * p)),
                          "Cosine decay to 10% of the learning rate, for runs you may continue later."),
}


def lr_multiplier(schedule, step, total_steps, warmup_steps):
    """Learning-rate factor for optimizer step `step` (0-based): linear warmup, then the schedule."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    return SCHEDULES[schedule][0](progress)


# --- losses: name -> (elementwise loss(pred, target), description) ---------------------------

LOSSES = {
    "mse": (lambda pred, target: (pred - target) ** 2, "Mean squared error, the standard diffusion loss."),
    "huber": (lambda pred, target: torch.nn.functional.huber_loss(pred, target, reduction="none", delta=0.1) * 10.0,
              "Huber: like MSE for small errors, robust to outlier images."),
    "l1": (lambda pred, target: (pred - target).abs(), "L1: robust, tends to sharper but noisier results."),
}


# --- timestep sampling: name -> (sampler(n, generator) -> u in (0,1), description) ----------
# u is the fraction of the model's noise schedule (0 = clean, 1 = pure noise).

def _uniform(n, gen):
    return torch.rand(n, generator=gen)


def _style_high_noise(n, gen):
    # u = 1 - r^3 puts ~80% of samples above u = 0.5: composition, colour and light are decided
    # at high noise, which is where a look lives.
    return 1.0 - torch.rand(n, generator=gen) ** 3


def _logit_normal(n, gen):
    # SD3's logit-normal(0, 1): concentrates on the middle of a flow model's path.
    return torch.sigmoid(torch.randn(n, generator=gen))


TIMESTEP_SAMPLERS = {
    "style (high noise)": (_style_high_noise, "Mostly high noise, where the overall look, colour and lighting "
                                              "form. Pick it for a style LoRA on SD1.x, SD2.x or SDXL."),
    "uniform": (_uniform, "Every noise level equally: fine detail and content as much as the look. Pick it "
                          "when grain or brush texture does not come through, or to teach a subject."),
    "logit-normal": (_logit_normal, "Mid noise levels most, as SD3 and Flux were trained. Pick it for flow "
                                    "models: SD3, Flux, Flux.2, Z-Image, Qwen-Image, Wan."),
}


# --- training dtypes -------------------------------------------------------------------------

DTYPES = {
    "auto": None,  # bf16 where the device computes it fast, else fp32: see comfy_bridge
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
