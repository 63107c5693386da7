"""LoRA files for the tiny test models: kohya names from trainer/lora/keys.py (ComfyUI's key map), random tensors of the
shapes each layer needs, written with trainer/lora/io.save_lora."""

import json
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
