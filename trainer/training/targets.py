"""Which layers of a diffusion model get adapters: the target presets.

Rules work on ComfyUI's module paths inside `diffusion_model`, so one preset covers the ldm
UNets (SD1.x/2.x/SDXL), SD3's MMDiT and Flux.

"style blocks" per architecture:
- SDXL: `output_blocks.1.1` (diffusers `up_blocks.0.attentions.1`), the block B-LoRA (Frenkel et
  al. 2024) found to carry style, separately from content in `up_blocks.0.attentions.0`.
- SD1.x/SD2.x: no published split; we take the decoder's lowest-resolution attention level
  (diffusers `up_blocks.1`, ldm `output_blocks.3-5`), the same position in the decoder as
  B-LoRA's SDXL block.
- SD3 (MMDiT): image-stream (`x_block`) layers of the second half of the joint blocks.
- Flux: the single-stream blocks, where community style LoRAs concentrate.
- Flux.2: the single-stream blocks too (heuristic: Flux.1's community practice carried over; no
  published split for Flux.2).
- Z-Image: the second half of the main `layers` (after the refiners), as for SD3.
- Qwen-Image: image-stream layers (attention to_q/k/v/out, img_mlp) of the second half of the
  transformer blocks, as for SD3's x_block.
- Wan 2.x: not defined (no published style/content split for video DiTs); see _WAN below.
A heuristic outside SDXL: if a look does not take, train "attention + feed-forward".
"""

import re

TARGET_PRESETS = {
    "attention": "Attention projections (q, k, v, out) only: small files, strong style transfer. Pick it first "
                 "for a look (colour, light, contrast, grain).",
    "attention + feed-forward": "Attention and feed-forward layers: more capacity for texture and brushwork. "
                                "Pick it when 'attention' has not taken the look after a full run, or for "
                                "painterly detail.",
    "all linear and conv": "Every linear and convolution layer (LoCon-style): most capacity, largest file, and "
                           "it learns content too. Pick it for fine texture the others miss; watch the "
                           "validation renders for your references' subjects creeping in. "
                           "kohya's networks.lora does not resume it whole: its network_weights loading "
                           "skips the conv_in, conv_out and time_embedding layers (and SDXL's "
                           "add_embedding), which it never trains.",
    "style blocks": "Only the blocks that carry style (B-LoRA for SDXL; see docs per architecture): "
                    "learns the look while leaving composition and content alone. Pick it when the LoRA "
                    "copies your references' subjects or layouts (best on SDXL, a heuristic elsewhere, "
                    "none for Wan).",
}

_ATTN_SEGMENT = re.compile(r"(^|\.)(attn\d*|img_attn|txt_attn|attention)(\.|$)")
_FF_SEGMENT = re.compile(r"(^|\.)(ff|mlp|img_mlp|txt_mlp|feed_forward)(\.|$)")
_FLUX_SINGLE_LINEAR = re.compile(r"^single_blocks\.\d+\.(linear1|linear2)$")
_OUTPUT_ATTN = re.compile(r"^output_blocks\.(\d+)\.1\.")
# Qwen-Image's image stream: to_q/to_k/to_v/to_out (add_*_proj and to_add_out are the text's).
_QWEN_IMAGE_STREAM = re.compile(r"^transformer_blocks\.(\d+)\.(attn\.(to_q|to_k|to_v|to_out\.0)|img_mlp\.)")


def _is_linear(module):
    import torch.nn as nn
    return isinstance(module, nn.Linear)


def _is_linear_or_conv(module):
    import torch.nn as nn
    return isinstance(module, (nn.Linear, nn.Conv2d))


def _attention(path):
    return bool(_ATTN_SEGMENT.search(path))


def _feed_forward(path):
    return bool(_FF_SEGMENT.search(path)) or bool(_FLUX_SINGLE_LINEAR.match(path))


