"""First against second preparation of the same dataset through the trainer's latents path.

`prepare_latents()` (trainer/training/run.py) is what the LookDev Train Style LoRA node runs
before training: the VAE fingerprint, then LatentCache, which VAE-encodes only what it has not
seen. The first preparation starts from an empty cache and encodes every image; the second
finds every latent on disk and must encode nothing. The VAE has the real SD VAE architecture
(ComfyUI's AutoencoderKL, 128 channels, 2 res blocks per level, ~84M parameters) with random
weights, so encoding costs what it costs with a real checkpoint's VAE.

    python bench/dataset_cache.py                      # 12 images at 256 px, 3 rounds
    python bench/dataset_cache.py --resolution 512     # SD1.5's training size (slower)
"""

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402


def parse_args(argv=None):
    parser = _bench.parser(__doc__)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=256, help="training resolution (bucket area)")
    parser.add_argument("--rounds", type=int, default=3, help="first/second pairs, each from an empty cache")
    return parser.parse_args(argv)


def make_dataset(args):
    """Images of three aspect ratios, so the cache is exercised across buckets."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw
    from lookdev.trainer.dataset.dataset import DatasetConfig, dataset_from_images

    side = args.resolution
    shapes = [(side, side), (side * 3 // 2, side * 2 // 3), (side * 2 // 3, side * 3 // 2)]
    images = []
    for i in range(args.images):
        width, height = shapes[i % len(shapes)]
        img = Image.new("RGB", (width, height), (20, 18 + i, 30))
        draw = ImageDraw.Draw(img)
        draw.rectangle([i * 7 % (width // 2), height // 5, width // 2, height - 10], fill=(220, 200, 170))
        images.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0))
    captions = [f"a street at night, frame {i}" for i in range(args.images)]
    return dataset_from_images(images, captions, DatasetConfig(resolution=side, trigger="lkdv"))


class CountingEncoder:
    """Counts the images ComfyUI's VAE.encode is asked to encode (instrumentation only)."""

    def __init__(self, vae):
        self.vae, self.encode, self.images = vae, vae.encode, 0

    def __call__(self, pixels):
        self.images += pixels.shape[0]
        return self.encode(pixels)


def prepare(cache_dir, vae, dataset):
    began = time.perf_counter()
    latents, stats = prepare_latents(dataset, vae, cache_dir)
    return time.perf_counter() - began, stats, latents


def main(argv=None):
    args = parse_args(argv)
    host = _bench.start_comfy(args.threads or None)
    import torch
    import tiny_models
    from lookdev.trainer.training.config import TrainConfig
    from lookdev.trainer.training.run import RunPaths, prepare_latents

    machine = _bench.machine(host)
    bundle = {"model": tiny_models.build_model("sd15"), "clip": tiny_models.build_clip("sd15")}
    vae = tiny_models.build_vae("sd15", ch=128, num_res_blocks=2)
    vae_params = sum(p.numel() for p in vae.first_stage_model.parameters())
    counter = CountingEncoder(vae)
    vae.encode = counter
    dataset = make_dataset(args)
    config = TrainConfig(name="cache_bench")
    cache_dir = RunPaths.for_name(config.name).cache
    print(machine)
    print(f"{len(dataset)} images, buckets {dataset.buckets()}, VAE {vae_params / 1e6:.0f}M params", flush=True)

    rows, ratios, loads = [], [], []
    for r in range(args.rounds):
        shutil.rmtree(cache_dir, ignore_errors=True)  # the bench's own ComfyUI folder (bench/.work)
        loads.append(_bench.load_now())
        timings = []
        for label in ("first", "second"):
            counter.images = 0
            seconds, stats, latents = prepare(cache_dir, vae, dataset)
            timings.append((seconds, stats, counter.images, latents))
        (first, s1, enc1, lat1), (second, s2, enc2, lat2) = timings
        if enc2 or not all(torch.equal(a, b) for a, b in zip(lat1, lat2)):
            raise RuntimeError(f"the second preparation encoded {enc2} images or returned different latents")
        ratios.append(first / second)
        rows.append([r + 1, f"{first:.2f}", f"{enc1} ({s1.misses} misses)", f"{second:.3f}",
                     f"{enc2} ({s2.hits} hits)", f"{first / second:.0f}x"])
        print(f"  round {r + 1}: first {first:.2f} s, second {second:.3f} s", flush=True)

    headers = ["round", "first s", "images VAE-encoded", "second s", "images VAE-encoded (2nd)", "first / second"]
    body = _bench.table(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in (
        f"**Median first / second: {_bench.median(ratios):.0f}x**; the second preparation encodes nothing "
        f"(checked) and returns bit-identical latents.",
        f"{len(dataset)} images at resolution {args.resolution} in buckets {dataset.buckets()}; VAE: SD VAE "
        f"architecture, {vae_params / 1e6:.0f}M params, random weights, fp32. Each round starts from an empty cache.",
        "Both timings are prepare_latents(): VAE fingerprint + cache lookup (+ encode and atomic writes on "
        "the first).",
        f"Load average at round starts {min(loads):.2f}-{max(loads):.2f}.",
    ))
    _bench.publish(f"dataset_cache ({len(dataset)} images, resolution {args.resolution})", machine, body, record=not args.no_record)


if __name__ == "__main__":
    main()
