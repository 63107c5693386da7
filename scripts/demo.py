#!/usr/bin/env python3
"""The LookDev demo: train a style LoRA on a sample noir dataset and render a storyboard and its
animatic with it, in one headless ComfyUI run of workflows/api/train_and_storyboard.json.

    bash scripts/demo.sh [--checkpoint PATH] [--out DIR] [--steps N] [--quick]

Without --checkpoint it uses LookDev Mini (scripts/mini_model.py), a teaching-size SD1.5-architecture
model pretrained on colour street scenes, and shrinks everything (96 px, a shot list in the words
Mini knows), so the whole pipeline runs on a laptop CPU in minutes. The storyboard is rendered
twice with the same seeds, by the base model and with the trained LoRA, and a before/after sheet
and the measured style figures (trainer/style_metric.py) show what the LoRA changed. With
--checkpoint (a real SD1.5 model) the workflow runs at its shipped settings on the GPU, unless
--quick; on a machine without a usable GPU it runs on the CPU by itself, says so, and after the
first training step estimates the whole run's time. Everything goes into the output folder, which
is also the ComfyUI base folder of the server started here (models/, input/, output/, the server log).
"""

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from pathlib import Path

import comfy_server
import demo_dataset
import demo_report
from _pack import alias_pack

alias_pack()
from lookdev.trainer.render.comfy_http import rejection_reasons  # noqa: E402  (after the alias)
from lookdev.trainer.render.shots import parse_shot_text  # noqa: E402
from lookdev.trainer.status import duration  # noqa: E402  (as the nodes write times)

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "api" / "train_and_storyboard.json"
BASE_WORKFLOW = ROOT / "workflows" / "api" / "storyboard_in_style.json"
DATASET_IMAGES = 16
QUICK_STEPS = 40
MINI_STEPS = 180  # LookDev Mini's style run, as tests/test_style_transfer.py measures it
QUICK_RESOLUTION = 96  # LookDev Mini's training size, for the frames
DATASET_RESOLUTION = 128  # the smallest custom training size
# The shipped shot list's ids, seeds and aspects, in words LookDev Mini was trained on.
MINI_SHOTS = """# ID | description | seed | aspect | negative | duration | notes
SH010 | a white car and a street lamp on a street at night, wide shot | 101 | 2.39 | | 4 | slow push in; rain SFX
SH020 | a person in a black coat on a street at night, medium shot | 102 | | | 3
SH030 | a person in a brown coat and a tree in a park at dusk, close-up | 103 | | | 2.5 | hold on the face
SH040 | a building with windows on a street at dusk, wide shot | 104 | | | 3 | VO: She was trouble.
SH050 | a red car on a street under a blue sky, close-up | 105 | 1.78 | | 1.5
SH060 | a tree in a park under a blue sky, wide shot | 106 | 2.39 | | 5 | crane up, fade out"""
RUN_TIMEOUT_S = 6 * 3600
HISTORY_TIMEOUT_S = 60
# A sampling step (batch of 2 for CFG, forward only) costs about this share of a batch-1 training
# step (forward and backward) at the same size. Measured with a full-size SD1.5 on a 2-core CPU at
# 512 px: 11 s per training step, 7-9 s per sampling step.
SAMPLING_VS_TRAINING_STEP = 0.75
SUGGEST_QUICK_S = 15 * 60


