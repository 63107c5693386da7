"""LoRA files for the tiny test models: kohya names from trainer/lora/keys.py (ComfyUI's key map), random tensors of the
shapes each layer needs, written with trainer/lora/io.save_lora."""

import json
import math
import re

import torch

from lookdev.trainer.lora.io import save_lora
from lookdev.trainer import comfy_bridge
from lookdev.trainer.lora.keys import kohya_names

# Tiny architecture -> LookDev architecture name.
ARCH = {"sd15": "sd1", "sd15_v": "sd1", "sdxl": "sdxl", "sd3": "sd3"}
_UNET_LAYER = re.compile(r"(transformer_blocks\.\d+\.(attn[12]\.(to_[qkv]|to_out\.0)|ff\.net\.(0\.proj|2))"
                         r"|\.proj_in|\.proj_out)$")
_DIT_LAYER = re.compile(r"^joint_blocks\.\d+\.(x_block|context_block)\.(attn\.(qkv|proj)|mlp\.fc[12])$")
_CLIP_LAYER = re.compile(r"^clip_[lg]\.transformer\.text_model\.encoder\.layers\.\d+\."
                         r"(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$")


def _layers(module, pattern):
    return {path: sub.weight for path, sub in module.named_modules()
            if isinstance(sub, (torch.nn.Linear, torch.nn.Conv2d)) and pattern.search(path)}


def lora_tensors(bundle, tiny_arch, seed=0, rank=4, scale=0.1, text_encoder=True):
    """{kohya name tensor: tensor} touching every attention/MLP layer of the tiny model (and of
    its CLIP when text_encoder)."""
    arch = ARCH[tiny_arch]
    diffusion = bundle.model.model.diffusion_model
    layers = _layers(diffusion, _DIT_LAYER if arch == "sd3" else _UNET_LAYER)
    if text_encoder:
        layers.update(_layers(bundle.clip.cond_stage_model, _CLIP_LAYER))
    names = kohya_names(layers, arch, comfy_bridge.lora_key_map(bundle.model, bundle.clip))
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for path, weight in layers.items():
        name = names[path]
        out_dim, in_dim = weight.shape[0], weight.shape[1]
        spatial = tuple(weight.shape[2:])
        tensors[f"{name}.lora_down.weight"] = torch.randn((rank, in_dim) + spatial, generator=gen) * scale
        tensors[f"{name}.lora_up.weight"] = torch.randn((out_dim, rank) + (1,) * len(spatial), generator=gen) * scale
        tensors[f"{name}.alpha"] = torch.tensor(float(rank))
    return tensors


def write_lora(folder, name, bundle, tiny_arch, seed=0, trigger_words=(), **kwargs):
    """A LoRA file `name` in `folder` for the tiny bundle; returns its path."""
    metadata = {"lookdev.trigger_words": json.dumps(list(trigger_words))} if trigger_words else {}
    return save_lora(folder / name, lora_tensors(bundle, tiny_arch, seed, **kwargs), metadata)


_CONV_LAYER = re.compile(r"\.(in_layers|out_layers)\.\d+$")
# Per adapter type: its tensors for one layer of weight shape (out, in, *kernel) at `rank`.
ADAPTERS = ("lora", "locon", "loha", "lokr", "dora", "diff")


def _adapter_layer(kind, name, shape, rank, gen, scale):
    out_dim, in_dim, kernel = shape[0], shape[1], tuple(shape[2:])
    def rnd(*dims):
        return torch.randn(dims, generator=gen) * scale
    if kind in ("lora", "locon", "dora"):
        tensors = {f"{name}.lora_down.weight": rnd(rank, in_dim, *kernel),
                   f"{name}.lora_up.weight": rnd(out_dim, rank, *(1,) * len(kernel)),
                   f"{name}.alpha": torch.tensor(float(rank))}
        if kind == "dora":
            tensors[f"{name}.dora_scale"] = 1 + rnd(out_dim, 1, *(1,) * len(kernel))
        return tensors
    if kind == "loha":
        flat = in_dim * math.prod(kernel)
        return {f"{name}.hada_w1_a": rnd(out_dim, rank), f"{name}.hada_w1_b": rnd(rank, flat),
                f"{name}.hada_w2_a": rnd(out_dim, rank), f"{name}.hada_w2_b": rnd(rank, flat),
                f"{name}.alpha": torch.tensor(float(rank))}
    if kind == "lokr":  # w1 a small full factor, w2 low-rank: kron(w1, w2) = out x in
        f_out, f_in = (2, 2) if out_dim % 2 == 0 and in_dim % 2 == 0 else (1, 1)
        return {f"{name}.lokr_w1": rnd(f_out, f_in), f"{name}.lokr_w2_a": rnd(out_dim // f_out, rank),
                f"{name}.lokr_w2_b": rnd(rank, (in_dim // f_in) * math.prod(kernel)),
                f"{name}.alpha": torch.tensor(float(rank))}
    return {f"{name}.diff": rnd(*shape)}  # full weight difference


def adapter_tensors(bundle, kind, seed=0, rank=4, scale=0.1):
    """{tensor name: tensor} of one adapter type for the tiny sd15 UNet's attention layers
    ('locon': its 3x3 resnet convolutions instead)."""
    diffusion = bundle.model.model.diffusion_model
    layers = _layers(diffusion, _CONV_LAYER if kind == "locon" else _UNET_LAYER)
    layers = {path: w for path, w in layers.items() if kind != "locon" or w.ndim == 4 and w.shape[2] == 3}
    names = kohya_names(layers, "sd1", comfy_bridge.lora_key_map(bundle.model))
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for path, weight in layers.items():
        tensors.update(_adapter_layer(kind, names[path], tuple(weight.shape), rank, gen, scale))
    return tensors
