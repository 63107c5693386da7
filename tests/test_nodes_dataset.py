"""LookDev Load Dataset and Dataset From Images, run through ComfyUI's executor."""

import copy
import math
import uuid
from pathlib import Path

import pytest
import torch
from PIL import Image

from dataset_files import noise_image, rgb16_png, write_image
from dataset_prompts import cached_nodes, loader
from lookdev.nodes.dataset import caption_lines, training_resolution


def from_images(images, captions="", **inputs):
    return {"class_type": "LookDevDatasetFromImages", "inputs": {
        "images": images, "captions": captions, "trigger": "lkdv", "resolution": "custom",
        "custom_resolution": 128, "no_upscale": False, "repeats": 1, **inputs}}


OUTPUTS = ("dataset", "preview", "count", "report")


def with_captures(node, label):
    """A prompt: `node` as "1" and a Capture of each of its outputs, stored as label.<output>."""
    prompt = {"1": node}
    for index, name in enumerate(OUTPUTS):
        prompt[f"c{index}"] = {"class_type": "LookDevTest_Capture",
                               "inputs": {"value": ["1", index], "label": f"{label}.{name}"}}
    return prompt


def run(comfy, node, label):
    result = comfy.run(with_captures(node, label))
    return result, {name: comfy.captured[f"{label}.{name}"] for name in OUTPUTS}


def error_of(comfy, node):
    result = comfy.run(with_captures(node, "error"), expect_error=True)
    assert not result.success
    return result.error["exception_message"] if result.error else result.refusal


def queue(comfy, prompt):
    # A fresh copy each time, as the server makes one per request: the executor stores each
    # node's IS_CHANGED answer in the prompt dict it is given.
    return comfy.run(copy.deepcopy(prompt))


@pytest.fixture
def refs(tmp_path):
    """Three shapes of image, a repeat folder and sidecar captions."""
    folder = tmp_path / "refs"
    write_image(folder / "wide.png", (192, 64), seed=1)
    write_image(folder / "tall.jpg", (64, 160), seed=2)
    (folder / "tall.txt").write_text("a lighthouse, dusk", encoding="utf-8")
    write_image(folder / "3_neon" / "sign.webp", (96, 96), seed=3)
    (folder / "3_neon" / "sign.txt").write_text("neon sign\nnight", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def image_list(comfy):
    """Registers LookDevTest_ImageList: a list of IMAGE batches of different sizes, as list
    nodes of other packs output them ("96x64x2,64x96x1": width x height x batch)."""
    class ImageList:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"sizes": ("STRING", {"default": "", "tooltip": "WxHxN,..."})}}

        RETURN_TYPES = ("IMAGE",)
        OUTPUT_IS_LIST = (True,)
        FUNCTION = "make"
        CATEGORY = "testing"

        def make(self, sizes):
            batches = []
            for seed, size in enumerate(sizes.split(",")):
                width, height, count = map(int, size.split("x"))
                generator = torch.Generator().manual_seed(seed)
                batches.append(torch.rand(count, height, width, 3, generator=generator))
            return (batches,)

    comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_ImageList"] = ImageList
    return "LookDevTest_ImageList"


# --- pure input helpers -------------------------------------------------------------------------


@pytest.mark.parametrize("choice, custom, expected", [
    ("512", 256, 512), ("768", 256, 768), ("1024", 256, 1024), ("custom", 256, 256),
])
def test_training_resolution(choice, custom, expected):
    assert training_resolution(choice, custom) == expected


def test_training_resolution_names_the_input():
    with pytest.raises(ValueError, match="resolution must be one of 512, 768, 1024, custom"):
        training_resolution("640", 640)


@pytest.mark.parametrize("captions, expected", [
    ([""], []),
    (["rain"], ["rain"]),
    (["rain\n\n  night street \n"], ["rain", "night street"]),
    (["a, b", "c\nd"], ["a, b", "c\nd"]),
    ([], []),
])
def test_caption_lines(captions, expected):
    assert caption_lines(captions) == expected