def usable_gpu():
    """The name of the GPU torch (and so ComfyUI) would use, or None."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS"
    return None


def device_plan(args, gpu):
    """(run ComfyUI with --cpu?, the line that says where the run goes and why)."""
    if args.checkpoint is None:
        return True, "device: the CPU (LookDev Mini needs no GPU)"
    if args.cpu:
        return True, "device: the CPU (--cpu)"
    if gpu is None:
        return True, ("device: the CPU, because no usable GPU was found (torch sees no CUDA or MPS "
                      "device). A real model is slow on a CPU: after the first training step the demo "
                      "estimates the whole run; --quick makes it a run of minutes.")
    return False, f"device: {gpu}"


def _inputs(prompt, node_type):
    return next(node["inputs"] for node in prompt.values() if node["class_type"] == node_type)


def estimate_phases(prompt, step_seconds):
    """{phase: estimated seconds} of the whole prompt from one measured training step: training,
    validation renders and storyboard frames (sampling steps scaled by pixel count). Model loading,
    latent caching and VAE decoding are not in it."""
    dataset, train = _inputs(prompt, "LookDevLoadDataset"), _inputs(prompt, "LookDevTrainStyleLoRA")
    render, shots = _inputs(prompt, "LookDevStoryboardRender"), _inputs(prompt, "LookDevShotList")
    size = dataset["custom_resolution"] if dataset["resolution"] == "custom" else int(dataset["resolution"])

    def sampling_step(side):
        return step_seconds * SAMPLING_VS_TRAINING_STEP / train["batch_size"] * (side / size) ** 2

    steps, every = train["steps"], train.get("validate_every", 0)
    prompts = [line for line in train.get("validation_prompts", "").splitlines() if line.strip()]
    rounds = (len(range(every, steps, every)) if every else 0) + 1 if prompts else 0
    shot_count = len(parse_shot_text(shots["shots"], source="shots").shots)
    return {"training": step_seconds * steps,
            "validation renders": rounds * len(prompts) * train.get("validation_steps", 20)
            * sampling_step(train.get("validation_size", 512)),
            "storyboard": shot_count * render["steps"] * sampling_step(render["base_resolution"])}


def estimate_line(prompt, step_seconds, quick):
    phases = estimate_phases(prompt, step_seconds)
    total = sum(phases.values())
    text = (f"first training step: {step_seconds:.1f} s; estimated whole run: about {duration(total)} ("
            + ", ".join(f"{name} {duration(seconds)}" for name, seconds in phases.items())
            + "; model loading and latent caching not included)")
    if not quick and total > SUGGEST_QUICK_S:
        text += "\nthat is long: press Ctrl-C and run again with --quick for a run of minutes"
    return text


class DemoError(Exception):
    """A failure the user can act on; the message says what happened and where to look."""


RENDER_QUICK = {"steps": 8, "base_resolution": QUICK_RESOLUTION, "cfg": 5.0, "sampler": "euler",
                "negative": ""}


def quick_settings(steps, mini=True):
    """Widget values by node type that shrink the shipped workflow for a CPU run (and, for
    LookDev Mini, a shot list in its words)."""
    settings = {
        "LookDevLoadDataset": {"resolution": "custom", "custom_resolution": DATASET_RESOLUTION},
        "LookDevTrainStyleLoRA": {"steps": steps, "rank": 8, "alpha": 8.0, "learning_rate": 1e-3,
                                  "warmup_steps": 0, "save_every": 0, "validate_every": max(1, steps // 2),
                                  "validation_steps": 8, "validation_size": 64, "resume": False},
        "LookDevStoryboardRender": dict(RENDER_QUICK),
        "LookDevContactSheet": {"cell_width": 256},
    }
    if mini:
        # LookDev Mini's style settings (tests/test_style_transfer.py measures them): no trigger word
        # and no style prefix, since its untrained text encoder reads words it was not pretrained on
        # as noise that moves the whole picture; every linear and conv layer at a high rate, since
        # the look is tone and light more than texture; uniform timesteps (an epsilon model learns
        # global colour mostly at mid noise); multi-resolution noise, so the LoRA learns the large
        # dark masses (crushed blacks, vignette) that plain noise leaves showing at the noisiest
        # steps; no noise offset and no min-SNR weighting. The test's comment has the figures.
        settings["LookDevLoadDataset"]["trigger"] = ""
        settings["LookDevShotList"] = {"shots": MINI_SHOTS, "style_prefix": "", "style_suffix": ""}
        settings["LookDevTrainStyleLoRA"].update(
            targets="all linear and conv", learning_rate=2.5e-3, timestep_sampling="uniform", noise_offset=0.0,
            min_snr_gamma=0.0, multires_noise_iterations=6, multires_noise_discount=0.3, batch_size=2,
            validation_prompts="a person in a black coat on a street at night, medium shot\n"
                               "a white car on a street under a blue sky, wide shot")
    return settings


def base_settings(prompt):
    """The base-model storyboard: the styled run's shots and render settings, no LoRA, its own folder."""
    node = {n["class_type"]: n["inputs"] for n in prompt.values()}
    render = {k: v for k, v in node["LookDevStoryboardRender"].items() if not isinstance(v, list)}
    render["folder"] = render["folder"] + "_base"
    sheet = {k: v for k, v in node["LookDevContactSheet"].items() if not isinstance(v, list)}
    sheet.update(folder=render["folder"], title=sheet["title"] + " - base model")
    return {"CheckpointLoaderSimple": node["CheckpointLoaderSimple"],
            "LookDevLoRAStack": {"on_1": False, "lora_1": "None"},
            "LookDevShotList": {k: v for k, v in node["LookDevShotList"].items() if not isinstance(v, list)},
            "LookDevStoryboardRender": render, "LookDevContactSheet": sheet}


