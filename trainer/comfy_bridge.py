"""Everything LookDev touches inside ComfyUI, in one module.

The rest of the pack calls these functions and never imports ComfyUI itself, so a change in
ComfyUI's internals (model patcher, model_sampling, memory management, conditioning, LoRA
patching, folders, progress, the server's websocket) is mended here alone. ComfyUI is imported
lazily inside the functions: importing this module has no side effects and works without it.

Tested against ComfyUI 0.3.75; written against APIs present since 0.3.64.
"""

import contextlib
import functools
import hashlib
import logging
import math
import weakref
from typing import NamedTuple

import torch

log = logging.getLogger("LookDev")

# model_config class name -> LookDev's architecture name (keys, targets, block weights use these)
_ARCHES = {
    "SD15": "sd1", "SD15_instructpix2pix": "sd1",
    "SD20": "sd2", "SD21UnclipL": "sd2", "SD21UnclipH": "sd2", "SD_X4Upscaler": "sd2", "LotusD": "sd2",
    "SDXL": "sdxl", "SDXLRefiner": "sdxl", "SSD1B": "sdxl", "Segmind_Vega": "sdxl", "KOALA_700M": "sdxl",
    "KOALA_1B": "sdxl", "SDXL_instructpix2pix": "sdxl",
    "SD3": "sd3",
    # Chroma: a Flux.1 derivative, same double/single block layout and LoRA names.
    "Flux": "flux", "FluxSchnell": "flux", "FluxInpaint": "flux", "Chroma": "flux",
    "ZImage": "zimage",  # Lumina 2 itself (Gemma TE) is not trained: untested
    # Qwen-Image text-to-image (Qwen-Image Edit's reference images are not trained: untested).
    "QwenImage": "qwen_image",
    # Flux.2 dev (Mistral Small 3 text encoder, 128-channel latents at 1/16, global modulation).
    "Flux2": "flux2",
    # Wan 2.1 and 2.2 A14B text-to-video (2.2's two experts load as WAN21_T2V: the same
    # transformer). Latents are videos [B, 16, frames, h, w]; stills train as one-frame videos.
    # Wan 2.2 5B (WAN22_T2V: 48-channel latents, 16x VAE) is not supported.
    "WAN21_T2V": "wan",
}
# ModelSpec architecture ids (without "/lora") of ComfyUI classes that share a LookDev
# architecture name with another id; the rest use metadata.py's default for the architecture.
_MODELSPEC_IDS = {"Flux": "flux-1-dev", "FluxInpaint": "flux-1-dev", "FluxSchnell": "flux-1-schnell",
                  "Chroma": "chroma"}
# Classes whose training runs at distilled guidance 1 (Flux.1 dev LoRA practice: kohya's
# guidance_scale default, ai-toolkit; Flux.2 dev: musubi-tuner's flux_2_train_network passes
# guidance 1.0); Chroma keeps its own default (0), as it samples.
_GUIDANCE_ONE = ("Flux", "FluxInpaint", "FluxSchnell", "Flux2")
# Flux.1 dev's resolution-dependent shift (BFL's flux/sampling.py get_schedule; kohya sd-scripts
# timestep_sampling flux_shift; ComfyUI's ModelSamplingFlux node): mu grows linearly with the
# image's token count from 0.5 at 256 tokens to 1.15 at 4096 (1024x1024).
# Qwen-Image the same way with its own line: mu from 0.5 at 256 tokens to 0.9 at 8192 (the
# dynamic shift of diffusers' QwenImagePipeline scheduler config; musubi-tuner's
# --timestep_sampling qwen_shift trains with it).
# Flux.2 dev with Flux.1's line over its own tokens (one per latent pixel: patch 1 on latents at
# 1/16, so 4096 at 1024x1024 again): musubi-tuner's --timestep_sampling flux2_shift, the linear
# base/max shift 0.5/1.15 at 256/4096 of ai-toolkit's Flux.2 scheduler config. (Sampling uses a
# step-count dependent mu instead, BFL's compute_empirical_mu in ComfyUI's Flux2Scheduler; a
# training step has no step count.)
_RESOLUTION_SHIFT = {"Flux": (256, 0.5, 4096, 1.15), "FluxInpaint": (256, 0.5, 4096, 1.15),
                     "QwenImage": (256, 0.5, 8192, 0.9), "Flux2": (256, 0.5, 4096, 1.15)}
