"""Pieces every captioning family shares: the error type, caption options, and the one set of
`from_pretrained` arguments that keeps loading local and free of model-folder code."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..options import option

MAX_NEW_TOKENS_LIMIT = 1024
NUM_BEAMS_LIMIT = 16


class CaptionerModelError(ValueError):
    """A captioning model folder is missing, incomplete or in a format LookDev does not load.

    The message names the folder and says what to put where."""


@dataclass(frozen=True)
class ModelFolder:
    """Where a captioning model lives and how to tell the user about it."""

    path: Path
    name: str
    models_root_hint: str

    @property
    def expected_place(self) -> str:
        return f"{Path(self.models_root_hint) / self.name}{os.sep}"

    def error(self, problem: str, fix: str = "") -> CaptionerModelError:
        fix = fix or (
            f"Put all of the model's files (config.json, model.safetensors, tokenizer and preprocessor "
            f"files) in {self.expected_place}"
        )
        return CaptionerModelError(f"Captioning model '{self.name}' ({self.path}): {problem} {fix}")


@dataclass(frozen=True)
class CaptionOptions:
    """How to caption. Decoding is always deterministic: greedy (num_beams=1) or beam search."""

    task: str = option("", "What to ask the model for, e.g. <CAPTION>, <DETAILED_CAPTION> or "
                       "<MORE_DETAILED_CAPTION> for Florence-2 (BLIP only does <CAPTION>). Empty: the model "
                       "family's default.")
    prompt: str = option("", "BLIP only: words the caption must start with (conditional captioning), e.g. "
                         "'a scene of'. The model continues them, so they stay at the start of the caption.")
    max_new_tokens: int = option(77, f"Longest caption, in tokens (1-{MAX_NEW_TOKENS_LIMIT}).",
                                 min=1, max=MAX_NEW_TOKENS_LIMIT)
    num_beams: int = option(3, f"Beam search width (1-{NUM_BEAMS_LIMIT}); 1 is greedy decoding. Wider is slower and "
                            "usually a little more fluent.", min=1, max=NUM_BEAMS_LIMIT)

    def __post_init__(self):
        if not isinstance(self.task, str):
            raise ValueError(f"task must be text such as '<CAPTION>', got {self.task!r}")
        if not isinstance(self.prompt, str):
            raise ValueError(f"prompt must be text, got {self.prompt!r}")
        _check_int_range("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS_LIMIT)
        _check_int_range("num_beams", self.num_beams, 1, NUM_BEAMS_LIMIT)


def _check_int_range(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def dtype_keyword(transformers_version: str) -> str:
    """`from_pretrained` calls its dtype argument `dtype` since transformers 4.56, `torch_dtype` before
    (later versions still accept `torch_dtype`, with a deprecation warning)."""
    major, minor = (int(part) for part in re.findall(r"\d+", transformers_version)[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def local_load_kwargs() -> dict:
    """Arguments for every `from_pretrained` call: files from the folder only, never code from it."""
    return {"local_files_only": True, "trust_remote_code": False}


def model_load_kwargs(dtype) -> dict:
    import transformers

    return {**local_load_kwargs(), "use_safetensors": True, dtype_keyword(transformers.__version__): dtype}


def move_inputs(inputs, device, dtype) -> dict:
    """Processor outputs onto the model's device; float inputs (pixels) in the model's dtype."""
    return {key: value.to(device=device, dtype=dtype) if value.is_floating_point() else value.to(device)
            for key, value in inputs.items()}


def generation_kwargs(options: CaptionOptions) -> dict:
    # do_sample=False overrides a model folder's generation_config that asks for sampling.
    return {"max_new_tokens": options.max_new_tokens, "num_beams": options.num_beams, "do_sample": False}
