"""Tiny, architecture-faithful diffusion models built with ComfyUI's own classes.

Real layer names, key layouts and conditioning paths (SD1.5 eps and v-prediction, SDXL with two
text encoders and size conditioning, SD3-style flow-matching MMDiT), but small widths and random
weights, so tests, the demo and the benchmarks run on a CPU. ComfyUI's layers skip weight init
(`comfy.ops.disable_weight_init`), so every builder initialises explicitly and deterministically.

Needs an importable ComfyUI whose `comfy.cli_args.args` were set first (see tests/comfy_host.py).
"""

import math
from typing import NamedTuple

import torch

# "<arch>_fp8": the same model with its weights stored in fp8_e4m3fn, as UNETLoader's weight_dtype
# option loads a large model to fit a consumer GPU.
FP8 = "_fp8"
FP8_ARCHES = ("flux_dev", "zimage", "qwen_image", "flux2")
ARCHES = ("sd15", "sd15_v", "sdxl", "sd3", "wan21", "auraflow", "flux_dev", "flux_schnell", "chroma", "zimage",
          "qwen_image", "flux2", *(arch + FP8 for arch in FP8_ARCHES))
FLUX_FAMILY = ("flux_dev", "flux_schnell", "chroma")
# The comfy.supported_models class each needs; an older ComfyUI may lack it (tests then skip).
MODEL_CLASS = {"zimage": "ZImage", "qwen_image": "QwenImage", "flux2": "Flux2"}


def base_arch(arch):
    """The architecture an fp8 variant stores in fp8 ("flux2_fp8" -> "flux2"); others unchanged."""
    return arch[:-len(FP8)] if arch.endswith(FP8) else arch


class TinyModels(NamedTuple):
    model: object  # comfy.model_patcher.ModelPatcher
    clip: object  # comfy.sd.CLIP
    vae: object  # comfy.sd.VAE
    arch: str


# UNet configs in the form comfy.model_detection.detect_unet_config produces them.
SD15_TINY_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "in_channels": 4, "out_channels": 4, "model_channels": 64, "num_res_blocks": [1, 1],
    "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1], "channel_mult": [1, 2],
    "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 768,
    "use_temporal_resblock": False, "use_temporal_attention": False,
}

# Real SD1.5 widths (so checkpoint detection recognises SD1.5) at tiny depth.
SD15_CHECKPOINT_UNET = {**SD15_TINY_UNET, "model_channels": 320}

SDXL_TINY_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4, "out_channels": 4,
    "model_channels": 64, "num_res_blocks": [1, 1], "transformer_depth": [0, 1],
    "transformer_depth_output": [0, 0, 1, 1], "channel_mult": [1, 2], "transformer_depth_middle": 1,
    "use_linear_in_transformer": True, "context_dim": 2048,
    "use_temporal_resblock": False, "use_temporal_attention": False,
}

# MMDiT hidden size is 64 * depth in ComfyUI's detection, so depth 2 gives a 128-wide DiT.
SD3_TINY_DIT = {
    "in_channels": 16, "patch_size": 2, "out_channels": 16, "depth": 2, "input_size": None,
    "adm_in_channels": 2048,
    "context_embedder_config": {"target": "torch.nn.Linear",
                                "params": {"in_features": 4096, "out_features": 128}},
    "num_patches": 1024, "pos_embed_max_size": 32, "pos_embed_scaling_factor": None,
    "x_block_self_attn_layers": [],
}

# A model ComfyUI loads that LookDev does not train (the trainer must refuse it by name).
AURAFLOW_TINY_DIT = {
    "cond_seq_dim": 2048, "in_channels": 4, "out_channels": 4, "patch_size": 2, "dim": 64, "n_heads": 2,
    "n_double_layers": 1, "n_layers": 2, "global_conddim": 64, "max_seq": 256,
}

