"""Crash safety and security through ComfyUI's executor and a real server: a full disk, a kill -9
in the middle of a checkpoint save, unreadable or booby-trapped files, writes that would leave
ComfyUI's folders, and the server routes the pack adds (none)."""

import errno
import importlib
import os
import pickle
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from comfy_host import ROOT, server_surface, start_server
from dataset_prompts import loader
from test_train_node import _scene, train_prompt

from lookdev.trainer.lora.io import LoraFileError, read_lora
from lookdev.trainer.training.state import latest_checkpoint, load_checkpoint, scan_checkpoints

FULL = "the disk is full (earlier files are kept)"


@pytest.fixture(scope="module")
def pack_fileio(comfy):
    """trainer/fileio.py as ComfyUI loaded it (the module the nodes call, not the tests' alias)."""
    nodes_module = sys.modules[comfy.node_class("LookDevTrainStyleLoRA").__module__]
    return importlib.import_module(nodes_module.__name__.rsplit(".nodes.", 1)[0] + ".trainer.fileio")


@pytest.fixture(scope="module")
def noir(comfy):
    folder = comfy.input_dir / "safety_set"
    folder.mkdir(exist_ok=True)
    for i in range(3):
        _scene(20 + i).save(folder / f"frame_{i}.png")
    return "safety_set"


def disk_fills_up(monkeypatch, fileio, *names):
    """ENOSPC half-way through every file whose name contains one of `names` (every file if none)."""
    original = fileio._write_all

    def write(fh, data):
        if names and not any(name in os.path.basename(fh.name) for name in names):
            return original(fh, data)
        fh.write(bytes(data)[: len(data) // 2])
        fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio, "_write_all", write)


def temps(*folders):
    return [p for folder in folders for p in Path(folder).rglob("*.tmp")]


def snapshot_files(*folders):
    return {p: p.read_bytes() for folder in folders for p in Path(folder).rglob("*") if p.is_file()}


# --- a full disk ----------------------------------------------------------------------------------

@pytest.mark.slow  # trains through the executor
@pytest.mark.parametrize("failing", ["checkpoint", "lora"])
def test_full_disk_during_training_keeps_earlier_files(comfy, pack_fileio, noir, monkeypatch, failing):
    name = f"full_{failing}"
    comfy.run(train_prompt("sd15", noir, name, steps=2), fresh=True)
    work, loras = comfy.output_dir / "lookdev" / name, comfy.models_dir("loras")
    before = snapshot_files(work, loras)
    assert loras / f"{name}.safetensors" in before and latest_checkpoint(work / "checkpoints")[1]["step"] == 2

    disk_fills_up(monkeypatch, pack_fileio, ".state.safetensors" if failing == "checkpoint" else f"{name}.safetensors")
    result = comfy.run(train_prompt("sd15", noir, name, steps=4), fresh=True, expect_error=True)
    target = (work / "checkpoints" / f"{name}-step000004.state.safetensors" if failing == "checkpoint"
              else loras / f"{name}.safetensors")
    assert result.error["exception_message"].strip() == f"cannot save {target}: {FULL}"
    after = snapshot_files(work, loras)
    assert {p: data for p, data in after.items() if p in before} == before  # every earlier file, byte for byte
    assert not temps(work, loras)


def test_full_disk_keeps_earlier_captions(comfy, pack_fileio, tmp_path, monkeypatch):
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(2):
        _scene(i).save(refs / f"shot_{i}.png")
    (refs / "shot_0.txt").write_text("lkdv, an earlier caption")
    disk_fills_up(monkeypatch, pack_fileio, ".txt")  # the loader's preview still fits
    prompt = {"1": loader(refs), "2": {"class_type": "LookDevCaptionDataset", "inputs": {
        "dataset": ["1", 0], "mode": "template", "captioner": "none", "template": "{trigger}, {filename}",
        "trigger": "", "style_words": "", "keep_marker": False, "write": "overwrite", "task": "(model default)",
        "prompt": "", "max_new_tokens": 8, "num_beams": 1, "batch_size": 1}},
        "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 2], "label": "full_disk_report"}}}
    comfy.run(prompt, fresh=True)
    report = comfy.captured["full_disk_report"]
    assert f"cannot save {refs / 'shot_0.txt.bak'}: {FULL}" in report  # the backup comes first
    assert f"cannot save {refs / 'shot_1.txt'}: {FULL}" in report
    assert sorted(p.name for p in refs.iterdir()) == ["shot_0.png", "shot_0.txt", "shot_1.png"]
    assert (refs / "shot_0.txt").read_text() == "lkdv, an earlier caption"


def _board(folder, seed):
    return {
        "m": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}},
        "s": {"class_type": "LookDevShotList", "inputs": {
            "shots": f"A | a lighthouse | {seed}", "style_prefix": "", "style_suffix": "", "trigger_words": "",
            "seed_policy": "per-shot seeds", "base_seed": 0}},
        "r": {"class_type": "LookDevStoryboardRender", "inputs": {
            "model": ["m", 0], "clip": ["m", 1], "vae": ["m", 2], "shots": ["s", 0], "negative": "",
            "sampler": "euler", "scheduler": "normal", "steps": 1, "cfg": 4.0, "aspect": "1:1",
            "base_resolution": 64, "width": 64, "height": 64, "folder": folder}},
        "c": {"class_type": "LookDevContactSheet", "inputs": {
            "images": ["r", 0], "labels": ["r", 1], "columns": 1, "title": f"seed {seed}", "folder": folder,
            "pdf": True, "cell_width": 64, "description_lines": 0}},
    }


