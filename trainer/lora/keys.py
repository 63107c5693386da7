"""Module paths of a ComfyUI model -> the kohya LoRA names (`lora_unet_...`, `lora_te_...`) that
A1111, Forge, kohya's scripts and ComfyUI all load.

The names are read from ComfyUI's own LoRA key map for the model (`comfy.lora.model_lora_keys_unet`
/ `_clip`, through `comfy_bridge.lora_key_map`), inverted: ComfyUI lists every spelling it loads
for each weight, and LookDev picks the kohya one. So a saved name always loads into the module
it came from, and a path the model does not have is refused.

Module paths are the names inside ComfyUI's `model.diffusion_model` (a leading
"diffusion_model." is accepted and dropped), or, for text encoders, the names inside ComfyUI's
CLIP model (`clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj`).

Which spelling, per architecture:
- "sd1", "sd2": the diffusers-style names kohya writes for SD1.x/SD2.x
  (`lora_unet_down_blocks_0_attentions_0_proj_in`, from `comfy.utils.unet_to_diffusers`).
  `label_emb` has two diffusers names there; LookDev writes `class_embedding`.
- "sdxl": `lora_unet_` + the ldm path (`lora_unet_input_blocks_4_1_proj_in`). This is what
  kohya's SDXL trainer writes (its SDXL UNet keeps the sgm module names) and what A1111
  expects for SDXL.
- "sd3" (MMDiT joint_blocks), "flux" (double_blocks/single_blocks), "zimage" (layers,
  noise_refiner, context_refiner), "other" (any model ComfyUI loads): `lora_unet_` + the module
  path, which is kohya's naming for SD3 and Flux.
- "qwen_image" (transformer_blocks.N): `lora_unet_` + the module path
  (`lora_unet_transformer_blocks_0_attn_to_q`), what musubi-tuner writes for Qwen-Image; ComfyUI's
  module names there are diffusers' names.
- "flux2" (Flux.2: double_blocks/single_blocks as Flux.1, plus the shared
  double_stream_modulation_img/_txt and single_stream_modulation): `lora_unet_` + the module path
  (`lora_unet_double_blocks_0_img_attn_qkv`), what musubi-tuner's networks.lora_flux_2 writes (its
  Flux.2 follows BFL's module names, as ComfyUI's does); ComfyUI loads it through its generic
  `lora_unet_` spelling. ComfyUI's diffusers (`transformer.`) map for Flux models is Flux.1's (it
  slices a single block's linear1 at Flux.1's MLP width, 4x, where Flux.2's is 6x), so that
  spelling is not written.
- "wan" (Wan 2.x `blocks.N...`): `lora_unet_` + the module path (`lora_unet_blocks_0_self_attn_q`),
  what musubi-tuner writes for Wan; ComfyUI loads it in every version (its generic `lora_unet_`
  spelling, beside the `diffusion_model.blocks.N...` one).

Text encoders: SD1 `lora_te_`, SD2 `lora_te_` (OpenCLIP-H, kohya's HF layout), SDXL
`lora_te1_` (CLIP-L) / `lora_te2_` (CLIP-G), SD3 `lora_te1_`/`lora_te2_`/`lora_te3_` (T5),
Flux `lora_te1_` (CLIP-L) / `lora_te3_` (T5).
"""

import re
from collections.abc import Iterable, Mapping

ARCHITECTURES = {
    "sd1": "Stable Diffusion 1.x (ldm UNet, CLIP-L)",
    "sd2": "Stable Diffusion 2.x (ldm UNet, OpenCLIP-H)",
    "sdxl": "SDXL (ldm UNet, CLIP-L + CLIP-G)",
    "sd3": "Stable Diffusion 3 / 3.5 (MMDiT joint_blocks)",
    "flux": "Flux.1 dev and schnell, and derivatives such as Chroma (double_blocks, single_blocks)",
    "zimage": "Z-Image (NextDiT layers, noise_refiner, context_refiner)",
    "qwen_image": "Qwen-Image (MMDiT transformer_blocks with img/txt streams)",
    "flux2": "Flux.2 dev (double_blocks, single_blocks, shared stream modulation)",
    "wan": "Wan 2.1 / 2.2 text-to-video (blocks.N self_attn, cross_attn, ffn)",
    "other": "any other model ComfyUI loads: lora_unet_ + the module path",
}

