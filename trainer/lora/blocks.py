"""Block weights for the LoRA applier: a strength per block of the diffusion model.

Keys are ComfyUI *model* keys (`diffusion_model.input_blocks.4.1.proj_in.weight`, or the
(key, offsets) tuples ComfyUI uses for slices), because the applier scales ComfyUI's patches
key by key. Blocks:
- "BASE": everything outside the diffusion blocks: text encoders (`clip_l.*`, `t5xxl.*`, ...),
  time/label embeddings, conv_in/out of DiT models. For "other" architectures every key is BASE.
- SD1.x/SD2.x/SDXL UNets: "IN00".."IN11" (ldm input_blocks.N), "MID" (middle_block),
  "OUT00".."OUT11" (output_blocks.N); SDXL has IN00-IN08 and OUT00-OUT08.
- SD3: "J00".. (joint_blocks.N). Flux: "D00".. (double_blocks.N), "S00".. (single_blocks.N).
- Z-Image: "L00".. (layers.N), "NR00".. (noise_refiner.N), "CR00".. (context_refiner.N).
- Qwen-Image: "T00".. (transformer_blocks.N).
- Flux.2: "D00".. (double_blocks.N), "S00".. (single_blocks.N), as Flux.1; its shared modulation
  layers are BASE.

Text forms accepted by `parse_block_weights` (later items override earlier ones; blocks not
mentioned keep 1.0):
- a preset name from PRESETS, e.g. "style only (OUT)";
- named items: "IN:0.5, MID:1, OUT:0" (a group = every present block of that prefix),
  "OUT03-OUT05:0" (a range), "IN04:0.2", "BASE:0"; "IN4" means IN04;
- an Inspire-pack / sd-webui-lora-block-weight vector of numbers: 17 for SD1.x/SD2.x
  (BASE, IN01, IN02, IN04, IN05, IN07, IN08, MID, OUT03..OUT11) or 12 for SDXL (BASE, IN04, IN05,
  IN07, IN08, MID, OUT00..OUT05). These are the blocks a standard (attention-only) LoRA touches.
  Inspire assigns vector positions to whichever blocks the LoRA has, in order; for those LoRAs
  that is exactly this list. For LoRAs that also touch other blocks (LoCon/LyCORIS), Inspire's
  positions shift; here each value stays on its named block, and blocks outside the vector
  (e.g. IN00, IN03, OUT00) get BASE's value. Inspire's letters (R, U, A, B) are not supported.
"""

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .keys import ARCHITECTURES, UNET_ARCHITECTURES, check_arch

BASE = "BASE"
MID = "MID"

_UNET_VECTOR_SD = (BASE, "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", MID,
                   *(f"OUT{i:02d}" for i in range(3, 12)))
_UNET_VECTOR_SDXL = (BASE, "IN04", "IN05", "IN07", "IN08", MID, *(f"OUT{i:02d}" for i in range(6)))
VECTOR_BLOCKS = {"sd1": _UNET_VECTOR_SD, "sd2": _UNET_VECTOR_SD, "sdxl": _UNET_VECTOR_SDXL}

# Numbered block prefixes per architecture, with the model-key segment each comes from.
_NUMBERED = {
    **{arch: {"IN": "input_blocks", "OUT": "output_blocks"} for arch in UNET_ARCHITECTURES},
    "sd3": {"J": "joint_blocks"},
    "flux": {"D": "double_blocks", "S": "single_blocks"},
    "zimage": {"L": "layers", "NR": "noise_refiner", "CR": "context_refiner"},
    "qwen_image": {"T": "transformer_blocks"},
    "flux2": {"D": "double_blocks", "S": "single_blocks"},
    "wan": {"B": "blocks"},
    "other": {},
}
# A block weight multiplies the node's strengths (themselves -100..100): 0 turns a block off, 1
# keeps it; beyond +-10 a block's change is far outside anything a LoRA was trained for.
WEIGHT_RANGE = (-10.0, 10.0)
_BLOCK_KEY = re.compile(r"^diffusion_model\.([a-z_]+)\.(\d+)\.")
_BLOCK_NAME = re.compile(r"^([A-Z]+?)(\d+)$")


@dataclass(frozen=True)
class BlockPreset:
    """A named block-weight text and the architectures whose block names it uses."""

    spec: str
    architectures: tuple


