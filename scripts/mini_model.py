"""LookDev Mini: a teaching-size SD1.5-architecture base model, and how its checkpoint is assembled.

ComfyUI's CheckpointLoaderSimple recognises SD1.5 only at the real widths (320 UNet channels, the
full CLIP-L text encoder, the 128-channel VAE), which at fp16 is far more than the repository can
carry. So the model is trained *narrow* and shipped narrow (`assets/lookdev_mini_v2.safetensors`):

- UNet: one level, `UNET_WIDTH` (120) of the 320 channels, 3 of the 8 heads (40 channels each);
- VAE: `VAE_WIDTH` (16/32/64/64) of the 128/256/512/512 channels, no mid-block attention.

`assemble()` embeds those weights into zero tensors of the full widths: the extra channels stay
exactly zero through every layer (zero weights and biases; group norms whose groups never mix
real and zero channels; layer norms with zero scale on the extra channels), so the full-width
network computes what the narrow one computed. The narrow networks are ComfyUI's own classes with
the normalisation patched to the full network's statistics (`narrow_unet`, `narrow_vae`), so
training sees the exact function ComfyUI later runs. The CLIP-L text encoder is not trained: it is
built as-is from `CLIP_SEED` (the UNet learned to read its features), so only trained weights ship.
"""

import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

VERSION = "lookdev-mini-2"
CHECKPOINT_NAME = "lookdev_mini_v2.safetensors"
SHIPPED = ROOT / "assets" / CHECKPOINT_NAME  # the trained narrow weights, in the repository
FULL_WIDTH = 320
UNET_WIDTH = 120  # a multiple of 40 (head size) and of 20 (group size of the 640-channel skip concat)
HEAD_CHANNELS = 40
FULL_VAE = 128
VAE_WIDTH = 16
CLIP_SEED = 1313
# The UNet as ComfyUI's model detection reads it from the assembled checkpoint.
MINI_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "in_channels": 4, "out_channels": 4, "model_channels": FULL_WIDTH, "num_res_blocks": [1],
    "transformer_depth": [1], "transformer_depth_output": [1, 1], "channel_mult": [1],
    "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 768,
    "use_temporal_resblock": False, "use_temporal_attention": False,
}
VAE_DDCONFIG = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                "ch": FULL_VAE, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [],
                "dropout": 0.0}


def _padded_layer_norm(full):
    """LayerNorm over `full` features of which only the first ones are non-zero."""

    def forward(self, x):
        mean = x.sum(-1, keepdim=True) / full
        var = (x * x).sum(-1, keepdim=True) / full - mean * mean
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    return forward


def _ops_with_groups(groups):
    """ComfyUI's layer classes, with every GroupNorm built with `groups` groups."""
    import comfy.ops

    class NarrowOps(comfy.ops.disable_weight_init):
        class GroupNorm(comfy.ops.disable_weight_init.GroupNorm):
            def __init__(self, num_groups, num_channels, *args, **kwargs):
                super().__init__(groups, num_channels, *args, **kwargs)

    return NarrowOps


