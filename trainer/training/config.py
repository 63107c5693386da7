"""Typed training configuration. Every field carries the help text the node shows as a tooltip."""

import dataclasses
import unicodedata
from dataclasses import dataclass

from ..lora.io import SAVE_DTYPES
from ..options import check_options, option
from .adapters import ALGORITHMS, AdapterSpec
from .recipes import CUSTOM, RECIPE_HELP, RECIPES
from .registries import DTYPES, LOSSES, OPTIMIZERS, SCHEDULES, TIMESTEP_SAMPLERS
from .targets import TARGET_PRESETS

NAME_MAX_BYTES = 120  # UTF-8; file systems allow 255, and checkpoint and temp names add ~60
_NAME_PUNCTUATION = " _.-"


@dataclass
class TrainConfig:
    name: str = option("my_style", "File name of the LoRA (no extension): letters and digits of any script, spaces, "
                                    "'.', '_', '-'. Checkpoints of the same name resume.")
    trigger: str = option("", "Trigger word(s) stored in the LoRA file, so Apply LoRA and the Shot List pick them up. "
                              "Leave empty: the dataset's trigger (set once on Load Dataset) is used; a value here "
                              "overrides it and the report says so.")
    steps: int = option(600, "Optimizer steps. 10-30 images: 400-1500 steps is typical.", min=1, max=100000)
    batch_size: int = option(1, "Images per step. Batches never mix aspect buckets, so a bucket with fewer "
                             "images gives a smaller batch.", min=1, max=64)
    grad_accum: int = option(1, "Gradient accumulation: micro-batches per optimizer step (effective batch = batch x this).",
                             min=1, max=256)
    learning_rate: float = option(1e-4, "Peak learning rate. AdamW on LoRA: 1e-4 to 5e-4.", min=1e-7, max=1.0)
    optimizer: str = option("AdamW", "Optimizer.", choices=tuple(OPTIMIZERS))
    weight_decay: float = option(0.0, "Weight decay on the adapter weights.", min=0.0)
    schedule: str = option("cosine", "Learning-rate schedule after warmup.", choices=tuple(SCHEDULES))
    warmup_steps: int = option(0, "Steps of linear warmup from ~0 to the learning rate.", min=0, max=100000)
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 = off).", min=0.0)
    seed: int = option(0, "Seed for adapter init, batch order, noise and timesteps: same seed, same LoRA.",
                       min=0, max=2**63 - 1)
    dtype: str = option("auto", "Compute precision. auto = bf16 where the device has fast bf16, else fp32. "
                        "Adapter weights always stay fp32.", choices=tuple(DTYPES))
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass: much less memory, ~30% slower.")
    noise_offset: float = option(0.0, "Noise offset (0.03-0.1) lets the model learn deeper blacks and brighter whites: "
                                 "useful for high-contrast looks.", min=0.0, max=1.0)
    multires_noise_iterations: int = option(
        0, "Multi-resolution ('pyramid') noise: adds this many coarser noise layers (6-10 typical, 0 = off), "
        "so the noisiest steps no longer leak the picture's large light and dark masses and the model learns "
        "them: contrast, vignettes, crushed blacks. For SD1.x/SDXL; flow models (SD3, Flux) start from pure "
        "noise and do not need it.", min=0, max=10)
    multires_noise_discount: float = option(
        0.3, "Weight of each coarser layer relative to the one before (kohya's default 0.3); higher = stronger "
        "low-frequency noise.", min=0.0, max=1.0)
    min_snr_gamma: float = option(0.0, "Min-SNR weighting gamma (5 is typical, 0 = off): faster, steadier convergence.",
                                  min=0.0, max=20.0)
    timestep_sampling: str = option("style (high noise)", "Which noise levels to train on. " + " ".join(
        f"'{name}': {text}" for name, (_, text) in TIMESTEP_SAMPLERS.items()), choices=tuple(TIMESTEP_SAMPLERS))
    loss: str = option("mse", "Loss function.", choices=tuple(LOSSES))
    caption_dropout: float = option(0.05, "Probability of training a step with the trigger word alone, so the trigger "
                                    "carries the style by itself.", min=0.0, max=1.0)
    shuffle_captions: bool = option(True, "Shuffle comma-separated caption tags each time (the trigger and keep tokens stay first).")
    keep_tokens: int = option(1, "Leading caption tags never shuffled or dropped (1 keeps the trigger word).",
                              min=0, max=32)
    caption_variants: int = option(8, "Distinct shuffled captions per image, encoded once before training.", min=1)
    algorithm: str = option("lora", "Adapter type.", choices=tuple(ALGORITHMS))
    rank: int = option(16, "Adapter rank: capacity and file size. 8-32 for a style.", min=1, max=1024)
    alpha: float = option(16.0, "Adapter alpha; the update is scaled by alpha / rank.", min=0.01, max=1024.0)
    adapter_dropout: float = option(0.0, "Dropout inside the adapters.")
    targets: str = option("attention", "Which layers get adapters. " + " ".join(
        f"'{name}': {text}" for name, text in TARGET_PRESETS.items()), choices=tuple(TARGET_PRESETS))
    save_every: int = option(0, "Save a resumable checkpoint and an intermediate LoRA every N steps (0 = only at the end).",
                             min=0, max=100000)
    validate_every: int = option(0, "Render the validation prompts every N steps (0 = only at the end, if prompts are given).",
                                 min=0, max=100000)
    validation_prompts: tuple = option((), "Prompts rendered with the LoRA during training, one per line; "
                                       "{trigger} stands for the trigger word.")
    validation_seed: int = option(42, "Seed for validation renders, fixed so renders compare across steps.")
    validation_steps: int = option(20, "Sampling steps of validation renders.", min=1, max=150)
    validation_size: int = option(512, "Longest side of validation renders, in pixels.", min=64, max=4096, step=64)
    resume: bool = option(True, "Continue from the latest checkpoint of this name, if one exists. Only the same "
                                 "settings and dataset continue (more steps may be added); otherwise the node stops "
                                 "and lists the differences. Off: train from step 0, keeping an old LoRA as .bak.")
    save_dtype: str = option("fp16", "Precision of the saved LoRA file.", choices=tuple(SAVE_DTYPES))
    recipe: str = option(CUSTOM, RECIPE_HELP, choices=tuple(RECIPES))

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
        check_options(self)
        self.adapter_spec().validate()
        return self

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["validation_prompts"] = list(self.validation_prompts)
        return data