def build_prompt(workflow, checkpoint, dataset, settings, source=WORKFLOW):
    """The API workflow with the demo's checkpoint, dataset and settings filled in."""
    settings = {**settings}
    settings.setdefault("CheckpointLoaderSimple", {})["ckpt_name"] = checkpoint
    if dataset is not None:
        settings.setdefault("LookDevLoadDataset", {})["folder"] = str(dataset)
    prompt = json.loads(json.dumps(workflow))
    for node_type, values in settings.items():
        nodes = [node for node in prompt.values() if node["class_type"] == node_type]
        if not nodes:
            raise DemoError(f"{source} has no {node_type} node")
        for node in nodes:
            for name, value in values.items():
                if name not in node["inputs"]:
                    raise DemoError(f"{source}: {node_type} has no input {name!r}")
                node["inputs"][name] = value
    return prompt


def build_mini_checkpoint(folder):
    """LookDev Mini's one-file checkpoint, assembled with ComfyUI's classes (scripts/mini_model.py)."""
    comfy = comfy_server.comfyui_path()
    if str(comfy) not in sys.path:
        sys.path.insert(0, str(comfy))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # before comfy.model_management is imported
    import mini_model

    return mini_model.ensure_checkpoint(folder)  # written atomically


def install_checkpoint(args, models):
    """The checkpoint's file name in the server's checkpoints folder (linked or built there)."""
    folder = models / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    if args.checkpoint is None:
        import mini_model

        if not (folder / mini_model.CHECKPOINT_NAME).exists():
            print("assembling LookDev Mini, a teaching-size SD1.5 model (pass --checkpoint for a real one)",
                  flush=True)
        return build_mini_checkpoint(folder).name
    source = Path(args.checkpoint).expanduser().resolve()
    link = folder / source.name
    if link.is_symlink() or (link.exists() and link.resolve() != source):
        link.unlink()
    if not link.exists():
        link.symlink_to(source)
    return link.name


class Progress:
    """One status line: a rewritten line on a terminal, a line every ~10% in a log."""

    def __init__(self, stream=sys.stdout, clock=time.monotonic):
        self.stream = stream
        self.tty = stream.isatty()
        self.last_key = None
        self.clock = clock
        self.started = {}  # key -> (clock, done) at the first report of that phase

    def eta(self, key, done, total):
        """'eta 2 min 10 s' for a phase from its own pace since its first report, '' before a second."""
        now = self.clock()
        began, first = self.started.setdefault(key, (now, done))
        if done <= first or done >= total:
            return ""
        return f"eta {duration((now - began) / (done - first) * (total - done))}"

    def show(self, text, done, total, key):
        if self.tty:
            self.stream.write("\r\033[K" + text)
            if done >= total:
                self.stream.write("\n")
        elif done in (1, total) or done % max(1, total // 10) == 0:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.last_key = key

    def line(self, text):
        if self.tty and self.last_key is not None:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def _rejection(answer):
    message, problems = rejection_reasons(answer)
    return "\n".join([f"ComfyUI refused the workflow: {message or answer}", *(f"  {p}" for p in problems)])


async def run_prompt(server, prompt, progress, estimate=None):
    """Queue `prompt`, show its progress from the websocket and return (history entry, events)."""
    import aiohttp

    client_id = uuid.uuid4().hex
    events = {}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.url}/ws?clientId={client_id}", heartbeat=30) as ws:
            async with http.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": client_id}) as answer:
                body = await answer.json(content_type=None)
                if answer.status != 200:
                    raise DemoError(_rejection(body))
            prompt_id = body["prompt_id"]
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while time.monotonic() < deadline:
                stopped = server.exit_report("during the run")
                if stopped:
                    raise DemoError(stopped)
                try:
                    message = await ws.receive(timeout=2)
                except asyncio.TimeoutError:
                    continue
                if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    raise DemoError(f"the connection to ComfyUI closed during the run; see {server.log_path}")
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue  # binary messages are sampler previews
                event = json.loads(message.data)
                kind, data = event.get("type"), event.get("data") or {}
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                events.setdefault(kind, []).append(data)
                if show_event(kind, data, progress, estimate):
                    break
            else:
                raise DemoError(f"the run did not finish within {RUN_TIMEOUT_S} s")
        history = await wait_for_history(http, server, prompt_id)
    return history, events


