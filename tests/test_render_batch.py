"""The headless batch renderer against fake ComfyUI servers: distribution, retries, resume."""

import _thread
import json
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT
from fake_comfy import SHOT_NODE, FakeComfy, closed_port_url
from batch_render import BatchConfig, main, run_batch
from lookdev.trainer.render.batch import SHEET_NAME, SUMMARY_NAME, find_shot_node, load_workflow, shot_workflow
from lookdev.trainer.render.comfy_http import ComfyClient, ServerUnavailable, ShotError
from lookdev.trainer.render.sheet import sheet_layout
from lookdev.trainer.render.shots import Shot, format_shot_line, parse_shot_csv

WORKFLOW = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
    SHOT_NODE: {"class_type": "LookDevShotList", "inputs": {"shots": "placeholder", "base_resolution": 1024}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "lookdev"}},
}
SHOTS_CSV = "shot_id,description,seed,aspect\n" + "".join(
    f"SH{n:02d},shot number {n} at the harbor,{n if n % 2 else ''},{'2.39' if n == 3 else ''}\n" for n in range(1, 7))
SHOT_IDS = [f"SH{n:02d}" for n in range(1, 7)]


@pytest.fixture
def servers():
    started = []

    def start(name, **options):
        fake = FakeComfy(name, **options)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def setup(tmp_path):
    """A function making a BatchConfig for some servers; the log lands in setup.log."""
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW))
    (tmp_path / "shots.csv").write_text(SHOTS_CSV)
    log = []

    def make(*urls, **options):
        values = dict(workflow=tmp_path / "wf.json", shots=tmp_path / "shots.csv", servers=list(urls),
                      output=tmp_path / "out", attempts=3, shot_timeout=5.0, request_timeout=2.0,
                      poll_interval=0.01, cooldown=0.05, server_failures=2, columns=3)
        values.update(options)
        return BatchConfig(**values)

    make.log = log
    make.report = log.append
    make.out = tmp_path / "out"
    return make


def frame_text(path):
    with Image.open(path) as image:
        return dict(image.text)


def summary(out):
    return {shot["shot_id"]: shot for shot in json.loads((out / SUMMARY_NAME).read_text())["shots"]}


def test_shots_are_spread_over_servers_one_at_a_time(servers, setup):
    b = servers("B", polls_before_done=2)
    a = servers("A", finish_when=lambda: bool(b.received))  # A can only finish once B works too
    result = run_batch(setup(a.url, b.url), setup.report)
    assert result.failed == []
    assert sorted(a.shots_received() + b.shots_received()) == SHOT_IDS  # each shot rendered once
    assert a.received and b.received
    assert a.max_active == 1 and b.max_active == 1
    client_ids = {client_id for fake in (a, b) for _, client_id in fake.received}
    assert len(client_ids) == 1 and client_ids != {None}
    shots = {shot.shot_id: shot for shot in parse_shot_csv(SHOTS_CSV).shots}
    for fake in (a, b):
        for workflow, _ in fake.received:
            node = workflow[SHOT_NODE]["inputs"]
            shot_id = node["shots"].split("|")[0].strip()
            assert node == {"shots": format_shot_line(shots[shot_id]), "base_resolution": 1024}
            assert {key: value for key, value in workflow.items() if key != SHOT_NODE} == {
                key: value for key, value in WORKFLOW.items() if key != SHOT_NODE}
    record = summary(setup.out)
    for shot_id in SHOT_IDS:
        server = a if shot_id in a.shots_received() else b
        assert record[shot_id]["server"] == server.url and record[shot_id]["attempts"] == 1
        assert frame_text(setup.out / f"{shot_id}.png") == {"server": server.name, "shot": f"{shot_id}#1"}
    with Image.open(setup.out / SHEET_NAME) as sheet:
        assert sheet.size == sheet_layout([(64, 36)] * 6, 3).size
    assert sorted(path.name for path in setup.out.iterdir()) == sorted(
        [f"{shot_id}.png" for shot_id in SHOT_IDS] + [SHEET_NAME, SUMMARY_NAME])


def test_a_refusing_server_is_dropped_and_the_others_render(servers, setup):
    good = servers("good")
    refusing = closed_port_url()
    code = main(["--workflow", str(setup().workflow), "--shots", str(setup().shots), "--server", refusing,
                 "--server", good.url, "--out", str(setup.out), "--poll-interval", "0.01", "--cooldown", "0.05",
                 "--server-failures", "2"], setup.report)
    assert code == 0
    assert sorted(good.shots_received()) == SHOT_IDS
    assert all(shot["server"] == good.url and shot["attempts"] == 1 for shot in summary(setup.out).values())
    assert any(line.startswith(f"{refusing} paused for 0.05 s: {refusing} can't be reached") for line in setup.log)
    assert any(f"{refusing} dropped after 2 failures in a row" in line for line in setup.log)


