import dataclasses

import pytest
import torch
from PIL import Image

from dataset_files import noise_image, write_image
from lookdev.trainer.dataset.dataset import (DatasetConfig, build_dataset, dataset_from_images,
                                             format_report, preview_grid)
from lookdev.trainer.dataset.scan import DatasetError
from lookdev.trainer.options import help_of


def config(folder="", **overrides):
    return DatasetConfig(**{"folder": str(folder), "resolution": 128, "trigger": "lkdv",
                            **overrides})


@pytest.fixture
def refs(tmp_path):
    """A small reference folder with good, bad and oddly captioned files."""
    write_image(tmp_path / "IMG_0001-dark_alley.png", (200, 100), seed=1)
    write_image(tmp_path / "rain.jpg", (90, 120), seed=2)
    (tmp_path / "rain.txt").write_text("rain on glass, film noir", encoding="utf-8")
    write_image(tmp_path / "3_neon" / "sign.png", (128, 128), seed=3)
    (tmp_path / "3_neon" / "sign.txt").write_bytes("caf\xe9 sign".encode("cp1252"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "tiny.png").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(tmp_path / "icon.png")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")
    return tmp_path


def test_build_dataset_skips_bad_files_and_captions_for_the_style(refs):
    dataset = build_dataset(config(refs, strip_words="film noir"))
    assert [s.source.name for s in dataset.samples] == ["sign.png", "IMG_0001-dark_alley.png",
                                                        "rain.jpg"]
    assert dataset.captions() == ["lkdv, caf\ufffd sign", "lkdv", "lkdv, rain on glass"]
    assert [s.repeats for s in dataset.samples] == [3, 1, 1]
    assert len(dataset) == 3 and dataset.effective_size() == 5
    skipped = {issue.path.name: issue.kind for issue in dataset.skipped}
    assert skipped == {"broken.png": "corrupt", "tiny.png": "corrupt", "icon.png": "too small",
                       "notes.pdf": "unsupported type"}


def test_samples_are_comfy_images_of_their_bucket(refs):
    dataset = build_dataset(config(refs))
    for sample in dataset.samples:
        width, height = sample.bucket
        assert sample.image.shape == (height, width, 3)
        assert sample.image.dtype == torch.float32
        assert 0.0 <= float(sample.image.min()) and float(sample.image.max()) <= 1.0
        assert width * height <= 128 * 128 and width % 64 == 0 and height % 64 == 0
    assert dataset.buckets() == {(128, 128): 2, (192, 64): 1}


def test_build_is_deterministic_and_hash_follows_the_crop(refs):
    first, second = build_dataset(config(refs)), build_dataset(config(refs))
    assert [s.content_hash for s in first.samples] == [s.content_hash for s in second.samples]
    assert all(torch.equal(a.image, b.image) for a, b in zip(first.samples, second.samples))
    bigger = build_dataset(dataclasses.replace(config(refs), resolution=256))
    assert {s.content_hash for s in bigger.samples}.isdisjoint(
        {s.content_hash for s in first.samples})


def test_template_filename_and_folder(refs):
    dataset = build_dataset(config(refs, caption_template="{trigger} style, {folder}, {filename}"))
    assert dataset.captions() == ["lkdv style, neon, sign", "lkdv style, dark alley",
                                  "lkdv style, rain"]


def test_trigger_already_in_a_caption_is_not_repeated(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("a street, LKDV, night", encoding="utf-8")
    assert build_dataset(config(tmp_path)).captions() == ["lkdv, a street, night"]


def test_template_without_trigger_gets_it_first(refs):
    dataset = build_dataset(config(refs, caption_template="{caption}"))
    assert all(caption.startswith("lkdv") for caption in dataset.captions())


def test_no_upscale_keeps_small_images_at_their_size(tmp_path):
    write_image(tmp_path / "small.png", (200, 150))
    sample = build_dataset(config(tmp_path, no_upscale=True, resolution=512)).samples[0]
    assert sample.bucket == (192, 128)
    enlarged = build_dataset(config(tmp_path, resolution=512))
    assert enlarged.samples[0].bucket == (576, 448)
    assert any("enlarged" in note.message for note in enlarged.notes)


def test_progress_is_reported(refs):
    calls = []
    build_dataset(config(refs), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(n, 6) for n in range(1, 7)]


def test_folder_with_no_usable_image_says_why(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not an image")
    (tmp_path / "b.jpg").write_bytes(b"")
    Image.new("RGB", (4, 4)).save(tmp_path / "c.png")
    (tmp_path / "c.txt").write_text("a caption beside its image is not a file of its own")
    (tmp_path / "d.docx").write_bytes(b"PK")
    with pytest.raises(DatasetError) as caught:
        build_dataset(config(tmp_path))
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "4 files, none usable: 2 unsupported type, 1 corrupt, 1 too small" in message
    assert "See the dataset report" in message


def test_report_lists_counts_buckets_skips_and_notes(refs):
    report = format_report(build_dataset(config(refs)))
    assert "3 images, 5 per epoch with repeats, at 128 px" in report
    assert "Trigger: 'lkdv'" in report and "Buckets: " in report
    assert "Skipped (4):" in report
    assert "  broken.png: corrupt PNG file: its header is damaged" in report
    assert "  icon.png: too small: 8x8 px" in report
    assert "  notes.pdf: unsupported type .pdf" in report
    assert "  3_neon/sign.txt: caption is not UTF-8 text" in report
    assert "Repeats: x1: 2 images, x3: 1 image" in report


@pytest.mark.parametrize("field, value, words", [
    ("resolution", 500, "resolution"),
    ("resolution", "1024", "resolution"),
    ("caption_extension", "", "caption_extension"),
    ("caption_template", "{trigger}, {style}", "{style}"),
    ("default_repeats", 0, "default_repeats"),
    ("trigger", None, "trigger"),
    ("no_upscale", "yes", "no_upscale"),
    ("folder", 3, "folder"),
])
def test_config_validate_names_the_field(field, value, words):
    with pytest.raises(ValueError) as caught:
        dataclasses.replace(DatasetConfig(), **{field: value}).validate()
    assert words in str(caught.value)


def test_every_config_field_has_help():
    helps = {f.name: help_of(DatasetConfig, f.name) for f in dataclasses.fields(DatasetConfig)}
    assert set(helps) == {f.name for f in dataclasses.fields(DatasetConfig)}
    assert all(len(text) > 20 for text in helps.values())


def as_tensor(img):
    from numpy import asarray

    return torch.from_numpy(asarray(img, dtype="float32") / 255.0)


def test_images_from_tensors_match_the_same_file(tmp_path):
    img = noise_image((160, 96), seed=5)
    img.save(tmp_path / "a.png")
    from_file = build_dataset(config(tmp_path)).samples[0]
    from_tensor = dataset_from_images([as_tensor(img)], ["x"], config()).samples[0]
    assert from_tensor.content_hash == from_file.content_hash
    assert from_tensor.bucket == from_file.bucket and from_tensor.source is None


def test_images_from_batches_lists_and_broadcast_captions():
    batch = torch.rand(2, 96, 96, 3)
    single = torch.rand(64, 200, 3)
    dataset = dataset_from_images([batch, single], ["rain"], config())
    assert len(dataset) == 3 and dataset.captions() == ["lkdv, rain"] * 3
    assert len(dataset_from_images(batch, [], config())) == 2
    assert dataset_from_images(batch, ["a", "b"], config()).captions() == ["lkdv, a", "lkdv, b"]


def test_caption_count_must_match():
    with pytest.raises(ValueError, match="got 2 captions for 3 images"):
        dataset_from_images(torch.rand(3, 64, 64, 3), ["a", "b"], config())


@pytest.mark.parametrize("images, words", [
    (torch.rand(64, 64), "item 1"),
    ([torch.rand(64, 64, 3), torch.rand(1, 64, 64, 4)], "item 2"),
    (torch.zeros(64, 64, 3, dtype=torch.uint8), "float"),
    ([torch.full((64, 64, 3), float("nan"))], "NaN"),
    ([], "no images"),
    (["a.png"], "item 1"),
])
def test_bad_image_tensors_are_named(images, words):
    with pytest.raises(ValueError, match=words):
        dataset_from_images(images, [], config())


def test_small_frames_are_skipped_and_reported():
    dataset = dataset_from_images([torch.rand(32, 32, 3), torch.rand(64, 64, 3)], [], config())
    assert len(dataset) == 1
    assert "input image 1: too small" in format_report(dataset)
    with pytest.raises(DatasetError, match="too small"):
        dataset_from_images(torch.rand(2, 16, 16, 3), [], config())


def test_preview_grid_is_a_comfy_image(refs):
    dataset = build_dataset(config(refs))
    grid = preview_grid(dataset, columns=2, cell=64)
    assert grid.shape == (1, 128, 128, 3) and grid.dtype == torch.float32
    assert preview_grid(dataset, columns=8, cell=32).shape == (1, 32, 96, 3)


@pytest.mark.parametrize("kwargs", [{"columns": 0}, {"cell": 8}])
def test_preview_grid_rejects_bad_layout(refs, kwargs):
    with pytest.raises(ValueError):
        preview_grid(build_dataset(config(refs)), **kwargs)
