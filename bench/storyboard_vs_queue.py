"""LookDev Storyboard Render against the same shots queued one prompt at a time, on one real ComfyUI server.

One `main.py --cpu` server (the pack linked into its custom_nodes; the tiny SD1.5 checkpoint of
scripts/tiny_models.py, real SD1.5 widths at tiny depth, in its checkpoints folder) renders the
same shots three ways, each round in alternating order so drift in machine load hits all alike:

- storyboard: one prompt, CheckpointLoaderSimple -> LookDev Shot List -> LookDev Storyboard Render;
- one by one: per shot one core prompt (CheckpointLoaderSimple -> CLIPTextEncode x2 ->
  EmptyLatentImage -> KSampler -> VAEDecode -> SaveImage), each queued as soon as the previous
  one has finished, as clicking Queue once per shot does;
- all queued: the same core prompts, all posted at once (the fastest way to run them in core).

The bench is the client, as the browser is: POST /prompt, and ComfyUI's websocket for when a
prompt has finished (`execution_success`, pushed the moment it happens: no polling delay) and
for where the time went (`executing` at each node's start, a progress event after each sampling
step). The checkpoint is loaded once, before anything is timed, and stays loaded (checked:
ComfyUI's cache serves CheckpointLoaderSimple in every timed prompt). Afterwards the saved PNGs
are compared pixel for pixel: each LookDev frame against the core SaveImage file of the same
shot (same prompt, negative, seed, size, sampler).

    python bench/storyboard_vs_queue.py --sizes 64,128 --steps 3   # the run in RESULTS.md: 29 minutes
                                                     # on 2 cores at load average 7-11
    python bench/storyboard_vs_queue.py                # 8 shots, 20 steps, 128 and 256 px: hours on such a machine
    python bench/storyboard_vs_queue.py --sizes 64 --steps 2 --rounds 1 --no-record   # a quick look
"""

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

CHECKPOINT = "lookdev_tiny_sd15.safetensors"
MODES = ("storyboard", "one by one", "all queued")
DESCRIPTIONS = ("a harbor at dawn, fog", "close-up of a fisherman's weathered hands", "a gull takes off from a mooring post",
                "a narrow alley, rain, one lamp", "an empty market at night", "a lighthouse in a storm",
                "two figures on a pier, long shadows", "a boat leaving the harbor, wide shot")
STYLE_PREFIX = "pencil storyboard"
TRIGGER = "lkdv"
NEGATIVE = "blurry, low quality"
CORE_NODES = {"ckpt": "model load", "pos": "text encode", "neg": "text encode", "latent": "other",
              "ks": "sampling", "dec": "decode + save", "save": "decode + save"}


