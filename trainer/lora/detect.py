"""Which base model a LoRA file was trained for, guessed from its tensor names and shapes.

The applier uses the guess to explain a LoRA that matches few or none of a model's weights
("this looks like an SDXL LoRA, the model is SD1.x") instead of ComfyUI's silent log lines.
Signals, strongest first:
- DiT block names: `joint_blocks` -> SD3; `double_blocks` / `single_blocks` /
  `single_transformer_blocks` -> Flux;
- the cross-attention width, the input size of an `attn2.to_k`/`to_v` down matrix: 768 SD1.x,
  1024 SD2.x, 2048 SDXL (the width of the text embedding each UNet attends to);
- a second CLIP text encoder (`lora_te2_`, `text_encoder_2.`) or UNet transformer depth above 1
  (`input_blocks_7_1_transformer_blocks_9`): SDXL;
- the text-encoder width: 768 CLIP-L (SD1.x), 1024 OpenCLIP-H (SD2.x).
"""

import re
from collections.abc import Mapping
from typing import NamedTuple

# Short names for messages.
ARCH_NAMES = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL", "sd3": "SD3", "flux": "Flux", "zimage": "Z-Image",
              "qwen_image": "Qwen-Image", "wan": "Wan 2.x", "other": "another architecture"}

_FLUX = re.compile(r"(^|[._])(double_blocks|single_blocks|single_transformer_blocks)[._]")
_SD3 = re.compile(r"(^|[._])(joint_blocks)[._]")
# Lumina 2 / Z-Image NextDiT: its refiner stacks have no counterpart in other families.
_ZIMAGE = re.compile(r"(^|[._])(noise_refiner|context_refiner)[._]")
# Qwen-Image: per-stream modulation and MLPs inside transformer_blocks (diffusers' Flux and SD3
# names there are norm1 / ff / ff_context).
_QWEN_IMAGE = re.compile(r"(^|[._])transformer_blocks[._]\d+[._](img_mod|txt_mod|img_mlp|txt_mlp)[._]")
# The down (input-side) matrix of a cross-attention key/value projection, in any naming.
_CROSS_ATTN_DOWN = re.compile(r"attn2[._](processor[._])?(to_[kv])(\.|_lora\.)(lora_down|lora_A|lora\.down|down)(\.weight)?$")
_CROSS_ATTN_WIDTH = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
_SECOND_CLIP = re.compile(r"^(lora_te2_|text_encoder_2\.)")
_UNET_BLOCK = re.compile(r"(input_blocks|middle_block|output_blocks|down_blocks|mid_block|up_blocks)")
_DEEP_TRANSFORMER = re.compile(r"transformer_blocks[._]([1-9]\d*)[._]")
_TEXT_ENCODER_DOWN = re.compile(r"^(lora_te_|text_encoder\.).*(q_proj|k_proj|v_proj)(\.|_lora\.)"
                                r"(lora_down|lora_A|lora\.down|down)(\.weight)?$")
_TEXT_ENCODER_WIDTH = {768: "sd1", 1024: "sd2"}


class ArchGuess(NamedTuple):
    """An architecture name from keys.ARCHITECTURES (None when nothing tells) and why."""

    arch: str | None
    evidence: str


def _first(names, pattern):
    return next((name for name in names if pattern.search(name)), None)


def _width_guess(shapes, pattern, widths, what):
    for name, shape in shapes.items():
        if pattern.search(name) and len(shape) >= 2 and shape[1] in widths:
            return ArchGuess(widths[shape[1]], f"{what} width {shape[1]} in {name}")
    return None


def guess_architecture(shapes: Mapping) -> ArchGuess:
    """The architecture a LoRA was made for, from {tensor name: shape}."""
    names = list(shapes)
    for arch, pattern in (("flux", _FLUX), ("sd3", _SD3), ("zimage", _ZIMAGE), ("qwen_image", _QWEN_IMAGE)):
        name = _first(names, pattern)
        if name:
            return ArchGuess(arch, f"{pattern.search(name).group(2)} keys such as {name}")
    guess = _width_guess(shapes, _CROSS_ATTN_DOWN, _CROSS_ATTN_WIDTH, "cross-attention")
    if guess:
        return guess
    name = _first(names, _SECOND_CLIP)
    if name:
        return ArchGuess("sdxl", f"a second CLIP text encoder in {name}")
    name = next((n for n in names if _UNET_BLOCK.search(n) and _DEEP_TRANSFORMER.search(n)), None)
    if name:
        return ArchGuess("sdxl", f"UNet transformer depth above 1 in {name}")
    guess = _width_guess(shapes, _TEXT_ENCODER_DOWN, _TEXT_ENCODER_WIDTH, "text-encoder")
    return guess or ArchGuess(None, "no architecture-specific keys")


_TEXT_ENCODER_KEY = re.compile(r"^(lora_te\d*_|lora_prior_te_|text_encoder(_\d)?\.|text_encoders\.|te\d?\.)")


def is_text_encoder_key(name: str) -> bool:
    """True for tensor names that address a text encoder in the usual LoRA namings."""
    return bool(_TEXT_ENCODER_KEY.match(name))