def narrow_unet():
    """The trainable UNet: ComfyUI's UNetModel at UNET_WIDTH, computing the full model's function."""
    import types

    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    ops = _ops_with_groups(32 * UNET_WIDTH // FULL_WIDTH)  # the full model's group sizes
    config = {**MINI_UNET, "model_channels": UNET_WIDTH, "num_heads": -1, "num_head_channels": HEAD_CHANNELS}
    model = UNetModel(**config, dtype=torch.float32, device="cpu", operations=ops)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.forward = types.MethodType(_padded_layer_norm(FULL_WIDTH), module)
    # Timestep features stay those of the 320-channel model.
    model.model_channels = FULL_WIDTH
    model.time_embed[0] = ops.Linear(FULL_WIDTH, 4 * UNET_WIDTH)
    return model


def narrow_vae():
    """The trainable VAE: ComfyUI's AutoencoderKL at VAE_WIDTH, no mid-block attention."""
    import comfy.ldm.modules.diffusionmodules.model as vae_modules
    from comfy.ldm.models.autoencoder import AutoencoderKL

    # The VAE modules build their group norms through the module's `ops`; swap it while building.
    original = vae_modules.ops
    vae_modules.ops = _ops_with_groups(32 * VAE_WIDTH // FULL_VAE)  # the full VAE's group sizes
    try:
        model = AutoencoderKL(ddconfig={**VAE_DDCONFIG, "ch": VAE_WIDTH}, embed_dim=4)
    finally:
        vae_modules.ops = original
    model.encoder.mid.attn_1 = torch.nn.Identity()
    model.decoder.mid.attn_1 = torch.nn.Identity()
    return model


# Channel layout of the colour path through the VAE: each colour and a constant as +/- pairs, so a
# group norm's mean is exactly zero and its spread is set by the constant (not by the picture).
_PAIRS = {"R": 0, "G": 4, "B": 8}  # channel of +colour; +1 is -colour, +2/+3 the constant +K/-K
_K = 30.0
_SHIFT = 10.0  # lifts values where swish(x) = x * sigmoid(x) is the identity to 5e-4


@torch.no_grad()
def structured_vae():
    """The VAE's starting point, built rather than learned: the latent is the 8x8 block mean of
    R, G, B (4th channel 0) and the decoder repeats it back (a colour mosaic). Residual branches
    are zero, downsampling averages 2x2, upsampling repeats; training then sharpens it."""
    vae = narrow_vae()
    for param in vae.parameters():
        param.zero_()
    for name, module in vae.named_modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.fill_(1.0)
    centre = (slice(None), slice(None), 1, 1)

    def colour_in(conv, source):
        """conv writes +c, -c, +K, -K for c in R, G, B from input channel source[c]."""
        for c, (colour, at) in enumerate(_PAIRS.items()):
            conv.weight[at][(source[c], 1, 1)] = 1.0
            conv.weight[at + 1][(source[c], 1, 1)] = -1.0
            conv.bias[at + 2], conv.bias[at + 3] = _K, -_K

    def identity(conv, channels):
        kernel = conv.weight.shape[-1]
        for ch in range(channels):
            conv.weight[(ch, ch, kernel // 2, kernel // 2) if kernel > 1 else (ch, ch, 0, 0)] = 1.0

    def mean_2x2(conv):
        for ch in range(conv.weight.shape[0]):
            conv.weight[ch, ch, 0:2, 0:2] = 0.25

    def lift(norm, sigma):
        for colour, at in _PAIRS.items():
            for ch in (at, at + 1):
                norm.weight[ch], norm.bias[ch] = sigma, _SHIFT

    def colour_out(conv, rows):
        for row, (colour, at) in zip(rows, _PAIRS.items()):
            conv.weight[(row, at) + centre[2:]] = 0.5
            conv.weight[(row, at + 1) + centre[2:]] = -0.5

    enc, dec = vae.encoder, vae.decoder
    colour_in(enc.conv_in, [0, 1, 2])
    for level in enc.down:
        for block in level.block:
            if hasattr(block, "nin_shortcut"):
                identity(block.nin_shortcut, block.nin_shortcut.weight.shape[1])
        if hasattr(level, "downsample"):
            mean_2x2(level.downsample.conv)
    lift(enc.norm_out, _K * math.sqrt(6 / 16))  # group of 16: R, G, B pairs and three +/-K pairs
    colour_out(enc.conv_out, [0, 1, 2])
    identity(vae.quant_conv, 8)
    identity(vae.post_quant_conv, 4)
    colour_in(dec.conv_in, [0, 1, 2])
    for level in dec.up:
        for block in level.block:
            if hasattr(block, "nin_shortcut"):
                identity(block.nin_shortcut, block.nin_shortcut.weight.shape[0])
        if hasattr(level, "upsample"):
            identity(level.upsample.conv, level.upsample.conv.weight.shape[0])
    lift(dec.norm_out, _K * math.sqrt(2 / 4))  # group of 4: one colour pair and one +/-K pair
    colour_out(dec.conv_out, [0, 1, 2])
    return vae


@torch.no_grad()
def init_narrow_(module, seed):
    """Seeded init (scripts/tiny_models.py's), then the last layer of every residual branch and the
    UNet's output at zero, the usual start for a diffusion model."""
    import tiny_models

    tiny_models.init_weights_(module, seed)
    for name, sub in module.named_modules():
        if name.endswith(("out_layers.3", "proj_out")) or name == "out.2":
            sub.weight.zero_()
    return module


def _index(narrow, full):
    """Positions of `narrow` channels inside `full`: a prefix, or for the skip concat (640) and
    the GEGLU projection (2560) a prefix of each half."""
    if narrow == full:
        return torch.arange(full)
    if full in (2 * FULL_WIDTH, 8 * FULL_WIDTH) and narrow % 2 == 0:
        half = narrow // 2
        return torch.cat([torch.arange(half), full // 2 + torch.arange(half)])
    return torch.arange(narrow)


def embed(narrow_sd, full_sd):
    """full_sd's shapes filled with the narrow tensors in their channels; every other value zero,
    except norm scales (one), and layer-norm scale and shift of the extra channels (zero, so those
    channels stay zero)."""
    out = {}
    for key, full in full_sd.items():
        value = torch.zeros(full.shape, dtype=torch.float32)
        is_norm_scale = key.endswith("weight") and full.ndim == 1 and "norm" in key
        small = narrow_sd.get(key)
        if is_norm_scale and not (small is not None and "transformer_blocks" in key):
            value.fill_(1.0)
        if small is not None:
            index = [_index(n, f) for n, f in zip(small.shape, full.shape)]
            value[torch.meshgrid(*index, indexing="ij")] = small.float()
        out[key] = value
    return out


def full_unet(narrow_sd):
    """ComfyUI's full-width SD1.5 BaseModel holding the embedded narrow UNet."""
    import tiny_models

    model = tiny_models._unet_model("sd15", MINI_UNET, device=torch.device("cpu"))
    full_sd = model.diffusion_model.state_dict()
    model.diffusion_model.load_state_dict(embed(narrow_sd, full_sd))
    return model


def full_vae_sd(narrow_sd):
    from comfy.ldm.models.autoencoder import AutoencoderKL

    with torch.device("meta"):
        model = AutoencoderKL(ddconfig=dict(VAE_DDCONFIG), embed_dim=4)
    return embed(narrow_sd, model.state_dict())


def as_built_clip():
    """The CLIP-L text encoder, untrained, from CLIP_SEED (weights rounded to fp16 as shipped)."""
    import tiny_models

    clip = tiny_models.build_clip("sd15", CLIP_SEED, model_options={})
    with torch.no_grad():
        for param in clip.cond_stage_model.parameters():
            param.copy_(param.half().float())
    return clip


def split_shipped(state):
    """(unet, vae) narrow state dicts from the shipped file's `unet.` / `vae.` keys."""
    unet = {k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")}
    vae = {k[len("vae."):]: v for k, v in state.items() if k.startswith("vae.")}
    return unet, vae


def assemble(shipped_path, out_path):
    """Write the one-file SD1.5 checkpoint CheckpointLoaderSimple loads, from the shipped weights."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from _pack import alias_pack

    alias_pack()
    from lookdev.trainer.fileio import write_safetensors

    with safe_open(str(shipped_path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    unet, vae = split_shipped(load_file(str(shipped_path)))
    clip = as_built_clip()
    # The key layout comfy.sd.save_checkpoint writes (what the CheckpointSave node does).
    state = full_unet(unet).state_dict_for_saving(clip.get_sd(), full_vae_sd(vae), None)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    metadata.update({"lookdev.assembled_from": CHECKPOINT_NAME, "lookdev.clip_seed": str(CLIP_SEED),
                     "lookdev.note": json.dumps("LookDev Mini: a teaching-size SD1.5-architecture model for "
                                                "the demo, tests and thumbnails; not a production model")})
    return write_safetensors(out_path, state, metadata=metadata)


def ensure_checkpoint(folder):
    """`folder`/CHECKPOINT_NAME, assembled from SHIPPED unless already there; returns its path."""
    path = Path(folder) / CHECKPOINT_NAME
    if not path.exists():
        assemble(SHIPPED, path)
    return path