_UNET = UNET_ARCHITECTURES
PRESETS = {
    "all": BlockPreset("", tuple(ARCHITECTURES)),
    "style only (OUT)": BlockPreset("IN:0, MID:0", _UNET),
    "composition only (IN)": BlockPreset("MID:0, OUT:0", _UNET),
    "no MID": BlockPreset("MID:0", _UNET),
    "double blocks only": BlockPreset("S:0", ("flux", "flux2")),
    "single blocks only": BlockPreset("D:0", ("flux", "flux2")),
}


# Shown when someone gives a number vector for an architecture without a vector convention.
_NAMED_EXAMPLE = {"sd3": "'J00-J11:1, J12-J23:0.5'", "flux": "'D:1, S:0.5'", "zimage": "'L00-L14:1, L15-L29:0.5'",
                  "qwen_image": "'T00-T29:1, T30-T59:0.5'", "flux2": "'D:1, S:0.5'",
                  "wan": "'B00-B19:1, B20-B39:0.5'", "other": "'BASE:0.5'"}


def presets_for(arch: str) -> list:
    """Preset names that apply to this architecture, for a UI list."""
    check_arch(arch)
    return [name for name, preset in PRESETS.items() if arch in preset.architectures]


def block_of(model_key, arch: str) -> str:
    """The block a ComfyUI model key (or (key, offsets) tuple) belongs to; BASE outside blocks."""
    check_arch(arch)
    key = model_key[0] if isinstance(model_key, tuple) else model_key
    if arch in UNET_ARCHITECTURES and key.startswith("diffusion_model.middle_block."):
        return MID
    match = _BLOCK_KEY.match(key)
    if match:
        for prefix, segment in _NUMBERED[arch].items():
            if match.group(1) == segment:
                return f"{prefix}{int(match.group(2)):02d}"
    return BASE


def _split_block(name):
    """'IN04' -> ('IN', 4); anything else -> None."""
    match = _BLOCK_NAME.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def _prefix(block):
    parts = _split_block(block)
    return parts[0] if parts else block


def _is_block(name, arch):
    if name == BASE or (name == MID and arch in UNET_ARCHITECTURES):
        return True
    parts = _split_block(name)
    return bool(parts) and parts[0] in _NUMBERED[arch]


def _groups(arch):
    groups = set(_NUMBERED[arch]) | {BASE}
    if arch in UNET_ARCHITECTURES:
        groups.add(MID)
    return groups


def _number(text, item):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"block weight {item!r}: {text.strip()!r} is not a number; block weights are "
                         f"numbers from {WEIGHT_RANGE[0]:g} to {WEIGHT_RANGE[1]:g}")
    low, high = WEIGHT_RANGE
    if not low <= value <= high:
        raise ValueError(f"block weight {item!r}: {value:g} is outside the valid range {low:g} to {high:g} "
                         "(0 turns a block off, 1 keeps it; for a stronger LoRA raise the strength)")
    return value


def _target_blocks(target, arch, present, item):
    """The present blocks a target names; ValueError if the name is not a block of this arch."""
    prefixes = _NUMBERED[arch]
    if target in _groups(arch):
        if target in (BASE, MID):
            return [target] if target in present else []
        return [b for b in present if _prefix(b) == target]
    if "-" in target:
        first, _, last = target.partition("-")
        a, b = _split_block(first), _split_block(last)
        if not a or not b or a[0] != b[0] or a[0] not in prefixes or a[1] > b[1]:
            raise ValueError(f"block weight {item!r}: a range looks like 'OUT03-OUT05' "
                             "(same prefix, first <= last)")
        return [blk for blk in present
                if _prefix(blk) == a[0] and a[1] <= _split_block(blk)[1] <= b[1]]
    parts = _split_block(target)
    if not parts or parts[0] not in prefixes:
        hint = f"use {', '.join(sorted(_groups(arch)))}"
        if prefixes:
            first = next(iter(prefixes))
            hint += f", numbered blocks like {first}04 or ranges like {first}03-{first}05"
        raise ValueError(f"block weight {item!r}: {target!r} is not a block of {arch} models; {hint}")
    name = f"{parts[0]}{parts[1]:02d}"
    return [name] if name in present else []


def _parse_named(text, arch, present):
    weights = dict.fromkeys(present, 1.0)
    for item in _items(text):
        target, sep, value = item.partition(":")
        if not sep:
            raise ValueError(f"block weight {item!r}: write BLOCK:VALUE, e.g. 'IN:0.5' or 'OUT03-OUT05:0'")
        number = _number(value, item)
        for block in _target_blocks(target.strip().upper().replace(" ", ""), arch, present, item):
            weights[block] = number
    return weights


