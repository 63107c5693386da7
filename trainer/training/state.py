"""Resumable training checkpoints: one safetensors file per checkpoint, written atomically.

Tensors: the adapter weights in fp32 (`adapter/<layer>/<peft name>`), the optimizer's tensors
(`optim/<param index>/<key>`) and the loss/lr history. Everything else (step, config, the
optimizer's scalar settings) is JSON in the header under `lookdev.checkpoint`. No pickles.
The step is read from the header, never from the file name. A file that is not a complete LookDev
checkpoint (truncated, foreign, a renamed pickle) is never loaded: scan_checkpoints lists it with
the reason, and resuming falls back to the newest readable checkpoint, or to a fresh start.
"""

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..fileio import write_safetensors

FORMAT = "lookdev.checkpoint.v1"
SUFFIX = ".state.safetensors"


@dataclass
class Snapshot:
    step: int
    adapter_state: dict  # {layer: {peft name: tensor}}
    optimizer_state: dict  # torch optimizer state_dict()
    losses: list
    lrs: list
    config: dict
    recipe: dict  # recipe(): what a run must share with this checkpoint to continue it
    saved_at: float = field(default_factory=time.time)


def save_checkpoint(path, snap):
    tensors = {}
    for layer, params in snap.adapter_state.items():
        for pname, value in params.items():
            tensors[f"adapter/{layer}/{pname}"] = value.detach().float().cpu().contiguous()
    optim_json = {"param_groups": snap.optimizer_state["param_groups"], "state": {}}
    for index, entries in snap.optimizer_state["state"].items():
        scalars = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
        optim_json["state"][str(index)] = scalars
    tensors["history/loss"] = torch.tensor(snap.losses, dtype=torch.float64)
    tensors["history/lr"] = torch.tensor(snap.lrs, dtype=torch.float64)
    header = {"format": FORMAT, "step": snap.step, "saved_at": snap.saved_at, "config": snap.config,
              "recipe": snap.recipe, "optimizer": optim_json}
    return write_safetensors(path, tensors, metadata={"lookdev.checkpoint": json.dumps(header)})


def read_header(path):
    """The JSON header of a checkpoint, or None if the file is not a readable LookDev checkpoint."""
    return _header(path)[0]