@pytest.mark.parametrize("failing", ["A.png", "_contact_sheet.png", "_contact_sheet.pdf"])
def test_full_disk_keeps_earlier_frames_and_sheets(comfy, pack_fileio, monkeypatch, failing):
    folder = f"safety/full_{failing.replace('.', '_')}"
    comfy.run(_board(folder, seed=1), fresh=True)
    out = comfy.output_dir / folder
    before = snapshot_files(out)
    assert sorted(p.name for p in before) == ["A.png", "_contact_sheet.pdf", "_contact_sheet.png"]
    disk_fills_up(monkeypatch, pack_fileio, failing)
    result = comfy.run(_board(folder, seed=2), fresh=True, expect_error=True)
    assert result.error["exception_message"].strip() == f"cannot save {out / failing}: {FULL}"
    assert snapshot_files(out)[out / failing] == before[out / failing]
    assert not temps(out)


# --- unreadable and booby-trapped files -------------------------------------------------------------

class _Trap:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def booby_trap(path, marker):
    """A pickle that creates `marker` when loaded, checked to be live, saved as `path`."""
    data = pickle.dumps({"lora_up.weight": _Trap(marker)})
    pickle.loads(data)
    assert marker.exists(), "the trap did not go off when unpickled"
    marker.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_booby_trapped_pickle_named_as_lora_or_checkpoint_is_never_run(tmp_path):
    marker = tmp_path / "trap_went_off"
    lora = booby_trap(tmp_path / "style.safetensors", marker)
    torch_zip = tmp_path / "zip.safetensors"
    torch.save({"w": _Trap(marker)}, torch_zip)  # torch's own zip format
    for path in (lora, torch_zip):
        with pytest.raises(LoraFileError, match="pickle"):
            read_lora(path)
    state = booby_trap(tmp_path / "checkpoints" / "x-step000010.state.safetensors", marker)
    found, skipped = scan_checkpoints(state.parent)
    assert found == [] and [p for p, _ in skipped] == [state]
    with pytest.raises(ValueError, match="is not a readable LookDev checkpoint"):
        load_checkpoint(state)
    assert not marker.exists()


@pytest.mark.slow  # trains through the executor
def test_resume_skips_unreadable_checkpoints_with_a_note(comfy, noir, tmp_path):
    name = "unreadable"
    comfy.run(train_prompt("sd15", noir, name, steps=2, save_every=1), fresh=True)
    folder = comfy.output_dir / "lookdev" / name / "checkpoints"
    newest = folder / f"{name}-step000002.state.safetensors"
    assert latest_checkpoint(folder)[0] == newest
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # what a copy cut short or a failing disk leaves
    marker = tmp_path / "trap_went_off"
    booby_trap(folder / f"{name}-step999999.state.safetensors", marker)
    (folder / "foreign.state.safetensors").write_bytes((comfy.models_dir("loras") / f"{name}.safetensors").read_bytes())

    result = comfy.run(train_prompt("sd15", noir, name, steps=3), fresh=True)
    assert result.events_named("lookdev.train.progress")[0]["resumed_from"] == 1
    report = result.ui["3"]["text"][0]
    assert "steps 1 -> 3" in report
    assert f"skipped {name}-step000002.state.safetensors: not a complete safetensors file" in report
    assert f"skipped {name}-step999999.state.safetensors: not a complete safetensors file" in report
    assert "skipped foreign.state.safetensors: a safetensors file without LookDev checkpoint data" in report
    assert not marker.exists()