# Latent pixels per token side where it is not 2 (2x2 patches).
_TOKEN_PATCH = {"Flux2": 1}
# Image pixels per latent pixel where it is not 8 (Flux.2's VAE: 16).
_LATENT_DOWNSCALE = {"Flux2": 16}
# Classes with distilled guidance: a guidance value is a model input (FluxGuidance sets it on the
# conditioning) and CFG stays 1. Chroma reads a guidance input too but is sampled with real CFG.
_DISTILLED_GUIDANCE = ("Flux", "FluxInpaint", "Flux2")
# (cfg, distilled guidance) each family is usually sampled with, for validation renders:
# Flux.1 dev cfg 1 + FluxGuidance 3.5 (BFL's and ComfyUI's default), schnell cfg 1 (no
# guidance input), Chroma cfg 4 (ai-toolkit's sample default), Z-Image Turbo cfg 1 (a
# distilled model: ComfyUI's template, diffusers guidance_scale 0), Qwen-Image cfg 2.5 (ComfyUI's
# template), Flux.2 dev cfg 1 + FluxGuidance 4 (ComfyUI's Flux.2 template, diffusers' Flux2Pipeline
# guidance_scale default), Wan 2.1 cfg 5 (its sample_guide_scale), SD3 4.5 (ComfyUI's SD3.5
# example), SD1.x/2.x/SDXL 7.
_SAMPLING = {"Flux": (1.0, 3.5), "FluxInpaint": (1.0, 3.5), "FluxSchnell": (1.0, None), "Chroma": (4.0, None),
             "ZImage": (1.0, None), "QwenImage": (2.5, None), "Flux2": (1.0, 4.0), "WAN21_T2V": (5.0, None),
             "SD3": (4.5, None)}
_DEFAULT_SAMPLING = (7.0, None)


# --- models -----------------------------------------------------------------------------------

def architecture(model):
    """'sd1', 'sd2', 'sdxl', 'sd3', 'flux', 'zimage', 'qwen_image', 'flux2', 'wan' or 'other' for a ComfyUI
    MODEL."""
    return _ARCHES.get(model_class_name(model), "other")


# Inputs by which ComfyUI's loader nodes name the model file: CheckpointLoaderSimple and the other
# checkpoint loaders (ckpt_name), UNETLoader (unet_name).
_MODEL_FILE_INPUTS = ("ckpt_name", "unet_name")


def model_file_name(prompt, node_id, input_name="model"):
    """The file name (no folders) of the checkpoint or diffusion model that node `node_id`'s MODEL
    input was loaded from, or None when the graph does not tell. ComfyUI keeps no file name on a
    MODEL, so this follows the API-format prompt (the node's hidden PROMPT input) upstream,
    through nodes that pass a MODEL on by their `model` input (LoRA loaders, patches), to the
    loader node."""
    if not isinstance(prompt, dict):
        return None
    link, seen = (prompt.get(str(node_id)) or {}).get("inputs", {}).get(input_name), set()
    while isinstance(link, list) and len(link) == 2 and str(link[0]) not in seen:
        seen.add(str(link[0]))
        inputs = (prompt.get(str(link[0])) or {}).get("inputs", {})
        for key in _MODEL_FILE_INPUTS:
            if isinstance(inputs.get(key), str) and inputs[key].strip():
                return inputs[key].replace("\\", "/").rsplit("/", 1)[-1]
        link = inputs.get("model")
    return None


def modelspec_id(model):
    """The ModelSpec architecture id of a model class that has its own ('flux-1-schnell'), or ''."""
    return _MODELSPEC_IDS.get(model_class_name(model), "")


def takes_distilled_guidance(model):
    """Whether the model reads FluxGuidance's guidance as its own input (Flux.1 dev)."""
    return model_class_name(model) in _DISTILLED_GUIDANCE


def usual_sampling(model):
    """(cfg, guidance or None) the model's family is usually sampled with."""
    return _SAMPLING.get(model_class_name(model), _DEFAULT_SAMPLING)


def with_guidance(conditioning, guidance):
    """CONDITIONING with distilled guidance set, as core FluxGuidance makes it."""
    import node_helpers

    return node_helpers.conditioning_set_values(conditioning, {"guidance": guidance})


def model_class_name(model):
    """The name ComfyUI gives the model's architecture: its supported_models class ('SDXL',
    'AuraFlow', ...)."""
    return type(model.model.model_config).__name__


def diffusion_model(model):
    return model.model.diffusion_model


