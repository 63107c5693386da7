"""Module paths of a ComfyUI model -> the kohya LoRA names (`lora_unet_...`, `lora_te_...`) that
A1111, Forge, kohya's scripts and ComfyUI all load.

Module paths are the names inside ComfyUI's `model.diffusion_model` (a leading
"diffusion_model." is accepted and dropped), or, for text encoders, the names inside ComfyUI's
CLIP model (`clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj`).

Naming per architecture, each one a name ComfyUI's `comfy.lora.model_lora_keys_unet/_clip`
maps back to the same weight:
- "sd1", "sd2": the diffusers-style names kohya writes for SD1.x/SD2.x
  (`lora_unet_down_blocks_0_attentions_0_proj_in`). The ldm -> diffusers map depends on the
  UNet layout and mirrors `comfy.utils.unet_to_diffusers`, quirks included, so ComfyUI maps
  every name back to the module it came from.
- "sdxl": `lora_unet_` + the ldm path (`lora_unet_input_blocks_4_1_proj_in`). This is what
  kohya's SDXL trainer writes (its SDXL UNet keeps the sgm module names) and what A1111
  expects for SDXL; ComfyUI and Forge map it directly. A layout, when given, is only used to
  reject paths that ComfyUI's map for the layout does not know (that map also lists a few
  modules the UNet lacks, e.g. a downsampler after the last level; no real path names them).
- "sd3" (MMDiT joint_blocks), "flux" (double_blocks/single_blocks), "other" (any model
  ComfyUI loads): `lora_unet_` + the module path, which is kohya's naming for SD3 and Flux.

Text encoders: SD1 `lora_te_`, SD2 `lora_te_` (OpenCLIP-H, kohya's HF layout), SDXL
`lora_te1_` (CLIP-L) / `lora_te2_` (CLIP-G), SD3 `lora_te1_`/`lora_te2_`/`lora_te3_` (T5),
Flux `lora_te1_` (CLIP-L) / `lora_te3_` (T5), assuming the model's standard encoders are all
loaded (ComfyUI numbers T5 after the CLIPs it finds). CLIP layers map only for the attention
and MLP projections, the layers ComfyUI's LORA_CLIP_MAP knows.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ARCHITECTURES = {
    "sd1": "Stable Diffusion 1.x (ldm UNet, CLIP-L)",
    "sd2": "Stable Diffusion 2.x (ldm UNet, OpenCLIP-H)",
    "sdxl": "SDXL (ldm UNet, CLIP-L + CLIP-G)",
    "sd3": "Stable Diffusion 3 / 3.5 (MMDiT joint_blocks)",
    "flux": "Flux.1 and its derivatives (double_blocks, single_blocks)",
    "other": "any other model ComfyUI loads: lora_unet_ + the module path",
}

# Architectures whose diffusion model is an ldm UNet with input/middle/output blocks.
UNET_ARCHITECTURES = ("sd1", "sd2", "sdxl")

_TE_PREFIXES = {
    "sd1": {"clip_l": "lora_te"},
    "sd2": {"clip_h": "lora_te"},
    "sdxl": {"clip_l": "lora_te1", "clip_g": "lora_te2"},
    "sd3": {"clip_l": "lora_te1", "clip_g": "lora_te2", "t5xxl": "lora_te3"},
    "flux": {"clip_l": "lora_te1", "t5xxl": "lora_te3"},
    "other": {},
}
_TEXT_ENCODERS = ("clip_l", "clip_g", "clip_h", "t5xxl")
# comfy.lora.LORA_CLIP_MAP and the 32-layer loop of model_lora_keys_clip.
_CLIP_LAYER = re.compile(
    r"^(clip_[lgh])\.transformer\.text_model\.encoder\.layers\.(\d+)\."
    r"(mlp\.fc1|mlp\.fc2|self_attn\.q_proj|self_attn\.k_proj|self_attn\.v_proj|self_attn\.out_proj)$")
_CLIP_MAX_LAYERS = 32
_PATH_SYNTAX = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")

# comfy.utils.UNET_MAP_* at module level (without the .weight/.bias entries: LoRA names modules).
_ATTENTION_MODULES = ("proj_in", "proj_out", "norm")
_TRANSFORMER_BLOCK_MODULES = (
    "norm1", "norm2", "norm3",
    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
    "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
    "ff.net.0.proj", "ff.net.2",
)
_RESNET_MODULES = {
    "in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}
# (ldm, diffusers). label_emb has two diffusers names in ComfyUI; the first one wins here.
_BASIC_MODULES = (
    ("label_emb.0.0", "class_embedding.linear_1"), ("label_emb.0.2", "class_embedding.linear_2"),
    ("label_emb.0.0", "add_embedding.linear_1"), ("label_emb.0.2", "add_embedding.linear_2"),
    ("input_blocks.0.0", "conv_in"), ("out.0", "conv_norm_out"), ("out.2", "conv_out"),
    ("time_embed.0", "time_embedding.linear_1"), ("time_embed.2", "time_embedding.linear_2"),
)


def _help(text):
    return {"help": text}


@dataclass(frozen=True)
class UNetLayout:
    """The shape of an ldm UNet, as ComfyUI stores it in `model.model_config.unet_config`."""

    num_res_blocks: tuple = field(metadata=_help("Residual blocks per resolution level, e.g. (2, 2, 2, 2)."))
    channel_mult: tuple = field(metadata=_help("Channel multiplier per level; its length is the number of levels."))
    transformer_depth: tuple = field(metadata=_help(
        "Transformer blocks per encoder residual block, level by level (one entry per input block "
        "with a resnet), e.g. SDXL (0, 0, 2, 2, 10, 10)."))
    transformer_depth_output: tuple = field(metadata=_help(
        "Transformer blocks per decoder residual block, shallowest level first "
        "(num_res_blocks + 1 per level), e.g. SDXL (0, 0, 0, 2, 2, 2, 10, 10, 10)."))
    transformer_depth_middle: int = field(metadata=_help(
        "Transformer blocks in the middle block; -1 = middle resnet only, -2 = no middle block."))

    def __post_init__(self):
        levels = len(self.channel_mult)
        if levels == 0:
            raise ValueError("UNet layout: channel_mult is empty")
        if len(self.num_res_blocks) != levels:
            raise ValueError(f"UNet layout: num_res_blocks {list(self.num_res_blocks)} needs one entry per "
                             f"level of channel_mult {list(self.channel_mult)}")
        if len(self.transformer_depth) != sum(self.num_res_blocks):
            raise ValueError(f"UNet layout: transformer_depth needs {sum(self.num_res_blocks)} entries "
                             f"(one per encoder residual block), got {list(self.transformer_depth)}")
        expected_out = sum(n + 1 for n in self.num_res_blocks)
        if len(self.transformer_depth_output) != expected_out:
            raise ValueError(f"UNet layout: transformer_depth_output needs {expected_out} entries "
                             f"(num_res_blocks + 1 per level), got {list(self.transformer_depth_output)}")

    @classmethod
    def from_unet_config(cls, unet_config: Mapping):
        """Build from ComfyUI's unet_config dict (only the layout keys are read)."""
        missing = [k for k in ("num_res_blocks", "channel_mult", "transformer_depth",
                               "transformer_depth_output", "transformer_depth_middle") if k not in unet_config]
        if missing:
            raise ValueError(f"this unet_config has no {', '.join(missing)}: it is not an ldm UNet "
                             "(SD1.x/SD2.x/SDXL) config")
        channel_mult = tuple(int(m) for m in unet_config["channel_mult"])
        num_res_blocks = unet_config["num_res_blocks"]
        if isinstance(num_res_blocks, int):  # ComfyUI expands an int the same way
            num_res_blocks = [num_res_blocks] * len(channel_mult)
        middle = unet_config["transformer_depth_middle"]
        return cls(
            num_res_blocks=tuple(int(n) for n in num_res_blocks),
            channel_mult=channel_mult,
            transformer_depth=tuple(int(d) for d in unet_config["transformer_depth"]),
            transformer_depth_output=tuple(int(d) for d in unet_config["transformer_depth_output"]),
            transformer_depth_middle=-1 if middle is None else int(middle),
        )


