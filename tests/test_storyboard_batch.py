"""scripts/batch_render.py end to end on two real ComfyUI servers rendering the storyboard nodes,
one of them killed with SIGKILL while it renders a shot."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
from PIL import Image

import comfy_host
from conftest import ROOT
from lookdev.trainer.render.batch import SHEET_NAME, SUMMARY_NAME
from lookdev.trainer.render.pngmeta import read_lookdev_metadata
from lookdev.trainer.render.sheet import sheet_layout

pytestmark = [pytest.mark.server, pytest.mark.slow]  # two servers, one killed mid-shot

SHOT_IDS = [f"SH{n:02d}0" for n in range(1, 7)]
BASE_SEED = 40


def api_workflow(checkpoint):
    """CheckpointLoaderSimple -> LookDev Shot List -> LookDev Storyboard Render, as Export (API) writes it."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "6": {"class_type": "LookDevShotList", "inputs": {
            "shots": "SH000 | placeholder", "style_prefix": "pencil storyboard", "style_suffix": "",
            "trigger_words": "lkdv", "seed_policy": "base + index", "base_seed": BASE_SEED, "shots_file": ""}},
        "9": {"class_type": "LookDevStoryboardRender", "inputs": {
            "model": ["4", 0], "clip": ["4", 1], "vae": ["4", 2], "shots": ["6", 0], "negative": "blurry",
            "sampler": "euler", "scheduler": "normal", "steps": 2, "cfg": 4.0, "aspect": "1:1",
            "base_resolution": 64, "width": 64, "height": 64, "folder": "batch"}},
    }


@pytest.fixture
def doomed(tmp_path, comfy, tiny_checkpoint):
    """A second server, with the tiny checkpoint, for the test to kill."""
    base = tmp_path / "doomed"
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / tiny_checkpoint).symlink_to(comfy.models_dir("checkpoints") / tiny_checkpoint)
    srv = comfy_host.start_server(base)
    yield srv
    srv.stop()


def kill_while_rendering(srv, finished_there, killed):
    """SIGKILL `srv` once it has finished a shot and is running the next one."""
    finished_there.wait(300)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and srv.process.poll() is None:
        if requests.get(srv.url + "/queue", timeout=5).json()["queue_running"]:
            os.kill(srv.process.pid, signal.SIGKILL)
            killed.set()
            return
        time.sleep(0.02)


def warm_up(servers, workflow):
    """Load the checkpoint on every server first, so both take shots at the same pace (a cold
    server could otherwise finish its first shot only after the other took all the rest)."""
    job = json.loads(json.dumps(workflow))
    job["9"]["inputs"]["folder"] = "warm_up"
    for srv, prompt_id in [(srv, srv.queue(job)) for srv in servers]:
        assert srv.wait(prompt_id)["status"]["status_str"] == "success"


def test_batch_survives_a_server_killed_mid_shot(server, doomed, tiny_checkpoint, tmp_path):
    workflow = api_workflow(tiny_checkpoint)
    warm_up([server, doomed], workflow)
    (tmp_path / "wf.json").write_text(json.dumps(workflow))
    (tmp_path / "shots.csv").write_text("shot_id,description,aspect\n" + "".join(
        f"{shot},shot {n} of the harbor,{'2.0' if n == 3 else ''}\n" for n, shot in enumerate(SHOT_IDS, start=1)))
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "scripts" / "batch_render.py"), "--workflow", str(tmp_path / "wf.json"),
               "--shots", str(tmp_path / "shots.csv"), "--server", doomed.url, "--server", server.url,
               "--out", str(out), "--columns", "4", "--pdf", "--poll-interval", "0.05", "--cooldown", "0.2",
               "--server-failures", "2", "--request-timeout", "10", "--shot-timeout", "300"]
    finished_there, killed = threading.Event(), threading.Event()
    killer = threading.Thread(target=kill_while_rendering, args=(doomed, finished_there, killed), daemon=True)
    killer.start()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log = []
    for line in process.stdout:
        log.append(line.rstrip())
        if f"rendered on {doomed.url} " in line:
            finished_there.set()
    finished_there.set()  # let the killer thread end if the doomed server never finished a shot
    assert process.wait(60) == 0, "\n".join(log)
    killer.join(130)
    assert killed.is_set(), "the doomed server was never caught rendering:\n" + "\n".join(log)

    outcomes = {shot["shot_id"]: shot for shot in json.loads((out / SUMMARY_NAME).read_text())["shots"]}
    assert all(outcome["status"] == "rendered" for outcome in outcomes.values()), outcomes
    kept = [shot for shot, outcome in outcomes.items() if outcome["server"] == doomed.url]
    retried = [shot for shot, outcome in outcomes.items() if outcome["attempts"] == 2]
    assert kept, "no frame from before the kill"
    assert len(retried) == 1 and outcomes[retried[0]]["server"] == server.url
    assert doomed.url in outcomes[retried[0]]["errors"][0]

    sizes = []
    for index, shot in enumerate(SHOT_IDS):
        meta = read_lookdev_metadata(out / f"{shot}.png")
        assert (meta.shot_id, meta.seed) == (shot, BASE_SEED + index)
        assert meta.prompt == f"lkdv, pencil storyboard, shot {index + 1} of the harbor"
        sizes.append(meta.size)
    assert sizes[2] == (128, 64) and set(sizes[:2] + sizes[3:]) == {(64, 64)}

    with Image.open(out / SHEET_NAME) as sheet:
        assert sheet.size == sheet_layout(sizes, columns=4).size
    assert (out / SHEET_NAME).with_suffix(".pdf").read_bytes().startswith(b"%PDF")