def test_resume_with_only_unreadable_checkpoints_starts_fresh(comfy, noir):
    name = "all_unreadable"
    folder = comfy.output_dir / "lookdev" / name / "checkpoints"
    folder.mkdir(parents=True)
    (folder / f"{name}-step000004.state.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    result = comfy.run(train_prompt("sd15", noir, name, steps=2), fresh=True)
    assert result.events_named("lookdev.train.progress")[0]["resumed_from"] == 0
    assert f"skipped {name}-step000004.state.safetensors" in result.ui["3"]["text"][0]


# --- writes that would leave ComfyUI's folders -------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "ABSOLUTE", "sub/escape", "..", "a\\b"])
def test_lora_names_cannot_name_folders(comfy, noir, tmp_path, name):
    name = str(tmp_path / "escape") if name == "ABSOLUTE" else name
    result = comfy.run(train_prompt("sd15", noir, name, steps=1), fresh=True, expect_error=True)
    assert result.error["exception_message"].strip().startswith(f"name {name!r}: use letters, digits")
    assert not result.events_named("lookdev.train.progress")


@pytest.mark.parametrize("where", ["work folder", "lora file"])
def test_symlinks_out_of_comfyui_folders_are_refused(comfy, noir, tmp_path, where):
    name = f"linked_{where.split()[1]}"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("not LookDev's")
    if where == "work folder":
        link = comfy.output_dir / "lookdev" / name
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(outside, target_is_directory=True)
        folder = "output"
    else:
        link = comfy.models_dir("loras") / f"{name}.safetensors"
        link.symlink_to(outside / "keep.txt")
        folder = "loras"
    try:
        result = comfy.run(train_prompt("sd15", noir, name, steps=1), fresh=True, expect_error=True)
    finally:
        link.unlink()
    message = result.error["exception_message"].strip()
    assert message.startswith(f"cannot save to {link}: it leads to {(outside if where == 'work folder' else outside / 'keep.txt')}")
    assert f"outside ComfyUI's {folder} folder" in message
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"] and (outside / "keep.txt").read_text() == "not LookDev's"


def _sheet_of_blank(folder):
    return {"i": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32, "batch_size": 2, "color": 0}},
            "c": {"class_type": "LookDevContactSheet", "inputs": {
                "images": ["i", 0], "columns": 2, "title": "", "folder": folder, "pdf": True, "cell_width": 64,
                "description_lines": 0}}}


@pytest.mark.parametrize("node", ["render", "sheet"])
@pytest.mark.parametrize("folder, message", [
    ("../up", "folder prefix '../up' must stay inside the output folder"),
    ("ABSOLUTE", "folder prefix 'ABSOLUTE' must stay inside the output folder"),
    ("safety/linked", "folder prefix 'safety/linked' leads outside the output folder"),
])
def test_render_and_sheet_folders_stay_in_output(comfy, tmp_path, node, folder, message):
    link = comfy.output_dir / "safety" / "linked"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(tmp_path, target_is_directory=True)
    if folder == "ABSOLUTE":
        folder = str(tmp_path / "abs")
        message = message.replace("ABSOLUTE", folder)
    prompt = _board(folder, seed=3) if node == "render" else _sheet_of_blank(folder)
    try:
        result = comfy.run(prompt, fresh=True, expect_error=True)
    finally:
        link.unlink()
    assert message in result.error["exception_message"].strip()
    assert result.error["node_id"] == ("r" if node == "render" else "c")
    assert not result.events_named("lookdev.render.progress")  # refused before any rendering
    assert list(tmp_path.iterdir()) == []  # nothing through the link, nothing at the absolute path


# --- the server ---------------------------------------------------------------------------------

def test_the_pack_adds_no_server_routes(comfy):
    before, after = comfy.surface_before_pack, server_surface(comfy.server, comfy.nodes)
    added_web = {name: Path(path).resolve() for name, path in after.pop("web folders").items()
                 if name not in before.pop("web folders")}
    assert after == before  # no route, middleware or app hook
    # The one thing served: the web extension's scripts, as static files under /extensions/LookDev/.
    assert added_web == {"LookDev": ROOT / "web"}
    assert {p.suffix for p in (ROOT / "web").rglob("*") if p.is_file()} == {".js"}
    # ComfyUI itself serves a pack's example-workflow folder, read-only, for its template browser:
    # the pack has one, `workflows/`, and it holds workflow JSON and each workflow's card thumbnail only.
    served = [p.name for p in ROOT.iterdir() if p.name in ("example_workflows", "example", "examples", "workflow",
                                                           "workflows", "subgraphs")]
    assert served == ["workflows"]
    files = [p for p in (ROOT / "workflows").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".jpg"}
    assert all(p.with_suffix(".json").is_file() for p in files if p.suffix == ".jpg")


