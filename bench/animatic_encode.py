"""Animatic encode time per minute of output, and file sizes.

What LookDev Animatic does after the frames exist: draw every frame (letterbox, push-in, slate,
dissolve) and encode H.264 through PyAV (crf 18, preset veryfast, yuv420p), in memory, then write
the .mp4, .edl and .csv. Stills are textured like renders (smooth shapes plus fine grain), so the
encoder sees detail, not flat colour. One minute of output = 12 shots of 5 s at 24 fps by default.

    python bench/animatic_encode.py                         # 640x360, 1024x576, 1920x1080
    python bench/animatic_encode.py --sizes 1024x576 --seconds 30
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

VARIANTS = {
    "cuts": {},
    "push-in + slate + dissolves": {"ken_burns": True, "slate": True, "dissolve": 0.5},
}


def parse_args(argv=None):
    parser = _bench.parser(__doc__, threads=False)
    parser.add_argument("--sizes", default="640x360,1024x576,1920x1080", help="comma-separated WxH")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the animatic")
    parser.add_argument("--shots", type=int, default=12)
    parser.add_argument("--fps", default="24")
    return parser.parse_args(argv)


def textured_still(size, seed):
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = size
    shapes = Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    grain = rng.normal(0, 12, (height, width, 1))
    edges = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8), dtype=np.uint8)).resize(
        size, Image.NEAREST).filter(ImageFilter.GaussianBlur(2))
    mixed = np.asarray(shapes, np.float32) * 0.8 + np.asarray(edges, np.float32)[..., None] * 0.2 + grain
    return Image.fromarray(mixed.clip(0, 255).astype(np.uint8))


def run(size, variant, args):
    from lookdev.trainer.render.animatic import (
        AnimaticConfig, TimedShot, animatic_frames, animatic_paths, make_animatic, plan_timeline, save_animatic,
    )

    config = AnimaticConfig(fps=args.fps, folder="bench", **VARIANTS[variant]).check()
    seconds = args.seconds / args.shots
    shots = [TimedShot(f"SH{i + 1:03d}0", f"shot {i + 1}, a textured still", "camera: static", seconds)
             for i in range(args.shots)]
    pictures = [[textured_still(size, seed)] for seed in range(args.shots)]
    events = plan_timeline(shots, config.rate, dissolve=config.dissolve)
    started = time.perf_counter()
    for _ in animatic_frames(events, pictures, config, size):
        pass
    draw = time.perf_counter() - started
    started = time.perf_counter()
    animatic = make_animatic(shots, pictures, config)
    total = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        save_animatic(animatic, animatic_paths(folder, config))
        write = time.perf_counter() - started
    minutes = float(animatic.frames / config.rate) / 60
    return [f"{size[0]}x{size[1]}", variant, animatic.frames, f"{total / minutes:.1f}", f"{draw / minutes:.1f}",
            f"{(total - draw) / minutes:.1f}", f"{animatic.frames / total:.0f}", f"{write:.2f}",
            f"{len(animatic.video) / 1e6 / minutes:.2f}", f"{len(animatic.edl) / 1e3:.1f}"]


def main(argv=None):
    args = parse_args(argv)
    _bench.import_library()
    import av
    from lookdev.trainer.render.animatic import ENCODER_OPTIONS

    sizes = [tuple(int(side) for side in text.split("x")) for text in args.sizes.split(",")]
    machine = _bench.machine()
    rows = [run(size, variant, args) for size in sizes for variant in VARIANTS]
    headers = ["size", "variant", "frames", "s per min of output", "of which drawing", "of which encoding",
               "frames/s", "write s", "MB per min", "EDL kB"]
    body = "\n".join([
        _bench.table(headers, rows), "",
        f"- {args.shots} textured stills x {args.seconds / args.shots:g} s at {args.fps} fps per run; H.264 "
        f"crf {ENCODER_OPTIONS['crf']}, preset {ENCODER_OPTIONS['preset']}, yuv420p (PyAV {av.__version__}); "
        "one process, PyAV/x264's own threads.",
        "- 'drawing' iterates the frames alone (letterbox, push-in, slate, dissolve); 'encoding' is the rest of "
        "make_animatic (colour conversion, x264, muxing, in memory); 'write s' the three atomic file writes.",
        f"- Load average at the end {_bench.load_now():.2f}."])
    _bench.publish("Animatic encode time and file size (bench/animatic_encode.py)", machine, body, record=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