def _header(path):
    """(header, None), or (None, why the file is not a readable LookDev checkpoint)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("lookdev.checkpoint")
    except (OSError, SafetensorError) as exc:
        return None, f"not a complete safetensors file ({exc})"
    if raw is None:
        return None, "a safetensors file without LookDev checkpoint data"
    try:
        header = json.loads(raw)
    except ValueError:
        return None, "its checkpoint data is not valid JSON"
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return None, f"not a {FORMAT} checkpoint"
    kinds = {"step": int, "saved_at": (int, float), "config": dict, "optimizer": dict}
    bad = [key for key, kind in kinds.items() if not isinstance(header.get(key), kind)]
    optimizer = header.get("optimizer")
    if not bad and not (isinstance(optimizer.get("param_groups"), list) and isinstance(optimizer.get("state"), dict)):
        bad = ["optimizer"]
    if bad:
        return None, f"its checkpoint data lacks or garbles {', '.join(bad)}"
    return header, None


def load_checkpoint(path):
    """The Snapshot in `path`; ValueError naming the file if it is not a complete LookDev checkpoint."""
    import safetensors.torch
    from safetensors import SafetensorError

    header, why = _header(path)
    if header is None:
        raise ValueError(f"{path} is not a readable LookDev checkpoint: {why}")
    try:
        tensors = safetensors.torch.load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ValueError(f"{path} is not a readable LookDev checkpoint: {exc}") from exc
    missing = [key for key in ("history/loss", "history/lr") if key not in tensors]
    if missing:
        raise ValueError(f"{path} is not a readable LookDev checkpoint: it lacks {', '.join(missing)}")
    adapter_state = {}
    optimizer_state = {"param_groups": header["optimizer"]["param_groups"], "state": {}}
    try:
        for key, value in tensors.items():
            kind, _, rest = key.partition("/")
            if kind == "adapter":
                layer, _, pname = rest.partition("/")
                adapter_state.setdefault(layer, {})[pname] = value
            elif kind == "optim":
                index, _, name = rest.partition("/")
                optimizer_state["state"].setdefault(int(index), {})[name] = value
        for index, scalars in header["optimizer"]["state"].items():
            optimizer_state["state"].setdefault(int(index), {}).update(scalars)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a readable LookDev checkpoint: bad optimizer entry ({exc})") from exc
    return Snapshot(step=header["step"], adapter_state=adapter_state, optimizer_state=optimizer_state,
                    losses=tensors["history/loss"].tolist(), lrs=tensors["history/lr"].tolist(),
                    config=header["config"], recipe=header.get("recipe") or {}, saved_at=header["saved_at"])


# The settings that change the trained weights. Left out on purpose: steps (a run may continue
# past the old total), and what only changes files or previews (name, trigger, save_every,
# validation_*, save_dtype, resume) or memory use (gradient_checkpointing).
RECIPE_FIELDS = ("seed", "learning_rate", "schedule", "warmup_steps", "optimizer", "weight_decay", "max_grad_norm",
                 "algorithm", "rank", "alpha", "adapter_dropout", "targets", "batch_size", "grad_accum", "dtype",
                 "timestep_sampling", "loss", "noise_offset", "min_snr_gamma", "caption_dropout",
                 "shuffle_captions", "keep_tokens", "caption_variants")


def dataset_digest(dataset):
    """sha256 of what the trainer reads from a dataset, in order: each image's cropped pixels
    (its content hash), bucket (so the resolution), caption and repeats."""
    digest = hashlib.sha256()
    for sample in dataset.samples:
        digest.update(json.dumps([sample.content_hash, list(sample.bucket), sample.caption, sample.repeats]).encode())
    return digest.hexdigest()


def recipe(config, dataset, arch):
    """Everything that makes two runs of the same name train different weights."""
    # Multi-resolution noise enters only when on, so runs without it keep the recipe (and id) they had.
    multires = {"multires_noise_iterations": config.multires_noise_iterations,
                "multires_noise_discount": config.multires_noise_discount} if config.multires_noise_iterations else {}
    return {**{name: getattr(config, name) for name in RECIPE_FIELDS}, **multires, "architecture": arch,
            "dataset": dataset_digest(dataset)}


def recipe_id(recipe):
    """A short digest of a recipe, stored in each LoRA so a later run can tell its own files."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]


def recipe_differences(old, new):
    """Lines naming each setting in which recipe `new` differs from a checkpoint's `old`."""
    if not old:
        return ["the checkpoint was made by an older LookDev that did not record its settings"]
    lines = []
    for key in dict.fromkeys([*new, *old]):  # a setting either side may leave out when off
        if old.get(key) == new.get(key):
            continue
        if key == "dataset":
            lines.append("dataset: its images, captions, repeats or resolution differ from the checkpoint's")
        else:
            lines.append(f"{key}: {old.get(key)!r} in the checkpoint, {new.get(key)!r} now")
    return lines


def scan_checkpoints(folder):
    """([(path, header)] newest first, [(path, why)] of the *.state.safetensors files that are not
    readable LookDev checkpoints: truncated, foreign or hand-edited)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [], []
    found, skipped = [], []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        header, why = _header(path)
        if header is None:
            skipped.append((path, why))
        else:
            found.append((path, header))
    found.sort(key=lambda item: (item[1]["saved_at"], item[1]["step"]), reverse=True)
    return found, skipped


def latest_checkpoint(folder):
    """(path, header) of the most recently saved readable checkpoint in `folder`, or None."""
    found, _ = scan_checkpoints(folder)
    return found[0] if found else None