# The layouts ComfyUI detects for the base models (SD2.x has SD1.x's layout).
SD15_LAYOUT = UNetLayout((2, 2, 2, 2), (1, 2, 4, 4), (1, 1, 1, 1, 1, 1, 0, 0), (1,) * 9 + (0,) * 3, 1)
SDXL_LAYOUT = UNetLayout((2, 2, 2), (1, 2, 4), (0, 0, 2, 2, 10, 10), (0, 0, 0, 2, 2, 2, 10, 10, 10), 10)


def _attention_pairs(ldm_prefix, diffusers_prefix, depth):
    pairs = [(f"{ldm_prefix}.{m}", f"{diffusers_prefix}.{m}") for m in _ATTENTION_MODULES]
    for t in range(depth):
        pairs += [(f"{ldm_prefix}.transformer_blocks.{t}.{m}", f"{diffusers_prefix}.transformer_blocks.{t}.{m}")
                  for m in _TRANSFORMER_BLOCK_MODULES]
    return pairs


def _resnet_pairs(ldm_prefix, diffusers_prefix):
    return [(f"{ldm_prefix}.{ldm}", f"{diffusers_prefix}.{d}") for ldm, d in _RESNET_MODULES.items()]


def _down_pairs(layout):
    pairs = []
    depths = list(layout.transformer_depth)
    for x, blocks in enumerate(layout.num_res_blocks):
        # ComfyUI's index formula (exact for equal num_res_blocks per level, as in every SD model).
        n = 1 + (blocks + 1) * x
        for i in range(blocks):
            pairs += _resnet_pairs(f"input_blocks.{n}.0", f"down_blocks.{x}.resnets.{i}")
            depth = depths.pop(0)
            if depth > 0:
                pairs += _attention_pairs(f"input_blocks.{n}.1", f"down_blocks.{x}.attentions.{i}", depth)
            n += 1
        pairs.append((f"input_blocks.{n}.0.op", f"down_blocks.{x}.downsamplers.0.conv"))
    return pairs