def model_kind(model):
    """The parameterisation the model predicts: 'eps', 'v' or 'flow'."""
    import comfy.model_sampling as ms

    sampling = model.get_model_object("model_sampling")
    if isinstance(sampling, ms.CONST):
        return "flow"
    if isinstance(sampling, ms.V_PREDICTION):  # EDM too: same loss weighting, see objective.py
        return "v"
    if isinstance(sampling, ms.EPS):
        return "eps"
    raise ValueError(f"LookDev cannot train models with {type(sampling).__name__} sampling "
                     "(supported: eps, v-prediction and flow-matching models)")


def resolve_dtype(name, dtypes):
    """The compute dtype for the training dtype option `name` on the current device."""
    import comfy.model_management as mm

    if dtypes[name] is not None:
        return dtypes[name]
    device = mm.get_torch_device()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def check_cancel():
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()


@torch.no_grad()
def encode_text(clip, text):
    """{'cond': tensor, 'pooled_output': tensor, ...} for one prompt (what CLIPTextEncode makes)."""
    out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
    return {k: (v.clone() if torch.is_tensor(v) else v) for k, v in out.items()}


def conditioning(encoded):
    """A ComfyUI CONDITIONING list from encode_text's dict."""
    extras = {k: v for k, v in encoded.items() if k != "cond"}
    return [[encoded["cond"], extras]]


@torch.no_grad()
def encode_images(vae, images):
    """Raw VAE latents for IMAGE-layout pixels [B, H, W, 3] in 0..1: [B, C, h, w], or for a video
    VAE (Wan) [B, C, 1, h, w], each image a one-frame video. (A video VAE reads a batch of images
    as the frames of one clip, so the images are encoded one by one, as VAEEncode encodes one.)"""
    if not is_video_vae(vae):
        return vae.encode(images[..., :3]).clone()
    return torch.cat([vae.encode(image[None, ..., :3]) for image in images]).clone()


def is_video_vae(vae):
    """True for a VAE whose latents have a time axis ([B, C, frames, h, w]), such as Wan's."""
    return getattr(vae, "latent_dim", 2) == 3


# Image models whose latents have a time axis (the Wan 2.1 VAE's [B, C, 1, h, w]): they make stills.
_STILLS_IN_VIDEO_LATENTS = ("QwenImage",)


def is_video_model(model):
    """True for a diffusion model that samples video latents [B, C, frames, h, w] (Wan)."""
    return (getattr(model.model.latent_format, "latent_dimensions", 2) == 3
            and model_class_name(model) not in _STILLS_IN_VIDEO_LATENTS)


_VAE_IDS = weakref.WeakKeyDictionary()  # first_stage_model -> identity, while ComfyUI keeps the VAE


def vae_identity(vae):
    """A short fingerprint of all of a VAE's weights (every byte), for keying cached latents to the
    VAE that made them. Hashed once per loaded VAE (about a second for an SD VAE on a CPU)."""
    model = vae.first_stage_model
    known = _VAE_IDS.get(model)
    if known is not None:
        return known
    digest = hashlib.sha256(type(model).__name__.encode())
    digest.update(str(vae.latent_channels).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1).contiguous().cpu()
        digest.update(f"{name}\0{tuple(tensor.shape)}\0{tensor.dtype}\n".encode())
        digest.update(flat.view(torch.uint8).numpy())
    _VAE_IDS[model] = digest.hexdigest()[:32]
    return _VAE_IDS[model]


# --- training ---------------------------------------------------------------------------------

