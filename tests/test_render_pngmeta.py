"""Frame PNGs: metadata round trip, ComfyUI's chunks, image conversion, frame paths."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from lookdev.trainer.render.pngmeta import (
    FrameMeta, LoraUse, frame_path, read_lookdev_metadata, read_png_text, save_frame_png, to_pil,
)

META = FrameMeta(
    shot_id="SC01_SH010", prompt="ldstyle, a harbor at dawn", negative="blurry", seed=2**63 + 5,
    sampler="euler", scheduler="karras", steps=20, cfg=6.5, size=(1344, 768),
    loras=(LoraUse("harbor_style.safetensors", 0.8, 0.6), LoraUse("grain.safetensors")),
)


def random_image(height=24, width=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_round_trip_with_comfy_chunks(tmp_path):
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    workflow = {"nodes": [{"id": 3}], "links": []}
    path = save_frame_png(tmp_path / "SC01_SH010.png", Image.fromarray(random_image()), META,
                          prompt=prompt, extra_pnginfo={"workflow": workflow})
    assert read_lookdev_metadata(path) == META
    text = read_png_text(path)
    assert json.loads(text["prompt"]) == prompt
    assert json.loads(text["workflow"]) == workflow
    assert set(text) == {"prompt", "workflow", "lookdev"}
    assert json.loads(text["lookdev"])["loras"][0] == {
        "name": "harbor_style.safetensors", "strength_model": 0.8, "strength_clip": 0.6}


def test_comfy_chunks_only_when_given(tmp_path):
    path = save_frame_png(tmp_path / "a.png", Image.fromarray(random_image()), META)
    assert set(read_png_text(path)) == {"lookdev"}


def test_pixels_survive(tmp_path):
    pixels = random_image(seed=3)
    path = save_frame_png(tmp_path / "a.png", pixels, META)
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image), pixels)


@pytest.mark.parametrize("make, shape", [
    (lambda: torch.rand(1, 16, 24, 3), (16, 24, 3)),
    (lambda: torch.rand(16, 24, 3), (16, 24, 3)),
    (lambda: np.random.default_rng(0).random((16, 24, 4), dtype=np.float32), (16, 24, 4)),
    (lambda: np.zeros((16, 24, 1), dtype=np.float32), (16, 24)),
    (lambda: np.full((16, 24, 3), 200, dtype=np.uint8), (16, 24, 3)),
])
def test_to_pil_accepts_comfy_images(make, shape):
    assert np.asarray(to_pil(make())).shape == shape


def test_to_pil_maps_0_1_to_0_255_as_save_image_does():
    image = torch.tensor([[[0.0, 0.5, 1.0], [1.2, -0.1, 0.25]]])
    assert np.asarray(to_pil(image)).tolist() == [[[0, 127, 255], [255, 0, 63]]]


@pytest.mark.parametrize("value, error", [
    (torch.rand(2, 8, 8, 3), "batch of 2 images; save frames one at a time"),
    (np.zeros((8, 8)), r"shaped \[height, width, channels\], got \[8, 8\]"),
    (np.zeros((8, 8, 2)), r"got \[8, 8, 2\]"),
])
def test_to_pil_rejects_other_shapes(value, error):
    with pytest.raises(ValueError, match=error):
        to_pil(value)


def test_read_rejects_files_without_lookdev_metadata(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(random_image()).save(plain)
    with pytest.raises(ValueError, match="plain.png has no LookDev metadata"):
        read_lookdev_metadata(plain)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(random_image()).save(jpeg)
    with pytest.raises(ValueError, match="photo.jpg is a JPEG image, not a PNG"):
        read_lookdev_metadata(jpeg)
    with pytest.raises(ValueError, match="cannot read .*missing.png"):
        read_lookdev_metadata(tmp_path / "missing.png")


@pytest.mark.parametrize("record, error", [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "other"}), "not a LookDev frame record"),
    (json.dumps({**META.to_json(), "version": 99}), "version 99 is not supported"),
    (json.dumps({k: v for k, v in META.to_json().items() if k != "seed"}), "incomplete or damaged"),
    (json.dumps({**META.to_json(), "loras": [{"nme": "x"}]}), "incomplete or damaged"),
])
def test_read_rejects_damaged_records(tmp_path, record, error):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("lookdev", record)
    path = tmp_path / "frame.png"
    Image.fromarray(random_image()).save(path, pnginfo=info)
    with pytest.raises(ValueError, match=error):
        read_lookdev_metadata(path)


def test_save_leaves_no_temp_files_and_replaces_atomically(tmp_path):
    target = tmp_path / "f.png"
    save_frame_png(target, random_image(seed=1), META)
    save_frame_png(target, random_image(seed=2), META)
    assert os.listdir(tmp_path) == ["f.png"]
    with Image.open(target) as image:
        assert np.array_equal(np.asarray(image), random_image(seed=2))


@pytest.mark.parametrize("prefix, shot_id, parts", [
    ("storyboard", "SH01", ("storyboard", "SH01.png")),
    ("", "SH01", ("SH01.png",)),
    (None, "SH01", ("SH01.png",)),
    ("film/seq01", "SH01", ("film", "seq01", "SH01.png")),
    ("film\\seq01", "SH01", ("film", "seq01", "SH01.png")),
    ("./seq01/", "a.b", ("seq01", "a.b.png")),
    ("My Film", "SH01", ("My Film", "SH01.png")),
])
def test_frame_path(tmp_path, prefix, shot_id, parts):
    assert frame_path(tmp_path, prefix, shot_id) == tmp_path.resolve().joinpath(*parts)


@pytest.mark.parametrize("prefix, shot_id, error", [
    ("../elsewhere", "SH01", "must stay inside the output folder"),
    ("seq/../../up", "SH01", "must stay inside the output folder"),
    ("/etc", "SH01", "must stay inside the output folder"),
    ("\\\\server\\share", "SH01", "must stay inside the output folder"),
    ("C:/films", "SH01", "must stay inside the output folder"),
    ("seq", "../SH01", "can't be a file name"),
    ("seq", "a/b", "can't be a file name"),
    ("seq", "", "empty"),
    ("seq", "PRN", "Windows reserves"),
])
def test_frame_path_refuses_escapes(tmp_path, prefix, shot_id, error):
    with pytest.raises(ValueError, match=error):
        frame_path(tmp_path, prefix, shot_id)


def test_frame_path_refuses_a_symlinked_prefix_leading_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "seq").symlink_to(outside)
    with pytest.raises(ValueError, match="leads outside the output folder"):
        frame_path(tmp_path / "out", "seq", "SH01")