# --- loading a folder ---------------------------------------------------------------------------


def test_loader_buckets_repeats_sidecars_and_preview(comfy, refs):
    result, out = run(comfy, loader(refs), "basic")
    dataset = out["dataset"]
    assert out["count"] == 3 == len(dataset)
    assert [s.source.name for s in dataset.samples] == ["sign.webp", "tall.jpg", "wide.png"]
    assert dataset.buckets() == {(64, 192): 1, (128, 128): 1, (192, 64): 1}
    assert [s.repeats for s in dataset.samples] == [3, 1, 1]
    assert dataset.captions() == ["lkdv, neon sign, night", "lkdv, a lighthouse, dusk", "lkdv"]
    assert all(s.image.shape == (s.bucket[1], s.bucket[0], 3) for s in dataset.samples)
    assert "3 images, 5 per epoch with repeats, at 128 px" in out["report"]
    assert "Repeats: x1: 2 images, x3: 1 image" in out["report"]
    preview = out["preview"]
    assert preview.dim() == 4 and preview.shape[0] == 1 and preview.shape[-1] == 3
    [shown] = result.ui["1"]["images"]
    assert shown["type"] == "temp" and shown["subfolder"] == ""
    path = Path(comfy.folder_paths.get_temp_directory()) / shown["filename"]
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (preview.shape[2], preview.shape[1])
    assert not list(path.parent.glob(".*.tmp"))


def test_loader_reads_folders_relative_to_the_input_folder(comfy, tmp_path):
    name = f"refs-{uuid.uuid4().hex[:8]}"
    write_image(comfy.input_dir / name / "sub" / "a.png", (96, 96))
    _, out = run(comfy, loader(f"{name}/sub"), "relative")
    assert out["count"] == 1
    assert out["dataset"].samples[0].source == comfy.input_dir / name / "sub" / "a.png"


def test_folder_choices_are_the_input_subfolders_and_typed_paths_still_validate(comfy, tmp_path):
    """The folder input lists the input folder's subfolders as they are now (a new one appears on
    the next object_info); a typed path outside the list, relative or absolute, passes ComfyUI's
    validation and loads (saved workflows hold typed strings)."""
    name = f"Picked-{uuid.uuid4().hex[:8]}"
    node = comfy.node_class("LookDevLoadDataset")
    assert name not in node.INPUT_TYPES()["required"]["folder"][0]
    write_image(comfy.input_dir / name / "a.png", (96, 96))
    (comfy.input_dir / f".hidden-{name}").mkdir()
    (comfy.input_dir / f"{name}.png").write_bytes(b"not a folder")
    choices, options = node.INPUT_TYPES()["required"]["folder"]
    assert name in choices and not [c for c in choices if name in c and c != name]
    assert choices == sorted(choices, key=str.lower) and options["default"] == ""
    _, out = run(comfy, loader(name), "picked")
    assert out["count"] == 1
    write_image(tmp_path / "typed" / "b.png", (96, 96))
    _, out = run(comfy, loader(tmp_path / "typed"), "typed")
    assert out["count"] == 1


def test_loader_resolution_and_no_upscale(comfy, tmp_path):
    write_image(tmp_path / "small.png", (96, 96))
    _, out = run(comfy, loader(tmp_path, custom_resolution=256), "upscaled")
    assert out["dataset"].samples[0].bucket == (256, 256)
    assert "enlarged 2.7x" in out["report"]
    _, out = run(comfy, loader(tmp_path, custom_resolution=256, no_upscale=True), "kept")
    assert out["dataset"].samples[0].bucket == (64, 64)
    _, out = run(comfy, loader(tmp_path, recursive=False, repeats=4), "repeats")
    assert out["dataset"].effective_size() == 4