def test_no_answering_server_stops_before_rendering(setup):
    refusing = closed_port_url()
    code = main(["--workflow", str(setup().workflow), "--shots", str(setup().shots), "--server", refusing,
                 "--out", str(setup.out)], setup.report)
    assert code == 2
    assert setup.log[-1].startswith("error: no server answers; is ComfyUI running there")
    assert f"{refusing} can't be reached" in setup.log[-1]


def test_an_execution_error_is_retried_on_another_server(servers, setup):
    broken = servers("broken", behaviour={"*": "error"})
    good = servers("good", finish_when=lambda: bool(broken.received))
    result = run_batch(setup(broken.url, good.url), setup.report)
    assert result.failed == []
    for shot in summary(setup.out).values():
        assert shot["server"] == good.url
        if shot["shot_id"] in broken.shots_received():
            assert shot["attempts"] == 2
            assert shot["errors"] == [f"attempt 1 on {broken.url}: KSampler (node 3) failed: "
                                      "torch.OutOfMemoryError: CUDA out of memory"]
    assert broken.shots_received()
    assert not any("dropped" in line or "paused" in line for line in setup.log)  # the server itself works


def test_a_server_dying_mid_run_loses_no_shot(servers, setup):
    dying = servers("dying", die_after_prompts=2)
    good = servers("good", finish_when=dying.dead.is_set)
    result = run_batch(setup(dying.url, good.url), setup.report)
    assert result.failed == []
    first, in_flight = dying.shots_received()
    record = summary(setup.out)
    assert record[first]["server"] == dying.url
    assert frame_text(setup.out / f"{first}.png")["server"] == "dying"
    assert record[in_flight]["server"] == good.url and record[in_flight]["attempts"] == 2
    assert record[in_flight]["errors"][0].startswith(f"attempt 1 on {dying.url}: ")
    assert "can't be reached" in record[in_flight]["errors"][0] or "dropped the connection" in record[in_flight]["errors"][0]
    assert sorted(set(good.shots_received()) | {first}) == SHOT_IDS
    assert any(f"{dying.url} dropped" in line for line in setup.log)


