"""Which base model a LoRA file was trained for, guessed from its tensor names and shapes.

The applier uses the guess to explain a LoRA that matches few or none of a model's weights
("this looks like an SDXL LoRA, the model is SD1.x") instead of ComfyUI's silent log lines.
Signals, strongest first:
- DiT block names: `joint_blocks` -> SD3; `double_blocks` / `single_blocks` /
  `single_transformer_blocks` -> Flux, told from Flux.2 (same block names) by Flux.2's own layers
  (the shared `double_stream_modulation_img`/`_txt`, `single_stream_modulation`; diffusers'
  `to_qkv_mlp_proj`, `ff.linear_in`/`linear_out`) or by the feed-forward widths against the
  block width (Flux.1's MLP is 4x wide; Flux.2's is gated, 3x: 6x in, 3x out);
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
              "qwen_image": "Qwen-Image", "flux2": "Flux.2", "wan": "Wan 2.x", "other": "another architecture"}

_FLUX = re.compile(r"(^|[._])(double_blocks|single_blocks|single_transformer_blocks)[._]")
_SD3 = re.compile(r"(^|[._])(joint_blocks)[._]")
# Lumina 2 / Z-Image NextDiT: its refiner stacks have no counterpart in other families.
_ZIMAGE = re.compile(r"(^|[._])(noise_refiner|context_refiner)[._]")
# Qwen-Image: per-stream modulation and MLPs inside transformer_blocks (diffusers' Flux and SD3
# names there are norm1 / ff / ff_context).
_QWEN_IMAGE = re.compile(r"(^|[._])transformer_blocks[._]\d+[._](img_mod|txt_mod|img_mlp|txt_mlp)[._]")
# Flux.2's layers that Flux.1 lacks: the shared modulation (BFL, ComfyUI and musubi-tuner names),
# diffusers' fused single-block projection and gated feed-forward.
_FLUX2 = re.compile(r"(^|[._])(double_stream_modulation_(img|txt)|single_stream_modulation|to_qkv_mlp_proj"
                    r"|(ff|ff_context)[._]linear_(in|out))[._]")
# Flux.1's per-block modulation (Flux.2 modulates all blocks from shared layers).
_FLUX1_MODULATION = re.compile(r"(^|[._])(double_blocks|single_blocks)[._]\d+[._](img_mod|txt_mod|modulation)"
                               r"[._]lin[._]")
# A LoRA-like tensor's module and part: the down/A matrices give a layer's input width, up/B its output.
_PART = re.compile(r"^(?P<module>.+?)\.(?P<part>lora_down|lora_A|lora_up|lora_B|hada_w1_a|hada_w1_b)(\.weight)?$")
_INPUT_PARTS = ("lora_down", "lora_A", "hada_w1_b")
# Feed-forward layers of the double/single blocks: (pattern, which width is the wide one, {ratio: family}).
# Flux.1: MLP 4x, linear1 = qkv 3x + MLP 4x, linear2 = attention 1x + MLP 4x. Flux.2: gated MLP
# 3x (its first layer 6x), linear1 = 3x + 6x, linear2 = 1x + 3x.
_FLUX_FF_RATIOS = (
    (re.compile(r"(^|[._])double_blocks[._]\d+[._](img|txt)_mlp[._]0$"), "out", {4: "flux", 6: "flux2"}),
    (re.compile(r"(^|[._])double_blocks[._]\d+[._](img|txt)_mlp[._]2$"), "in", {4: "flux", 3: "flux2"}),
    (re.compile(r"(^|[._])single_blocks[._]\d+[._]linear1$"), "out", {7: "flux", 9: "flux2"}),
    (re.compile(r"(^|[._])single_blocks[._]\d+[._]linear2$"), "in", {5: "flux", 4: "flux2"}),
)
# Layers whose input is the block width; Flux.1 models (dev, schnell, Chroma) are all 3072 wide,
# Flux.2 dev 6144 and Klein 9B 4096 (Klein 4B: 3072, told apart only by the rules above).
_FLUX_BLOCK_INPUT = re.compile(r"(^|[._])(double_blocks[._]\d+[._](img|txt)_attn[._]qkv|single_blocks[._]\d+[._]linear1)$")
_FLUX2_WIDTHS = (4096, 6144)
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


def _layer_widths(shapes):
    """{module: {'in': width, 'out': width}} from the LoRA/LoHa matrices of 2-D layers."""
    widths = {}
    for name, shape in shapes.items():
        match = _PART.match(name)
        if not match or len(shape) != 2:
            continue
        side = "in" if match.group("part") in _INPUT_PARTS else "out"
        widths.setdefault(match.group("module"), {})[side] = shape[1] if side == "in" else shape[0]
    return widths


def _flux_generation(shapes, names):
    """'flux' or 'flux2' for a LoRA with Flux block names and none of Flux.2's own layers, with the
    evidence."""
    name = _first(names, _FLUX1_MODULATION)
    if name:
        return ArchGuess("flux", f"per-block modulation keys such as {name}")
    widths = _layer_widths(shapes)
    for module, dims in widths.items():
        for pattern, wide, ratios in _FLUX_FF_RATIOS:
            narrow = "in" if wide == "out" else "out"
            if pattern.search(module) and dims.get(wide) and dims.get(narrow):
                ratio, rest = divmod(dims[wide], dims[narrow])
                if not rest and ratio in ratios:
                    family = ratios[ratio]
                    return ArchGuess(family, f"{module}: {dims['out']} outputs from {dims['in']} inputs, "
                                             f"{ratio}x the block width as in {ARCH_NAMES[family]}")
    for module, dims in widths.items():
        if _FLUX_BLOCK_INPUT.search(module) and dims.get("in") in _FLUX2_WIDTHS:
            return ArchGuess("flux2", f"{module}: block width {dims['in']} (Flux.1's is 3072)")
    return None


def guess_architecture(shapes: Mapping) -> ArchGuess:
    """The architecture a LoRA was made for, from {tensor name: shape}."""
    names = list(shapes)
    name = _first(names, _FLUX2)  # Flux.2's own layers, with Flux.1's block names or diffusers' names
    if name:
        return ArchGuess("flux2", f"{_FLUX2.search(name).group(2)} keys such as {name}")
    for arch, pattern in (("flux", _FLUX), ("sd3", _SD3), ("zimage", _ZIMAGE), ("qwen_image", _QWEN_IMAGE)):
        name = _first(names, pattern)
        if name:
            generation = _flux_generation(shapes, names) if arch == "flux" else None
            return generation or ArchGuess(arch, f"{pattern.search(name).group(2)} keys such as {name}")
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
