"""Applying LoRAs to a ComfyUI MODEL and CLIP through ComfyUI's own loader, with a report.

The patches come from `comfy.lora.load_lora` (via comfy_bridge), exactly as ComfyUI's LoraLoader
makes them, so every format ComfyUI reads works (kohya, diffusers/peft, LyCORIS) and results
are bit-identical to chained LoraLoader nodes. On top, this module says how much of a file
matched, which blocks it touches, and why a file does not fit the model, and scales patches
per block for block weights.
"""

import logging
import math
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from .. import comfy_bridge as bridge
from .blocks import PRESETS, block_of, idle_items, weights_by_key
from .detect import ARCH_NAMES, ArchGuess, guess_architecture, is_text_encoder_key
from .io import LoraFileError
from .metadata import trigger_word_warnings, trigger_words
from .stack import StackEntry, is_empty_name

log = logging.getLogger("LookDev")

# Suffixes of files that hold safetensors; anything else in the loras folder is a pickle.
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
_BLOCK_ORDER = {"BASE": 0, "IN": 1, "J": 1, "D": 1, "MID": 2, "S": 2, "OUT": 3}
_SHOWN_KEYS = 3
# The per-tensor part of a LoRA tensor name (kohya, peft, LyCORIS), dropped when naming layers.
_TENSOR_SUFFIX = re.compile(r"\.(alpha|dora_scale|(lora_(up|down|mid|A|B)|lora\.(up|down))\.weight|hada_\w+|lokr_\w+)$")


