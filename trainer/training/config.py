"""Typed training configuration. Every field carries the help text the node shows as a tooltip."""

import dataclasses
import unicodedata
from dataclasses import dataclass, field

from .adapters import ALGORITHMS, AdapterSpec
from .registries import DTYPES, LOSSES, OPTIMIZERS, SAVE_DTYPES, SCHEDULES, TIMESTEP_SAMPLERS
from .targets import TARGET_PRESETS

NAME_MAX_BYTES = 120  # UTF-8; file systems allow 255, and checkpoint and temp names add ~60
_NAME_PUNCTUATION = " _.-"


def _f(default, help_text, **kw):
    return field(default=default, metadata={"help": help_text, **kw})


@dataclass
class TrainConfig:
    name: str = _f("my_style", "File name of the LoRA (no extension): letters and digits of any script, spaces, "
                              "'.', '_', '-'. Checkpoints of the same name resume.")
    trigger: str = _f("", "Trigger word(s) stored in the file so appliers can show them.")
    steps: int = _f(600, "Optimizer steps. 10-30 images: 400-1500 steps is typical.")
    batch_size: int = _f(1, "Images per step. Batches never mix aspect buckets, so a bucket with fewer "
                            "images gives a smaller batch.")
    grad_accum: int = _f(1, "Gradient accumulation: micro-batches per optimizer step (effective batch = batch x this).")
    learning_rate: float = _f(1e-4, "Peak learning rate. AdamW on LoRA: 1e-4 to 5e-4.")
    optimizer: str = _f("AdamW", "Optimizer.", choices=tuple(OPTIMIZERS))
    weight_decay: float = _f(0.0, "Weight decay on the adapter weights.")
    schedule: str = _f("cosine", "Learning-rate schedule after warmup.", choices=tuple(SCHEDULES))
    warmup_steps: int = _f(0, "Steps of linear warmup from ~0 to the learning rate.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = off).")
    seed: int = _f(0, "Seed for adapter init, batch order, noise and timesteps: same seed, same LoRA.")
    dtype: str = _f("auto", "Compute precision. auto = bf16 where the device has fast bf16, else fp32. "
                            "Adapter weights always stay fp32.", choices=tuple(DTYPES))
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass: much less memory, ~30% slower.")
    noise_offset: float = _f(0.0, "Noise offset (0.03-0.1) lets the model learn deeper blacks and brighter whites: "
                                  "useful for high-contrast looks.")
    min_snr_gamma: float = _f(0.0, "Min-SNR weighting gamma (5 is typical, 0 = off): faster, steadier convergence.")
    timestep_sampling: str = _f("style (high noise)", "Which noise levels to train on.", choices=tuple(TIMESTEP_SAMPLERS))
    loss: str = _f("mse", "Loss function.", choices=tuple(LOSSES))
    caption_dropout: float = _f(0.05, "Probability of training a step with the trigger word alone, so the trigger "
                                      "carries the style by itself.")
    shuffle_captions: bool = _f(True, "Shuffle comma-separated caption tags each time (the trigger and keep tokens stay first).")
    keep_tokens: int = _f(1, "Leading caption tags never shuffled or dropped (1 keeps the trigger word).")
    caption_variants: int = _f(8, "Distinct shuffled captions per image, encoded once before training.")
    algorithm: str = _f("lora", "Adapter type.", choices=tuple(ALGORITHMS))
    rank: int = _f(16, "Adapter rank: capacity and file size. 8-32 for a style.")
    alpha: float = _f(16.0, "Adapter alpha; the update is scaled by alpha / rank.")
    adapter_dropout: float = _f(0.0, "Dropout inside the adapters.")
    targets: str = _f("attention", "Which layers get adapters.", choices=tuple(TARGET_PRESETS))
    save_every: int = _f(0, "Save a resumable checkpoint and an intermediate LoRA every N steps (0 = only at the end).")
    validate_every: int = _f(0, "Render the validation prompts every N steps (0 = only at the end, if prompts are given).")
    validation_prompts: tuple = _f((), "Prompts rendered with the LoRA during training, one per line.")
    validation_seed: int = _f(42, "Seed for validation renders, fixed so renders compare across steps.")
    validation_steps: int = _f(20, "Sampling steps of validation renders.")
    validation_size: int = _f(512, "Longest side of validation renders, in pixels.")
    resume: bool = _f(True, "Continue from the latest checkpoint of this name, if one exists. Only the same "
                            "settings and dataset continue (more steps may be added); otherwise the node stops "
                            "and lists the differences. Off: train from step 0, keeping an old LoRA as .bak.")
    save_dtype: str = _f("fp16", "Precision of the saved LoRA file.", choices=tuple(SAVE_DTYPES))

    def adapter_spec(self):
        return AdapterSpec(self.algorithm, self.rank, self.alpha, self.adapter_dropout)

    def checked_name(self):
        """The name in NFC (the form macOS, Windows and Linux tools agree on), or ValueError."""
        name = unicodedata.normalize("NFC", self.name) if isinstance(self.name, str) else ""
        # Letters, marks (for scripts that combine them) and digits of any script; no folders.
        allowed = all(unicodedata.category(ch)[0] in "LMN" or ch in _NAME_PUNCTUATION for ch in name)
        if (not name or not allowed or unicodedata.category(name[0])[0] not in "LN" or name.strip() != name
                or ".." in name or len(name.encode("utf-8")) > NAME_MAX_BYTES):
            raise ValueError(f"name {self.name!r}: use letters, digits (any script), spaces, '.', '_' or '-', "
                             f"starting with a letter or digit (up to {NAME_MAX_BYTES} bytes in UTF-8, no folders)")
        return name

    def validate(self):
        """Raise ValueError naming the first field at fault."""
        self.name = self.checked_name()
        for name, low in (("steps", 1), ("batch_size", 1), ("grad_accum", 1), ("caption_variants", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        for name in ("warmup_steps", "save_every", "validate_every", "keep_tokens", "validation_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(f"learning_rate must be between 0 and 1, got {self.learning_rate}")
        for name in ("weight_decay", "max_grad_norm", "noise_offset", "min_snr_gamma"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0.0 <= self.caption_dropout <= 1.0:
            raise ValueError(f"caption_dropout must be between 0 and 1, got {self.caption_dropout}")
        if self.validation_size % 64 or not 64 <= self.validation_size <= 4096:
            raise ValueError(f"validation_size must be a multiple of 64 between 64 and 4096, got {self.validation_size}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} {getattr(self, f.name)!r} is not one of {list(choices)}")
        self.adapter_spec().validate()
        return self

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["validation_prompts"] = list(self.validation_prompts)
        return data


def help_text(field_name):
    return TrainConfig.__dataclass_fields__[field_name].metadata["help"]
