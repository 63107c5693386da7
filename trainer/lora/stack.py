"""LORA_STACK: the list of (lora_name, model_strength, clip_strength) tuples that Comfyroll,
Efficiency, LoRA-Manager and LookDev stack nodes exchange. Names are relative to ComfyUI's
`loras` folders (LoRA-Manager writes them with the OS path separator, which ComfyUI accepts)."""

import math
from collections.abc import Iterable
from numbers import Real
from typing import NamedTuple

NO_LORA = "None"  # what the stack packs' dropdowns show for an empty row


class StackEntry(NamedTuple):
    name: str
    strength_model: float
    strength_clip: float


def _strength(value, where, which):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{where}: {which} strength must be a finite number, got {value!r}")
    return float(value)


def _entry(item, where):
    if not isinstance(item, (tuple, list)) or len(item) != 3:
        raise ValueError(f"{where}: a LORA_STACK entry is (lora_name, model_strength, clip_strength), "
                         f"got {str(item)[:120]}; connect a LoRA stack node's output here")
    name, strength_model, strength_clip = item
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{where}: the LoRA name must be text, got {name!r}")
    return name, _strength(strength_model, where, "model"), _strength(strength_clip, where, "CLIP")


def is_empty_name(name) -> bool:
    return name is None or name.strip() in ("", NO_LORA)


def normalize_stack(stack, input_name: str = "lora_stack") -> list:
    """The entries of an incoming LORA_STACK as StackEntry, in order; entries naming no LoRA
    (None, "" or "None") are dropped. None stands for an unconnected stack: []."""
    if stack is None:
        return []
    if not isinstance(stack, (list, tuple)):
        raise ValueError(f"{input_name}: a LORA_STACK is a list of (lora_name, model_strength, clip_strength), "
                         f"got {type(stack).__name__}")
    entries = []
    for position, item in enumerate(stack, start=1):
        name, strength_model, strength_clip = _entry(item, f"{input_name} entry {position}")
        if not is_empty_name(name):
            entries.append(StackEntry(name, strength_model, strength_clip))
    return entries


def build_stack(incoming, rows: Iterable) -> list:
    """A LORA_STACK: the incoming entries first, then the rows (on, name, model, clip) that are
    on and name a LoRA. Plain tuples, as the other packs build them."""
    entries = normalize_stack(incoming)
    for position, (on, name, strength_model, strength_clip) in enumerate(rows, start=1):
        if on and not is_empty_name(name):
            where = f"row {position}"
            entries.append(StackEntry(name, _strength(strength_model, where, "model"),
                                      _strength(strength_clip, where, "CLIP")))
    return [tuple(entry) for entry in entries]