async def wait_for_history(http, server, prompt_id):
    """The prompt's history entry. ComfyUI sends `execution_success` before it stores the entry,
    so an immediate read can miss it: poll until it is there."""
    deadline = time.monotonic() + HISTORY_TIMEOUT_S
    while True:
        async with http.get(f"{server.url}/history/{prompt_id}") as answer:
            entry = (await answer.json()).get(prompt_id)
        if entry is not None:
            return entry
        if time.monotonic() > deadline:
            raise DemoError(f"ComfyUI finished the run but stored no history for it within {HISTORY_TIMEOUT_S} s; "
                            f"see {server.log_path}")
        await asyncio.sleep(0.1)


def show_event(kind, data, progress, estimate=None):
    """Print one websocket event; True once the prompt has finished. estimate(seconds of one
    training step) -> a line, printed after this run's first step."""
    if kind == "lookdev.train.progress" and estimate and data["step"] == data["resumed_from"] + 1:
        progress.line(estimate(data["elapsed_s"]))
    if kind == "lookdev.train.progress":
        progress.show(f"training {data['name']}: step {data['step']}/{data['total']}  loss {data['loss']:.4f}  "
                      f"(smoothed {data['loss_smooth']:.4f}, eta {data['eta_s']:.0f}s)",
                      data["step"], data["total"], "train")
    elif kind == "lookdev.status":
        if data.get("total"):
            progress.show(data["text"], data["done"], data["total"], data["phase"])
        else:
            progress.line(data["text"])
    elif kind == "lookdev.train.preview":
        distance = data.get("style_distance")
        progress.line(f"validation renders at step {data['step']}: {len(data['images'])} images" +
                      (f", style distance to the dataset {distance:.3f}" if distance is not None else ""))
    elif kind == "lookdev.train.done":
        phases = ", ".join(f"{name} {duration(seconds)}" for name, seconds in (data.get("phases") or {}).items())
        progress.line(f"LoRA saved after {data['steps']} steps; the trainer took {duration(data['node_seconds'])} "
                      f"({phases}): {data['path']}")
    elif kind == "lookdev.render.progress":
        done, total = (data["index"] - 1) * data["steps"] + data["step"], data["total"] * data["steps"]
        eta = progress.eta("render", done, total)
        progress.show(f"rendering shot {data['index']}/{data['total']} ({data['shot'][:40]}): "
                      f"step {data['step']}/{data['steps']}" + (f"  ({eta})" if eta else ""), done, total, "render")
    elif kind == "execution_error":
        raise DemoError(f"the run failed in node {data.get('node_id')} ({data.get('node_type')}): "
                        f"{data.get('exception_message', '').strip()}")
    elif kind == "execution_interrupted":
        raise DemoError(f"the run was interrupted in node {data.get('node_id')} ({data.get('node_type')})")
    elif kind == "execution_success" or (kind == "executing" and data.get("node") is None):
        return True
    return False


def output_files(history, prompt, base, node_type):
    """Absolute paths of the output images that nodes of `node_type` saved."""
    files = []
    for node_id, output in (history.get("outputs") or {}).items():
        if prompt.get(node_id, {}).get("class_type") == node_type:
            files += [base / "output" / image.get("subfolder", "") / image["filename"]
                      for image in output.get("images", []) if image.get("type") == "output"]
    return files


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a real SD1.5 checkpoint (.safetensors) to train and render with; "
                                             "default: LookDev Mini, the repository's small trained model")
    parser.add_argument("--out", default=str(ROOT / "demo-out"),
                        help="output folder, also the ComfyUI base folder (default: demo-out/ in the checkout)")
    parser.add_argument("--steps", type=int, help=f"training steps (default: {MINI_STEPS} with LookDev Mini, "
                                                  f"{QUICK_STEPS} with --quick, else the workflow's)")
    parser.add_argument("--quick", action="store_true", help="shrink sizes and steps even with --checkpoint")
    parser.add_argument("--cpu", action="store_true", help="run ComfyUI on the CPU (always with LookDev Mini, "
                                                         "and by itself when no usable GPU is found)")
    args = parser.parse_args(argv)
    if args.checkpoint is not None and not Path(args.checkpoint).expanduser().is_file():
        parser.error(f"--checkpoint: the file {args.checkpoint} does not exist")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    return args


