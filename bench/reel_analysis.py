"""Dataset From Video: analysis speed on 1080p, peak memory on long clips, and detection
accuracy on a synthetic set, all on clips this script encodes with PyAV.

- speed: a short synthetic 1080p H.264 clip (textured shots, slow pans); decoding alone against
  the analysis pass (decode + luma statistics + thumbs) and the whole dataset build (analysis,
  choice, full-size decoding of the picks, crop, buckets).
- memory: peak resident memory above the start of the analysis, for the 1080p clip, a long clip
  below the analysis cap and one far above it (analysed in windows), the long ones at 640x360 so
  encoding them stays quick. What the analysis itself keeps is about 1.3 KB per analysed frame
  (thumb, statistics, timestamps); the rest of the peak is FFmpeg's decoder buffers.
- accuracy: random reels with known cuts, 1-3 frame flashes, fades through black and
  letterbox bars; cuts found within +-1 frame (precision / recall), false cuts, exact crops.
- the reel set (--set N, bench/reel_set.py): N seeded "photographic" reels with subtle cuts,
  dissolves, fades, flashes inside and between shots, strobes, whip pans, black / lifted /
  subtitled bars, 23.976 and 24 fps; LookDev's detector side by side with PySceneDetect's
  ContentDetector and AdaptiveDetector when `scenedetect` is installed (never a dependency:
  pip install scenedetect-headless): cut recall and precision (+-1 frame), dissolves found, false
  cuts by cause, frames delivered against the number asked, picks on unusable frames (inside a
  dissolve, fade, flash or strobe-dark phase), exact crops.

    python bench/reel_analysis.py                 # about 5 minutes on a 2-core machine
    python bench/reel_analysis.py --reels 40 --hd-frames 240
    python bench/reel_analysis.py --set 26 --only-set   # the reel set alone: 25 minutes under load 20
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402


def parse_args(argv=None):
    parser = _bench.parser(__doc__, threads=False)
    parser.add_argument("--hd-frames", type=int, default=144, help="frames of the 1080p clip (24 fps)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each speed measurement")
    parser.add_argument("--long-minutes", type=float, nargs=2, default=(8.0, 24.0),
                        help="lengths of the two memory clips, minutes at 24 fps")
    parser.add_argument("--reels", type=int, default=24, help="synthetic reels for the accuracy table")
    parser.add_argument("--set", type=int, default=26, help="reels of the reel set (bench/reel_set.py); 0: none")
    parser.add_argument("--only-set", action="store_true", help="measure the reel set only")
    parser.add_argument("--frames", type=int, default=20, help="frames asked of each reel of the set")
    return parser.parse_args(argv)


def encode_hd(path, frames):
    from video_files import encode, reel, scene

    shot = 24
    shots = [scene(seed, (1920, 1080), min(shot, frames - seed * shot), drift=3)
             for seed in range(0, (frames + shot - 1) // shot)]
    return encode(path, reel(shots), crf=20)


def encode_long(path, minutes):
    """A long 640x360 clip, written shot by shot so the script never holds it all."""
    import av
    import numpy as np
    from video_files import scene

    frames = int(minutes * 60 * 24)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        done, seed = 0, 0
        while done < frames:
            length = min(frames - done, 48 + seed * 37 % 200)
            base = scene(seed, (640, 360), 1)[0]
            for n in range(length):
                picture = np.roll(base, n, axis=1)  # a pan: cheap to make, costs real decoding
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    container.mux(packet)
            done += length
            seed += 1
        for packet in stream.encode():
            container.mux(packet)
    return path, frames


def speed(args, folder):
    import av
    from lookdev.trainer.dataset.dataset import DatasetConfig
    from lookdev.trainer.dataset.reel import ReelConfig, analyse, reel_dataset

    path = encode_hd(folder / "hd.mp4", args.hd_frames)
    decode, analysis, build = [], [], []
    for _ in range(args.rounds):
        began = time.perf_counter()
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            count = sum(1 for _ in container.decode(stream))
        decode.append(count / (time.perf_counter() - began))
        began = time.perf_counter()
        result = analyse(str(path), path.name, ReelConfig())
        analysis.append(len(result.stats) / (time.perf_counter() - began))
        began = time.perf_counter()
        built = reel_dataset(str(path), path.name, ReelConfig(frames=20), DatasetConfig(resolution=512))
        build.append((time.perf_counter() - began, len(built.dataset)))
    with _bench.PeakMemory() as peak:
        analyse(str(path), path.name, ReelConfig())
    memory_row = [f"{count}-frame 1080p clip", count, 1, "", f"{peak.above:.0f}"]
    seconds = _bench.median([b[0] for b in build])
    rows = [["decode only (PyAV, threads AUTO)", f"{_bench.median(decode):.0f}", ""],
            ["analysis pass (decode + statistics)", f"{_bench.median(analysis):.0f}", ""],
            [f"whole dataset ({build[0][1]} frames at 512 px)", f"{count / seconds:.0f}",
             f"{seconds:.2f} s"]]
    return count, rows, memory_row


def memory(args):
    from lookdev.trainer.dataset.reel import ReelConfig, analyse

    rows = []
    with tempfile.TemporaryDirectory(prefix="lookdev-reel-") as folder:
        for minutes in args.long_minutes:
            path, frames = encode_long(Path(folder) / f"long_{minutes:g}.mp4", minutes)
            with _bench.PeakMemory() as peak:
                began = time.perf_counter()
                result = analyse(str(path), path.name, ReelConfig())
                seconds = time.perf_counter() - began
            rows.append([f"{minutes:g} min 640x360 ({frames} frames)", len(result.stats),
                         result.windows, f"{seconds:.1f}", f"{peak.above:.0f}"])
            path.unlink()
    return rows, peak.method


def accuracy(args, folder):
    import numpy as np
    from lookdev.trainer.dataset.reel import ReelConfig, analyse
    from video_files import encode, faded, letterboxed, scene, solid

    size = (320, 180)
    truth_cuts = found_cuts = hits = false_cuts = exact_crops = flashes = fades = 0
    for number in range(args.reels):
        rng = np.random.default_rng(number)
        frames, cuts = [], []
        for shot in range(int(rng.integers(4, 9))):
            if frames:
                cuts.append(len(frames))
            length = int(rng.integers(10, 50))
            shot_frames = scene(number * 100 + shot, size, length, drift=int(rng.integers(0, 4)))
            event = rng.random()
            if event < 0.3 and length > 12:  # a flash of 1-3 frames inside the shot
                at, width = int(rng.integers(4, length - 6)), int(rng.integers(1, 4))
                shot_frames[at:at + width] = solid(int(rng.choice([235, 255])), size, width)
                flashes += 1
            elif event < 0.5 and length > 20:  # fade out to black, and in: one shot continues
                half = length // 2
                shot_frames = (shot_frames[:half - 8] + faded(shot_frames[half - 8:half], 1, 0)
                               + solid(0, size, 4) + faded(shot_frames[half:half + 8], 0, 1)
                               + shot_frames[half + 8:])
                fades += 1
            frames += shot_frames
        bars = (int(rng.integers(0, 3)) * 11,) * 2 + (0, 0)
        path = encode(folder / f"set_{number}.mp4", letterboxed(frames, *bars))
        result = analyse(str(path), path.name, ReelConfig())
        matched = [c for c in result.cuts if any(abs(c - t) <= 1 for t in cuts)]
        truth_cuts += len(cuts)
        found_cuts += len(result.cuts)
        hits += len({t for t in cuts if any(abs(c - t) <= 1 for c in result.cuts)})
        false_cuts += len(result.cuts) - len(matched)
        exact_crops += result.crop == bars
        path.unlink()
    return [[args.reels, truth_cuts, found_cuts, f"{hits / truth_cuts:.3f}",
             f"{(found_cuts - false_cuts) / max(found_cuts, 1):.3f}", false_cuts, flashes, fades,
             f"{exact_crops}/{args.reels}"]]


SET_HEADERS = ["detector", "true cuts", "found", "recall (+-1)", "subtle cuts found", "precision", "dissolves found",
               "false: flash", "false: strobe", "false: whip", "false: other", "frames (asked)",
               "picks on unusable", "exact crops", "seconds"]


def _score(reel, found, window=1):
    """(hits, subtle cuts hit, true positives among found, dissolves found, false cuts by cause)."""
    dissolve_spans = [range(a - 2, b + 3) for a, b in reel.dissolves]
    hits = sum(any(abs(c - t) <= window for c in found) for t in reel.cuts)
    subtle = sum(any(abs(c - t) <= window for c in found) for t in reel.subtle)
    dissolves = sum(any(c in span for c in found) for span in dissolve_spans)
    false = {"flash": 0, "strobe": 0, "whip": 0, "other": 0}
    right = 0
    for c in found:
        if any(abs(c - t) <= window for t in reel.cuts):
            right += 1
        elif any(c in span for span in dissolve_spans):
            right += 1  # a dissolve split: a transition found
        else:
            kind = next((k for k, frames in reel.traps.items() if c in frames), "other")
            false[kind] += 1
    return hits, subtle, right, dissolves, false


def _scenedetect_cuts(path):
    """{detector name: cut frames} from PySceneDetect's detectors, or {} when not installed."""
    try:
        from scenedetect import AdaptiveDetector, ContentDetector, detect
    except ImportError:
        return {}
    found = {}
    for name, make in (("PySceneDetect ContentDetector", ContentDetector),
                       ("PySceneDetect AdaptiveDetector", AdaptiveDetector)):
        began = time.perf_counter()
        scenes = detect(str(path), make(), show_progress=False)
        found[name] = ([start.frame_num for start, _ in scenes[1:]], time.perf_counter() - began)
    return found


