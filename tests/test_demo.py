"""scripts/demo.sh, the README's first command, run as a user runs it: provisioning (already done,
so it only checks), the generated noir dataset, the tiny checkpoint, a ComfyUI server, the shipped
train-and-storyboard workflow headless, and the files it reports. Also its errors and Ctrl-C.

The demo runs with fewer training steps than its default to keep the suite short; everything else
is the default path.
"""

import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import pytest
from PIL import Image

from comfy_server import comfyui_path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scripts" / "demo.sh"
SHOTS = ["SH010", "SH020", "SH030", "SH040", "SH050", "SH060"]  # the shipped workflow's shot list
RUN_TIMEOUT_S = 1200


def demo_env():
    """The environment of this test run, so provisioning finds what is already installed."""
    return {**os.environ, "LOOKDEV_VENV": os.environ.get("LOOKDEV_VENV", sys.prefix),
            "COMFYUI_PATH": str(comfyui_path())}


def start_demo(*args):
    return subprocess.Popen(["bash", str(DEMO), *args], cwd=ROOT, env=demo_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def reported(stdout, label):
    """The paths the demo printed after `label:`."""
    return [Path(line.split(":", 1)[1].strip()) for line in stdout.splitlines()
            if line.strip().startswith(f"{label}:")]


def safetensors_metadata(path):
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(size))["__metadata__"]


def server_answers(url):
    try:
        with urllib.request.urlopen(url + "/system_stats", timeout=5):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_missing_checkpoint_is_named(tmp_path):
    missing = tmp_path / "no such model.safetensors"
    demo = start_demo("--checkpoint", str(missing), "--out", str(tmp_path / "out"))
    stdout, stderr = demo.communicate(timeout=RUN_TIMEOUT_S)
    assert demo.returncode == 2, stdout + stderr
    assert f"--checkpoint: the file {missing} does not exist" in stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    return tmp_path_factory.mktemp("demo") / "out"


@pytest.fixture(scope="module")
def demo_run(demo_out):
    demo = start_demo("--out", str(demo_out), "--steps", "6")
    stdout, stderr = demo.communicate(timeout=RUN_TIMEOUT_S)
    assert demo.returncode == 0, f"{stdout}\n{stderr}"
    return stdout


@pytest.mark.slow
@pytest.mark.server
def test_demo_trains_and_renders_the_storyboard(demo_run, demo_out):
    stdout = demo_run
    assert "device: the CPU (LookDev Mini needs no GPU)" in stdout
    assert "first training step: " in stdout and "estimated whole run: about " in stdout
    assert "training noir_style: step 6/6" in stdout
    [lora] = reported(stdout, "LoRA")
    assert lora == demo_out / "models" / "loras" / "noir_style.safetensors"
    metadata = safetensors_metadata(lora)
    assert json.loads(metadata["lookdev.trigger_words"]) == []
    assert json.loads(metadata["lookdev.config"])["steps"] == 6

    [chart] = reported(stdout, "loss chart")
    assert chart.parent == demo_out / "output" / "lookdev" and Image.open(chart).size[0] > 200

    frames = reported(stdout, "frame")
    assert [frame.stem for frame in frames] == SHOTS
    # LookDev Mini's shots, prompted as written: no trigger word, no style prefix (scripts/demo.py
    # says why); each frame at its shot's aspect (or the render's 1.78) at the demo's base size.
    from lookdev.trainer.render.framing import frame_size

    module = _demo_module()
    rows = [[cell.strip() for cell in line.split("|")] for line in module.MINI_SHOTS.splitlines()
            if not line.startswith("#")]
    for frame, row in zip(frames, rows, strict=True):
        with Image.open(frame) as image:
            image.load()
            assert image.format == "PNG" and json.loads(image.info["lookdev"])["prompt"] == row[1]
            assert image.size == frame_size(row[3] or "1.78", module.QUICK_RESOLUTION)

    sheet, pdf = reported(stdout, "contact sheet")
    assert sheet.name == "_contact_sheet.png" and sheet.parent == frames[0].parent
    with Image.open(sheet) as image:
        assert image.width >= 3 * 256
    assert pdf.suffix == ".pdf" and pdf.read_bytes().startswith(b"%PDF")

    # The same shots by the base model, a before/after sheet of both, and the measured figures.
    [base_folder] = [line.split(" in ", 1)[1].strip() for line in stdout.splitlines() if line.startswith("base frames:")]
    assert sorted(path.stem for path in Path(base_folder).glob("SH*.png")) == SHOTS
    [before_after] = reported(stdout, "before/after")
    assert before_after.name == "_before_after.png" and before_after.parent == frames[0].parent
    with Image.open(before_after) as image:
        assert image.height > len(SHOTS) * 100
    assert re.search(r"style distance to the 16 references: base frames \d+\.\d+, styled frames \d+\.\d+", stdout)
    assert re.search(r"layout similarity, base vs styled frame of each shot: -?\d\.\d+ \(mean of 6\)", stdout)
    [animatic], [edl] = reported(stdout, "animatic"), reported(stdout, "edit list")
    assert animatic == frames[0].parent / "animatic.mp4" and edl == animatic.with_suffix(".edl")
    with av.open(str(animatic)) as container:
        stream = container.streams.video[0]
        # the shipped shot list's durations (4 + 3 + 2.5 + 3 + 1.5 + 5 s) and a 3 s title card at 24 fps
        assert stream.average_rate == 24 and sum(1 for _ in container.decode(stream)) == 22 * 24
    assert [line.split()[1] for line in edl.read_text().splitlines() if line[:3].isdigit()] == ["AX"] * 7

    url = next(line.split()[2] for line in stdout.splitlines() if line.startswith("ComfyUI at "))
    assert not server_answers(url), "the demo left its ComfyUI server running"