def _mid_pairs(layout):
    pairs = _attention_pairs("middle_block.1", "mid_block.attentions.0", max(layout.transformer_depth_middle, 0))
    for i, n in enumerate((0, 2)):
        pairs += _resnet_pairs(f"middle_block.{n}", f"mid_block.resnets.{i}")
    return pairs


def _up_pairs(layout):
    pairs = []
    depths = list(layout.transformer_depth_output)
    for x, blocks in enumerate(reversed(layout.num_res_blocks)):
        n = (blocks + 1) * x
        for i in range(blocks + 1):
            pairs += _resnet_pairs(f"output_blocks.{n}.0", f"up_blocks.{x}.resnets.{i}")
            c = 1
            depth = depths.pop()
            if depth > 0:
                c += 1
                pairs += _attention_pairs(f"output_blocks.{n}.1", f"up_blocks.{x}.attentions.{i}", depth)
            if i == blocks:
                pairs.append((f"output_blocks.{n}.{c}.conv", f"up_blocks.{x}.upsamplers.0.conv"))
            n += 1
    return pairs


def diffusers_unet_names(layout: UNetLayout) -> dict:
    """ldm module path -> diffusers module path for this layout, as comfy.utils.unet_to_diffusers
    pairs them (inverted; for label_emb the class_embedding name)."""
    out = {}
    for ldm, diffusers in _down_pairs(layout) + _mid_pairs(layout) + _up_pairs(layout) + list(_BASIC_MODULES):
        out.setdefault(ldm, diffusers)
    return out


def _underscored(path):
    return path.replace(".", "_")


def check_arch(arch):
    """ValueError unless `arch` is one of ARCHITECTURES."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {list(ARCHITECTURES)}")


def _text_encoder_name(path, arch):
    encoder = path.split(".", 1)[0]
    prefix = _TE_PREFIXES[arch].get(encoder)
    if prefix is None:
        raise ValueError(f"{path!r}: {arch} has no text encoder {encoder!r} that kohya LoRAs name")
    if encoder == "t5xxl":
        rest = path[len("t5xxl.transformer."):]
        if not path.startswith("t5xxl.transformer.") or not rest:
            raise ValueError(f"{path!r}: T5 module paths start with 't5xxl.transformer.'")
        return f"{prefix}_{_underscored(rest)}"
    match = _CLIP_LAYER.match(path)
    if not match or int(match.group(2)) >= _CLIP_MAX_LAYERS:
        raise ValueError(f"{path!r}: only CLIP encoder layers' q/k/v/out projections and mlp.fc1/fc2 "
                         "have kohya names (ComfyUI's LORA_CLIP_MAP)")
    return f"{prefix}_text_model_encoder_layers_{match.group(2)}_{_underscored(match.group(3))}"


def _namer(arch, layout):
    """A function module path -> kohya name for this architecture (raises ValueError)."""
    check_arch(arch)
    if arch in ("sd1", "sd2") and layout is None:
        raise ValueError(f"{arch} names depend on the UNet layout: pass "
                         "UNetLayout.from_unet_config(model.model_config.unet_config)")
    known = diffusers_unet_names(layout) if layout is not None and arch in UNET_ARCHITECTURES else None

    def name(module_path):
        if module_path.split(".", 1)[0] in _TEXT_ENCODERS:
            return _text_encoder_name(module_path, arch)
        path = module_path.removeprefix("diffusion_model.")
        if not _PATH_SYNTAX.match(path):
            raise ValueError(f"{module_path!r} is not a module path (dot-separated names of letters, "
                             "digits and '_')")
        if known is not None and path not in known:
            raise ValueError(f"{module_path!r} is not a weight module of this {arch} UNet layout")
        if arch in ("sd1", "sd2"):
            return "lora_unet_" + _underscored(known[path])
        return "lora_unet_" + _underscored(path)

    return name


def kohya_names(module_paths: Iterable[str], arch: str, layout: UNetLayout | None = None) -> dict:
    """{module path: kohya name} for all paths, in input order.

    Raises one ValueError listing every path that cannot be mapped and every kohya name that
    two different paths would share.
    """
    name = _namer(arch, layout)
    names, problems = {}, []
    for path in module_paths:
        if path in names:
            continue
        try:
            names[path] = name(path)
        except ValueError as exc:
            problems.append(str(exc))
    owners = {}
    for path, kohya in names.items():
        owners.setdefault(kohya, []).append(path)
    problems += [f"{' and '.join(map(repr, paths))} would share the kohya name {kohya!r}"
                 for kohya, paths in owners.items() if len(paths) > 1]
    if problems:
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise ValueError(f"cannot name these {arch} LoRA modules:\n  " + "\n  ".join(shown))
    return names


def kohya_name(module_path: str, arch: str, layout: UNetLayout | None = None) -> str:
    """The kohya LoRA name of one module path (see the module docstring for the rules)."""
    return kohya_names([module_path], arch, layout)[module_path]
