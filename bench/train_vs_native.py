"""LookDev's trainer against ComfyUI's native `TrainLoraNode`, side by side, in one process.

Both run as nodes through ComfyUI's real executor on the same tiny architecture-faithful
SD1.5-style model (scripts/tiny_models.py), the same latents (LookDev's latent cache, encoded
once by the same VAE), the same captions, seed, rank and step count. Runs alternate
(native, LookDev, native, LookDev, ...) so drift in machine load hits both alike.

Per side and mode it reports:
- seconds per optimizer step: the median over steps after the warm-up, over all rounds, from
  the timestamps of the progress-bar update each trainer makes after every optimizer step;
- node seconds: the whole node (set-up, caption encoding, saving) for context;
- peak memory above the loaded model: see _bench.PeakMemory (the same way for both sides);
- evaluation loss: LookDev's fixed-noise, fixed-noise-level loss on the training set
  (trainer/training/loop.evaluation_loss), fp32, applied to each side's result as a user gets
  it: LookDev's MODEL output (its saved LoRA patched in) and native's LORA_MODEL output applied
  through native's own LoraModelLoader.

Modes (see MODES): each side at its defaults, and equal settings on equal layers.

    python bench/train_vs_native.py                # tiny UNet (5.2M params), ~3 minutes
    python bench/train_vs_native.py --width 160 --steps 16 --warmup 3   # 28M params, ~8 minutes
    python bench/train_vs_native.py --width 320 --resolution 256 --steps 8 --warmup 3 --rounds 1
        --modes equal-native,equal-fp32            # 107M params at 32x32 latents, ~7 minutes
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

TRIGGER = "lkdv noir"

# Native TrainLoraNode's inputs at its defaults (comfy_extras/nodes_train.py, 0.3.75).
NATIVE_DEFAULTS = dict(batch_size=1, grad_accumulation_steps=1, learning_rate=5e-4, rank=8, optimizer="AdamW",
                       loss_function="MSE", training_dtype="bf16", lora_dtype="bf16", algorithm="LoRA",
                       gradient_checkpointing=True, existing_lora="[None]")

# LookDev at equal settings to a native run: constant learning rate, no clipping, uniform noise
# levels, every caption as written, and every Linear and Conv2d weight ("all linear and conv"),
# the layers native puts LoRA on. Native also trains full-size diffs of every bias and norm
# weight, which LookDev does not (see the notes printed with the table). Native has no alpha
# input: its LoRA is alpha 1 (scale 1/rank) with the up matrix random (~1/sqrt(rank)) and down
# zero. LookDev keeps its own convention, alpha = rank (scale 1) with down random
# (~1/sqrt(fan_in)) and up zero, as kohya and peft do; the first steps then move the model by a
# similar amount on both sides. Alpha changes no cost; ALPHA_ONE re-runs LookDev with alpha 1
# once per mode for the evaluation loss alone.
EQUAL_LOOKDEV = dict(schedule="constant", max_grad_norm=0.0, timestep_sampling="uniform",
                     caption_dropout=0.0, shuffle_captions=False, targets="all linear and conv",
                     optimizer="AdamW", loss="mse")
ALPHA_ONE = {"alpha": 1.0}

MODES = {
    "defaults": {
        "help": "each side at its node defaults (LookDev: rank 16, alpha 16, lr 1e-4 cosine, attention layers, "
                "fp32 on CPU ('auto'), no checkpointing, high-noise timesteps, caption dropout 0.05; native: "
                "rank 8, lr 5e-4 constant, all Linear/Conv2d + bias/norm diffs, bf16, checkpointing)",
        "native": {},
        "lookdev": {},
    },
    "equal-fp32": {
        "help": "equal settings, fp32, no gradient checkpointing, rank 8, lr 5e-4, all linear+conv "
                "(LookDev alpha 8 = rank, its convention; native has no alpha input)",
        "native": dict(training_dtype="fp32", lora_dtype="fp32", gradient_checkpointing=False),
        "lookdev": dict(EQUAL_LOOKDEV, rank=8, alpha=8.0, learning_rate=5e-4, dtype="fp32",
                        gradient_checkpointing=False),
    },
    "equal-native": {
        "help": "equal settings at native's defaults: bf16 compute, gradient checkpointing, rank 8, "
                "lr 5e-4, all linear+conv (LookDev alpha 8 = rank)",
        "native": {},
        "lookdev": dict(EQUAL_LOOKDEV, rank=8, alpha=8.0, learning_rate=5e-4, dtype="bf16",
                        gradient_checkpointing=True),
    },
}


def parse_args(argv=None):
    parser = _bench.parser(__doc__)
    parser.add_argument("--width", type=int, default=64, help="UNet model_channels (64 = the tiny test model)")
    parser.add_argument("--resolution", type=int, default=128, help="image side in pixels (latent = /8)")
    parser.add_argument("--images", type=int, default=8, help="training images")
    parser.add_argument("--batch", type=int, default=1, help="batch size for both sides")
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=4, help="first steps left out of the step time")
    parser.add_argument("--rounds", type=int, default=3, help="native/LookDev pairs per mode")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {list(MODES)}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [m for m in args.modes.split(",") if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {list(MODES)}")
    if args.steps <= args.warmup + 2:
        parser.error("--steps must exceed --warmup by at least 3")
    return args


# --- set-up: model, dataset, latents, captions ---------------------------------------------------

def scene(index, size):
    """A small high-contrast frame, different per index, so the LoRA has something to fit."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (12 + 9 * (index % 3), 12, 16))
    draw = ImageDraw.Draw(img)
    x = (index * 37) % (size // 2)
    draw.rectangle([x, size // 6, x + size // 4, size - size // 8], fill=(230, 225, 210))
    draw.ellipse([size // 2, x // 2, size // 2 + size // 5, x // 2 + size // 5], fill=(200, 60, 40))
    draw.polygon([(0, size), (size, size // 2 + index), (size, size)], fill=(40, 40, 48))
    return img


def scene_dataset(count, resolution):
    """A LookDev dataset of `count` scenes, captioned as a style set would be."""
    import numpy as np
    import torch
    from lookdev.trainer.dataset.dataset import DatasetConfig, dataset_from_images

    images = torch.stack([torch.from_numpy(np.asarray(scene(i, resolution), dtype=np.float32) / 255.0)
                          for i in range(count)])
    captions = [f"a figure in an alley, rain, lamp {i}" for i in range(count)]
    return dataset_from_images(images, captions, DatasetConfig(resolution=resolution, trigger=TRIGGER))


def build_setup(host, args):
    import tiny_models
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.dataset.cache import LatentCache
    from lookdev.trainer.dataset.captions import plain_caption
    from lookdev.trainer.training.data import Example
    from lookdev.trainer.training.run import RunPaths

    unet = {**tiny_models.SD15_TINY_UNET, "model_channels": args.width}
    model = tiny_models.build_model("sd15", args.seed, unet_config=unet)
    clip = tiny_models.build_clip("sd15", args.seed)
    vae = tiny_models.build_vae("sd15", args.seed)
    dataset = scene_dataset(args.images, args.resolution)
    # The node's own cache folder: LookDev's runs read these latents back instead of encoding.
    cache = LatentCache(RunPaths.for_name("bench").cache)
    raw = cache.latents_for(dataset.samples, bridge.vae_identity(vae), lambda b: bridge.encode_images(vae, b))
    texts = [plain_caption(s.caption) for s in dataset.samples]
    conds = [bridge.conditioning(bridge.encode_text(clip, t)) for t in texts]
    examples = [Example(latent=model.model.process_latent_in(l.unsqueeze(0))[0], captions=(t,), dropped_caption=TRIGGER)
                for l, t in zip(raw, texts)]
    params = sum(p.numel() for p in model.model.diffusion_model.parameters())
    return {"model": model, "clip": clip, "vae": vae, "dataset": dataset, "examples": examples,
            "latents": [{"samples": l.unsqueeze(0)} for l in raw], "conds": conds, "unet_params": params}


# --- the two graphs ------------------------------------------------------------------------------

def native_prompt(args, overrides):
    inputs = dict(NATIVE_DEFAULTS, batch_size=args.batch, steps=args.steps, seed=args.seed)
    inputs.update(overrides)
    inputs.update(model=["m", 0], latents=["l", 0], positive=["c", 0])
    return {
        "m": {"class_type": "LookDevBench_model", "inputs": {}},
        "l": {"class_type": "LookDevBench_latents", "inputs": {}},
        "c": {"class_type": "LookDevBench_conds", "inputs": {}},
        "t": {"class_type": "TrainLoraNode", "inputs": inputs},
        "k": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["t", 1], "label": "native_lora"}},
    }


def lookdev_prompt(args, overrides, name):
    inputs = {"model": ["m", 0], "clip": ["p", 0], "vae": ["v", 0], "dataset": ["d", 0], "name": name,
              "steps": args.steps, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, "batch_size": args.batch,
              "targets": "attention", "seed": args.seed, "resume": False}
    inputs.update(overrides)
    return {
        "m": {"class_type": "LookDevBench_model", "inputs": {}},
        "p": {"class_type": "LookDevBench_clip", "inputs": {}},
        "v": {"class_type": "LookDevBench_vae", "inputs": {}},
        "d": {"class_type": "LookDevBench_dataset", "inputs": {}},
        "t": {"class_type": "LookDevTrainStyleLoRA", "inputs": inputs},
        "k": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["t", 0], "label": "lookdev_model"}},
    }


# --- one run -----------------------------------------------------------------------------------

def evaluate(setup, model):
    import torch
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.loop import evaluation_loss

    with bridge.training_session(model, setup["clip"], torch.float32) as den:
        return evaluation_loss(den, setup["examples"])


def run_once(host, setup, args, side, mode, round_index, steps=None, extra=None):
    import time

    import comfy.model_management
    import torch

    steps = steps or args.steps
    overrides = dict(MODES[mode][side], steps=steps, **(extra or {}))
    if side == "native":
        prompt = native_prompt(args, overrides)
        torch.manual_seed(args.seed)  # native draws batches, noise levels and LoRA init from the global RNG
    else:
        prompt = lookdev_prompt(args, overrides, f"bench_{mode}_{round_index}")
    host.captured.clear()
    host.step_times.clear()
    comfy.model_management.unload_all_models()  # no model state of an earlier run in the baseline
    began = time.perf_counter()
    with _bench.PeakMemory() as memory:
        host.memory = memory
        try:
            host.run(prompt, fresh=True)
        finally:
            host.memory = None
    seconds = time.perf_counter() - began
    if len(host.step_times) != steps:
        raise RuntimeError(f"{side} reported {len(host.step_times)} progress updates for {steps} steps")
    wall, cpu = _bench.step_seconds(host, args.warmup)
    if side == "native":
        lora_model = host.node_class("LoraModelLoader").execute(setup["model"], host.captured["native_lora"], 1.0)
        trained = lora_model.result[0]
    else:
        trained = host.captured["lookdev_model"]
    loss = evaluate(setup, trained)
    host.captured.clear()
    return {"steps": wall, "cpu": cpu, "node_s": seconds, "mem": memory.above, "train_mem": memory.training,
            "eval": loss, "method": memory.method}


def trained_parameter_counts(host, setup, args):
    """(native trainable tensors/params on LoRA'd weights, on bias+norm diffs) from one tiny run."""
    import torch

    prompt = native_prompt(args, {"training_dtype": "fp32", "lora_dtype": "fp32", "gradient_checkpointing": False})
    prompt["t"]["inputs"]["steps"] = 1
    torch.manual_seed(args.seed)
    host.step_times.clear()
    host.run(prompt, fresh=True)
    lora = host.captured.pop("native_lora")
    lora_keys = {k.rsplit(".", 2)[0] for k in lora if k.endswith("lora_up.weight")}
    extra = sum(v.numel() for k, v in lora.items() if k.endswith((".diff", ".diff_b")))
    low_rank = sum(v.numel() for k, v in lora.items() if ".lora_" in k)
    return lora_keys, low_rank, extra


def lookdev_layers(setup):
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.targets import select_targets

    return {f"diffusion_model.{p}" for p in select_targets(bridge.named_layers(setup["model"]), "sd1",
                                                            "all linear and conv")}


# --- main ----------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    host = _bench.start_comfy(args.threads or None)
    import comfy.utils

    comfy.utils.set_progress_bar_enabled(False)  # native's tqdm console bar; the UI hook still runs
    machine = _bench.machine(host)
    setup = build_setup(host, args)
    _bench.register_nodes(host, {"model": ("MODEL", setup["model"], False), "clip": ("CLIP", setup["clip"], False),
                                 "vae": ("VAE", setup["vae"], False),
                                 "dataset": ("LOOKDEV_DATASET", setup["dataset"], False),
                                 "latents": ("LATENT", setup["latents"], True),
                                 "conds": ("CONDITIONING", setup["conds"], True)})
    native_layers, native_lowrank, native_extra = trained_parameter_counts(host, setup, args)
    ours = lookdev_layers(setup)
    if native_layers != ours:
        raise RuntimeError(f"layer sets differ: native only {sorted(native_layers - ours)[:5]}, "
                           f"LookDev only {sorted(ours - native_layers)[:5]}")
    base_eval = evaluate(setup, setup["model"])
    print(machine)
    print(f"UNet {setup['unet_params'] / 1e6:.1f}M params, width {args.width}, {args.images} images "
          f"{args.resolution}px, batch {args.batch}, {args.steps} steps (first {args.warmup} not timed), "
          f"{args.rounds} rounds; eval loss of the untrained model {base_eval:.4f}", flush=True)

    results = {}
    loads = []
    for mode in args.modes.split(","):
        for side in ("native", "lookdev"):  # first-run costs (lazy init, allocator growth) stay out of the table
            run_once(host, setup, args, side, mode, "warmup", steps=args.warmup + 3)
        for r in range(args.rounds):
            for side in ("native", "lookdev") if r % 2 == 0 else ("lookdev", "native"):
                loads.append(_bench.load_now())
                out = run_once(host, setup, args, side, mode, r)
                results.setdefault((mode, side), []).append(out)
                print(f"  {mode:13s} round {r + 1} {side:8s} {_bench.median(out['steps']):.3f} s/step "
                      f"({_bench.median(out['cpu']):.3f} CPU s)  "
                      f"node {out['node_s']:.1f} s  mem +{out['train_mem']:.0f} MiB training, +{out['mem']:.0f} node  "
                      f"eval {out['eval']:.4f}", flush=True)
        if "alpha" in MODES[mode]["lookdev"]:
            alpha_one = run_once(host, setup, args, "lookdev", mode, "alpha1", extra=ALPHA_ONE)
            results[(mode, "alpha1")] = alpha_one["eval"]
            print(f"  {mode:13s} LookDev with alpha 1: eval {alpha_one['eval']:.4f}", flush=True)
    body = report(args, setup, results, base_eval, native_layers, native_lowrank, native_extra, loads)
    _bench.publish(f"train_vs_native (width {args.width}, {args.resolution}px, batch {args.batch})", machine, body,
                   record=not args.no_record)


def report(args, setup, results, base_eval, native_layers, native_lowrank, native_extra, loads):
    rows = []
    for mode in args.modes.split(","):
        cells = {}
        for side in ("native", "lookdev"):
            runs = results[(mode, side)]
            cells[side] = {
                "step": _bench.median([s for r in runs for s in r["steps"]]),
                "cpu": _bench.median([s for r in runs for s in r["cpu"]]),
                "node": _bench.median([r["node_s"] for r in runs]),
                "mem": _bench.median([r["mem"] for r in runs]),
                "train_mem": _bench.median([r["train_mem"] for r in runs]),
                "eval": _bench.median([r["eval"] for r in runs]),
            }
        n, o = cells["native"], cells["lookdev"]
        for side, c in (("native", n), ("LookDev", o)):
            rows.append([mode, side, f"{c['step']:.3f}", f"{1 / c['step']:.2f}", f"{c['cpu']:.3f}", f"{c['node']:.1f}",
                         f"{c['train_mem']:.0f}", f"{c['mem']:.0f}", f"{c['eval']:.4f}"])
        rows.append([mode, "**LookDev / native**", f"{o['step'] / n['step']:.2f}x",
                     f"**{n['step'] / o['step']:.2f}x**", f"{o['cpu'] / n['cpu']:.2f}x", f"{o['node'] / n['node']:.2f}x",
                     f"**{o['train_mem'] / n['train_mem']:.2f}x**" if n["train_mem"] > 0 else "n/a",
                     f"{o['mem'] / n['mem']:.2f}x" if n["mem"] > 0 else "n/a",
                     f"{o['eval'] - n['eval']:+.4f}"])
    headers = ["mode", "side", "s/step (median)", "steps/s", "CPU s/step", "node s", "training peak MiB",
               "node peak MiB", "eval loss"]
    method = results[next(iter(results))][0]["method"]
    notes = [
        f"UNet width {args.width} ({setup['unet_params'] / 1e6:.1f}M params), {args.images} images at "
        f"{args.resolution}px (latent {args.resolution // 8}x{args.resolution // 8}), batch {args.batch}, "
        f"{args.steps} steps per run, first {args.warmup} not timed, {args.rounds} alternating rounds per mode; "
        f"load average during runs {min(loads):.2f}-{max(loads):.2f}.",
        f"Eval loss: fixed noise at noise fractions 0.25/0.5/0.75 on the training set, fp32; untrained model "
        f"{base_eval:.4f}. Lower is better; the last row gives LookDev minus native.",
        f"Memory, above the RSS with the model loaded: {method}; ComfyUI's loaded models unloaded and freed heap "
        "returned to the OS (malloc_trim) before each run, in this process. Training peak: from the end of the "
        "first optimizer step to the end of the last; node peak: the whole node (set-up, saving, outputs).",
        f"Layers: native puts LoRA on {len(native_layers)} weights (every Linear/Conv2d of the UNet, "
        f"{native_lowrank:,} low-rank params) plus {native_extra:,} params of full diffs on every bias and "
        f"norm weight; LookDev's equal modes train the same {len(native_layers)} Linear/Conv2d layers "
        f"(preset 'all linear and conv'), no bias/norm diffs.",
        "Objectives differ by design: native regresses the denoised image (x0 MSE), LookDev the model's own "
        "target (eps MSE); AdamW weight decay is torch's default 0.01 in native, 0 in LookDev.",
        "Gradient checkpointing recomputes every UNet block on both sides (native: each top non-container "
        "module; LookDev: each layer of the UNet's TimestepEmbedSequential blocks, the same set).",
    ]
    for mode in args.modes.split(","):
        alpha_one = results.get((mode, "alpha1"))
        alpha_note = (f" LookDev at alpha 1 instead of {MODES[mode]['lookdev']['alpha']:g} (native's scale 1/rank, "
                      f"its own kohya-style init): eval loss {alpha_one:.4f}." if alpha_one is not None else "")
        notes.append(f"{mode}: {MODES[mode]['help']}.{alpha_note}")
    return _bench.table(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)


if __name__ == "__main__":
    main()