def test_a_shot_failing_everywhere_fails_the_run_and_is_listed(servers, setup):
    a = servers("A", behaviour={"SH02": "error"})
    b = servers("B", behaviour={"SH02": "error"})
    code = main(["--workflow", str(setup().workflow), "--shots", str(setup().shots), "--server", a.url,
                 "--server", b.url, "--out", str(setup.out), "--poll-interval", "0.01", "--attempts", "3"],
                setup.report)
    assert code == 1
    record = summary(setup.out)
    assert record["SH02"]["status"] == "failed" and record["SH02"]["attempts"] == 3
    assert len(record["SH02"]["errors"]) == 3 and "CUDA out of memory" in record["SH02"]["error"]
    assert {a.url, b.url} <= {error.split(": ")[0].split(" on ")[1] for error in record["SH02"]["errors"]}
    assert json.loads((setup.out / SUMMARY_NAME).read_text())["failed"] == ["SH02"]
    assert [line for line in setup.log if line.startswith("  SH02 (failed, 3 attempt(s))")]
    assert not (setup.out / "SH02.png").exists()
    layout = sheet_layout([(64, 36)] * 6, 4)
    with Image.open(setup.out / SHEET_NAME) as sheet:
        placeholder = layout.cells[1].frame
        assert sheet.getpixel(((placeholder[0] + placeholder[2]) // 2, placeholder[1] + 5)) == (70, 70, 74)


def test_finished_frames_are_skipped_on_a_second_run(servers, setup):
    first = servers("first")
    run_batch(setup(first.url), setup.report)
    before = {shot_id: (setup.out / f"{shot_id}.png").read_bytes() for shot_id in SHOT_IDS}
    (setup.out / "SH04.png").write_bytes(before["SH04"][:40])  # damaged by something else
    second = servers("second")
    result = run_batch(setup(second.url), setup.report)
    assert result.failed == []
    assert second.shots_received() == ["SH04"]
    assert any("SH04.png is not a readable image; rendering it again" in line for line in setup.log)
    statuses = {shot_id: shot["status"] for shot_id, shot in summary(setup.out).items()}
    assert statuses == {**{shot_id: "skipped" for shot_id in SHOT_IDS}, "SH04": "rendered"}
    for shot_id in SHOT_IDS:
        if shot_id != "SH04":
            assert (setup.out / f"{shot_id}.png").read_bytes() == before[shot_id]
    assert frame_text(setup.out / "SH04.png")["server"] == "second"


def test_a_truncated_download_never_becomes_a_frame(servers, setup):
    truncating = servers("truncating", behaviour={"*": "truncated"})
    result = run_batch(setup(truncating.url, attempts=2), setup.report)
    assert sorted(outcome.shot_id for outcome in result.failed) == SHOT_IDS
    assert all("arrived damaged or incomplete" in shot["error"] for shot in summary(setup.out).values())
    assert sorted(path.name for path in setup.out.iterdir()) == [SUMMARY_NAME]
    assert result.sheet is None


def test_a_hanging_server_times_out_and_the_shot_moves(servers, setup):
    hanging = servers("hanging", behaviour={"*": "hang"})
    good = servers("good", finish_when=lambda: bool(hanging.received))
    result = run_batch(setup(hanging.url, good.url, shot_timeout=0.3), setup.report)
    assert result.failed == []
    stuck = hanging.shots_received()[0]
    assert summary(setup.out)[stuck]["errors"][0] == f"attempt 1 on {hanging.url}: did not finish the shot within 0.3 s"
    assert any(f"{hanging.url} paused for 0.05 s" in line for line in setup.log)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(servers, setup):
    hanging = servers("hanging", behaviour={"*": "hang"}, on_prompt=_thread.interrupt_main)
    code = main(["--workflow", str(setup().workflow), "--shots", str(setup().shots), "--server", hanging.url,
                 "--out", str(setup.out), "--poll-interval", "0.01"], setup.report)
    assert code == 130
    assert any(line.startswith("interrupted: finishing the requests in progress; run the same command again")
               for line in setup.log)
    record = summary(setup.out)
    assert record["SH01"]["status"] == "interrupted" and record["SH01"]["error"] == "interrupted before the frame arrived"
    assert all(record[shot_id]["status"] == "interrupted" and record[shot_id]["attempts"] == 0
               for shot_id in SHOT_IDS[1:])
    assert hanging.shots_received() == ["SH01"]


def test_a_workflow_without_save_image_fails_at_once(servers, setup):
    fake = servers("preview only", behaviour={"*": "no_images"})
    result = run_batch(setup(fake.url), setup.report)
    assert len(result.failed) == 6
    assert all(shot["attempts"] == 1 and "needs LookDev Storyboard Render or a Save Image node" in shot["error"]
               for shot in summary(setup.out).values())


def test_a_rejected_workflow_says_why(servers, setup):
    picky = servers("picky", behaviour={"*": "reject"})
    good = servers("good", finish_when=lambda: bool(picky.received))
    assert run_batch(setup(picky.url, good.url), setup.report).failed == []
    rejected = summary(setup.out)[picky.shots_received()[0]]
    assert rejected["attempts"] == 2
    assert rejected["errors"][0] == (
        f"attempt 1 on {picky.url}: rejected the workflow: Prompt outputs failed validation; "
        "node 4 (CheckpointLoaderSimple): Value not in list ckpt_name: 'x.safetensors' not in []")


def test_extra_images_are_kept_apart(servers, setup):
    fake = servers("two images", images_per_shot=2)
    run_batch(setup(fake.url), setup.report)
    assert frame_text(setup.out / "SH01.png")["shot"] == "SH01#1"
    assert frame_text(setup.out / "_extras" / "SH01-2.png")["shot"] == "SH01#2"
    assert summary(setup.out)["SH01"]["extras"] == [str(setup.out / "_extras" / "SH01-2.png")]


@pytest.mark.parametrize("workflow, node, error", [
    ({"nodes": [], "links": []}, None, "editor format; .*Export \\(API\\)"),
    ([1, 2], None, "not in ComfyUI API format"),
    ({"1": {"inputs": {}}}, None, "not in ComfyUI API format"),
    ({"1": {"class_type": "KSampler", "inputs": {}}}, None, "no LookDev Shot List node"),
    ({"1": {"class_type": "LookDevShotList", "inputs": {"shots": ""}},
      "2": {"class_type": "LookDevShotList", "inputs": {"shots": ""}}}, None, "2 Shot List nodes \\(1, 2\\); choose one"),
    ({"1": {"class_type": "LookDevShotList", "inputs": {"shots": ["5", 0]}}}, None, "a link from another node"),
    ({"1": {"class_type": "LookDevShotList", "inputs": {}}}, None, "found none"),
    ({"1": {"class_type": "LookDevShotList", "inputs": {"shots": ""}}}, "7", "no node '7'"),
])
def test_workflow_problems(tmp_path, workflow, node, error):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow))
    with pytest.raises(ValueError, match=error):
        find_shot_node(load_workflow(path), node)


@pytest.mark.parametrize("workflow, node, expected", [
    ({"1": {"class_type": "LookDevShotList", "inputs": {"shots": ""}},
      "2": {"class_type": "LookDevShotList", "inputs": {"shots": ""}}}, "2", "2"),
    ({"5": {"class_type": "MyShotText", "inputs": {"shots": "x"}}}, 5, "5"),
])
def test_shot_node_choice(workflow, node, expected):
    assert find_shot_node(workflow, node) == expected