def parse_args(argv=None):
    parser = _bench.parser(__doc__, threads=False)
    parser.add_argument("--sizes", default="128,256", help="comma-separated square frame sizes in pixels (multiples of 8)")
    parser.add_argument("--shots", type=int, default=8, help=f"shots per storyboard (2 to {len(DESCRIPTIONS) * 10})")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps per shot (KSampler's default is 20)")
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size, each running every mode once")
    parser.add_argument("--threads", type=int, default=1, help=_bench.THREADS_HELP + " (set for the server "
                        "through OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=int, default=100, help="seed of the first shot; shot i gets seed + i")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take before the bench gives up")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated whole numbers, got {args.sizes!r}")
    if any(s < 64 or s % 8 for s in args.sizes):
        parser.error("every size must be a multiple of 8, at least 64")
    if not 2 <= args.shots <= len(DESCRIPTIONS) * 10:
        parser.error(f"--shots must be from 2 to {len(DESCRIPTIONS) * 10}")
    if args.steps < 2 or args.rounds < 1:
        parser.error("--steps must be at least 2 and --rounds at least 1")
    return args


# --- the server ---------------------------------------------------------------------------------

def make_checkpoint(base):
    """The tiny checkpoint in the server's base folder, made once, as the tests make it."""
    import comfy_server

    checkpoint = base / "models" / "checkpoints" / CHECKPOINT
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if not checkpoint.exists():
        # In a child process, so this client never loads torch models itself.
        code = ("import sys; sys.path[:0] = sys.argv[1:3]; import comfy.cli_args; comfy.cli_args.args.cpu = True; "
                "import tiny_models; tiny_models.save_sd15_checkpoint(sys.argv[3], seed=0)")
        subprocess.run([sys.executable, "-c", code, str(comfy_server.comfyui_path()), str(_bench.ROOT / "scripts"),
                        str(checkpoint)], check=True)


def log_size(server):
    return server.log_path.stat().st_size


def log_since(server, offset):
    with open(server.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def start_server(base, threads):
    """`main.py --cpu` on a free loopback port (scripts/comfy_server.py), `threads` torch threads."""
    import comfy_server

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else None
    return comfy_server.start(base, timeout=240, env=env)


class Events:
    """ComfyUI's websocket for one client id: every JSON message with the time it arrived."""

    def __init__(self, url, client_id):
        import websocket

        self.client_id = client_id
        self.ws = websocket.create_connection(url.replace("http", "ws", 1) + f"/ws?clientId={client_id}", timeout=None)
        self.by_prompt = {}  # prompt_id -> [(time, type, data)]
        self.finished = {}  # prompt_id -> (time, type)
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        import websocket

        while True:
            try:
                message = self.ws.recv()
            except (websocket.WebSocketException, OSError):
                return
            now = time.perf_counter()
            if message == "":
                return  # closed
            if not isinstance(message, str):
                continue  # binary previews
            message = json.loads(message)
            data = message.get("data") or {}
            prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
            if prompt_id is None:
                continue
            with self.changed:
                self.by_prompt.setdefault(prompt_id, []).append((now, message["type"], data))
                if message["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                    self.finished[prompt_id] = (now, message["type"])
                    self.changed.notify_all()

    def wait(self, prompt_id, timeout):
        """Arrival time of the prompt's execution_success; RuntimeError if it failed."""
        with self.changed:
            if not self.changed.wait_for(lambda: prompt_id in self.finished, timeout):
                raise RuntimeError(f"prompt {prompt_id} did not finish within {timeout:g} s")
            arrived, kind = self.finished[prompt_id]
        if kind != "execution_success":
            error = next((d for _, t, d in self.by_prompt[prompt_id] if t == "execution_error"), {})
            raise RuntimeError(f"prompt {prompt_id}: {kind} in {error.get('node_type')}: "
                               f"{error.get('exception_message')}")
        return arrived

    def close(self):
        self.ws.close()
        self.thread.join(timeout=5)


# --- the prompts --------------------------------------------------------------------------------

def shot_text(count):
    return "\n".join(f"SH{(i + 1) * 10:03d} | {DESCRIPTIONS[i % len(DESCRIPTIONS)]}"
                     + (f", take {i // len(DESCRIPTIONS) + 1}" if i >= len(DESCRIPTIONS) else "")
                     for i in range(count))


def shot_list_inputs(args, count):
    return {"shots": shot_text(count), "style_prefix": STYLE_PREFIX, "style_suffix": "", "trigger_words": TRIGGER,
            "seed_policy": "base + index", "base_seed": args.seed, "shots_file": ""}


def render_inputs(args, size, folder):
    return {"negative": NEGATIVE, "sampler": "euler", "scheduler": "normal", "steps": args.steps, "cfg": args.cfg,
            "aspect": "custom", "base_resolution": 512, "width": size, "height": size, "folder": folder}


def frame_jobs(args, size, count):
    """The frames LookDev plans for the shot list (prompt, negative, seed, size), from the library itself."""
    from lookdev.trainer.render.storyboard import RenderConfig, ShotListConfig, plan_frames, plan_storyboard

    board = plan_storyboard(ShotListConfig(**shot_list_inputs(args, count)), _bench.WORK)
    return plan_frames(board, RenderConfig(**render_inputs(args, size, "unused")))


def storyboard_prompt(args, size, count, folder):
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "shots": {"class_type": "LookDevShotList", "inputs": shot_list_inputs(args, count)},
        "render": {"class_type": "LookDevStoryboardRender", "inputs": {
            "model": ["ckpt", 0], "clip": ["ckpt", 1], "vae": ["ckpt", 2], "shots": ["shots", 0],
            **render_inputs(args, size, folder)}},
    }


def core_prompt(args, job, prefix):
    """KSampler + VAE Decode + Save Image with the frame's own prompt, negative, seed and size."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": job.prompt}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": job.negative}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": job.width, "height": job.height,
                                                                "batch_size": 1}},
        "ks": {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "seed": job.seed, "steps": args.steps, "cfg": args.cfg, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["dec", 0], "filename_prefix": f"{prefix}_{job.shot_id}"}},
    }


# --- running and timing -------------------------------------------------------------------------

@dataclass
class Run:
    mode: str
    size: int
    round: int
    wall: float
    prompts: list  # [(prompt_id, posted at)]
    events: dict  # prompt_id -> [(time, type, data)]
    load: float
    peak_mib: float = float("nan")
    loads_logged: int = 0
    parts: dict = field(default_factory=dict)
    files: list = field(default_factory=list)  # saved PNG paths, in shot order


class PeakRss:
    """The server's peak resident memory during a run, above its RSS at the start (kernel VmHWM,
    reset through /proc/<pid>/clear_refs; NaN where that is not allowed)."""

    def __init__(self, pid):
        self.proc = Path(f"/proc/{pid}")

    def _kib(self, name):
        for line in (self.proc / "status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise ValueError(f"no {name} in {self.proc}/status")

    def start(self):
        try:
            (self.proc / "clear_refs").write_text("5")
            self.base = self._kib("VmRSS")
        except OSError:
            self.base = None

    def above(self):
        return float("nan") if self.base is None else (self._kib("VmHWM") - self.base) / 1024


def execute(client, events, server, prompts, at_once, timeout):
    """Post the prompts (all at once, or each after the previous finished); (wall, [(id, posted)])."""
    posted = []
    began = time.perf_counter()
    if at_once:
        for prompt in prompts:
            posted.append((client.queue_prompt(prompt, events.client_id), time.perf_counter()))
        finished = max(events.wait(prompt_id, timeout) for prompt_id, _ in posted)
    else:
        for prompt in prompts:
            sent = time.perf_counter()
            prompt_id = client.queue_prompt(prompt, events.client_id)
            posted.append((prompt_id, sent))
            finished = events.wait(prompt_id, timeout)
    return finished - began, posted


def run_mode(mode, args, size, rnd, jobs, ctx, count=None):
    client, events, server, peak = ctx
    jobs = jobs[:count] if count else jobs
    tag = f"sbq/{mode.replace(' ', '_')}_{size}_r{rnd}"
    if mode == "storyboard":
        prompts = [storyboard_prompt(args, size, len(jobs), tag)]
    else:
        prompts = [core_prompt(args, job, tag) for job in jobs]
    load = _bench.load_now()
    log_offset = log_size(server)
    peak.start()
    wall, posted = execute(client, events, server, prompts, mode == "all queued", args.timeout)
    run = Run(mode, size, rnd, wall, posted, {pid: list(events.by_prompt[pid]) for pid, _ in posted}, load,
              peak.above())
    run.loads_logged = log_since(server, log_offset).count("Requested to load")
    run.parts = breakdown(run, args.steps)
    run.files = saved_files(run, server.base / "output")
    return run


def node_spans(events, finished):
    """{node id: seconds} from each `executing` to the next one (the last to execution_success)."""
    starts = [(t, d["node"]) for t, kind, d in events if kind == "executing" and d.get("node") is not None]
    ends = [t for t, _ in starts[1:]] + [finished]
    return {node: end - start for (start, node), end in zip(starts, ends)}, dict((n, t) for t, n in starts)


def step_times(events, kind, node=None):
    """Arrival times of the per-step progress events: [(time, shot index, step)]."""
    if kind == "progress":
        return [(t, 0, d["value"]) for t, k, d in events if k == "progress" and d.get("node") == node]
    return [(t, d["index"], d["step"]) for t, k, d in events if k == "lookdev.render.progress"]


def sampling_seconds(steps, total_steps):
    """Sum over shots of (last step - first step) * n / (n - 1): the time of the sampling steps,
    the first step's time taken as the mean of the others. Also each shot's (first, last, step)."""
    shots = {}
    for t, index, step in steps:
        shots.setdefault(index, []).append((step, t))
    total, spans = 0.0, {}
    for index, marks in shots.items():
        marks.sort()
        if len(marks) != total_steps:
            raise RuntimeError(f"shot {index}: {len(marks)} progress events for {total_steps} steps")
        first, last = marks[0][1], marks[-1][1]
        step = (last - first) / (total_steps - 1)
        total += last - first + step
        spans[index] = (first, last, step)
    return total, spans


def breakdown(run, steps):
    """Seconds of the run in: model load, text encode, sampling (the steps alone), decode + save
    (+ the sampler's set-up around the steps), other nodes, and what lies outside the nodes
    (HTTP, validation, queue, executor, websocket) as the rest of the wall time."""
    parts = dict.fromkeys(("model load", "text encode", "sampling", "decode + save", "other"), 0.0)
    detail = dict.fromkeys(("sampler set-up", "decode", "save"), 0.0)
    for prompt_id, _ in run.prompts:
        events = run.events[prompt_id]
        finished = next(t for t, kind, _ in events if kind == "execution_success")
        spans, starts = node_spans(events, finished)
        if run.mode == "storyboard":
            if "render" not in spans:
                raise RuntimeError("the storyboard render node came from ComfyUI's cache; nothing was rendered")
            if "ckpt" in spans:
                parts["model load"] += spans["ckpt"]
            sampled, shots = sampling_seconds(step_times(events, "lookdev"), steps)
            first, _, step = shots[min(shots)]  # the first shot rendered
            # Before the first step: every prompt encoded (and the first shot's sampler set-up).
            parts["text encode"] += first - step - starts["render"]
            parts["sampling"] += sampled
            parts["decode + save"] += spans["render"] - (first - step - starts["render"]) - sampled
            parts["other"] += sum(v for n, v in spans.items() if n not in ("ckpt", "render"))
        else:
            if "ks" not in spans:
                raise RuntimeError("KSampler came from ComfyUI's cache; the core prompts must each sample")
            sampled, _ = sampling_seconds(step_times(events, "progress", "ks"), steps)
            for node, seconds in spans.items():
                parts[CORE_NODES[node]] += seconds
            parts["sampling"] += sampled - spans["ks"]
            parts["decode + save"] += spans["ks"] - sampled
            detail["sampler set-up"] += spans["ks"] - sampled
            detail["decode"] += spans["dec"]
            detail["save"] += spans["save"]
    parts["overhead"] = run.wall - sum(parts.values())
    return {**parts, **detail}


def saved_files(run, output):
    files = []
    for prompt_id, _ in run.prompts:
        for _, kind, data in run.events[prompt_id]:
            if kind == "executed" and data.get("node") in ("render", "save"):
                files += [output / image["subfolder"] / image["filename"] for image in data["output"]["images"]]
    return files


# --- frames -------------------------------------------------------------------------------------

def compare_frames(runs, jobs):
    """Pixel comparison of each LookDev frame with the core SaveImage file of the same shot."""
    import numpy as np
    from PIL import Image
    from lookdev.trainer.render.pngmeta import read_lookdev_metadata

    def pixels(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.int16)

    by_mode = {}
    for run in runs:
        by_mode.setdefault(run.mode, []).append(run)
    lookdev = by_mode["storyboard"][0].files
    result = {"shots": len(jobs), "pixels": 0}
    for mode in ("one by one", "all queued"):
        identical, differing, worst = 0, 0, 0
        for job, ours, theirs in zip(jobs, lookdev, by_mode[mode][0].files):
            meta = read_lookdev_metadata(ours)
            if (meta.prompt, meta.negative, meta.seed, tuple(meta.size)) != (job.prompt, job.negative, job.seed,
                                                                              (job.width, job.height)):
                raise RuntimeError(f"{ours.name} was rendered with other settings than the core prompt: {meta}")
            diff = np.abs(pixels(ours) - pixels(theirs))
            identical += int(not diff.any())
            differing += int(np.count_nonzero(diff.any(axis=2)))
            worst = max(worst, int(diff.max()))
            result["pixels"] += diff.shape[0] * diff.shape[1] if mode == "one by one" else 0
        result[mode] = (identical, differing, worst)
    # Every round's files, per mode, equal the first round's: renders are deterministic.
    result["repeatable"] = all(np.array_equal(pixels(a), pixels(b)) for runs_ in by_mode.values()
                               for run in runs_[1:] for a, b in zip(runs_[0].files, run.files))
    return result


# --- main ---------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    _bench.import_library()
    import torch
    from lookdev.trainer.render.comfy_http import ComfyClient

    if args.threads:
        torch.set_num_threads(args.threads)  # for the header: the server gets OMP_NUM_THREADS
    import comfy_server

    base = _bench.WORK / "storyboard"
    make_checkpoint(base)
    machine = _bench.machine(type("Host", (), {"version": comfy_server.comfyui_version()}))
    print(machine, flush=True)
    bench_began = time.perf_counter()
    shutil.rmtree(base / "output" / "sbq", ignore_errors=True)  # frames of earlier runs
    server = start_server(base, args.threads)
    events = None
    try:
        client = ComfyClient(server.url, timeout=60)
        events = Events(server.url, str(uuid.uuid4()))
        ctx = (client, events, server, PeakRss(server.process.pid))
        runs, cold, comparisons = [], None, {}
        for size in args.sizes:
            jobs = frame_jobs(args, size, args.shots)
            # Warm-up at this size, not timed: the first one loads the checkpoint (timed as "cold load").
            warm = run_mode("one by one", args, size, 0, jobs, ctx, count=1)
            cold = cold or warm
            run_mode("storyboard", args, size, 0, jobs, ctx, count=2)
            for rnd in range(1, args.rounds + 1):
                order = MODES if rnd % 2 else MODES[::-1]
                for mode in order:
                    run = run_mode(mode, args, size, rnd, jobs, ctx)
                    if run.parts["model load"]:
                        raise RuntimeError(f"{mode}: the checkpoint was loaded again in a timed run")
                    runs.append(run)
                    print(f"  {size}px round {rnd} {mode:>10}: {run.wall:6.2f} s  (load {run.load:.2f})", flush=True)
            comparisons[size] = compare_frames([r for r in runs if r.size == size], jobs)
    finally:
        if events is not None:
            events.close()
        server.stop()
    bench_seconds = time.perf_counter() - bench_began
    body = report(args, runs, cold, comparisons, bench_seconds)
    sizes = ", ".join(f"{s}px" for s in args.sizes)
    _bench.publish(f"storyboard_vs_queue ({args.shots} shots, {args.steps} steps, {sizes})", machine, body,
                   record=not args.no_record)


def report(args, runs, cold, comparisons, bench_seconds):
    med = _bench.median
    columns = ("text encode", "sampling", "decode + save", "other", "overhead")
    headers = ["size", "mode", "wall s (median)", "s/shot", "**vs storyboard**", *(f"{c} s" for c in columns),
               "model loads", "peak MiB"]
    rows, notes = [], []
    for size in args.sizes:
        by_mode = {mode: [r for r in runs if r.size == size and r.mode == mode] for mode in MODES}
        story = med([r.wall for r in by_mode["storyboard"]])
        for mode in MODES:
            group = by_mode[mode]
            wall = med([r.wall for r in group])
            ratio = "1.00x" if mode == "storyboard" else f"**{wall / story:.2f}x**"
            rows.append([f"{size}px", mode, f"{wall:.2f}", f"{wall / args.shots:.3f}", ratio,
                         *(f"{med([r.parts[c] for r in group]):.2f}" for c in columns),
                         max(r.loads_logged for r in group), f"{med([r.peak_mib for r in group]):.0f}"])
        core = by_mode["one by one"]
        notes.append(f"{size}px, one by one, per shot (median): sampler set-up "
                     f"{med([r.parts['sampler set-up'] for r in core]) / args.shots * 1000:.0f} ms, VAE decode "
                     f"{med([r.parts['decode'] for r in core]) / args.shots * 1000:.0f} ms, SaveImage "
                     f"{med([r.parts['save'] for r in core]) / args.shots * 1000:.0f} ms, outside the nodes "
                     f"{med([r.parts['overhead'] for r in core]) / args.shots * 1000:.0f} ms; all rounds (s): "
                     + ", ".join(f"{m} " + "/".join(f"{r.wall:.2f}" for r in by_mode[m]) for m in MODES) + ".")
        extra = med([r.parts["overhead"] for r in core]) - med([r.parts["overhead"] for r in by_mode["storyboard"]])
        notes.append(f"{size}px: outside the nodes, one by one takes {extra:.2f} s more than the storyboard "
                     f"({extra / args.shots:.2f} s per shot); with the same compute on both sides the ratio would "
                     f"be {(story + extra) / story:.2f}x. The rest of any difference is the same work taking longer "
                     "(compare the text encode, sampling and decode + save columns: other load on the machine).")
        c = comparisons[size]
        for mode in ("one by one", "all queued"):
            identical, differing, worst = c[mode]
            notes.append(f"{size}px frames, LookDev vs core {mode}: {identical} of {c['shots']} identical; "
                         f"{differing} of {c['pixels']} pixels differ, by at most {worst}/255.")
        notes.append(f"{size}px: every round's PNGs equal the first round's: {'yes' if c['repeatable'] else 'NO'}.")
    loads = [r.load for r in runs]
    notes += [
        f"{args.shots} shots at {', '.join(f'{s}x{s}' for s in args.sizes)}, {args.steps} steps, euler/normal, "
        f"cfg {args.cfg:g}, negative '{NEGATIVE}', seeds {args.seed}..{args.seed + args.shots - 1}; checkpoint: "
        "scripts/tiny_models.py save_sd15_checkpoint (SD1.5 UNet widths at depth 2, 320 channels, full CLIP-L and "
        "SD VAE, random weights, fp16 file, fp32 on CPU).",
        f"{args.rounds} rounds per size, modes alternating order each round; one warm-up of each side per size "
        f"first. Cold checkpoint load (first prompt, not timed): {cold.parts['model load']:.2f} s.",
        "Wall: from the first POST /prompt to the websocket's execution_success of the last prompt, on the "
        "client. Parts from the websocket's events: each node's time runs from its `executing` to the next "
        "node's (the last node's to execution_success); sampling = the steps alone, from the per-step progress "
        "events (first step taken as the mean of the others); 'decode + save' includes the sampler's set-up "
        "around the steps; 'other' = EmptyLatentImage, LookDev Shot List; 'overhead' = wall minus all nodes "
        "(HTTP, validation, queueing, executor, websocket). LookDev's text encode is its node's start to its "
        "first step (every prompt encoded, and the first shot's sampler set-up).",
        "Model loads: 'Requested to load' lines in the server log during the run (CLIP, UNet or VAE moved to "
        "the compute device); the checkpoint itself came from ComfyUI's cache in every timed prompt (checked).",
        "Peak MiB: the server's peak RSS above its RSS at the run's start (kernel VmHWM, reset via "
        "/proc/<pid>/clear_refs; NaN where that is not allowed).",
        f"Load average at run starts {min(loads):.2f}-{max(loads):.2f}; the bench took {bench_seconds / 60:.1f} min.",
    ]
    return _bench.table(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)


if __name__ == "__main__":
    main()