# Wan 2.x transformer blocks (comfy/ldm/wan/model.py): self_attn / cross_attn q, k, v, o and the
# feed-forward ffn.0 / ffn.2, every Linear of a block: what musubi-tuner's Wan LoRAs train. Wan's
# attention segment names differ from the UNet/MMDiT ones above, so they have their own rule.
_WAN_ATTN = re.compile(r"^blocks\.\d+\.(self_attn|cross_attn)\.(q|k|v|o)$")
_WAN_FFN = re.compile(r"^blocks\.\d+\.ffn\.\d+$")


def _wan_paths(preset, linear_paths):
    if preset == "attention":
        return [p for p in linear_paths if _WAN_ATTN.match(p)]
    if preset == "attention + feed-forward":
        return [p for p in linear_paths if _WAN_ATTN.match(p) or _WAN_FFN.match(p)]
    raise ValueError("the 'style blocks' preset has no definition for Wan models (no published split of "
                     "style and content blocks); choose 'attention' or 'attention + feed-forward'")


def _style_paths(arch, linear_paths):
    if arch == "sdxl":
        chosen = [p for p in linear_paths if p.startswith("output_blocks.1.1.")]
        if chosen:
            return chosen
    if arch in ("sd1", "sd2", "sdxl"):
        # The decoder's first (lowest-resolution) level that has attention blocks.
        levels = sorted({int(m.group(1)) for p in linear_paths if (m := _OUTPUT_ATTN.match(p))})
        if not levels:
            return []
        first = levels[0]
        level_blocks = [b for b in levels if b < first + 3]  # ldm decoders have num_res_blocks+1 = 3 per level
        return [p for p in linear_paths if (m := _OUTPUT_ATTN.match(p)) and int(m.group(1)) in level_blocks]
    if arch == "sd3":
        depths = sorted({int(p.split(".")[1]) for p in linear_paths if p.startswith("joint_blocks.")})
        if not depths:
            return []
        half = depths[len(depths) // 2]
        return [p for p in linear_paths
                if p.startswith("joint_blocks.") and int(p.split(".")[1]) >= half and ".x_block." in p]
    if arch in ("flux", "flux2"):
        return [p for p in linear_paths if p.startswith("single_blocks.")]
    if arch == "zimage":  # heuristic, as for SD3: the second half of the main layers
        depths = sorted({int(p.split(".")[1]) for p in linear_paths if p.startswith("layers.")})
        half = depths[len(depths) // 2] if depths else 0
        return [p for p in linear_paths if p.startswith("layers.") and int(p.split(".")[1]) >= half]
    if arch == "qwen_image":  # heuristic, as for SD3: the image stream of the second half
        depths = sorted({int(p.split(".")[1]) for p in linear_paths if p.startswith("transformer_blocks.")})
        half = depths[len(depths) // 2] if depths else 0
        return [p for p in linear_paths if (m := _QWEN_IMAGE_STREAM.match(p)) and int(m.group(1)) >= half]
    raise ValueError(f"the 'style blocks' preset has no definition for architecture {arch!r}; "
                     "choose 'attention' or 'attention + feed-forward'")


def select_targets(named_modules, arch, preset):
    """Module paths (in model order) that the preset trains. `named_modules`: (path, module) pairs
    of the diffusion model, e.g. `diffusion_model.named_modules()`."""
    if preset not in TARGET_PRESETS:
        raise ValueError(f"target preset {preset!r} is not one of {list(TARGET_PRESETS)}")
    modules = [(path, module) for path, module in named_modules if path]
    if preset == "all linear and conv":
        chosen = [path for path, module in modules if _is_linear_or_conv(module)]
    else:
        linear = [path for path, module in modules if _is_linear(module)]
        if arch == "wan":
            chosen = _wan_paths(preset, linear)
        elif preset == "attention":
            chosen = [p for p in linear if _attention(p)]
        elif preset == "attention + feed-forward":
            chosen = [p for p in linear if _attention(p) or _feed_forward(p)]
        else:
            chosen = _style_paths(arch, linear)
    if not chosen:
        raise ValueError(f"the target preset {preset!r} matched no layer of this {arch} model; "
                         "choose another preset")
    return chosen