@pytest.mark.parametrize("content, error", [
    (None, "does not exist"),
    (b"{oops", "is not a JSON file"),
])
def test_unreadable_workflow_files(tmp_path, content, error):
    path = tmp_path / "wf.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=error):
        load_workflow(path)


@pytest.mark.parametrize("inputs, shot, index, line, policy", [
    ({}, Shot("A", "x"), 4, "A | x |  | ", None),
    ({}, Shot("A", "x", 9, "2.39"), 4, "A | x | 9 | 2.39", None),
    ({"seed_policy": "base + index", "base_seed": 100}, Shot("A", "x", 9), 4, "A | x | 104 | ", "per-shot seeds"),
    ({"seed_policy": "per-shot seeds", "base_seed": 100}, Shot("A", "x", 9), 4, "A | x | 9 | ", "per-shot seeds"),
    ({"seed_policy": "per-shot seeds", "base_seed": 100}, Shot("A", "x"), 4, "A | x | 104 | ", "per-shot seeds"),
    ({"seed_policy": "same seed for all shots", "base_seed": 7}, Shot("A", "x", 9), 4, "A | x | 7 | ", "per-shot seeds"),
    ({"seed_policy": "base + index", "base_seed": ["3", 0]}, Shot("A", "x"), 4, "A | x |  | ", "base + index"),
    ({"shots_file": "seq01.csv"}, Shot("A", "x"), 0, "A | x |  | ", None),
])
def test_shot_workflow_keeps_each_shot_on_its_full_list_seed(inputs, shot, index, line, policy):
    workflow = {"1": {"class_type": "LookDevShotList", "inputs": {"shots": "old", "other": 1, **inputs}}}
    job = shot_workflow(workflow, "1", shot, index)
    assert job["1"]["inputs"]["shots"] == line
    assert job["1"]["inputs"]["other"] == 1
    assert job["1"]["inputs"].get("seed_policy") == policy
    assert job["1"]["inputs"].get("shots_file", "") == ""  # the shot comes as text, never from the file
    assert workflow["1"]["inputs"]["shots"] == "old"  # the original is untouched


def test_bad_shot_list_stops_before_any_render(servers, setup, tmp_path):
    fake = servers("unused")
    (tmp_path / "shots.csv").write_text("shot_id,description,seed\nA,x,one\nA,y\nB,a | b\n")
    code = main(["--workflow", str(setup().workflow), "--shots", str(tmp_path / "shots.csv"),
                 "--server", fake.url, "--out", str(setup.out)], setup.report)
    assert code == 2
    assert "line 2: seed 'one'" in setup.log[0] and "line 3: shot id 'A' is already used on line 2" in setup.log[0]
    assert fake.received == [] and not setup.out.exists()
    (tmp_path / "shots.csv").write_text("shot_id,description\nB,a | b\n")
    assert main(["--workflow", str(setup().workflow), "--shots", str(tmp_path / "shots.csv"),
                 "--server", fake.url, "--out", str(setup.out)], setup.report) == 2
    assert "shot 'B' (line 2): its description contains '|'" in setup.log[-1]


@pytest.mark.parametrize("options, error", [
    (dict(servers=[]), "at least one server"),
    (dict(attempts=0), "attempts must be at least 1"),
    (dict(shot_timeout=0), "shot_timeout must be more than 0"),
    (dict(cooldown=-1), "cooldown can't be negative"),
    (dict(servers=["http://a:1", "http://b:1", "http://a:1/"]), "server http://a:1 is given twice"),
    (dict(servers=["127.0.0.1:8188"]), "must look like http://127.0.0.1:8188"),
])
def test_bad_settings(setup, options, error):
    config = setup("http://127.0.0.1:1", **options)
    with pytest.raises(ValueError, match=error):
        run_batch(config, setup.report)


def test_command_line_help_runs_from_a_checkout():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "batch_render.py"), "--help"],
                          capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    for option in ("--workflow", "--shots", "--server", "--out", "--shot-node", "--attempts", "Exit status"):
        assert option in done.stdout


def test_client_tells_servers_that_are_not_comfyui(servers):
    fake = servers("real")
    client = ComfyClient(fake.url + "/", timeout=2)
    assert client.url == fake.url
    client.ping()
    with pytest.raises(ShotError, match="could not send image"):
        client.view("nothing.png")
    assert client.history("unknown-id") is None
    with pytest.raises(ServerUnavailable, match="not JSON"):
        ComfyClient(fake.url + "/nothing-here", timeout=2).ping()
    with pytest.raises(ServerUnavailable, match="can't be reached"):
        ComfyClient(closed_port_url(), timeout=2).ping()
    with pytest.raises(ValueError, match="request timeout"):
        ComfyClient(fake.url, timeout=0)