@pytest.mark.slow
@pytest.mark.server
def test_ctrl_c_stops_the_server(demo_run, demo_out):
    """A second run in the same folder reuses the checkpoint; Ctrl-C once the server is up stops both."""
    demo = start_demo("--out", str(demo_out), "--steps", "6")
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True).start()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    url = None
    while url is None and time.monotonic() < deadline and demo.poll() is None:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        assert not line.startswith("assembling LookDev Mini"), "the checkpoint of the first run was not reused"
        if line.startswith("ComfyUI at "):
            url = line.split()[2]
    assert url and server_answers(url), demo.stderr.read() if demo.poll() is not None else "no server line"
    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=60) == 130
    assert "interrupted; ComfyUI was stopped" in demo.stderr.read()
    assert not server_answers(url)


def test_failures_are_reported_by_node():
    """What the demo prints for a refused workflow and for a node that fails while running."""
    import demo

    refused = demo._rejection({"error": {"message": "Prompt outputs failed validation"}, "node_errors": {
        "1": {"class_type": "CheckpointLoaderSimple",
              "errors": [{"message": "Value not in list", "details": "ckpt_name: 'x.safetensors' not in []"}]}}})
    assert refused.splitlines() == [
        "ComfyUI refused the workflow: Prompt outputs failed validation",
        "  node 1 (CheckpointLoaderSimple): Value not in list ckpt_name: 'x.safetensors' not in []"]
    with pytest.raises(demo.DemoError, match=r"^the run failed in node 4 \(LookDevTrainStyleLoRA\): "
                                             r"the dataset has no images$"):
        demo.show_event("execution_error", {"node_id": "4", "node_type": "LookDevTrainStyleLoRA",
                                            "exception_message": "the dataset has no images\n"}, demo.Progress())


def test_ctrl_c_stops_a_wait_loop_that_retries_timeouts():
    """asyncio.run delivers a Ctrl-C as a cancellation of the running task; if the task does not
    let it out (as once in the demo's websocket wait, which retries receive timeouts), the run goes
    on. The demo runs its workflows with a SIGINT handler of its own, which raises KeyboardInterrupt
    instead, and gives the caller's handler back after."""
    import asyncio

    import demo

    async def wait_loop():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:  # a cancellation the task does not let out
                continue
        return "rendered on"

    def run_with_ctrl_c(run):
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            return run(wait_loop())
        except KeyboardInterrupt:
            return "stopped"

    callers_handler = signal.getsignal(signal.SIGINT)
    if sys.version_info >= (3, 11):  # asyncio.run cancels on Ctrl-C since 3.11
        assert run_with_ctrl_c(asyncio.run) == "rendered on"  # Python's default handler: the Ctrl-C is lost
    assert run_with_ctrl_c(demo.run_until_done) == "stopped"
    assert signal.getsignal(signal.SIGINT) is callers_handler


