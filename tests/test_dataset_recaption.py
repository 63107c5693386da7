"""Captioning a built dataset anew (keep, template, model), sidecar writing, and the folder
helpers the dataset nodes use (path resolution, change fingerprint)."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from dataset_files import write_image
from lookdev.trainer.captioning import CaptionerModelError, find_captioner_folder
from lookdev.trainer.dataset.captions import plain_caption, style_caption, with_keep_marker
from lookdev.trainer.dataset.dataset import DatasetConfig, build_dataset, dataset_from_images
from lookdev.trainer.dataset.recaption import CaptionConfig, recaption, write_sidecars
from lookdev.trainer.dataset.scan import (CACHE_DIRNAME, DatasetError, folder_fingerprint,
                                          resolve_folder, scan_folder)


def load(folder, **overrides):
    return build_dataset(DatasetConfig(**{"folder": str(folder), "resolution": 128,
                                          "trigger": "lkdv", **overrides}))


@pytest.fixture
def refs(tmp_path):
    write_image(tmp_path / "IMG_0001-dark_alley.png", (96, 80), seed=1)
    write_image(tmp_path / "rain.jpg", (80, 96), seed=2)
    (tmp_path / "rain.txt").write_text("lkdv, rain on glass, film noir", encoding="utf-8")
    write_image(tmp_path / "2_neon" / "sign.png", (96, 96), seed=3)
    return tmp_path


class Describer:
    """A stand-in captioning model: numbered captions, and a record of what it was shown."""

    def __init__(self, text="a figure in the rain, film noir"):
        self.text, self.calls = text, []

    def __call__(self, images):
        self.calls.append([image.size for image in images])
        return [f"{self.text} {n}" for n in range(len(images))]


# --- caption text ----------------------------------------------------------------------------


@pytest.mark.parametrize("content, trigger, words, marker, expected", [
    ("a man, street", "lkdv", "", False, "lkdv, a man, street"),
    ("a man, LKDV, street", "lkdv", "", False, "lkdv, a man, street"),
    ("lkdv ||| a man", "lkdv", "", False, "lkdv, a man"),
    ("a film noir scene, grainy", "lkdv", "film noir, grainy", False, "lkdv, a scene"),
    ("a man", "lkdv", "", True, "lkdv ||| a man"),
    ("a man", "lkdv, noir style", "", True, "lkdv, noir style ||| a man"),
    ("", "lkdv", "", True, "lkdv"),
    ("a man", "", "", True, "a man"),
    ("noir style portrait", "noir style", "noir", False, "noir style, style portrait"),
])
def test_style_caption(content, trigger, words, marker, expected):
    assert style_caption(content, trigger, words, marker) == expected


@pytest.mark.parametrize("caption, trigger, expected", [
    ("lkdv, a man", "lkdv", "lkdv ||| a man"),
    ("lkdv style, a man, night", "lkdv", "lkdv style ||| a man, night"),
    ("a man, lkdv, night", "lkdv", "a man, lkdv ||| night"),
    ("lkdv, noir, a man", "noir, lkdv", "lkdv, noir ||| a man"),
    ("a man, night", "lkdv", "a man, night"),
    ("a man, lkdv", "lkdv", "a man, lkdv"),
    ("lkdvs, a man", "lkdv", "lkdvs, a man"),
])
def test_with_keep_marker(caption, trigger, expected):
    assert with_keep_marker(caption, trigger) == expected


def test_loader_keeps_a_written_keep_marker_without_repeating_the_trigger(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("lkdv ||| rain, night", encoding="utf-8")
    [caption] = load(tmp_path).captions()
    assert caption == "lkdv, ||| rain, night"
    assert plain_caption(caption) == "lkdv, rain, night"


# --- recaption --------------------------------------------------------------------------------


def test_keep_mode_applies_style_rules_and_returns_a_new_dataset(refs):
    dataset = load(refs)
    before = dataset.captions()
    result = recaption(dataset, CaptionConfig(style_words="film noir", keep_marker=True))
    assert result.dataset.captions() == ["lkdv", "lkdv", "lkdv ||| rain on glass"]
    assert dataset.captions() == before and result.dataset is not dataset
    assert all(new.image is old.image for new, old in zip(result.dataset.samples, dataset.samples))
    assert "Caption files: not written (write is off)" in result.report


def test_template_mode_fills_file_and_folder_words(refs):
    config = CaptionConfig(mode="template", template="{trigger}, {folder}, {filename}, {caption}",
                           style_words="film noir")
    assert recaption(load(refs), config).dataset.captions() == [
        "lkdv, neon, sign", "lkdv, dark alley", "lkdv, rain, rain on glass"]


@pytest.mark.parametrize("template, marker, expected", [
    ("{trigger} style, {filename}", False, "lkdv style, rain"),
    ("{trigger} style, {filename}", True, "lkdv style ||| rain"),
    ("{filename}", True, "lkdv ||| rain"),
    ("{filename}, {trigger}", False, "rain, lkdv"),
])
def test_template_places_the_trigger_like_the_loader(refs, template, marker, expected):
    config = CaptionConfig(mode="template", template=template, keep_marker=marker)
    assert recaption(load(refs), config).dataset.captions()[2] == expected


def test_model_mode_describes_every_image_and_strips_style_words(refs):
    describe = Describer()
    result = recaption(load(refs), CaptionConfig(mode="model", style_words="film noir"),
                       describe, model_name="tiny")
    assert describe.calls == [[(128, 128), (128, 128), (128, 128)]]
    assert result.dataset.captions() == [f"lkdv, a figure in the rain, {n}" for n in range(3)]
    assert "3 described by tiny, 0 kept" in result.report


def test_model_for_uncaptioned_leaves_captioned_images_alone(refs):
    describe = Describer("a street")
    result = recaption(load(refs), CaptionConfig(mode="model for uncaptioned"), describe)
    assert len(describe.calls[0]) == 2
    assert result.dataset.captions() == ["lkdv, a street 0", "lkdv, a street 1",
                                         "lkdv, rain on glass, film noir"]
    again = recaption(result.dataset, CaptionConfig(mode="model for uncaptioned"), describe)
    assert len(describe.calls) == 1  # nothing left to describe: the model is not called
    assert again.dataset.captions() == result.dataset.captions()


def test_new_trigger_replaces_the_old_one(refs):
    result = recaption(load(refs), CaptionConfig(trigger="noirlook"))
    assert result.dataset.trigger == "noirlook"
    assert result.dataset.captions()[2] == "noirlook, rain on glass, film noir"


@pytest.mark.parametrize("describe, words", [
    (None, "needs a captioning model"),
    (lambda images: ["one"], "gave 1 captions for 3 images"),
])
def test_model_mode_errors(refs, describe, words):
    with pytest.raises(ValueError, match=words):
        recaption(load(refs), CaptionConfig(mode="model"), describe)


@pytest.mark.parametrize("field, value", [
    ("mode", "auto"), ("write", "always"), ("template", "{subject}"), ("keep_marker", "yes"),
    ("style_words", None),
])
def test_caption_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field if field != "template" else "subject"):
        CaptionConfig(**{field: value}).validate()


# --- sidecar files ----------------------------------------------------------------------------


def test_write_missing_writes_only_where_no_caption_exists(refs):
    (refs / "IMG_0001-dark_alley.txt").write_text("  \n")
    result = recaption(load(refs), CaptionConfig(mode="model", write="write missing"),
                       Describer("a street"))
    assert (refs / "IMG_0001-dark_alley.txt").read_text() == "lkdv, a street 1"
    assert (refs / "2_neon" / "sign.txt").read_text() == "lkdv, a street 0"
    assert (refs / "rain.txt").read_text() == "lkdv, rain on glass, film noir"
    assert "2 written, 1 already there (left alone)" in result.report


def test_overwrite_keeps_the_old_caption_as_bak_and_skips_unchanged(refs):
    config = CaptionConfig(mode="template", template="{trigger}, {filename}", write="overwrite")
    result = recaption(load(refs), config)
    assert (refs / "rain.txt").read_text() == "lkdv, rain"
    assert (refs / "rain.txt.bak").read_text() == "lkdv, rain on glass, film noir"
    assert "2 written, 1 overwritten (the old one kept as .bak)" in result.report
    again = recaption(load(refs), config)
    assert "3 unchanged" in again.report
    assert (refs / "rain.txt.bak").read_text() == "lkdv, rain on glass, film noir"
    assert "rain.txt.bak" not in str(load(refs).skipped)  # backups are not scanned


def test_sidecars_are_never_written_through_links_or_for_shared_names(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the dataset's")
    refs = tmp_path / "refs"
    write_image(refs / "a.png", seed=1)
    write_image(refs / "b.png", seed=2)
    write_image(refs / "b.jpg", seed=3)
    (refs / "a.txt").symlink_to(outside)
    result = recaption(load(refs), CaptionConfig(write="overwrite"))
    assert outside.read_text() == "not the dataset's" and (refs / "a.txt").is_symlink()
    assert not (refs / "b.txt").exists()
    assert "  a.txt: the caption file is a symlink; left alone" in result.report
    assert "  b.txt: shared by b.jpg and b.png; rename one of them" in result.report


def test_no_sidecars_for_images_from_memory():
    dataset = dataset_from_images(torch.rand(2, 64, 64, 3), ["rain"],
                                  DatasetConfig(resolution=128, trigger="lkdv"))
    writes = write_sidecars(dataset, "overwrite")
    assert writes.no_files and not writes.written
    report = recaption(dataset, CaptionConfig(write="write missing")).report
    assert "none written; this dataset was built from images, not files" in report


def test_sidecars_outside_the_root_are_refused(refs):
    dataset = load(refs / "2_neon")
    writes = write_sidecars(dataclasses.replace(dataset, root=refs / "elsewhere"), "overwrite")
    assert [issue.message for issue in writes.refused] == [
        "outside the dataset folder; LookDev writes caption files only inside it"]


# --- folders ----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed, expected", [
    ("refs", "input/refs"),
    ("  'refs/2_neon' ", "input/refs/2_neon"),
    ('"refs"', "input/refs"),
    ("refs/../other", "input/other"),
    (".", "input"),
])
def test_relative_folders_are_inside_the_input_folder(tmp_path, typed, expected):
    assert resolve_folder(typed, tmp_path / "input") == tmp_path / expected


@pytest.mark.parametrize("typed", ["..", "../refs", "refs/../../refs", "./../input2"])
def test_relative_folders_may_not_leave_the_input_folder(tmp_path, typed):
    with pytest.raises(DatasetError, match=r"folder .* leads out of ComfyUI's input folder"):
        resolve_folder(typed, tmp_path / "input")


def test_absolute_and_home_folders_are_taken_as_given(tmp_path):
    assert resolve_folder(str(tmp_path / "mine"), tmp_path / "input") == tmp_path / "mine"
    assert resolve_folder("~/refs", tmp_path) == Path.home() / "refs"


@pytest.mark.parametrize("typed", ["", "   ", "''", None])
def test_empty_folder_is_an_error(tmp_path, typed):
    with pytest.raises(DatasetError, match="folder is empty"):
        resolve_folder(typed, tmp_path)


def test_fingerprint_follows_file_changes_only(refs):
    first = folder_fingerprint(refs)
    assert folder_fingerprint(refs) == first
    (refs / ".DS_Store").write_bytes(b"x")
    (refs / CACHE_DIRNAME).mkdir()
    (refs / CACHE_DIRNAME / "latents.safetensors").write_bytes(b"x")
    (refs / "rain.txt.bak").write_text("old")
    assert folder_fingerprint(refs) == first
    caption = refs / "rain.txt"
    caption.write_text("rain on glass, film noir!")
    edited = folder_fingerprint(refs)
    assert edited != first
    os.utime(caption, ns=(1, 1))
    touched = folder_fingerprint(refs)
    assert touched == edited  # content, not dates: a touch alone changes nothing
    shallow = folder_fingerprint(refs, recursive=False)
    (refs / "2_neon" / "sign.png").unlink()
    assert folder_fingerprint(refs, recursive=False) == shallow
    assert folder_fingerprint(refs) != touched


def test_fingerprint_of_a_missing_folder_changes_when_it_appears(tmp_path):
    missing = folder_fingerprint(tmp_path / "later")
    write_image(tmp_path / "later" / "a.png")
    assert folder_fingerprint(tmp_path / "later") != missing


def test_scan_skips_caption_backups_silently(refs):
    (refs / "rain.txt.bak").write_text("old")
    result = scan_folder(refs)
    assert result.skipped == () and result.notes == ()


# --- captioner folders ------------------------------------------------------------------------


def test_find_captioner_folder(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    (second / "blip").mkdir(parents=True)
    assert find_captioner_folder("blip", [first, second]) == second / "blip"
    assert find_captioner_folder("florence", [first, second]) == first / "florence"


@pytest.mark.parametrize("name", ["", "../blip", "a/b", "..", "a\\b", None])
def test_captioner_names_must_be_plain_folder_names(tmp_path, name):
    with pytest.raises(CaptionerModelError, match="not the name of a model folder"):
        find_captioner_folder(name, [tmp_path])