def _parse_vector(text, arch, present):
    names = VECTOR_BLOCKS.get(arch)
    if names is None:
        raise ValueError(f"number vectors are for SD1.x/SD2.x (17 values) and SDXL (12 values); "
                         f"for {arch} name the blocks, e.g. {_NAMED_EXAMPLE[arch]}")
    items = _items(text)
    for item in items:
        try:
            float(item)
        except ValueError:
            raise ValueError(f"block weight {item!r}: write BLOCK:VALUE (e.g. 'IN04:0.5') or a vector of "
                             f"{len(names)} numbers for {arch}") from None
        _number(item, item)  # NaN, inf and values out of range
    if len(items) != len(names):
        raise ValueError(f"{arch} block vectors have {len(names)} values ({', '.join(names)}); "
                         f"got {len(items)}")
    values = dict(zip(names, map(float, items)))
    return {block: values.get(block, values[BASE]) for block in present}


def _items(text):
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


def parse_block_weights(text: str, arch: str, present_blocks: Iterable[str]) -> dict:
    """{block: weight} for every block in `present_blocks` (what `block_of` gave for the LoRA's
    keys), from a preset name, named items or a number vector (see the module docstring)."""
    check_arch(arch)
    present = list(dict.fromkeys(present_blocks))
    for block in present:
        if not _is_block(block, arch):
            raise ValueError(f"present block {block!r} is not a block of {arch} models")
    text = (text or "").strip()
    preset = next((p for name, p in PRESETS.items() if name.lower() == text.lower()), None)
    if preset is not None:
        if arch not in preset.architectures:
            raise ValueError(f"block preset {text!r} is not for {arch} models; use one of {presets_for(arch)}")
        text = preset.spec
    if ":" in text or not text:
        return _parse_named(text, arch, present)
    return _parse_vector(text, arch, present)


def idle_items(text: str, arch: str, lora_blocks: Iterable[str], model_blocks: Iterable[str]) -> list:
    """Warnings for the named items of `text` that change nothing: the block is not in the model
    (e.g. 'IN99', or 'OUT12' on SD1.x) or the LoRA has no layers in it. Number vectors name fixed
    blocks and are not reported. `text` must already parse."""
    check_arch(arch)
    lora_blocks, model_blocks = list(dict.fromkeys(lora_blocks)), sorted(set(model_blocks) | {BASE}, key=_order)
    text = (text or "").strip()
    if ":" not in text:
        return []
    warnings = []
    for item in _items(text):
        target = item.partition(":")[0].strip().upper().replace(" ", "")
        if _target_blocks(target, arch, lora_blocks, item):
            continue
        if _target_blocks(target, arch, model_blocks, item):
            warnings.append(f"block weight {item!r} changes nothing: the LoRA has no layers in {target}")
        else:
            warnings.append(f"block weight {item!r} changes nothing: this model has no block {target} "
                            f"(its blocks: {_span(model_blocks)})")
    return warnings


def _order(block):
    parts = _split_block(block)
    rank = {BASE: 0, MID: 2}.get(block, 1 if parts and parts[0] in ("IN", "J", "D") else 3)
    return rank, parts[0] if parts else block, parts[1] if parts else -1


def _span(blocks):
    """'BASE, IN00-IN11, MID, OUT00-OUT11': blocks in model order, runs of a prefix shortened."""
    runs = []
    for block in blocks:
        parts = _split_block(block)
        if parts and runs and runs[-1][0] == parts[0] and runs[-1][2] == parts[1] - 1:
            runs[-1][2] = parts[1]
        else:
            runs.append([parts[0], parts[1], parts[1]] if parts else [block, None, None])
    return ", ".join(prefix if first is None else f"{prefix}{first:02d}" if first == last
                     else f"{prefix}{first:02d}-{prefix}{last:02d}" for prefix, first, last in runs)


def weights_by_key(model_keys: Iterable, arch: str, text: str) -> dict:
    """{model key: block weight} for the keys of one LoRA's patches."""
    keys = list(model_keys)
    weights = parse_block_weights(text, arch, (block_of(k, arch) for k in keys))
    return {k: weights[block_of(k, arch)] for k in keys}
