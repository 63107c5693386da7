#!/usr/bin/env python3
"""Pretrain LookDev Mini (scripts/mini_model.py) on procedural colour scenes (scripts/mini_scenes.py).

    python scripts/pretrain_mini.py [--work build/mini-pretrain] [--out assets/lookdev_mini_v2.safetensors]

Two phases, each seeded and resumable (a checkpoint every --save-every steps in --work; run the
same command again after a kill and it continues from the newest one):

1. VAE: starts from mini_model.structured_vae() (latent = 8x8 block mean colour) and, for
   vae_steps > 0, learns to reconstruct random crops of the scenes (L1 + MSE); then the latent scale
   is set so the latents ComfyUI feeds the UNet (x 0.18215) have unit RMS, and PSNR is measured
   on held-out scenes. The shipped model uses vae_steps 0 (see the README: 70 steps of training
   from a random start reached 15.7 dB with wrong colours on this CPU; the structured VAE 20.7 dB).
2. UNet: epsilon prediction on the SD1.5 noise schedule, conditioned on the captions through the
   as-built CLIP-L (10% empty captions, so classifier-free guidance works), EMA weights shipped.

Writes the narrow weights in fp16 with the settings, data recipe, PSNR and times in the metadata,
and preview samples (`preview.png`, two captions per seed) into --work.
"""

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

SETTINGS = {
    "seed": 0, "vae_steps": 0, "vae_batch": 8, "vae_crop": 40, "vae_lr": 2e-3,
    "unet_steps": 3000, "unet_batch": 16, "unet_lr": 1e-3, "unet_warmup": 100, "ema": 0.999,
    "train_scenes": 6000, "heldout_scenes": 48, "caption_dropout": 0.1, "bases": [64, 96],
    "aspects": ["1:1", "1.33", "1.78", "2.39", "9:16"],
}
LATENT_SCALE = 0.18215  # ComfyUI's SD15 latent format
HELDOUT_OFFSET = 1_000_000


def log(work, text):
    line = f"{time.strftime('%H:%M:%S')} {text}"
    print(line, flush=True)
    from lookdev.trainer.fileio import write_text

    path = work / "log.txt"
    write_text(path, (path.read_text(encoding="utf-8") if path.exists() else "") + line + "\n")


def setup_comfy(threads):
    import comfy_server

    comfy = comfy_server.comfyui_path()
    sys.path.insert(0, str(comfy))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True
    import comfy.model_management  # noqa: F401  (after the flags)

    torch.set_num_threads(threads)


def frame_sizes(settings):
    from _pack import alias_pack

    alias_pack()
    from lookdev.trainer.render.framing import frame_size

    return [frame_size(a, b, 8) for b in settings["bases"] for a in settings["aspects"]]


def to_tensor(image):
    import numpy as np

    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


def scene_tensor(seed, sizes):
    import mini_scenes

    spec = mini_scenes.scene_spec(seed)
    size = sizes[seed % len(sizes)]
    return to_tensor(mini_scenes.draw(spec, size)), mini_scenes.caption(spec)