# Flux.1 / Chroma: the configs comfy.model_detection makes for them (image_model, patch 2, 16
# latent channels, qkv bias, mlp ratio 4, theta 10000), at hidden 64 = 2 heads of 32
# (axes_dim sums to the head width). context_in_dim is the tiny T5's width (4096 in the real one).
TINY_T5_WIDTH = 64
FLUX_TINY_DIT = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 768,
    "context_in_dim": TINY_T5_WIDTH, "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 2,
    "depth_single_blocks": 2, "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2, "qkv_bias": True,
    "guidance_embed": True,
}
FLUX_SCHNELL_TINY_DIT = {**FLUX_TINY_DIT, "guidance_embed": False}
# Chroma: no vector_in/guidance_in and no per-block modulation layers; a distilled_guidance_layer
# (approximator, in_dim 64 fixed by its embeddings) makes every block's modulation.
CHROMA_TINY_DIT = {
    "image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": TINY_T5_WIDTH,
    "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 2, "depth_single_blocks": 2,
    "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2, "qkv_bias": True, "in_dim": 64, "out_dim": 64,
    "hidden_dim": 128, "n_layers": 2,
}
TINY_T5 = {"t5xxl_model_config": {"d_model": TINY_T5_WIDTH, "d_ff": 128, "num_layers": 2, "num_heads": 2,
                                  "d_kv": 32}}