# What the trainer trains: every named architecture ("other" is for applying LoRAs only).
TRAINABLE = tuple(arch for arch in ARCHITECTURES if arch != "other")

# Architectures whose diffusion model is an ldm UNet with input/middle/output blocks.
UNET_ARCHITECTURES = ("sd1", "sd2", "sdxl")
_DIFFUSERS_NAMED = ("sd1", "sd2")

_TE_PREFIXES = {
    "sd1": {"clip_l": "lora_te"},
    "sd2": {"clip_h": "lora_te"},
    "sdxl": {"clip_l": "lora_te1", "clip_g": "lora_te2"},
    "sd3": {"clip_l": "lora_te1", "clip_g": "lora_te2", "t5xxl": "lora_te3"},
    "flux": {"clip_l": "lora_te1", "t5xxl": "lora_te3"},
    "zimage": {},  # no kohya naming for its Qwen3 text encoder; LookDev trains none
    "qwen_image": {},  # its Qwen2.5-VL text encoder is not trained
    "flux2": {},  # its Mistral Small 3 text encoder is not trained
    "wan": {},  # the UMT5 text encoder is not trained
    "other": {},
}
_TEXT_ENCODERS = ("clip_l", "clip_g", "clip_h", "t5xxl")
_PATH_SYNTAX = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def _underscored(path):
    return path.replace(".", "_")


def check_arch(arch):
    """ValueError unless `arch` is one of ARCHITECTURES."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {list(ARCHITECTURES)}")


def _namer(arch, key_map):
    """A function module path -> kohya name for this architecture (raises ValueError)."""
    check_arch(arch)
    weights = {w for w in key_map.values() if isinstance(w, str)}
    spellings = {}  # weight key -> the kohya-style LoRA keys ComfyUI loads into it
    for lora_key, weight in key_map.items():
        if isinstance(weight, str) and lora_key.startswith("lora_"):
            spellings.setdefault(weight, []).append(lora_key)

    def text_encoder_name(path):
        encoder = path.split(".", 1)[0]
        prefix = _TE_PREFIXES[arch].get(encoder)
        if prefix is None:
            raise ValueError(f"{path!r}: {arch} has no text encoder {encoder!r} that kohya LoRAs name")
        found = [k for k in spellings.get(f"{path}.weight", ()) if k.startswith(prefix + "_")]
        if not found:
            raise ValueError(f"{path!r}: ComfyUI's loader knows no {prefix}_ name for this layer (kohya names "
                             "exist for CLIP encoder layers' q/k/v/out projections and mlp.fc1/fc2, its "
                             "LORA_CLIP_MAP, and for T5 layers, whose paths start with 't5xxl.transformer.')")
        return found[0]

    def name(module_path):
        if module_path.split(".", 1)[0] in _TEXT_ENCODERS:
            return text_encoder_name(module_path)
        path = module_path.removeprefix("diffusion_model.")
        if not _PATH_SYNTAX.match(path):
            raise ValueError(f"{module_path!r} is not a module path (dot-separated names of letters, "
                             "digits and '_')")
        weight = f"diffusion_model.{path}.weight"
        if weight not in weights:
            raise ValueError(f"{module_path!r} is not a weight module of this {arch} model")
        if arch not in _DIFFUSERS_NAMED:
            return "lora_unet_" + _underscored(path)
        ldm = "lora_unet_" + _underscored(path)
        found = sorted((k for k in spellings.get(weight, ()) if k.startswith("lora_unet_") and k != ldm),
                       key=lambda k: "_add_embedding_" in k)
        if not found:
            raise ValueError(f"{module_path!r}: ComfyUI's loader has no diffusers name for this {arch} module")
        return found[0]

    return name


def kohya_names(module_paths: Iterable[str], arch: str, key_map: Mapping) -> dict:
    """{module path: kohya name} for all paths, in input order. `key_map` is ComfyUI's LoRA key
    map of the model (and CLIP) the paths belong to: `comfy_bridge.lora_key_map(model, clip)`.

    Raises one ValueError listing every path that cannot be mapped and every kohya name that
    two different paths would share.
    """
    name = _namer(arch, key_map)
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


def kohya_name(module_path: str, arch: str, key_map: Mapping) -> str:
    """The kohya LoRA name of one module path (see the module docstring for the rules)."""
    return kohya_names([module_path], arch, key_map)[module_path]