def save_state(path, tensors, meta):
    from lookdev.trainer.fileio import write_safetensors

    write_safetensors(path, {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                      metadata={k: json.dumps(v) for k, v in meta.items()})


def load_state(path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        meta = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
    return load_file(str(path)), meta


def optimizer_tensors(optimizer, names):
    out = {}
    for name, param in names.items():
        state = optimizer.state.get(param)
        if state:
            out[f"opt.{name}.exp_avg"] = state["exp_avg"]
            out[f"opt.{name}.exp_avg_sq"] = state["exp_avg_sq"]
            out[f"opt.{name}.step"] = torch.as_tensor(state["step"]).float().reshape(1)
    return out


def restore_optimizer(optimizer, names, tensors):
    for name, param in names.items():
        if f"opt.{name}.exp_avg" in tensors:
            optimizer.state[param] = {"exp_avg": tensors[f"opt.{name}.exp_avg"].clone(),
                                      "exp_avg_sq": tensors[f"opt.{name}.exp_avg_sq"].clone(),
                                      "step": tensors[f"opt.{name}.step"].reshape(()).clone()}


def latest(work, phase):
    found = sorted(work.glob(f"{phase}_*.safetensors"))
    return found[-1] if found else None


def train_vae(work, settings, sizes, save_every):
    import mini_model

    vae = mini_model.structured_vae()
    params = dict(vae.named_parameters())
    optimizer = torch.optim.Adam(params.values(), lr=settings["vae_lr"])
    start = 0
    if (path := latest(work, "vae")) is not None:
        tensors, meta = load_state(path)
        vae.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        restore_optimizer(optimizer, params, tensors)
        start = meta["step"]
        log(work, f"vae: resumed at step {start} from {path.name}")
    crop, batch = settings["vae_crop"], settings["vae_batch"]
    began = time.monotonic()
    for step in range(start, settings["vae_steps"]):
        rng = random.Random(f"vae-{settings['seed']}-{step}")
        images = []
        for _ in range(batch):
            image, _ = scene_tensor(rng.randrange(settings["train_scenes"]), sizes)
            top = rng.randrange(image.shape[1] - crop + 1)
            left = rng.randrange(image.shape[2] - crop + 1)
            images.append(image[:, top:top + crop, left:left + crop])
        x = torch.stack(images)
        lr = settings["vae_lr"] * 0.5 * (1 + math.cos(math.pi * step / settings["vae_steps"]))
        for group in optimizer.param_groups:
            group["lr"] = lr
        z = vae.encode(x)
        z = z[0] if isinstance(z, tuple) else z
        recon = vae.decode(z)
        loss = (recon - x).abs().mean() + ((recon - x) ** 2).mean() + 1e-6 * (z ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % 20 == 0:
            log(work, f"vae step {step + 1}/{settings['vae_steps']} loss {loss.item():.4f} "
                      f"({(time.monotonic() - began) / (step + 1 - start):.2f}s/step)")
        if (step + 1) % save_every == 0 or step + 1 == settings["vae_steps"]:
            tensors = {f"model.{k}": v for k, v in vae.state_dict().items()}
            tensors.update(optimizer_tensors(optimizer, params))
            save_state(work / f"vae_{step + 1:06d}.safetensors", tensors, {"step": step + 1})
    return vae


@torch.no_grad()
def encode(vae, x):
    z = vae.encode(x)
    return z[0] if isinstance(z, tuple) else z


@torch.no_grad()
def calibrate_and_measure(work, vae, settings, sizes):
    """Scale the latents to unit RMS after ComfyUI's 0.18215 (an exact reparametrisation of
    quant_conv / post_quant_conv); PSNR of the fp16 VAE on held-out scenes."""
    zs = [encode(vae, scene_tensor(seed, sizes)[0][None]) for seed in range(0, 256, 2)]
    rms = torch.cat([z.flatten() for z in zs]).pow(2).mean().sqrt().item()
    scale = (1 / LATENT_SCALE) / rms
    vae.quant_conv.weight[:4] *= scale
    vae.quant_conv.bias[:4] *= scale
    vae.post_quant_conv.weight /= scale
    for param in vae.parameters():
        param.copy_(param.half().float())
    psnrs = []
    for seed in range(HELDOUT_OFFSET, HELDOUT_OFFSET + settings["heldout_scenes"]):
        x, _ = scene_tensor(seed, sizes)
        recon = vae.decode(encode(vae, x[None])).clamp(-1, 1)
        mse = (((recon[0] - x) / 2) ** 2).mean().item()
        psnrs.append(10 * math.log10(1 / max(mse, 1e-10)))
    psnr = sum(psnrs) / len(psnrs)
    log(work, f"vae: latent scale x{scale:.3f}; held-out PSNR {psnr:.2f} dB over {len(psnrs)} scenes")
    return psnr


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


@torch.no_grad()
def prepare_unet_data(work, vae, settings, sizes):
    """Scaled latents by frame size, and the CLIP-L conditioning of every caption (and of '')."""
    import mini_model

    clip = mini_model.as_built_clip()
    by_size, captions = {}, {}
    for seed in range(settings["train_scenes"]):
        x, text = scene_tensor(seed, sizes)
        by_size.setdefault(tuple(x.shape[1:]), []).append((seed, text))
        captions[text] = None
    captions[""] = None
    began = time.monotonic()
    texts = list(captions)
    for i in range(0, len(texts), 24):
        # One call for many captions: each is one 77-token section, encoded as one batch.
        chunk = texts[i:i + 24]
        tokens = {}
        for text in chunk:
            for key, sections in clip.tokenize(text).items():
                tokens.setdefault(key, []).extend(sections)
        cond = clip.encode_from_tokens(tokens).float()
        for text, value in zip(chunk, cond.view(len(chunk), -1, cond.shape[-1])):
            captions[text] = value
    log(work, f"unet data: {len(captions)} captions encoded in {time.monotonic() - began:.0f}s")
    latents = {}
    for size, items in by_size.items():
        x = torch.stack([scene_tensor(seed, sizes)[0] for seed, _ in items])
        latents[size] = (torch.cat([encode(vae, x[i:i + 32]) for i in range(0, len(x), 32)]) * LATENT_SCALE,
                         [text for _, text in items])
    log(work, f"unet data: {settings['train_scenes']} scenes in {len(latents)} sizes encoded")
    return latents, captions, clip


def train_unet(work, settings, latents, captions, save_every, stop, device):
    import mini_model

    unet = mini_model.init_narrow_(mini_model.narrow_unet(), settings["seed"] + 2).to(device)
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    params = dict(unet.named_parameters())
    optimizer = torch.optim.AdamW(params.values(), lr=settings["unet_lr"], weight_decay=0.01)
    start = 0
    if (path := latest(work, "unet")) is not None:
        tensors, meta = load_state(path)
        unet.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema = {k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("ema.")}
        restore_optimizer(optimizer, params, {k: v if k.endswith(".step") else v.to(device)  # Adam keeps step on the CPU
                                              for k, v in tensors.items()})
        start = meta["step"]
        log(work, f"unet: resumed at step {start} from {path.name}")
    acp = alphas_cumprod().to(device)
    latents = {size: (z.to(device), texts) for size, (z, texts) in latents.items()}
    captions = {text: value.to(device) for text, value in captions.items()}
    sizes = sorted(latents)
    weights = [len(latents[s][1]) for s in sizes]
    began = time.monotonic()
    for step in range(start, stop):
        rng = random.Random(f"unet-{settings['seed']}-{step}")
        gen = torch.Generator().manual_seed(settings["seed"] * 1_000_003 + step)
        size = rng.choices(sizes, weights)[0]
        z, texts = latents[size]
        picks = [rng.randrange(len(texts)) for _ in range(settings["unet_batch"])]
        x0 = z[picks]
        context = torch.stack([captions["" if rng.random() < settings["caption_dropout"] else texts[i]]
                               for i in picks])
        # Drawn on the CPU whatever the device, so a run's noise depends on the seed alone.
        t = torch.randint(0, 1000, (len(picks),), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        warm = min(1.0, (step + 1) / settings["unet_warmup"])
        lr = settings["unet_lr"] * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / settings["unet_steps"])))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = ((unet(xt, t.float(), context=context) - noise) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        optimizer.step()
        decay = min(settings["ema"], (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in unet.state_dict().items():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
        if (step + 1) % 20 == 0:
            log(work, f"unet step {step + 1}/{settings['unet_steps']} loss {loss.item():.4f} "
                      f"({(time.monotonic() - began) / (step + 1 - start):.2f}s/step)")
        if (step + 1) % save_every == 0 or step + 1 == stop:
            tensors = {f"model.{k}": v for k, v in unet.state_dict().items()}
            tensors.update({f"ema.{k}": v for k, v in ema.items()})
            tensors.update(optimizer_tensors(optimizer, params))
            save_state(work / f"unet_{step + 1:06d}.safetensors", tensors, {"step": step + 1})
    unet.load_state_dict(ema)
    return unet.cpu()


@torch.no_grad()
def sample(unet, vae, context, uncond, shape, seed, steps=20, cfg=4.0):
    """DDIM, for the previews only (ComfyUI's samplers render everything else)."""
    acp = alphas_cumprod()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    ts = torch.linspace(999, 0, steps).long()
    for i, t in enumerate(ts):
        both = unet(torch.cat([x, x]), torch.full((2 * len(x),), float(t)), context=torch.cat([context, uncond]))
        cond, unc = both.chunk(2)
        eps = unc + cfg * (cond - unc)
        a = acp[t]
        a_prev = acp[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return vae.decode(x / LATENT_SCALE).clamp(-1, 1)


PREVIEW_CAPTIONS = ("a red car on a street under a blue sky, wide shot", "a tree in a park at night, close-up",
                    "a person in a blue coat on a street at dusk, medium shot",
                    "a building with windows on a street at night, wide shot")


@torch.no_grad()
def previews(work, unet, vae):
    """Two seeds x four captions at 128x72, for a person to look at (`preview.png`)."""
    import mini_model
    from PIL import Image

    from lookdev.trainer.fileio import write_image

    clip = mini_model.as_built_clip()
    encode_text = lambda text: clip.encode_from_tokens(clip.tokenize(text)).float()  # noqa: E731
    uncond = encode_text("")
    cells = []
    for seed in (1, 2):
        for text in PREVIEW_CAPTIONS:
            image = sample(unet, vae, encode_text(text), uncond, (1, 4, 9, 16), seed)
            cells.append(Image.fromarray(((image[0].permute(1, 2, 0) + 1) * 127.5).byte().numpy()))
    w, h = cells[0].size
    sheet = Image.new("RGB", (w * len(PREVIEW_CAPTIONS), h * 2))
    for i, cell in enumerate(cells):
        sheet.paste(cell, ((i % len(PREVIEW_CAPTIONS)) * w, (i // len(PREVIEW_CAPTIONS)) * h))
    write_image(work / "preview.png", sheet.resize((sheet.width * 2, sheet.height * 2), Image.NEAREST), "PNG")


def unet_step(path):
    return int(path.stem.split("_")[-1]) if path is not None else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "build" / "mini-pretrain"))
    parser.add_argument("--out", default=None, help="default: assets/<mini_model.CHECKPOINT_NAME>")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu",
                        help="where the UNet phase trains, e.g. cuda (the rest runs on the CPU); "
                             "a GPU gives other rounding than the CPU, so other weights from the same seed")
    parser.add_argument("--save-every", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="a few steps on a few scenes, to check the script")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="end the UNet phase after this step of its schedule (default: unet_steps)")
    args = parser.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        parser.error(f"--device {args.device}: {error}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this machine has no CUDA device (torch {torch.__version__})")
    setup_comfy(args.threads)
    import mini_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or ROOT / "assets" / mini_model.CHECKPOINT_NAME)
    settings = dict(SETTINGS)
    if args.smoke:
        settings.update(vae_steps=4, unet_steps=4, train_scenes=64, heldout_scenes=4)
    torch.manual_seed(settings["seed"])
    sizes = frame_sizes(settings)
    began = time.monotonic()
    log(work, f"pretraining {mini_model.VERSION}: {json.dumps(settings)}")
    vae = train_vae(work, settings, sizes, args.save_every)
    vae_seconds = time.monotonic() - began
    psnr = calibrate_and_measure(work, vae, settings, sizes)
    stop = min(args.stop_after or settings["unet_steps"], settings["unet_steps"])
    if unet_step(latest(work, "unet")) < stop:
        latents, captions, _ = prepare_unet_data(work, vae, settings, sizes)
        unet = train_unet(work, settings, latents, captions, args.save_every, stop, device)
    else:  # trained that far already: the EMA weights of that step's checkpoint
        import mini_model

        tensors, _ = load_state(work / f"unet_{stop:06d}.safetensors")
        unet = mini_model.narrow_unet()
        unet.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        log(work, f"unet: EMA weights of step {stop} from its checkpoint")
    total = time.monotonic() - began
    for param in unet.parameters():
        param.data = param.data.half().float()
    previews(work, unet, vae)
    import mini_scenes

    shipped = {f"unet.{k}": v.half() for k, v in unet.state_dict().items()}
    shipped.update({f"vae.{k}": v.half() for k, v in vae.state_dict().items()})
    metadata = {
        "lookdev.version": mini_model.VERSION, "lookdev.settings": json.dumps(settings),
        "lookdev.data_recipe": json.dumps({"generator": "scripts/mini_scenes.py", "recipe_version": mini_scenes.RECIPE_VERSION,
                                           "train_seeds": [0, settings["train_scenes"]],
                                           "heldout_seeds": [HELDOUT_OFFSET, HELDOUT_OFFSET + settings["heldout_scenes"]],
                                           "frame_sizes": sizes}),
        "lookdev.widths": json.dumps({"unet": mini_model.UNET_WIDTH, "vae": mini_model.VAE_WIDTH,
                                      "clip_seed": mini_model.CLIP_SEED}),
        "lookdev.vae_psnr_db": f"{psnr:.2f}", "lookdev.unet_steps_done": str(stop),
        "lookdev.pretrain_seconds": f"{total:.0f}", "lookdev.vae_seconds": f"{vae_seconds:.0f}",
        "lookdev.pretrain_device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
    }
    from lookdev.trainer.fileio import write_safetensors

    write_safetensors(out, {k: v.contiguous() for k, v in shipped.items()}, metadata=metadata)
    log(work, f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) after {total:.0f}s; PSNR {psnr:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