class ComfyDenoiser:
    """A loaded ComfyUI model as the training loop's `Denoiser`: noise levels, noising and the
    denoised estimate all come from the model's own model_sampling and apply_model."""

    def __init__(self, patcher, clip, compute_dtype):
        import comfy.model_management as mm

        self.patcher = patcher
        self.model = patcher.model
        self.clip = clip
        self.device = mm.get_torch_device()
        self.compute_dtype = compute_dtype
        self.sampling = patcher.get_model_object("model_sampling")
        self.kind = model_kind(patcher)
        self.model_class = model_class_name(patcher)
        self.downscale = _LATENT_DOWNSCALE.get(self.model_class, 8)
        self.sigma_data = float(getattr(self.sampling, "sigma_data", 1.0))
        self._t_lo = float(self.sampling.timestep(self.sampling.sigma_min))
        self._t_hi = float(self.sampling.timestep(self.sampling.sigma_max))
        self._model_conds = {}

    def to_model_space(self, latents):
        """Raw VAE latents, a batch or one sample, in the model's space. Per-channel latent
        formats (Wan's mean and std) need the batch axis to broadcast right."""
        if latents.ndim == getattr(self.model.latent_format, "latent_dimensions", 2) + 1:
            return self.model.process_latent_in(latents[None])[0]
        return self.model.process_latent_in(latents)

    def sigmas(self, u, latent_shape=None):
        t = self._t_lo + u * (self._t_hi - self._t_lo)
        shift = _RESOLUTION_SHIFT.get(self.model_class)
        if shift is None or latent_shape is None:
            return self.sampling.sigma(t).to(self.device)
        import comfy.model_sampling as ms

        x1, y1, x2, y2 = shift
        patch = _TOKEN_PATCH.get(self.model_class, 2)
        tokens = (latent_shape[-2] // patch) * (latent_shape[-1] // patch)
        mu = y1 + (y2 - y1) / (x2 - x1) * (tokens - x1)
        return ms.flux_time_shift(mu, 1.0, t).to(self.device)

    def noise_scaling(self, sigma, noise, x0):
        return self.sampling.noise_scaling(sigma, noise, x0)

    def encode_captions(self, texts):
        return {text: encode_text(self.clip, text) for text in texts}

    def _conds_for(self, encoded, x_one):
        key = (id(encoded), tuple(x_one.shape))
        if key not in self._model_conds:
            params = {k: v for k, v in encoded.items() if k != "cond"}
            params.update(cross_attn=encoded["cond"], device=self.device, noise=x_one,
                          width=x_one.shape[-1] * self.downscale, height=x_one.shape[-2] * self.downscale,
                          prompt_type="positive")
            if self.model_class in _GUIDANCE_ONE:
                params.setdefault("guidance", 1.0)
            with torch.no_grad():
                conds = self.model.extra_conds(**params)
                self._model_conds[key] = {name: c.process_cond(batch_size=1, device=self.device, area=None)
                                          for name, c in conds.items()}
        return self._model_conds[key]

    def denoise(self, x, sigma, conds):
        per_sample = [self._conds_for(enc, x[i:i + 1]) for i, enc in enumerate(conds)]
        if not all(first.can_concat(s[name]) for s in per_sample[1:] for name, first in per_sample[0].items()):
            # Conditioning that does not batch (Chroma's unpadded T5 tokens of captions of other
            # lengths): one sample at a time, as ComfyUI's sampler does with such conds.
            return torch.cat([self.denoise(x[i:i + 1], sigma[i:i + 1], [enc]) for i, enc in enumerate(conds)])
        kwargs = {}
        for name, first in per_sample[0].items():
            value = first.concat([s[name] for s in per_sample[1:]]) if len(per_sample) > 1 else first.cond
            kwargs[name] = value.to(self.device) if torch.is_tensor(value) else value
        with _autocast(self.device, self.compute_dtype):
            return self.model.apply_model(x, sigma, **kwargs).float()


@contextlib.contextmanager
def training_session(model, clip, compute_dtype, gradient_checkpointing=False):
    """Load `model` for training and yield a ComfyDenoiser; on exit the model is as it was.

    The executor runs nodes under torch.inference_mode; tensors made there cannot enter autograd,
    so the session leaves inference mode and re-creates any inference-mode weights as ordinary
    tensors with the same values (outputs stay bit-identical).
    """
    import comfy.model_management as mm

    patcher = model.clone()
    with torch.inference_mode(False), torch.enable_grad():
        mm.load_models_gpu([patcher], force_full_load=True)
        _thaw_inference_tensors(patcher.model)
        grads = {name: p.requires_grad for name, p in patcher.model.named_parameters()}
        patcher.model.requires_grad_(False)
        try:
            inplace = model_class_name(patcher) in _INPLACE_RESIDUALS
            with _checkpointing(patcher.model.diffusion_model, gradient_checkpointing, copy_inputs=inplace), \
                    _norm_inputs_kept(patcher.model.diffusion_model, inplace):
                yield ComfyDenoiser(patcher, clip, compute_dtype)
        finally:
            for name, param in patcher.model.named_parameters():
                param.requires_grad_(grads.get(name, False))


def _autocast(device, dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _thaw_inference_tensors(module):
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and param.is_inference():
                sub._parameters[name] = torch.nn.Parameter(param.clone(), requires_grad=False)
        for name, buf in list(sub._buffers.items()):
            if buf is not None and buf.is_inference():
                sub._buffers[name] = buf.clone()


# Models whose blocks add to the residual stream in place (`x += ...`) after a LayerNorm has read
# it: ComfyUI's Flux double/single stream blocks, which Chroma uses too. Fine for sampling, but the
# norm keeps its input for backward, so autograd refuses the modified tensor.
_INPLACE_RESIDUALS = ("Flux", "FluxSchnell", "FluxInpaint", "Chroma", "Flux2")


@contextlib.contextmanager
def _norm_inputs_kept(diffusion_model, enabled):
    """While training, each LayerNorm of the model reads a copy of its input, so the block's
    in-place residual add changes a tensor autograd does not need (outputs stay bit-identical)."""
    if not enabled:
        yield
        return

    def copy_input(_module, args):
        if torch.is_grad_enabled() and args and torch.is_tensor(args[0]):
            return (args[0].clone(), *args[1:])
        return None

    handles = [module.register_forward_pre_hook(copy_input) for module in diffusion_model.modules()
               if isinstance(module, torch.nn.LayerNorm)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _copied(value):
    return value.clone() if torch.is_tensor(value) else value


@contextlib.contextmanager
def _checkpointing(diffusion_model, enabled, copy_inputs=False):
    """Recompute each of the model's blocks (see _checkpoint_units) in backward. copy_inputs: each
    block runs on copies of its tensor inputs, so a block that adds to its input in place (Flux)
    leaves the tensor its recomputation starts from as it was."""
    if not enabled:
        yield
        return
    import torch.utils.checkpoint

    patched = []
    for block in _checkpoint_units(diffusion_model):
        inner = block.forward
        if copy_inputs:
            def inner(*args, _forward=inner, **kwargs):
                return _forward(*map(_copied, args), **{k: _copied(v) for k, v in kwargs.items()})

        def forward(*args, _inner=inner, **kwargs):
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return torch.utils.checkpoint.checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = forward
        patched.append(block)
    try:
        yield
    finally:
        for block in patched:
            del block.forward


def _checkpoint_units(module):
    """The blocks a diffusion model runs one after another: the children of its outermost
    ModuleLists (DiT blocks), each checkpointed once, never also the blocks nested in them.
    ldm UNets (SD1.x, SD2.x, SDXL) call the layers of their TimestepEmbedSequential containers
    one by one (forward_timestep_embed), never the container's forward, so those layers are
    the units there: ResBlocks, SpatialTransformers, down- and upsamplers."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential

    for child in module.children():
        if isinstance(child, TimestepEmbedSequential):
            yield from child
        elif isinstance(child, torch.nn.ModuleList):
            for block in child:
                yield from (block if isinstance(block, TimestepEmbedSequential) else (block,))
        else:
            yield from _checkpoint_units(child)


def named_layers(model):
    """(path, module) for every module of the diffusion model."""
    return list(diffusion_model(model).named_modules())


# --- applying LoRAs ---------------------------------------------------------------------------

def lora_key_map(model, clip=None):
    """ComfyUI's map from every LoRA key spelling it accepts to the model's weight keys."""
    import comfy.lora

    key_map = {}
    if model is not None:
        key_map = comfy.lora.model_lora_keys_unet(model.model, key_map)
    if clip is not None:
        key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    return key_map


class _ReadTracker(dict):
    """A LoRA state dict that remembers which tensors ComfyUI's loader actually used."""

    def __init__(self, tensors):
        super().__init__(tensors)
        self.used = set()

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.used.add(key)
        return value

    def get(self, key, default=None):
        if key in self:
            return self[key]
        return default


class LoraMatch(NamedTuple):
    """What ComfyUI's loader made of a LoRA state dict."""

    patches: dict  # {model or CLIP weight key: adapter}
    used: set  # tensor names the loader read
    names: list  # every tensor name, as the loader saw them (after ComfyUI's format conversion)


def lora_patches(lora_tensors, key_map):
    """ComfyUI's patches for a LoRA state dict, as comfy.sd.load_lora_for_models makes them."""
    import inspect

    import comfy.lora
    import comfy.lora_convert

    tracked = _ReadTracker(comfy.lora_convert.convert_lora(dict(lora_tensors)))
    kwargs = {"log_missing": False} if "log_missing" in inspect.signature(comfy.lora.load_lora).parameters else {}
    patches = comfy.lora.load_lora(tracked, key_map, **kwargs)
    return LoraMatch(patches, tracked.used, list(tracked))


def _target_shape(key, shapes):
    """The shape a patch key writes: the whole weight, or the slice a (key, offset) tuple names."""
    if isinstance(key, str):
        return shapes.get(key)
    shape = shapes.get(key[0])
    if shape is None or key[1] is None:
        return shape
    dim, _, length = key[1]
    return shape[:dim] + (length,) + shape[dim + 1:]


def _meta(tensor):
    return torch.empty(tensor.shape, device="meta") if torch.is_tensor(tensor) else None


def _rank(dim, what):
    if dim < 1:
        raise ValueError(f"{what} has rank {dim}; a rank is at least 1")


def _lora_diff(weights):
    """The shape of a LoRA/LoCon patch's up @ (mid) @ down, computed as ComfyUI computes it."""
    up, down, mid = _meta(weights[0]), _meta(weights[1]), _meta(weights[3])
    _rank(down.shape[0], "lora_down")
    if up.ndim < 2 or up.shape[1:].numel() != down.shape[0]:
        raise ValueError(f"lora_up {_dims(up.shape)} does not fit lora_down {_dims(down.shape)} (inner rank)")
    if mid is not None:
        if mid.ndim != 4 or tuple(mid.shape[:2]) != (down.shape[0], down.shape[0]) or down.shape[2:].numel() != 1:
            raise ValueError(f"lora_mid {_dims(mid.shape)} does not fit lora_down {_dims(down.shape)}")
        down = torch.empty((down.shape[0], down.shape[1], *mid.shape[2:]), device="meta")
    return (up.shape[0], *down.shape[1:])


def _loha_diff(weights):
    w1a, w1b, _, w2a, w2b, t1, t2 = map(_meta, weights[:7])
    shapes = []
    for a, b, t, n in ((w1a, w1b, t1, 1), (w2a, w2b, t2, 2)):
        _rank(b.shape[0], f"hada_w{n}_b")
        if t is None:
            if a.ndim != 2 or a.shape[1] != b.shape[0]:
                raise ValueError(f"hada_w{n}_a {_dims(a.shape)} does not fit hada_w{n}_b {_dims(b.shape)} (inner rank)")
            shapes.append((a.shape[0], *b.shape[1:]))
        else:
            shapes.append(tuple(torch.einsum("i j k l, j r, i p -> p r k l", t, b, a).shape))
    if shapes[0] != shapes[1]:
        raise ValueError(f"its two Hadamard factors differ ({_dims(shapes[0])} and {_dims(shapes[1])})")
    return shapes[0]


def _lokr_diff(weights):
    w1, w2, _, w1a, w1b, w2a, w2b, t2 = map(_meta, weights[:8])
    if w1 is None:
        _rank(w1b.shape[0], "lokr_w1_b")
        w1 = w1a @ w1b
    if w2 is None:
        _rank(w2b.shape[0], "lokr_w2_b")
        w2 = w2a @ w2b if t2 is None else torch.einsum("i j k l, j r, i p -> p r k l", t2, w2b, w2a)
    if w2.ndim == 4:
        w1 = w1[:, :, None, None]
    return tuple(torch.kron(w1, w2).shape)


def _dims(shape):
    return "x".join(map(str, shape)) or "scalar"


def _adapter_kinds():
    import comfy.weight_adapter as adapters

    # (class, name, shape of its weight difference, index of its DoRA scale in .weights)
    return ((adapters.LoRAAdapter, "LoRA", _lora_diff, 4), (adapters.LoHaAdapter, "LoHa", _loha_diff, 7),
            (adapters.LoKrAdapter, "LoKr", _lokr_diff, 8))


def patch_problem(patch, target):
    """Why ComfyUI could not apply `patch` to a weight of shape `target` (it would log an error at
    sampling time and leave the weight as it is, or fail with a bare ZeroDivisionError), or None.
    Checks inner ranks, rank >= 1, the shape the adapter makes and a DoRA scale's length. GLoRA,
    OFT and BOFT patches are left to ComfyUI."""
    if isinstance(patch, tuple):  # ("diff", (tensor,)) full-weight differences, ("set", ...)
        kind, values = patch
        if kind in ("diff", "set") and len(values) == 1 and tuple(values[0].shape) != tuple(target):
            return f"{kind} {_dims(values[0].shape)} for weight {_dims(target)}"
        return None
    for cls, name, diff_shape, dora_index in _adapter_kinds():
        if not isinstance(patch, cls):
            continue
        if name == "LoRA" and patch.weights[5] is not None:
            return None  # reshape_weight: ComfyUI pads the weight to the LoRA's shape first
        try:
            shape = diff_shape(patch.weights)
        except (ValueError, RuntimeError) as exc:  # RuntimeError: meta-tensor math of mismatched factors
            return f"{name}: {exc}"
        if shape[0] != target[0] or math.prod(shape) != math.prod(target):
            return f"{name} makes {_dims(shape)} for weight {_dims(target)}"
        dora = patch.weights[dora_index]  # one scale per output row, or per input column
        if dora is not None and dora.numel() not in (target[0], target[1] if len(target) > 1 else 1):
            return f"DoRA scale {_dims(dora.shape)} for weight {_dims(target)}"
        return None
    return None


def misfit_patches(model, clip, patches):
    """{key: reason} for patches ComfyUI could not apply to the weight they name (patch_problem)."""
    shapes = {}
    for module in ([model.model] if model is not None else []) + ([clip.cond_stage_model] if clip is not None else []):
        shapes.update((k, tuple(v.shape)) for k, v in module.state_dict().items())
    misfits = {}
    for key, patch in patches.items():
        target = _target_shape(key, shapes)
        problem = None if target is None else patch_problem(patch, target)
        if problem:
            misfits[key] = problem
    return misfits


def add_patches(model, clip, patches, strength_model, strength_clip, scale_of=None):
    """Clones of model and clip with the patches added, each key scaled by scale_of(key)."""
    new_model = model.clone() if model is not None else None
    new_clip = clip.clone() if clip is not None else None
    groups = {}
    for key, patch in patches.items():
        groups.setdefault(1.0 if scale_of is None else float(scale_of(key)), {})[key] = patch
    for scale, group in groups.items():
        if new_model is not None and strength_model != 0 and scale != 0:
            new_model.add_patches(group, strength_model * scale)
        if new_clip is not None and strength_clip != 0 and scale != 0:
            new_clip.add_patches(group, strength_clip * scale)
    return new_model, new_clip


# --- sampling ---------------------------------------------------------------------------------

def sampler_names():
    import comfy.samplers

    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names():
    import comfy.samplers

    return list(comfy.samplers.KSampler.SCHEDULERS)


def latent_channels(model):
    return int(model.model.latent_format.latent_channels)


def latent_downscale(model):
    """Image pixels per latent pixel: 8, or 16 for Flux.2 (as EmptyFlux2LatentImage makes them)."""
    return _LATENT_DOWNSCALE.get(model_class_name(model), 8)


@torch.no_grad()
def render(model, positive, negative, vae, width, height, seed, steps, cfg, sampler, scheduler, on_step=None,
           length=1):
    """One image [1, H, W, 3] the way KSampler + VAEDecode make it (same noise for the same seed); on a
    video model (Wan) a clip [length, H, W, 3] from the latent EmptyHunyuanLatentVideo makes for
    `length` (4k+1) frames: [1, C, (length - 1) // 4 + 1, H / 8, W / 8]."""
    import comfy.sample
    import comfy.model_management as mm

    if is_video_model(model):
        if architecture(model) != "wan":
            raise ValueError(f"LookDev renders clips with Wan 2.1 / 2.2 14B text-to-video models; this video model "
                             f"is {model_class_name(model)}")
        time_axis = [(length - 1) // 4 + 1]
    elif length == 1:
        time_axis = []
    else:
        raise ValueError(f"this model makes still images; a clip of {length} frames needs a video model (Wan)")
    scale = latent_downscale(model)
    latent = torch.zeros([1, latent_channels(model), *time_axis, height // scale, width // scale],
                         device=mm.intermediate_device())
    latent = comfy.sample.fix_empty_latent_channels(model, latent) \
        if hasattr(comfy.sample, "fix_empty_latent_channels") else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    callback = None if on_step is None else (lambda step, x0, x, total: on_step(step + 1, total))
    samples = comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                                  denoise=1.0, seed=seed, callback=callback, disable_pbar=True)
    images = vae.decode(samples)
    if images.ndim == 5:  # a video VAE's [B, frames, H, W, 3]: frames as images, as VAEDecode does
        images = images.reshape(-1, *images.shape[-3:])
    return images[..., :3].clamp(0, 1).float().cpu()


# --- folders, progress, websocket ---------------------------------------------------------------

def folder(kind):
    """ComfyUI's output, temp or input directory."""
    import folder_paths

    return {"output": folder_paths.get_output_directory, "temp": folder_paths.get_temp_directory,
            "input": folder_paths.get_input_directory}[kind]()


def model_folders(kind):
    import folder_paths

    return list(folder_paths.get_folder_paths(kind))


def model_files(kind):
    import folder_paths

    return list(folder_paths.get_filename_list(kind))


def model_file_path(kind, name):
    import folder_paths

    return folder_paths.get_full_path(kind, name)


def register_model_folder(kind, extensions):
    """Make `models/<kind>/` a ComfyUI model folder (idempotent)."""
    import os

    import folder_paths

    if kind not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[kind] = ([os.path.join(folder_paths.models_dir, kind)], set(extensions))


CAPTIONERS = "captioners"


def captioner_roots():
    """The folders that hold captioning models, one sub-folder per model: models/captioners
    (registered on first use, never at import) and any 'captioners' entries of
    extra_model_paths.yaml."""
    register_model_folder(CAPTIONERS, {".json", ".safetensors"})
    return model_folders(CAPTIONERS)


def captioning_device():
    """(device, dtype) to run a captioning model with: ComfyUI's device, half precision where
    ComfyUI would use it for its own models (respects --cpu, --force-fp32, ...)."""
    import comfy.model_management as mm

    device = mm.get_torch_device()
    if device.type == "cuda" and mm.should_use_fp16(device):
        return device, torch.float16
    return device, torch.float32


def metadata_enabled():
    """False when ComfyUI runs with --disable-metadata (then no prompt or workflow goes into files)."""
    from comfy.cli_args import args

    return not args.disable_metadata


def progress_bar(total):
    import comfy.utils

    return comfy.utils.ProgressBar(total)


def send_event(event, data):
    """Send a websocket message to the browser that queued the prompt (no-op without a server)."""
    try:
        from server import PromptServer
    except ImportError:
        return
    instance = getattr(PromptServer, "instance", None)
    if instance is not None:
        instance.send_sync(event, data, getattr(instance, "client_id", None))


@functools.lru_cache(maxsize=1)
def comfyui_version():
    try:
        import comfyui_version
        return comfyui_version.__version__
    except ImportError:
        return "unknown"


def current_prompt_id():
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(getattr(PromptServer, "instance", None), "last_prompt_id", None)


def video_from_bytes(data):
    """ComfyUI's VIDEO (what core Save Video and the other video nodes take) holding the bytes of a
    video file: comfy_api.input_impl.VideoFromFile, the public path of ComfyUI's video class since
    the VIDEO type arrived (before 0.3.64; tested on 0.3.75). It reads a path or a BytesIO, and Save
    Video copies its streams without re-encoding them."""
    import io

    from comfy_api.input_impl import VideoFromFile

    return VideoFromFile(io.BytesIO(bytes(data)))


def save_temp_image(image, prefix):
    """Save the first picture of an IMAGE [B, H, W, 3] as a PNG in ComfyUI's temp folder and
    return the entry a node lists in {"ui": {"images": [...]}}, as PreviewImage does. The name
    follows the pixels: an unchanged result rewrites the same file instead of adding one."""
    import io
    from pathlib import Path

    from .fileio import write_bytes
    from .pixels import to_pil

    buffer = io.BytesIO()
    to_pil(image[0, ..., :3], rounded=True).save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    name = f"{prefix}_{hashlib.sha256(data).hexdigest()[:16]}.png"
    write_bytes(Path(folder("temp")) / name, data)
    return {"filename": name, "subfolder": "", "type": "temp"}


# --- video --------------------------------------------------------------------------------------

def video_source(video):
    """A path or a binary file object PyAV can open, from ComfyUI's VIDEO type (comfy_api's
    VideoInput: Load Video, Create Video, ...). get_stream_source avoids a copy where the video
    is a file; save_to (the abstract method every VideoInput has) is the fallback."""
    import io

    get_source = getattr(video, "get_stream_source", None)
    if callable(get_source):
        return get_source()
    if callable(getattr(video, "save_to", None)):
        buffer = io.BytesIO()
        video.save_to(buffer)
        buffer.seek(0)
        return buffer
    raise ValueError(f"video_input is a {type(video).__name__}, not a ComfyUI VIDEO; connect "
                     "Load Video or another node's VIDEO output")