def test_demo_waits_for_the_history_entry(tmp_path):
    """ComfyUI sends `execution_success` before it stores the history entry; the demo must poll
    until the entry is there instead of reading it once (that read raced and failed KeyError)."""
    import asyncio

    import aiohttp
    from aiohttp import web

    import demo

    answers = [{}, {}, {"p1": {"outputs": {}, "status": {"status_str": "success"}}}]
    asked = []

    async def history(request):
        asked.append(request.match_info["prompt_id"])
        return web.json_response(answers[min(len(asked) - 1, len(answers) - 1)])

    async def scenario():
        app = web.Application()
        app.router.add_get("/history/{prompt_id}", history)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        server = type("Server", (), {"url": f"http://127.0.0.1:{port}", "log_path": tmp_path / "log"})()
        try:
            async with aiohttp.ClientSession() as http:
                return await demo.wait_for_history(http, server, "p1")
        finally:
            await runner.cleanup()

    entry = asyncio.run(scenario())
    assert entry["status"]["status_str"] == "success"
    assert asked == ["p1", "p1", "p1"]


def _demo_module():
    import demo

    return demo


@pytest.mark.parametrize("argv, gpu, cpu, words", [
    ([], None, True, "LookDev Mini needs no GPU"),
    (["--checkpoint", "{model}"], None, True, "no usable GPU was found"),
    (["--checkpoint", "{model}", "--cpu"], "NVIDIA H200", True, "(--cpu)"),
    (["--checkpoint", "{model}"], "NVIDIA H200", False, "device: NVIDIA H200"),
])
def test_without_a_usable_gpu_the_demo_runs_on_the_cpu_and_says_so(tmp_path, argv, gpu, cpu, words):
    demo = _demo_module()
    model = tmp_path / "real.safetensors"
    model.write_bytes(b"x")
    args = demo.parse_args([arg.format(model=model) for arg in argv])
    on_cpu, line = demo.device_plan(args, gpu)
    assert on_cpu is cpu and words in line
    if gpu is None and argv:
        assert "--quick" in line


def test_the_estimate_scales_one_measured_step_to_the_whole_workflow():
    demo = _demo_module()
    workflow = json.loads((ROOT / "workflows" / "api" / "train_and_storyboard.json").read_text())
    # The shipped settings: 800 steps at 512 px, 3 validation prompts every 200 steps (3 rounds and
    # the final one) at 20 steps and 512 px, 6 shots at 25 steps and 512 px.
    phases = demo.estimate_phases(workflow, 11.0)
    assert phases["training"] == 800 * 11.0
    assert phases["validation renders"] == pytest.approx(4 * 3 * 20 * 11.0 * demo.SAMPLING_VS_TRAINING_STEP)
    assert phases["storyboard"] == pytest.approx(6 * 25 * 11.0 * demo.SAMPLING_VS_TRAINING_STEP)
    line = demo.estimate_line(workflow, 11.0, quick=False)
    assert line.startswith("first training step: 11.0 s; estimated whole run: about 3h ")
    assert "--quick" in line
    quick = demo.build_prompt(workflow, "tiny.safetensors", "/refs", demo.quick_settings(40))
    assert "--quick" not in demo.estimate_line(quick, 0.2, quick=True)


def test_storyboard_progress_has_an_eta():
    import io

    demo = _demo_module()
    now = [0.0]
    out = io.StringIO()
    progress = demo.Progress(out, clock=lambda: now[0])
    for index, step, seconds in ((1, 1, 0.0), (1, 2, 90.0), (2, 1, 180.0)):
        now[0] = seconds
        demo.show_event("lookdev.render.progress", {"shot": "SH010 wide", "index": index, "total": 3, "step": step,
                                                    "steps": 2}, progress)
    lines = out.getvalue().splitlines()
    assert lines[0] == "rendering shot 1/3 (SH010 wide): step 1/2"  # no pace yet
    assert lines[-1] == "rendering shot 2/3 (SH010 wide): step 1/2  (eta 4m 30s)"  # 90 s a step, 3 steps left
