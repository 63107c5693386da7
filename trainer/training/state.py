"""Resumable training checkpoints: one safetensors file per checkpoint, written atomically.

Tensors: the adapter weights in fp32 (`adapter/<layer>/<peft name>`), the optimizer's tensors
(`optim/<param index>/<key>`) and the loss/lr history. Everything else (step, config, the
optimizer's scalar settings) is JSON in the header under `lookdev.checkpoint`. No pickles.
The step is read from the header, never from the file name.
"""

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
    network: dict  # TrainConfig.network_signature()
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
              "network": snap.network, "optimizer": optim_json}
    return write_safetensors(path, tensors, metadata={"lookdev.checkpoint": json.dumps(header)})


def read_header(path):
    """The JSON header of a checkpoint, or None if the file is not a readable LookDev checkpoint."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("lookdev.checkpoint")
        header = json.loads(raw) if raw else None
    except (OSError, ValueError, RuntimeError):
        # Truncated or foreign files are not checkpoints; the caller falls back to older ones.
        return None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return None
    return header


def load_checkpoint(path):
    import safetensors.torch

    header = read_header(path)
    if header is None:
        raise ValueError(f"{path} is not a readable LookDev checkpoint")
    tensors = safetensors.torch.load_file(str(path))
    adapter_state = {}
    optimizer_state = {"param_groups": header["optimizer"]["param_groups"], "state": {}}
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
    return Snapshot(step=header["step"], adapter_state=adapter_state, optimizer_state=optimizer_state,
                    losses=tensors["history/loss"].tolist(), lrs=tensors["history/lr"].tolist(),
                    config=header["config"], network=header["network"], saved_at=header["saved_at"])


def latest_checkpoint(folder):
    """(path, header) of the most recently saved readable checkpoint in `folder`, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = []
    for path in folder.glob(f"*{SUFFIX}"):
        header = read_header(path)
        if header is not None:
            found.append((header["saved_at"], header["step"], path, header))
    if not found:
        return None
    _, _, path, header = max(found, key=lambda item: (item[0], item[1]))
    return path, header