TEST_NODES = '''"""Test-only custom nodes. LookDevTest_TinyModels: the tests' tiny SD1.5 MODEL/CLIP/VAE.
LookDevTest_HangDuringSave: passes a MODEL through and makes the server stop half-way through
writing the file named by $LOOKDEV_TEST_HANG_ON, saying so in $LOOKDEV_TEST_HANG_MARKER, so a test
can kill -9 it there."""
import os
import sys
import time

sys.path.insert(0, SCRIPTS)
import tiny_models


class TinyModels:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self):
        bundle = tiny_models.build("sd15", seed=0)
        return bundle.model, bundle.clip, bundle.vae


class HangDuringSave:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "arm"
    CATEGORY = "testing"

    def arm(self, model):
        target, marker = os.environ["LOOKDEV_TEST_HANG_ON"], os.environ["LOOKDEV_TEST_HANG_MARKER"]
        for name, module in list(sys.modules.items()):
            if name.endswith(".trainer.fileio"):
                module._write_all = _hang_on(module._write_all, target, marker)
        return (model,)


def _hang_on(original, target, marker):
    def write(fh, data):
        if os.path.basename(fh.name).startswith("." + target + "."):
            fh.write(bytes(data)[: len(data) // 2])
            fh.flush()
            os.fsync(fh.fileno())
            with open(marker, "w") as out:
                out.write(fh.name)
            time.sleep(3600)
        return original(fh, data)
    return write


NODE_CLASS_MAPPINGS = {"LookDevTest_TinyModels": TinyModels, "LookDevTest_HangDuringSave": HangDuringSave}
'''


def _server_training(name, hang=False, **settings):
    inputs = {"model": ["h", 0] if hang else ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "dataset": ["2", 0],
              "name": name, "steps": 3, "save_every": 1, "learning_rate": 2e-3, "rank": 4, "alpha": 4.0,
              "batch_size": 2, "targets": "attention", "seed": 7, "timestep_sampling": "uniform",
              "noise_offset": 0.05, "caption_dropout": 0.2, **settings}
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {}},
              "2": {"class_type": "LookDevLoadDataset", "inputs": {
                  "folder": "kill_set", "trigger": "lkdv noir", "resolution": "custom", "custom_resolution": 128,
                  "no_upscale": False, "repeats": 1, "recursive": True, "caption_extension": "txt"}},
              "3": {"class_type": "LookDevTrainStyleLoRA", "inputs": inputs}}
    if hang:
        prompt["h"] = {"class_type": "LookDevTest_HangDuringSave", "inputs": {"model": ["1", 0]}}
    return prompt


@pytest.mark.server
@pytest.mark.slow
def test_kill_9_during_a_checkpoint_save_then_resume_bit_identical(tmp_path, monkeypatch):
    base = tmp_path / "base"
    (base / "input" / "kill_set").mkdir(parents=True)
    for i in range(3):
        _scene(40 + i).save(base / "input" / "kill_set" / f"frame_{i}.png")
    (base / "custom_nodes" / "lookdev_test_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "lookdev_test_nodes" / "__init__.py").write_text(
        TEST_NODES.replace("sys.path.insert(0, SCRIPTS)", f"sys.path.insert(0, {str(ROOT / 'scripts')!r})"))
    work, loras = base / "output" / "lookdev" / "kill", base / "models" / "loras"
    marker = tmp_path / "hanging"
    monkeypatch.setenv("LOOKDEV_TEST_HANG_ON", "kill-step000002.state.safetensors")
    monkeypatch.setenv("LOOKDEV_TEST_HANG_MARKER", str(marker))

    server = start_server(base)
    try:
        server.queue(_server_training("kill", hang=True))
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert server.process.poll() is None, server.log()[-4000:]
            assert time.monotonic() < deadline, "the save never started:\n" + server.log()[-4000:]
            time.sleep(0.1)
        server.process.kill()  # SIGKILL, half-way through writing the step-2 checkpoint
        server.process.wait()
    finally:
        server.stop()

    partial = Path(marker.read_text())
    assert partial.parent == work / "checkpoints" and partial.stat().st_size > 0  # the kill landed mid-write
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == sorted(
        ["kill-step000001.state.safetensors", partial.name])
    assert load_checkpoint(work / "checkpoints" / "kill-step000001.state.safetensors").step == 1
    assert sorted(p.name for p in work.glob("*.safetensors")) == ["kill-step000001.safetensors"]
    assert read_lora(work / "kill-step000001.safetensors").tensors
    assert not (loras / "kill.safetensors").exists()

    monkeypatch.delenv("LOOKDEV_TEST_HANG_ON")
    server = start_server(base)
    try:
        straight = server.wait(server.queue(_server_training("straight")))
        resumed = server.wait(server.queue(_server_training("kill")))
    finally:
        server.stop()
    assert straight["status"]["status_str"] == resumed["status"]["status_str"] == "success", server.log()[-4000:]
    report = resumed["outputs"]["3"]["text"][0]
    assert "steps 1 -> 3" in report and f"removed {partial.name}, a partial file of an interrupted run" in report
    assert not temps(base / "output", loras)
    expected = safetensors.torch.load_file(loras / "straight.safetensors")
    got = safetensors.torch.load_file(loras / "kill.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