def reel_set(args, folder):
    """Rows of SET_HEADERS: LookDev, then PySceneDetect's detectors when installed."""
    import reel_set as built
    from lookdev.trainer.dataset.dataset import DatasetConfig
    from lookdev.trainer.dataset.reel import ReelConfig, reel_dataset

    totals = {}

    def add(name, reel, found, seconds, frames=None, bad=None, crop=None):
        row = totals.setdefault(name, {"truth": 0, "found": 0, "hits": 0, "subtle": 0, "right": 0, "dissolves": 0,
                                       "false": {"flash": 0, "strobe": 0, "whip": 0, "other": 0},
                                       "frames": [], "bad": 0, "crops": 0, "seconds": 0.0})
        hits, subtle, right, dissolves, false = _score(reel, found)
        row["subtle"] += subtle
        row["truth"] += len(reel.cuts)
        row["found"] += len(found)
        row["hits"] += hits
        row["right"] += right
        row["dissolves"] += dissolves
        for kind, n in false.items():
            row["false"][kind] += n
        row["seconds"] += seconds
        if frames is not None:
            row["frames"].append(frames)
            row["bad"] += bad
            row["crops"] += crop

    dissolves_total = subtle_total = 0
    for seed in range(args.set):
        reel = built.build_reel(seed)
        dissolves_total += len(reel.dissolves)
        subtle_total += len(reel.subtle)
        path = built.encode(folder / f"reel_{seed}.mp4", reel)
        began = time.perf_counter()
        result = reel_dataset(str(path), path.name, ReelConfig(frames=args.frames), DatasetConfig(resolution=256))
        seconds = time.perf_counter() - began
        analysis = result.analysis
        found = sorted(set(analysis.cuts) | {(a + b + 1) // 2 for a, b in getattr(analysis, "dissolves", [])})
        picks = [index for index, _ in result.picks]
        add("LookDev", reel, found, seconds, len(result.dataset),
            sum(analysis.numbers[i] in reel.unusable for i in picks), analysis.crop == reel.bars)
        for name, (cuts, seconds) in _scenedetect_cuts(path).items():
            add(name, reel, cuts, seconds)
        path.unlink()
        print(f"reel {seed}: {len(reel.frames)} frames, {len(reel.cuts)} cuts, {len(reel.dissolves)} dissolves, "
              f"bars {reel.bar_kind}; LookDev found {len(found)}, {len(result.dataset)} frames", flush=True)
    rows = []
    for name, row in totals.items():
        frames = row["frames"]
        delivered = (f"{sum(frames)}/{args.frames * len(frames)} (median {_bench.median(frames):g})"
                     if frames else "")
        rows.append([name, row["truth"], row["found"], f"{row['hits'] / max(row['truth'], 1):.3f}",
                     f"{row['subtle']}/{subtle_total}", f"{row['right'] / max(row['found'], 1):.3f}", f"{row['dissolves']}/{dissolves_total}",
                     *row["false"].values(), delivered, row["bad"] if frames else "",
                     f"{row['crops']}/{args.set}" if frames else "", f"{row['seconds']:.1f}"])
    return rows


def main(argv=None):
    args = parse_args(argv)
    _bench.import_library()
    machine = _bench.machine()
    print(machine)
    if args.only_set:
        with tempfile.TemporaryDirectory(prefix="lookdev-reel-") as tmp:
            rows = reel_set(args, Path(tmp))
        body = "\n\n".join([f"Reel set (bench/reel_set.py, {args.set} reels, 384x216, {args.frames} frames asked):",
                             _bench.table(SET_HEADERS, rows)])
        _bench.publish("reel_analysis (Dataset From Video): reel set", machine, body, record=not args.no_record)
        return 0
    with tempfile.TemporaryDirectory(prefix="lookdev-reel-") as tmp:
        folder = Path(tmp)
        count, speed_rows, hd_memory = speed(args, folder)
        print(_bench.table(["1080p H.264, frames/s", "frames/s", "time"], speed_rows))
        memory_rows, method = memory(args)
        memory_rows.insert(0, hd_memory)
        print(_bench.table(["clip", "analysed frames", "windows", "seconds", "peak MiB above start"],
                           memory_rows))
        accuracy_rows = accuracy(args, folder)
        set_rows = reel_set(args, folder) if args.set else []
        headers = ["reels", "true cuts", "found", "recall (+-1 frame)", "precision", "false cuts",
                   "flashes", "fades", "exact crops"]
        print(_bench.table(headers, accuracy_rows))
    body = "\n\n".join([
        f"Analysis speed, {count}-frame synthetic 1080p clip, median of {args.rounds}:",
        _bench.table(["1080p H.264", "frames/s", "time"], speed_rows),
        f"Peak memory of the analysis pass ({method}):",
        _bench.table(["clip", "analysed frames", "windows", "seconds", "peak MiB above start"],
                     memory_rows),
        "Detection on synthetic reels (320x180, 4-8 shots of 10-50 frames, flashes of 1-3 "
        "frames, fades through black, letterbox bars of 0/11/22 px):",
        _bench.table(headers, accuracy_rows)]
        + ([f"Reel set (bench/reel_set.py, {args.set} reels, 384x216, {args.frames} frames asked):",
            _bench.table(SET_HEADERS, set_rows)] if set_rows else []))
    _bench.publish("reel_analysis (Dataset From Video)", machine, body, record=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