def test_loader_converts_every_kind_of_image(comfy, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored wide, shown rotated a quarter turn: tall
    noise_image((160, 64), seed=1).save(tmp_path / "rotated.jpg", exif=exif)
    write_image(tmp_path / "alpha.png", (96, 96), seed=2, mode="RGBA")
    write_image(tmp_path / "grey.png", (96, 96), seed=3, mode="L")
    noise_image((96, 96), seed=4).convert("CMYK").save(tmp_path / "cmyk.jpg")
    noise_image((96, 96), seed=5).convert("P").save(tmp_path / "palette.png")
    rgb16_png(tmp_path / "deep.png", 96, 96, (65535, 32768, 0))
    write_image(tmp_path / "photo.tiff", (96, 96), seed=6)
    write_image(tmp_path / "old.bmp", (96, 96), seed=7)
    _, out = run(comfy, loader(tmp_path), "modes")
    dataset = out["dataset"]
    assert out["count"] == 8 and dataset.skipped == []
    buckets = {s.source.name: s.bucket for s in dataset.samples}
    assert buckets["rotated.jpg"] == (64, 192)
    deep = next(s for s in dataset.samples if s.source.name == "deep.png").image
    assert torch.allclose(deep[0, 0], torch.tensor([1.0, 128 / 255, 0.0]), atol=1 / 255)


@pytest.fixture
def messy(tmp_path, monkeypatch):
    """A folder with every kind of bad file next to two good images."""
    folder = tmp_path / "messy"
    write_image(folder / "good.png", (96, 96), seed=1)
    write_image(folder / "locked.png", (96, 96), seed=2)
    (folder / "good.txt").write_bytes("caf\xe9 at night".encode("cp1252"))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.webp").write_text("shopping list")
    outside = tmp_path / "elsewhere"
    write_image(outside / "secret.png", (96, 96), seed=3)
    (folder / "escape.png").symlink_to(outside / "secret.png")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    real_open = Image.open

    def open_refusing_locked(fp, *args, **kwargs):
        if Path(str(fp)).name == "locked.png":
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", open_refusing_locked)
    return folder


def test_bad_files_are_skipped_and_reported(comfy, messy):
    _, out = run(comfy, loader(messy), "messy")
    assert out["count"] == 1
    assert out["dataset"].captions() == ["lkdv, caf\ufffd at night"]
    report = out["report"]
    for line in ("  corrupt.png: corrupt PNG file: its header is damaged",
                 "  empty.jpg: empty file (0 bytes)",
                 "  notes.webp: a text file, not an image",
                 "  locked.png: cannot read the file: Permission denied",
                 "  escape.png: symlink points outside the dataset folder",
                 "  linked: symlinked folder (pointing outside the dataset folder) is not followed",
                 "  good.txt: caption is not UTF-8 text: unreadable characters were replaced"):
        assert line in report, line


@pytest.mark.parametrize("make, typed, words", [
    (None, "{tmp}/nowhere", ["dataset folder {tmp}/nowhere does not exist"]),
    ("unusable", "{tmp}/unusable", ["dataset folder {tmp}/unusable: 2 files, none usable",
                                    "1 corrupt", "1 too small"]),
    ("emptydir", "{tmp}/emptydir", ["dataset folder {tmp}/emptydir holds no files"]),
    ("file", "{tmp}/file", ["{tmp}/file is a file, not a folder"]),
    (None, "", ["folder is empty"]),
    (None, "../outside", ["folder '../outside' leads out of ComfyUI's input folder {input}"]),
    (None, "refs/../../outside", ["folder 'refs/../../outside' leads out of ComfyUI's input"]),
])
def test_unusable_folders_are_clear_errors(comfy, tmp_path, make, typed, words):
    if make == "unusable":
        (tmp_path / make).mkdir()
        (tmp_path / make / "a.png").write_bytes(b"")
        Image.new("RGB", (8, 8)).save(tmp_path / make / "b.png")
    elif make == "emptydir":
        (tmp_path / make).mkdir()
    elif make == "file":
        (tmp_path / make).write_text("x")
    message = error_of(comfy, loader(typed.format(tmp=tmp_path)))
    for expected in words:
        assert expected.format(tmp=tmp_path, input=comfy.input_dir) in message


def test_loader_reruns_only_when_the_folder_changes(comfy, refs):
    prompt = with_captures(loader(refs), "changes")
    queue(comfy, prompt)
    assert "1" in cached_nodes(queue(comfy, prompt))
    (refs / ".DS_Store").write_bytes(b"finder")
    (refs / "lookdev_cache").mkdir()
    (refs / "lookdev_cache" / "latents.safetensors").write_bytes(b"x")
    assert "1" in cached_nodes(queue(comfy, prompt))
    write_image(refs / "new.png", (96, 96), seed=9)
    assert "1" not in cached_nodes(queue(comfy, prompt))
    assert comfy.captured["changes.count"] == 4
    (refs / "tall.txt").write_text("a lighthouse, storm", encoding="utf-8")
    assert "1" not in cached_nodes(queue(comfy, prompt))
    assert "lkdv, a lighthouse, storm" in comfy.captured["changes.dataset"].captions()
    assert "1" in cached_nodes(queue(comfy, prompt))


def test_is_changed_when_the_folder_is_linked_from_another_node(comfy):
    assert math.isnan(comfy.node_class("LookDevLoadDataset").IS_CHANGED(recursive=True))


# --- images from other nodes ----------------------------------------------------------------


def test_dataset_from_a_loaded_image(comfy):
    name = f"ref-{uuid.uuid4().hex[:8]}.png"
    write_image(comfy.input_dir / name, (160, 64), seed=4)
    prompt = with_captures(from_images(["L", 0], "a lighthouse at dusk"), "loaded")
    prompt["L"] = {"class_type": "LoadImage", "inputs": {"image": name}}
    result = comfy.run(prompt)
    dataset = comfy.captured["loaded.dataset"]
    assert dataset.captions() == ["lkdv, a lighthouse at dusk"] and dataset.root is None
    assert dataset.samples[0].bucket == (192, 64) and dataset.samples[0].source is None
    assert result.ui["1"]["images"][0]["type"] == "temp"


def test_dataset_from_a_list_of_batches_of_different_sizes(comfy, image_list):
    prompt = with_captures(from_images(["L", 0], "one\ntwo\n\nthree\nfour"), "list")
    prompt["L"] = {"class_type": image_list, "inputs": {"sizes": "192x64x2,64x160x1,32x32x1"}}
    comfy.run(prompt)
    dataset = comfy.captured["list.dataset"]
    assert comfy.captured["list.count"] == 3
    assert dataset.captions() == ["lkdv, one", "lkdv, two", "lkdv, three"]
    assert [s.bucket for s in dataset.samples] == [(192, 64), (192, 64), (64, 192)]
    assert "  input image 4: too small: 32x32 px" in comfy.captured["list.report"]


def test_one_caption_for_every_image(comfy, image_list):
    prompt = with_captures(from_images(["L", 0], "a street at night", repeats=2), "one")
    prompt["L"] = {"class_type": image_list, "inputs": {"sizes": "96x96x3"}}
    comfy.run(prompt)
    dataset = comfy.captured["one.dataset"]
    assert dataset.captions() == ["lkdv, a street at night"] * 3
    assert dataset.effective_size() == 6


def test_caption_count_must_match_the_images(comfy, image_list):
    prompt = with_captures(from_images(["L", 0], "one\ntwo"), "mismatch")
    prompt["L"] = {"class_type": image_list, "inputs": {"sizes": "96x96x3"}}
    result = comfy.run(prompt, expect_error=True)
    assert "got 2 captions for 3 images" in result.error["exception_message"]