# Z-Image: the config comfy.model_detection makes for it (NextDiT, z_image_modulation, qk norm,
# rope theta 256, time scale 1000, 8/3 ffn, its head width 128 and rope axes) at dim 256 = 2
# heads (ComfyUI's z_image modulation assumes dim >= 256); cap_feat_dim is the tiny Qwen3's
# width (2560 in the real one). The Qwen3 keeps its fixed head_dim 128.
TINY_QWEN3_WIDTH = 64
ZIMAGE_TINY_DIT = {
    "image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 256, "cap_feat_dim": TINY_QWEN3_WIDTH,
    "n_layers": 2, "n_refiner_layers": 1, "qk_norm": True, "n_heads": 2, "n_kv_heads": 2, "axes_dims": [32, 48, 48],
    "axes_lens": [1536, 512, 512], "rope_theta": 256.0, "ffn_dim_multiplier": 8.0 / 3.0, "multiple_of": 32,
    "z_image_modulation": True, "time_scale": 1000.0, "pad_tokens_multiple": 32,
}
TINY_QWEN3 = {"qwen3_4b_model_config": {"hidden_size": TINY_QWEN3_WIDTH, "intermediate_size": 128,
                                        "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1}}

# Qwen-Image: comfy.model_detection reads only the block count and input channels from a file and
# fixes the rest (24 heads of 128 = 3072 wide, text width 3584), so a UNETLoader file would be the
# full width; the tiny one is built in memory: 2 heads of 32, rope axes (16, 56, 56) scaled to the
# head width, 2 transformer blocks, text width the tiny Qwen2.5's.
TINY_QWEN25_WIDTH = 64
QWEN_IMAGE_TINY_DIT = {
    "image_model": "qwen_image", "in_channels": 64, "out_channels": 16, "patch_size": 2, "num_layers": 2,
    "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": TINY_QWEN25_WIDTH,
    "axes_dims_rope": (4, 14, 14),
}
# Qwen2.5-VL 7B's language model at 3 layers and width 64 (its vocabulary, head_dim 128 and mrope
# axes unchanged: the real tokenizer's ids index it).
TINY_QWEN25 = {"qwen25_7b_model_config": {"hidden_size": TINY_QWEN25_WIDTH, "intermediate_size": 128,
                                          "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1}}
# Its vision tower (used only when an image is in the prompt, Qwen-Image Edit) has fixed widths in
# ComfyUI (1280 wide, 32 blocks: 0.67B parameters); the fixture builds it 64 wide with one block.
TINY_QWEN_VISION = {"hidden_size": 64, "intermediate_size": 64, "num_heads": 2, "num_layers": 1}

# Flux.2: the config comfy.model_detection makes for it (global modulation, no vector_in, silu-gated
# MLP ratio 3, no biases, 4 rope axes, theta 2000, patch 1 over 128 latent channels) at hidden 64 =
# 2 heads of 32 (its heads are 48 of 128, so a UNETLoader file would be full width: built in memory).
# context_in_dim: the Mistral's width times the 3 layers ComfyUI stacks.
TINY_MISTRAL3_WIDTH = 64
FLUX2_TINY_DIT = {
    "image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None,
    "context_in_dim": 3 * TINY_MISTRAL3_WIDTH, "hidden_size": 64, "mlp_ratio": 3.0, "num_heads": 2, "depth": 2,
    "depth_single_blocks": 2, "axes_dim": [8, 8, 8, 8], "theta": 2000, "patch_size": 1, "qkv_bias": False,
    "guidance_embed": True, "global_modulation": True, "mlp_silu_act": True, "ops_bias": False,
    "default_ref_method": "index", "ref_index_scale": 10.0,
}
# Mistral Small 3 (40 layers, 5120 wide) at width 64 with 31 layers, so that ComfyUI reads its
# layers 10, 20 and 30 as for the real one; no final norm, as ComfyUI builds any Mistral of under
# 40 layers (the pruned Flux.2 file's); the vocabulary is the tiny tekken's (head_dim stays 128:
# ComfyUI fixes it).
TINY_MISTRAL3 = {"mistral3_24b_model_config": {
    "hidden_size": TINY_MISTRAL3_WIDTH, "intermediate_size": 128, "num_hidden_layers": 31, "num_attention_heads": 2,
    "num_key_value_heads": 1, "final_norm": False}}

TINY_CLIP_LAYERS = {"clip_l_model_config": {"num_hidden_layers": 3, "intermediate_size": 512},
                    "clip_g_model_config": {"num_hidden_layers": 3, "intermediate_size": 512}}


def vae_ddconfig(latent_channels=4, ch=32, num_res_blocks=1):
    return {"double_z": True, "z_channels": latent_channels, "resolution": 256, "in_channels": 3,
            "out_ch": 3, "ch": ch, "ch_mult": [1, 2, 4, 4], "num_res_blocks": num_res_blocks,
            "attn_resolutions": [], "dropout": 0.0}


@torch.no_grad()
def init_weights_(module, seed):
    """Deterministic init that keeps activations in range through a random deep net: norm
    layers start as identity, linear/conv weights ~ N(0, 1/fan_in), biases zero."""
    gen = torch.Generator().manual_seed(seed)
    for _, sub in sorted(module.named_modules(), key=lambda item: item[0]):
        is_norm = "norm" in type(sub).__name__.lower()
        for name, param in sorted(sub.named_parameters(recurse=False), key=lambda item: item[0]):
            if is_norm:
                values = torch.ones(param.shape) if name in ("weight", "scale", "gamma") else torch.zeros(param.shape)
            elif param.ndim >= 2:
                std = 0.02 if isinstance(sub, torch.nn.Embedding) or "embed" in name else 1.0 / math.sqrt(param[0].numel())
                values = torch.randn(param.shape, generator=gen, dtype=torch.float32) * std
            else:
                values = torch.zeros(param.shape)
            param.copy_(values.to(param.dtype))
        # MMDiT (SD3, AuraFlow-style) allocates its fixed sin-cos table with torch.empty and
        # expects a checkpoint to fill it: left alone it holds whatever memory it got (NaN at times).
        if isinstance(getattr(sub, "pos_embed", None), torch.Tensor) and "pos_embed" in dict(sub.named_buffers(recurse=False)):
            sub.pos_embed.copy_(_sincos_table(sub.pos_embed.shape).to(sub.pos_embed.dtype))
    return module


def _sincos_table(shape):
    """SD3's fixed 2-D sin-cos position table for a (1, side*side, width) buffer."""
    from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

    _, patches, width = shape
    side = math.isqrt(patches)
    if side * side != patches:
        raise ValueError(f"pos_embed of {patches} patches is not a square grid")
    return torch.from_numpy(get_2d_sincos_pos_embed(width, side)).float().reshape(shape)


def _unet_model(arch, unet_config, device):
    import comfy.model_base
    import comfy.supported_models as sm

    if arch in ("sd15", "sd15_v"):
        config = sm.SD15(dict(unet_config))
        model_type = (comfy.model_base.ModelType.V_PREDICTION if arch == "sd15_v"
                      else comfy.model_base.ModelType.EPS)
        config.set_inference_dtype(torch.float32, None)
        return comfy.model_base.BaseModel(config, model_type=model_type, device=device)
    if arch == "sdxl":
        config = sm.SDXL(dict(unet_config))
        config.set_inference_dtype(torch.float32, None)
        return comfy.model_base.SDXL(config, device=device)
    if arch == "sd3":
        config = sm.SD3(dict(unet_config))
        config.set_inference_dtype(torch.float32, None)
        return comfy.model_base.SD3(config, device=device)
    if arch == "auraflow":
        config = sm.AuraFlow(dict(unet_config))
        config.set_inference_dtype(torch.float32, None)
        return comfy.model_base.AuraFlow(config, device=device)
    family = base_arch(arch)
    if family in (*FLUX_FAMILY, "zimage", "qwen_image", "flux2"):
        classes = {"flux_dev": sm.Flux, "flux_schnell": sm.FluxSchnell, "chroma": sm.Chroma}
        config = (classes[family] if family in classes else model_class(family))(dict(unet_config))
        if arch.endswith(FP8):
            # What UNETLoader's weight_dtype fp8_e4m3fn does (comfy.sd.load_diffusion_model_state_dict):
            # weights stored in fp8, every layer cast to the compute dtype as it runs.
            config.set_inference_dtype(torch.float8_e4m3fn, torch.float32)
        else:
            config.set_inference_dtype(torch.float32, None)
        return config.get_model({}, "", device=device)
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {ARCHES}")


class MissingModelClass(RuntimeError):
    """This ComfyUI has no model class for the architecture (an older version)."""


def model_class(arch):
    """comfy.supported_models' class for `arch` (MODEL_CLASS); MissingModelClass when absent."""
    import comfy.supported_models as sm

    name = MODEL_CLASS[arch]
    if not hasattr(sm, name):
        raise MissingModelClass(f"this ComfyUI has no comfy.supported_models.{name}")
    return getattr(sm, name)


def build_model(arch, seed=0, unet_config=None):
    """The diffusion model alone, wrapped in ComfyUI's ModelPatcher."""
    import comfy.model_management as mm
    import comfy.model_patcher

    default = {"sd15": SD15_TINY_UNET, "sd15_v": SD15_TINY_UNET, "sdxl": SDXL_TINY_UNET,
               "sd3": SD3_TINY_DIT, "auraflow": AURAFLOW_TINY_DIT, "flux_dev": FLUX_TINY_DIT,
               "flux_schnell": FLUX_SCHNELL_TINY_DIT, "chroma": CHROMA_TINY_DIT, "zimage": ZIMAGE_TINY_DIT,
               "qwen_image": QWEN_IMAGE_TINY_DIT, "flux2": FLUX2_TINY_DIT}
    if arch not in ARCHES:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {ARCHES}")
    model = _unet_model(arch, unet_config or default[base_arch(arch)], device=torch.device("cpu"))
    init_weights_(model.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


def build_clip(arch, seed=0, model_options=None):
    """The text encoder(s) the architecture conditions on, small but with real hidden sizes."""
    import comfy.sd
    import comfy.sd1_clip
    import comfy.sdxl_clip
    import comfy.supported_models_base as smb
    import comfy.text_encoders.sd3_clip as sd3_clip

    arch = base_arch(arch)  # an fp8 variant conditions as its family does
    if arch in ("sd15", "sd15_v", "auraflow"):  # auraflow: only its MODEL matters (the trainer refuses it)
        target = smb.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    elif arch == "sdxl":
        target = smb.ClipTarget(comfy.sdxl_clip.SDXLTokenizer, comfy.sdxl_clip.SDXLClipModel)
    elif arch == "sd3":
        target = smb.ClipTarget(sd3_clip.SD3Tokenizer, sd3_clip.sd3_clip(clip_l=True, clip_g=True, t5=False))
    elif arch in ("flux_dev", "flux_schnell"):  # DualCLIPLoader type flux: CLIP-L + T5
        import comfy.text_encoders.flux as flux_te
        target = smb.ClipTarget(flux_te.FluxTokenizer, flux_te.flux_clip())
    elif arch == "chroma":  # CLIPLoader type chroma: T5 alone
        import comfy.text_encoders.pixart_t5 as pixart_t5
        target = smb.ClipTarget(pixart_t5.PixArtTokenizer, pixart_t5.pixart_te())
    elif arch == "zimage":  # CLIPLoader type lumina2/z_image: Qwen3
        import comfy.text_encoders.z_image as z_image_te
        target = smb.ClipTarget(z_image_te.ZImageTokenizer, z_image_te.te())
    elif arch == "qwen_image":  # CLIPLoader type qwen_image: Qwen2.5-VL 7B
        return _qwen_image_clip(seed, model_options)
    elif arch == "flux2":  # CLIPLoader type flux2: Mistral Small 3, its tokenizer from the file
        return _flux2_clip(seed, model_options)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {ARCHES}")
    tiny = {**TINY_CLIP_LAYERS, **TINY_T5} if arch in FLUX_FAMILY else TINY_CLIP_LAYERS
    tiny = TINY_QWEN3 if arch == "zimage" else tiny
    options = {"dtype": torch.float32, **(tiny if model_options is None else model_options)}
    clip = comfy.sd.CLIP(target, model_options=options)
    init_weights_(clip.cond_stage_model, seed + 1)
    return clip


def _qwen_image_clip(seed, model_options):
    """QwenImage's own clip target (tokenizer: the Qwen2.5 one ComfyUI ships) at TINY_QWEN25, its
    vision tower at TINY_QWEN_VISION (ComfyUI passes that tower no size options)."""
    import comfy.sd
    import comfy.text_encoders.qwen_vl as qwen_vl

    target = model_class("qwen_image")(dict(QWEN_IMAGE_TINY_DIT)).clip_target()
    options = {"dtype": torch.float32, **(TINY_QWEN25 if model_options is None else model_options)}
    full_size = qwen_vl.Qwen2VLVisionTransformer

    def tiny_vision(**kwargs):
        return full_size(**{**kwargs, **TINY_QWEN_VISION})

    qwen_vl.Qwen2VLVisionTransformer = tiny_vision
    try:
        clip = comfy.sd.CLIP(target, model_options=options)
    finally:
        qwen_vl.Qwen2VLVisionTransformer = full_size
    init_weights_(clip.cond_stage_model, seed + 1)
    return clip


class MissingTokenizer(RuntimeError):
    """This ComfyUI cannot build the architecture's tokenizer with the installed transformers."""


def flux2_tokenizer_missing():
    """Why ComfyUI cannot build Flux.2's tokenizer from the tiny tekken.json here, or ''."""
    import comfy.text_encoders.flux as flux_te
    import transformers

    tekken = torch.frombuffer(bytearray(tiny_tekken_json()), dtype=torch.uint8)
    try:
        flux_te.Flux2Tokenizer(tokenizer_data={"tekken_model": tekken})
    except TypeError as exc:
        if "vocab_file" not in str(exc):
            raise
        return ("no Flux.2 fixture: ComfyUI's comfy.text_encoders.flux.load_mistral_tokenizer calls transformers' "
                f"MistralConverter(vocab=..., additional_special_tokens=...), but transformers "
                f"{transformers.__version__}'s MistralConverter only reads a tekken.json path (vocab_file), so no "
                f"Flux.2 tokenizer can be built from a text-encoder file ({exc})")
    return ""


def _flux2_clip(seed, model_options):
    """Flux.2's text encoder as CLIPLoader builds it (flux2_te, Flux2Tokenizer) at TINY_MISTRAL3,
    the tokenizer from the tiny tekken.json as a text-encoder file carries it (`tekken_model`).
    MissingTokenizer where ComfyUI cannot build that tokenizer (see README)."""
    import json

    import comfy.sd
    import comfy.supported_models_base as smb
    import comfy.text_encoders.flux as flux_te

    if flux2_tokenizer_missing():
        raise MissingTokenizer(flux2_tokenizer_missing())
    tekken = tiny_tekken_json()
    if model_options is None:
        vocab = json.loads(tekken)["config"]["default_vocab_size"]
        config = {**TINY_MISTRAL3["mistral3_24b_model_config"], "vocab_size": vocab}
        model_options = {"mistral3_24b_model_config": config}
    target = smb.ClipTarget(flux_te.Flux2Tokenizer, flux_te.flux2_te())
    clip = comfy.sd.CLIP(target, tokenizer_data={"tekken_model": torch.frombuffer(bytearray(tekken), dtype=torch.uint8)},
                         model_options={"dtype": torch.float32, **model_options})
    init_weights_(clip.cond_stage_model, seed + 1)
    return clip


def build_vae(arch, seed=0, ch=32, num_res_blocks=1):
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    arch = base_arch(arch)
    if arch == "qwen_image":  # the Wan 2.1 VAE, from its state dict as VAELoader reads a file
        return comfy.sd.VAE(sd={k: v.contiguous() for k, v in tiny_wan_vae(seed).state_dict().items()})

    if arch == "flux2":
        return _flux2_vae(seed, ch, num_res_blocks)
    latent_channels = 16 if arch in ("sd3", "zimage", *FLUX_FAMILY) else 4
    params = {"embed_dim": latent_channels, "ddconfig": vae_ddconfig(latent_channels, ch, num_res_blocks)}
    autoencoder = init_weights_(AutoencoderKL(**params), seed + 2)
    vae = comfy.sd.VAE(sd=autoencoder.state_dict(), config={"params": params}, dtype=torch.float32)
    vae.latent_channels = latent_channels  # the config path of comfy.sd.VAE assumes 4
    return vae


def _flux2_vae(seed, ch, num_res_blocks):
    """Flux.2's VAE: 32 channels, patched 2x2 and batch-normalised into 128-channel latents at 1/16
    of the image size. comfy.sd.VAE reads that from a file (`bn.running_mean`) but at the full
    width; the config path used for a tiny width assumes SD's 4 channels at 1/8, hence the fix-up."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    params = {"embed_dim": 32, "ddconfig": {**vae_ddconfig(32, ch, num_res_blocks), "batch_norm_latent": True}}
    autoencoder = init_weights_(AutoencoderKL(**params), seed + 2)
    vae = comfy.sd.VAE(sd=autoencoder.state_dict(), config={"params": params}, dtype=torch.float32)
    vae.latent_channels = 128
    vae.downscale_ratio = vae.upscale_ratio = 16
    return vae


def build(arch, seed=0):
    """Model, CLIP and VAE for one tiny architecture."""
    return TinyModels(build_model(arch, seed), build_clip(arch, seed), build_vae(arch, seed), arch)


def save_sd15_checkpoint(path, seed=0):
    """A single-file SD1.5 checkpoint that ComfyUI's CheckpointLoaderSimple detects and loads.

    Detection needs SD1.5's real widths (320 UNet channels, the full CLIP-L, the standard VAE);
    depth stays tiny so it trains and samples on a CPU. Stored in fp16 to keep the file small.
    """
    from _pack import alias_pack

    alias_pack()
    from lookdev.trainer.fileio import write_safetensors

    model = build_model("sd15", seed, unet_config=SD15_CHECKPOINT_UNET)
    clip = build_clip("sd15", seed, model_options={})
    vae = build_vae("sd15", seed, ch=128, num_res_blocks=2)
    # The same key layout comfy.sd.save_checkpoint writes (what the CheckpointSave node does).
    state = model.model.state_dict_for_saving(clip.get_sd(), vae.get_sd(), None)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    return write_safetensors(path, state, metadata={"lookdev.note": "tiny random-weight SD1.5 checkpoint"})


# --- Wan 2.1 / 2.2 (A14B) text-to-video: files as a user has them ---------------------------------
# Wan ships as three files: the diffusion model (UNETLoader, models/diffusion_models), the
# UMT5-XXL text encoder (CLIPLoader type wan, models/text_encoders) and the Wan VAE (VAELoader,
# models/vae). The tiny fixture writes the same three files. ComfyUI reads the transformer's
# widths from its file (heads = dim / 128) and the VAE's base width from `decoder.head.0.gamma`,
# so those two load through the core nodes unchanged. The text encoder's shape ComfyUI takes from
# UMT5-XXL's fixed config (5.7B parameters, detected by its 24th block), so the tiny one is
# loaded as CLIPLoader loads a wan encoder but with a config override (load_wan_clip).
# Wan 2.2 A14B is two experts of this same transformer; the 2.2 5B model (48-channel latents,
# vae2_2) is not built here.

WAN21_TINY_DIT = {  # the keys comfy.model_detection produces for Wan 2.1 t2v, at tiny widths
    "image_model": "wan2.1", "model_type": "t2v", "dim": 128, "out_dim": 16, "num_heads": 1,
    "ffn_dim": 256, "num_layers": 2, "patch_size": (1, 2, 2), "freq_dim": 256, "window_size": (-1, -1),
    "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6, "in_dim": 16,
}

# UMT5-XXL's d_model (4096: the Wan transformer's text_dim), with 2 blocks, one 64-wide head, a
# 16-wide feed-forward and a 128-piece vocabulary.
WAN_TINY_UMT5 = {"num_layers": 2, "num_heads": 1, "d_kv": 64, "d_ff": 16, "vocab_size": 128}
WAN_TINY_VAE_DIM = 8  # the real Wan 2.1 VAE: 96

_SPIECE_WORDS = ("a the of in on at with and noir film grain lighthouse street night rain shot wide close up "
                 "portrait city light dark shadow sea storm man woman car window door red blue green high "
                 "contrast vignette").split()


def tiny_spiece_model():
    """A 128-piece SentencePiece model (the tokenizer format UMT5 uses), trained here in memory."""
    import io

    import sentencepiece

    lines = [" ".join(_SPIECE_WORDS[i:] + _SPIECE_WORDS[:i]) for i in range(len(_SPIECE_WORDS))] * 4
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=out, vocab_size=WAN_TINY_UMT5["vocab_size"],
        model_type="bpe", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    return out.getvalue()


def _wan_clip(tokenizer_data):
    import comfy.sd
    import comfy.supported_models as sm

    target = sm.WAN21_T2V(dict(WAN21_TINY_DIT)).clip_target()  # WanT5Tokenizer + the umt5xxl model
    return comfy.sd.CLIP(target, tokenizer_data=tokenizer_data,
                         model_options={"dtype": torch.float32, "umt5xxl_model_config": dict(WAN_TINY_UMT5)})


def save_wan_files(unet_path, clip_path, vae_path, seed=0):
    """Write the tiny Wan 2.1 diffusion model, text encoder and VAE as the three files users have."""
    from _pack import alias_pack

    alias_pack()
    import comfy.supported_models as sm
    from lookdev.trainer.fileio import write_safetensors

    config = sm.WAN21_T2V(dict(WAN21_TINY_DIT))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "", device=torch.device("cpu"))
    init_weights_(model.diffusion_model, seed)
    write_safetensors(unet_path, {k: v.contiguous() for k, v in model.diffusion_model.state_dict().items()},
                      metadata={"lookdev.note": "tiny random-weight Wan 2.1 t2v transformer"})

    clip = _wan_clip({"spiece_model": tiny_spiece_model()})
    init_weights_(clip.cond_stage_model, seed + 1)
    # A umt5_xxl text-encoder file's layout: the T5 weights at the top level, the tokenizer beside.
    state = {k.removeprefix("umt5xxl.transformer."): v.contiguous() for k, v in clip.get_sd().items()
             if k.startswith("umt5xxl.transformer.")}
    state["spiece_model"] = clip.tokenizer.state_dict()["spiece_model"]
    write_safetensors(clip_path, state, metadata={"lookdev.note": "tiny random-weight UMT5 text encoder"})

    vae = tiny_wan_vae(seed)
    write_safetensors(vae_path, {k: v.contiguous() for k, v in vae.state_dict().items()},
                      metadata={"lookdev.note": "tiny random-weight Wan 2.1 VAE"})


def tiny_wan_vae(seed=0):
    """The Wan 2.1 VAE (16 latent channels; Qwen-Image's VAE too) at base width WAN_TINY_VAE_DIM."""
    from comfy.ldm.wan.vae import WanVAE

    vae = WanVAE(dim=WAN_TINY_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
    return init_weights_(vae, seed + 2)


def load_wan_clip(path):
    """The tiny text encoder file loaded as comfy.sd.load_clip loads a wan-type encoder (the
    tokenizer from the file's spiece_model, every weight from the file), with the tiny config."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    clip = _wan_clip({"spiece_model": state.pop("spiece_model")})
    missing, unexpected = clip.load_sd(state)
    if missing or unexpected:
        raise RuntimeError(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return clip


# --- Flux.2: its tokenizer, as a text-encoder file carries it -------------------------------------
# Flux.2's text encoder files (Mistral Small 3) carry Mistral's tekken.json tokenizer as a uint8
# tensor named `tekken_model`; ComfyUI builds the tokenizer from it (comfy.sd passes it on as
# tokenizer_data). The tiny one: the 256 bytes, the pieces of _SPIECE_WORDS, and the control
# tokens Flux.2's prompt template uses at Mistral's ranks.

TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
                  r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_TEKKEN_SPECIALS = {0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]", 11: "<pad>",
                    17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]"}
TEKKEN_NUM_SPECIAL = 20


def tiny_tekken_json():
    """A tekken.json (bytes) in the layout Mistral ships: config, vocab (byte-level BPE ranks) and
    special_tokens (ranks 0..19)."""
    import base64
    import json

    pieces = [bytes([b]) for b in range(256)]
    for word in _SPIECE_WORDS:
        for spelled in (word, " " + word):
            data = spelled.encode()
            pieces += [data[:end] for end in range(2, len(data) + 1) if data[:end] not in pieces]
    specials = [{"rank": rank, "token_str": _TEKKEN_SPECIALS.get(rank, f"<SPECIAL_{rank}>"), "is_control": True}
                for rank in range(TEKKEN_NUM_SPECIAL)]
    vocab = [{"rank": rank, "token_bytes": base64.b64encode(piece).decode(), "token_str": None}
             for rank, piece in enumerate(pieces)]
    config = {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": len(pieces) + TEKKEN_NUM_SPECIAL,
              "default_vocab_size": len(pieces) + TEKKEN_NUM_SPECIAL,
              "default_num_special_tokens": TEKKEN_NUM_SPECIAL, "version": "v7"}
    return json.dumps({"config": config, "vocab": vocab, "special_tokens": specials}).encode()
