"""LookDev Dataset From Video through ComfyUI's executor: the picker, a typed path, ComfyUI's own
VIDEO from core Load Video, write frames, bad inputs, and a training run from a reel."""

import os

import pytest
from PIL import Image

from video_files import encode, letterboxed, reel, scene, solid

SIZE = (256, 144)
OUTPUTS = ("dataset", "preview", "count", "report")


def from_video(**inputs):
    return {"class_type": "LookDevDatasetFromVideo", "inputs": {
        "video": "(none)", "path": "", "frames": 4, "start": "", "end": "", "remove_bars": True,
        "write_frames": False, "frames_folder": "", "trigger": "lkdv", "resolution": "custom",
        "custom_resolution": 128, "no_upscale": False, "repeats": 1, **inputs}}


def run(comfy, node, label, extra=None):
    prompt = {"1": node, **(extra or {})}
    for index, name in enumerate(OUTPUTS):
        prompt[f"c{index}"] = {"class_type": "LookDevTest_Capture",
                               "inputs": {"value": ["1", index], "label": f"{label}.{name}"}}
    result = comfy.run(prompt)
    return result, {name: comfy.captured[f"{label}.{name}"] for name in OUTPUTS}


def error_of(comfy, node, extra=None):
    prompt = {"1": node, **(extra or {}),
              "c": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["1", 2], "label": "err"}}}
    result = comfy.run(prompt, expect_error=True)
    assert not result.success
    return result.error["exception_message"]


@pytest.fixture(scope="module")
def clip(comfy):
    """input/reel_test.mp4: three shots and 4 black frames (cuts at 24, 54 and 58), letterboxed."""
    frames = [scene(1, SIZE, 24), scene(2, SIZE, 30), solid(0, SIZE, 4), scene(3, SIZE, 26)]
    path = encode(comfy.input_dir / "reel_test.mp4", letterboxed(reel(frames), 20, 20))
    return path.name


def test_picker_lists_the_input_folders_videos(comfy, clip):
    inputs = comfy.node_class("LookDevDatasetFromVideo").INPUT_TYPES()
    choices, options = inputs["required"]["video"]
    assert choices[0] == "(none)" and clip in choices and options["video_upload"] is True
    assert inputs["optional"]["video_input"][0] == "VIDEO"
    for section in inputs.values():
        assert all(spec[1].get("tooltip") for spec in section.values())


def test_picked_file(comfy, clip):
    result, out = run(comfy, from_video(video=clip), "picked")
    assert result.success
    dataset, report = out["dataset"], out["report"]
    assert out["count"] == len(dataset) == 4
    assert "Shots: 4 (3 cuts)" in report
    assert "cropped 2.46:1 letterbox: 20 px top and bottom" in report
    assert "Skipped frames: 4 black" in report
    assert f"LookDev dataset from {clip} (4 frames of 4 shots)" in report
    assert all(sample.caption == "lkdv" for sample in dataset.samples)
    assert out["preview"].shape[0] == 1  # the contact sheet with timecodes, also shown on the node
    assert result.ui["1"]["images"][0]["type"] == "temp"


def test_typed_path_and_video_input(comfy, clip, tmp_path):
    by_path = run(comfy, from_video(path=str(comfy.input_dir / clip)), "typed")[1]
    relative = run(comfy, from_video(path=clip), "relative")[1]
    loaded = {"v": {"class_type": "LoadVideo", "inputs": {"file": clip}}}
    via_video = run(comfy, from_video(video_input=["v", 0]), "VIDEO", loaded)[1]
    hashes = [[s.content_hash for s in out["dataset"].samples] for out in (by_path, relative, via_video)]
    assert hashes[0] == hashes[1] == hashes[2]


def test_write_frames_into_the_input_folder(comfy, clip):
    out = run(comfy, from_video(video=clip, write_frames=True, frames_folder="reel_frames"),
              "written")[1]
    folder = comfy.input_dir / "reel_frames"
    names = sorted(path.name for path in folder.iterdir())
    assert len(names) == 4 and all(n.startswith("reel_test_00h00m0") for n in names)
    assert all(Image.open(folder / n).size == (256, 104) for n in names)  # bars cropped
    assert [s.source.name for s in out["dataset"].samples] == names
    # Load Dataset reads the written frames next time.
    loaded = {"class_type": "LookDevLoadDataset", "inputs": {
        "folder": "reel_frames", "trigger": "lkdv", "resolution": "custom", "custom_resolution": 128,
        "no_upscale": False, "repeats": 1, "recursive": True, "caption_extension": "txt"}}
    result, again = run(comfy, loaded, "reloaded")
    assert again["count"] == 4


@pytest.mark.parametrize("inputs, message", [
    ({}, "no video given: pick a file in 'video', type a path in 'path', or connect a VIDEO"),
    ({"path": "../elsewhere.mp4"}, "path '../elsewhere.mp4' leads out of ComfyUI's input folder"),
    ({"path": "missing.mp4"}, "missing.mp4 does not exist; check the path"),
    ({"path": "notes.mp4"}, "notes.mp4: not a video file FFmpeg can read"),
    ({"path": "reel_test.mp4", "start": "later"}, "start 'later' is not a timecode"),
    ({"path": "reel_test.mp4", "write_frames": True, "frames_folder": "/tmp/x"},
     "frames are written inside ComfyUI's input folder"),
    ({"path": "reel_test.mp4", "write_frames": True, "frames_folder": "../x"},
     "frames_folder '../x' leads out of ComfyUI's input folder"),
])
def test_bad_inputs_are_clear_errors(comfy, clip, inputs, message):
    (comfy.input_dir / "notes.mp4").write_bytes(os.urandom(2000))
    assert message in error_of(comfy, from_video(**inputs))


def test_training_from_a_reel(comfy, clip):
    prompt = {
        "m": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}},
        "2": {"class_type": "LookDevTrainStyleLoRA", "inputs": {
            "model": ["m", 0], "clip": ["m", 1], "vae": ["m", 2], "dataset": ["1", 0],
            "name": "reel_style", "steps": 2, "learning_rate": 1e-3, "rank": 2, "alpha": 2.0,
            "batch_size": 1, "targets": "attention", "seed": 3}},
        "p": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 2], "label": "reel_lora"}},
    }
    result, out = run(comfy, from_video(video=clip, frames=3), "trained", prompt)
    assert result.success
    path = comfy.captured["reel_lora"]
    assert path.endswith("reel_style.safetensors") and os.path.getsize(path) > 0