@dataclass(frozen=True)
class ApplyOptions:
    """How one LoRA is applied."""

    strength_model: float = field(default=1.0, metadata={"help": (
        "How strongly the LoRA changes the diffusion model (0 = not at all, negative inverts it).")})
    strength_clip: float = field(default=1.0, metadata={"help": (
        "How strongly the LoRA changes the text encoder (CLIP); 0 leaves it as it is.")})
    block_preset: str = field(default="all", metadata={"choices": tuple(PRESETS), "help": (
        "Which blocks of the model the LoRA acts on: 'all', or a preset such as 'style only (OUT)'. "
        "Items in block_weights are applied on top.")})
    block_weights: str = field(default="", metadata={"help": (
        "Per-block strengths, multiplied with the strengths above. Named: 'IN:0, MID:0.5, OUT03-OUT05:1', "
        "'BASE:0' (BASE = text encoder and everything outside the blocks). Or an Inspire/LoRA Block Weight "
        "vector: 17 numbers for SD1.x/SD2.x, 12 for SDXL, first value BASE. Empty = 1.0 everywhere.")})

    def __post_init__(self):
        for name in ("strength_model", "strength_clip"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.block_preset not in PRESETS:
            raise ValueError(f"block_preset {self.block_preset!r} is not one of {list(PRESETS)}")

    @property
    def is_off(self):
        return self.strength_model == 0 and self.strength_clip == 0

    def block_text(self) -> str:
        """The one text blocks.parse_block_weights reads: the preset's items, then block_weights'."""
        text = self.block_weights.strip()
        if not text:
            return self.block_preset if self.block_preset != "all" else ""
        if ":" not in text and self.block_preset != "all":
            raise ValueError("block_weights holds a number vector, which sets every block: set block_preset "
                             "to 'all', or write named items such as 'OUT:0.5'")
        spec = PRESETS[self.block_preset].spec
        return f"{spec}, {text}" if spec else text


@dataclass(frozen=True)
class LoraReport:
    """How one LoRA file met one model."""

    name: str
    total: int  # tensors in the file
    matched: int  # tensors that became patches
    model_weights: int  # diffusion-model weights patched
    clip_weights: int  # text-encoder weights patched
    blocks: tuple  # blocks the patches touch, model order
    scaled: dict  # {block: weight} for blocks whose block weight is not 1
    warnings: tuple

    def text(self) -> str:
        lines = [f"{self.name}: {self.matched} of {self.total} keys matched "
                 f"({self.model_weights} model weights, {self.clip_weights} CLIP weights)",
                 f"blocks: {', '.join(self.blocks) or 'none'}"]
        if self.scaled:
            lines.append("block weights: " + ", ".join(f"{b} {w:g}" for b, w in self.scaled.items()))
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


class Applied(NamedTuple):
    model: object
    clip: object
    trigger_words: list
    report: str


def lora_path(name) -> Path:
    """The file behind a name from ComfyUI's loras list."""
    path = bridge.model_file_path("loras", name)
    if path is None:
        folders = ", ".join(bridge.model_folders("loras")) or "none configured"
        raise ValueError(f"LoRA {name!r} is not in ComfyUI's loras folders ({folders}); put the file there and "
                         "refresh the page (press R), or pick another LoRA")
    return Path(path)


def read_named_lora(name, cache):
    """The LoraFile for a loras-folder name, through `cache` (an io.LoraFileCache)."""
    path = lora_path(name)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise LoraFileError(path, "is not a .safetensors file. LookDev never loads pickle files (.pt, .ckpt, "
                                  ".bin, .pth), which can run code when read; get the .safetensors version of "
                                  "this LoRA or convert it with a tool you trust")
    return cache.get(path)


def check_lora_object(lora, input_name="lora"):
    """A LOOKDEV_LORA value (io.LoraFile or anything shaped like one), checked."""
    tensors, metadata = getattr(lora, "tensors", None), getattr(lora, "metadata", None)
    if not isinstance(tensors, dict) or not isinstance(metadata, dict) or not tensors:
        raise ValueError(f"{input_name}: expected a LoRA from the LookDev trainer (tensors and metadata), "
                         f"got {type(lora).__name__}")
    return lora


def lora_label(lora) -> str:
    """How reports name a LoRA: its file name."""
    path = getattr(lora, "path", None)
    return Path(path).name if path else "LOOKDEV_LORA input"


def _is_model_key(key):
    return (key[0] if isinstance(key, tuple) else key).startswith("diffusion_model.")


def _sorted_blocks(blocks):
    def order(block):
        prefix = block.rstrip("0123456789")
        number = block[len(prefix):]
        return _BLOCK_ORDER.get(prefix, 4), prefix, int(number) if number else -1

    return tuple(sorted(set(blocks), key=order))


def _shown(names):
    """A few of the layers these tensor names belong to, for messages."""
    names = sorted(set(_TENSOR_SUFFIX.sub("", name) for name in names))
    more = f" and {len(names) - _SHOWN_KEYS} more" if len(names) > _SHOWN_KEYS else ""
    return ", ".join(names[:_SHOWN_KEYS]) + more


def _this_model(arch):
    return "this model" if arch == "other" else f"this {ARCH_NAMES[arch]} model"


def _mismatch(arch, guess: ArchGuess):
    """' The LoRA looks made for ...' when the guess names another architecture, else ''."""
    if guess.arch is None or guess.arch == arch:
        return ""
    return (f" The LoRA looks made for {ARCH_NAMES[guess.arch]} ({guess.evidence}), but the model is "
            f"{ARCH_NAMES[arch]}: use it with {ARCH_NAMES[guess.arch]} models.")


@dataclass(frozen=True)
class _Match:
    """ComfyUI's view of a LoRA against a model: fitting patches and what was left out."""

    patches: dict
    names: list
    used: set
    misfits: dict  # {key: why ComfyUI could not apply it}
    misfit_tensors: set


def _match(model, clip, tensors):
    key_map = bridge.lora_key_map(model, clip)
    first = bridge.lora_patches(tensors, key_map)
    misfits = bridge.misfit_patches(model, clip, first.patches)
    if not misfits:
        return _Match(first.patches, first.names, first.used, {}, set())
    # Load again without the misfits' targets, so the tensors that fit are known exactly.
    fitting = bridge.lora_patches(tensors, {k: v for k, v in key_map.items() if v not in misfits})
    return _Match(fitting.patches, first.names, fitting.used, misfits, first.used - fitting.used)


def _warnings(match, arch, guess, clip_connected):
    unmatched = [n for n in match.names if n not in match.used and n not in match.misfit_tensors]
    text_keys = [] if clip_connected else [n for n in unmatched if is_text_encoder_key(n)]
    other = [n for n in unmatched if n not in set(text_keys)]
    warnings = []
    if text_keys:
        warnings.append(f"{len(text_keys)} text-encoder keys not applied: no CLIP connected")
    if other:
        warnings.append(f"{len(other)} keys match nothing in {_this_model(arch)} (layers {_shown(other)}).")
    if match.misfits:
        key, problem = next(iter(match.misfits.items()))
        shown = key[0] if isinstance(key, tuple) else key
        warnings.append(f"{len(match.misfit_tensors)} keys have shapes that do not fit the model and were skipped "
                        f"(e.g. {shown}: {problem}).")
    if other or match.misfits:
        mismatch = _mismatch(arch, guess).strip()
        if mismatch:
            warnings.append(mismatch)
    return tuple(warnings)


def _no_match_error(name, match, arch, guess, clip_connected):
    total = len(match.names)
    hint = _mismatch(arch, guess)
    if not hint and not clip_connected and all(is_text_encoder_key(n) for n in match.names):
        hint = " Its keys are all text-encoder keys: connect a CLIP."
    if not hint and match.misfits:
        key, problem = next(iter(match.misfits.items()))
        hint = (f" {len(match.misfits)} of its layers have shapes that do not fit this model's weights "
                f"(e.g. {key[0] if isinstance(key, tuple) else key}: {problem}).")
    if not hint:
        hint = f" Check that the LoRA was made for this kind of model (its layers: {_shown(match.names)})."
    return ValueError(f"LoRA {name}: none of its {total} keys match {_this_model(arch)}.{hint}")


def check_values(name, tensors):
    """ValueError naming the file and tensor when a value would break rendering: NaN/inf anywhere
    (black or noisy frames) or an alpha that is not one number (ComfyUI fails on it without
    naming the file)."""
    for key, tensor in tensors.items():
        if key.endswith(".alpha") and tensor.numel() != 1:
            raise ValueError(f"LoRA {name}: {key} holds {tensor.numel()} values (shape {tuple(tensor.shape)}); "
                             "an alpha is one number per layer. The file is damaged or was written by a "
                             "broken converter; re-export it")
        # A float32 sum is finite unless a value is not (or huge values overflow it): one fast pass.
        if tensor.is_floating_point() and not torch.isfinite(tensor.sum(dtype=torch.float32)):
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ValueError(f"LoRA {name}: {key} holds {bad} NaN or infinite values of {tensor.numel()}; "
                                 "the LoRA would render black or noise. The file is damaged or its training "
                                 "diverged; use an earlier checkpoint or retrain with a lower learning rate")


def _idle_block_items(options, model, arch, patches):
    """Warnings for block_weights items that name a block the model or the LoRA lacks."""
    if ":" not in options.block_weights:
        return []
    model_blocks = {block_of(f"diffusion_model.{path}.", arch) for path, _ in bridge.named_layers(model)}
    return idle_items(options.block_weights, arch, (block_of(key, arch) for key in patches), model_blocks)


_VALUES_CHECKED = {}  # id(LoraFile) -> weakref to it, for files check_values passed


def _check_values_once(name, lora):
    """check_values, once per LoraFile object (the file cache hands out the same one until the
    file changes): a large LoRA's values take a noticeable fraction of a second to scan."""
    known = _VALUES_CHECKED.get(id(lora))
    if known is not None and known() is lora:
        return
    check_values(name, lora.tensors)
    key = id(lora)
    try:
        _VALUES_CHECKED[key] = weakref.ref(lora, lambda _ref: _VALUES_CHECKED.pop(key, None))
    except TypeError:
        pass  # not weak-referenceable: checked again next time


def _report(name, match, arch, weights, warnings):
    scaled = {block_of(key, arch): weight for key, weight in weights.items() if weight != 1.0}
    model_weights = sum(map(_is_model_key, match.patches))
    return LoraReport(name, len(match.names), len(match.used), model_weights, len(match.patches) - model_weights,
                      _sorted_blocks(block_of(key, arch) for key in match.patches),
                      {block: scaled[block] for block in _sorted_blocks(scaled)}, warnings)


def apply_lora(model, clip, lora, options: ApplyOptions) -> Applied:
    """Clones of model and clip with one LoRA (an io.LoraFile) applied, its trigger words and a
    report. ValueError when none of the LoRA's keys fit the model."""
    name = lora_label(lora)
    arch = bridge.architecture(model)
    block_text = options.block_text()
    _check_values_once(name, lora)
    match = _match(model, clip, lora.tensors)
    guess = guess_architecture({n: tuple(t.shape) for n, t in lora.tensors.items()})
    if not match.patches:
        raise _no_match_error(name, match, arch, guess, clip is not None)
    weights = weights_by_key(match.patches, arch, block_text) if block_text else {}
    new_model, new_clip = bridge.add_patches(model, clip, match.patches, options.strength_model,
                                             options.strength_clip, weights.__getitem__ if weights else None)
    warnings = (_warnings(match, arch, guess, clip is not None) + tuple(trigger_word_warnings(lora.metadata))
                + tuple(_idle_block_items(options, model, arch, match.patches)))
    report = _report(name, match, arch, weights, warnings)
    if report.warnings:
        log.warning("LookDev LoRA %s", report.text())  # also in the console, where ComfyUI logs its own
    return Applied(new_model, new_clip, trigger_words(lora.metadata), report.text())


def apply_source(model, clip, source, options: ApplyOptions, cache) -> Applied:
    """apply_lora for a LoraFile or a loras-folder name (read through `cache`). With both
    strengths 0 nothing is read or applied, as ComfyUI's LoraLoader does."""
    label = source if isinstance(source, str) else lora_label(source)
    if options.is_off:
        return Applied(model, clip, [], f"{label}: strengths are 0, not applied")
    options.block_text()  # a bad block setting fails before the file is read
    lora = read_named_lora(source, cache) if isinstance(source, str) else source
    return apply_lora(model, clip, lora, options)


def choose_source(lora_name, lora):
    """The connected LOOKDEV_LORA if any (it wins), else the chosen file name."""
    if lora is not None:
        return check_lora_object(lora)
    if is_empty_name(lora_name):
        raise ValueError("no LoRA chosen: pick one in lora_name or connect a LOOKDEV_LORA from the trainer")
    return lora_name


def unique_words(word_lists) -> list:
    """Words in order of first appearance, case-insensitively deduplicated."""
    seen, words = set(), []
    for word in (w for words in word_lists for w in words):
        if word.lower() not in seen:
            seen.add(word.lower())
            words.append(word)
    return words


class StackApplied(NamedTuple):
    model: object
    clip: object
    trigger_words: list
    summary: str


def apply_stack(model, clip, entries: list, cache) -> StackApplied:
    """Apply StackEntry items in order; trigger words of the applied ones, and a summary."""
    word_lists, lines = [], []
    for position, entry in enumerate(entries, start=1):
        entry = StackEntry(*entry)
        options = ApplyOptions(entry.strength_model, entry.strength_clip)
        try:
            model, clip, words, report = apply_source(model, clip, entry.name, options, cache)
        except ValueError as exc:
            raise ValueError(f"lora_stack entry {position} ({entry.name}): {exc}") from exc
        word_lists.append(words)
        strengths = f"model {entry.strength_model:g}, CLIP {entry.strength_clip:g}"
        lines.append(f"{position}. [{strengths}] " + report.replace("\n", "\n   "))
    summary = "\n".join(lines) if lines else "the LoRA stack is empty: model and CLIP unchanged"
    return StackApplied(model, clip, unique_words(word_lists), summary)