def demo(args):
    started = time.monotonic()
    out = Path(args.out).expanduser().resolve()
    quick = args.quick or args.checkpoint is None
    comfy_server.prepare_base(out)
    checkpoint = install_checkpoint(args, out / "models")
    dataset = demo_dataset.write_dataset(out / "dataset" / "noir", count=DATASET_IMAGES)
    print(f"sample dataset: {DATASET_IMAGES} noir scenes with captions in {dataset}", flush=True)
    mini = args.checkpoint is None
    settings = quick_settings(args.steps or (MINI_STEPS if mini else QUICK_STEPS), mini=mini) if quick else {}
    if args.steps and not quick:
        settings["LookDevTrainStyleLoRA"] = {"steps": args.steps}
    prompt = build_prompt(json.loads(WORKFLOW.read_text(encoding="utf-8")), checkpoint, dataset, settings)
    base_prompt = build_prompt(json.loads(BASE_WORKFLOW.read_text(encoding="utf-8")), checkpoint, None,
                               base_settings(prompt), source=BASE_WORKFLOW)

    cpu, where = device_plan(args, None if args.checkpoint is None or args.cpu else usable_gpu())
    print(where, flush=True)
    print("starting ComfyUI ...", flush=True)
    try:
        server = comfy_server.start(out, cpu=cpu)
    except comfy_server.ServerStartError as exc:
        raise DemoError(f"ComfyUI did not start: {exc}") from exc
    try:
        print(f"ComfyUI at {server.url} (log: {server.log_path})", flush=True)
        print(f"base model: rendering the storyboard without a LoRA ({BASE_WORKFLOW.relative_to(ROOT)})", flush=True)
        base_history, _ = run_until_done(run_prompt(server, base_prompt, Progress()))
        print(f"training the style and rendering the storyboard in it ({WORKFLOW.relative_to(ROOT)})", flush=True)
        history, events = run_until_done(run_prompt(server, prompt, Progress(),
                                                   lambda seconds: estimate_line(prompt, seconds, quick)))
    finally:
        server.stop()
    for entry in (base_history, history):
        if (entry.get("status") or {}).get("status_str") == "error":
            raise DemoError(f"the run failed; see {server.log_path}")
    done = (events.get("lookdev.train.done") or [{}])[-1]
    frames = sorted(output_files(history, prompt, out, "LookDevStoryboardRender"))
    base_frames = sorted(output_files(base_history, base_prompt, out, "LookDevStoryboardRender"))
    sheet = output_files(history, prompt, out, "LookDevContactSheet")
    pdf = [path.with_suffix(".pdf") for path in sheet if path.with_suffix(".pdf").exists()]
    resolution = settings.get("LookDevLoadDataset", {}).get("custom_resolution")
    references = [demo_report.load_rgb(path, resolution) for path in sorted(dataset.glob("*.png"))]
    title = next(n["inputs"]["title"] for n in prompt.values() if n["class_type"] == "LookDevContactSheet")
    measured, before_after = demo_report.write_report(frames[0].parent, references, base_frames, frames,
                                                      f"{title}: base model | with the trained LoRA")
    print(f"\ndone in {time.monotonic() - started:.0f}s")
    print(f"LoRA:           {done.get('path')}")
    if done.get("loss_curve"):
        print(f"loss chart:     {done['loss_curve']}")
    print(f"frames:         {len(frames)} in {frames[0].parent if frames else '-'}")
    for path in frames:
        print(f"  frame:        {path}")
    print(f"base frames:    {len(base_frames)} in {base_frames[0].parent if base_frames else '-'}")
    for path in [*sheet, *pdf]:
        print(f"contact sheet:  {path}")
    for path in output_files(history, prompt, out, "LookDevAnimatic"):
        print(f"animatic:       {path}")
        print(f"edit list:      {path.with_suffix('.edl')}")
    print(f"before/after:   {before_after}")
    print(f"style distance to the {len(references)} references: base frames {measured['base']:.3f}, "
          f"styled frames {measured['styled']:.3f} ({measured['closer']:.1f}x closer)")
    print(f"layout similarity, base vs styled frame of each shot: {measured['layout']:.2f} (mean of {len(frames)})")
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt


def run_until_done(coroutine):
    """asyncio.run(coroutine), with Ctrl-C raising KeyboardInterrupt wherever it lands.

    Under Python's default handler, asyncio.run turns the first Ctrl-C into a cancellation of the
    running task and raises KeyboardInterrupt only if that cancellation comes out of the task; on a
    loaded machine it once did not (lost somewhere in the websocket wait, whose loop retries
    receive timeouts) and the demo rendered on after Ctrl-C. asyncio.run leaves a handler of our
    own in place; the caller's is restored after.
    """
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        return asyncio.run(coroutine)
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv=None):
    args = parse_args(argv)
    # A plain `kill` stops the demo as Ctrl-C does: the finally blocks stop the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return demo(args)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; ComfyUI was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
