"""Storyboard planning without ComfyUI: settings checks, sizes, negatives, LoRA stacks, sheet labels, paths."""

import os

import pytest
import torch

from lookdev.trainer.render.pngmeta import LoraUse, output_path
from lookdev.trainer.render.shots import Shot, shot_file_path
from lookdev.trainer.render.storyboard import (
    PlannedShot, RenderConfig, ShotListConfig, Storyboard, combine_negative, frames_from_images, image_tensor,
    loras_from_stack, plan_frames, plan_storyboard, shot_size, sheet_labels, ui_image,
)

BOARD = Storyboard((PlannedShot(Shot("A", "a pier", aspect="2.39", negative="text"), "a pier", 3),
                    PlannedShot(Shot("B", "gulls"), "gulls", 4)), "shots", "per-shot seeds")


@pytest.mark.parametrize("common, own, joined", [
    ("", None, ""),
    ("blurry", None, "blurry"),
    ("", "text", "text"),
    ("blurry, ", " text", "blurry, text"),
    (" ,blurry,\n", "", "blurry"),
])
def test_combine_negative(common, own, joined):
    assert combine_negative(common, own) == joined


@pytest.mark.parametrize("aspect, settings, size", [
    (None, {"aspect": "custom", "width": 96, "height": 64}, (96, 64)),
    (None, {"aspect": "1.78", "base_resolution": 1024}, (1344, 768)),
    ("2.39", {"aspect": "custom"}, (1536, 640)),
    ("9:16", {"aspect": "1:1", "base_resolution": 512}, (384, 704)),
])
def test_shot_size(aspect, settings, size):
    assert shot_size(aspect, RenderConfig(**settings)) == size


def test_plan_frames_joins_negatives_and_sizes():
    jobs = plan_frames(BOARD, RenderConfig(negative="blurry", aspect="custom", width=64, height=64))
    assert [(j.shot_id, j.prompt, j.negative, j.seed, j.width, j.height) for j in jobs] == [
        ("A", "a pier", "blurry, text", 3, 1536, 640), ("B", "gulls", "blurry", 4, 64, 64)]


@pytest.mark.parametrize("settings, message", [
    ({"steps": 0}, "steps must be a whole number >= 1"),
    ({"cfg": float("nan")}, "cfg must be a number"),
    ({"aspect": "2.35"}, "aspect '2.35' is not one of"),
    ({"aspect": "custom", "height": 60}, "height 60 must be a multiple of 8"),
    ({"base_resolution": 32}, "base_resolution must be at least 64"),
])
def test_render_config_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        RenderConfig(**settings).validate()


def test_custom_size_is_only_checked_when_used():
    RenderConfig(aspect="1.78", width=1).validate()


@pytest.mark.parametrize("settings, message", [
    ({"shots": "A | x", "seed_policy": "random"}, "seed_policy 'random' is not one of"),
    ({"shots": "A | x", "base_seed": -1}, "base_seed must be a whole number"),
    ({"shots": "A | x", "base_seed": 2**64}, "base_seed must be a whole number"),
    ({"shots": "A | x", "shots_file": "a.csv"}, "not both"),
    ({"shots": " ", "shots_file": ""}, "there are no shots"),
])
def test_shot_list_config_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        ShotListConfig(**settings).validate()


def test_plan_storyboard_lists_every_bad_line(tmp_path):
    with pytest.raises(ValueError, match=r"(?s)shots has 2 problems.*line 1: .*line 3: "):
        plan_storyboard(ShotListConfig(shots="A | x | y\nB | fine\nA | z"), tmp_path)


@pytest.mark.parametrize("name, message", [
    ("", "shots_file is empty"),
    ("../x.csv", "leads outside ComfyUI's input folder"),
    ("sub/../../x.csv", "leads outside ComfyUI's input folder"),
    ("sub", "is a folder"),
    ("pipe.csv", "is not a regular file"),
])
def test_shot_file_path_errors(tmp_path, name, message):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    os.mkfifo(tmp_path / "in" / "pipe.csv")
    with pytest.raises(ValueError, match=message):
        shot_file_path(tmp_path / "in", name)


def test_shot_file_path_accepts_inside_and_absolute(tmp_path):
    (tmp_path / "in").mkdir()
    assert shot_file_path(tmp_path / "in", " seq/a.csv ") == (tmp_path / "in" / "seq" / "a.csv").resolve()
    assert shot_file_path(tmp_path / "in", str(tmp_path / "x.csv")) == tmp_path / "x.csv"


def test_shot_file_path_refuses_a_symlink_out(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "in" / "link")
    with pytest.raises(ValueError, match="leads outside"):
        shot_file_path(tmp_path / "in", "link/a.csv")


@pytest.mark.parametrize("stack, uses", [
    (None, ()),
    ([], ()),
    ([("a.safetensors", 0.8, 0.5), ("None", 1, 1), ["b.safetensors", 1, 0], (None, 1, 1), ("", 1, 1)],
     (LoraUse("a.safetensors", 0.8, 0.5), LoraUse("b.safetensors", 1.0, 0.0))),
])
def test_loras_from_stack(stack, uses):
    assert loras_from_stack(stack) == uses


@pytest.mark.parametrize("stack, message", [
    ("a.safetensors", "lora_stack: a LORA_STACK is a list"),
    ([("a.safetensors", 1.0)], "lora_stack entry 1: a LORA_STACK entry is"),
    ([("a.safetensors", 1.0, 1.0), ("b.safetensors", "strong", 1.0)], "lora_stack entry 2: model strength"),
    ([("a.safetensors", float("nan"), 1.0)], "lora_stack entry 1: model strength must be a finite number"),
    ([("a.safetensors", 1.0, float("inf"))], "lora_stack entry 1: CLIP strength must be a finite number"),
])
def test_loras_from_stack_errors(stack, message):
    with pytest.raises(ValueError, match=message):
        loras_from_stack(stack)


@pytest.mark.parametrize("count, labels, board, expected", [
    (2, ["B", "A"], BOARD, (["B", "A"], ["gulls", "a pier"])),
    (2, None, BOARD, (["A", "B"], ["a pier", "gulls"])),
    (3, None, BOARD, (["1", "2", "3"], ["", "", ""])),
    (2, ["x", "y"], None, (["x", "y"], ["", ""])),
])
def test_sheet_labels(count, labels, board, expected):
    assert sheet_labels(count, labels, board) == expected


def test_sheet_labels_must_match_frames():
    with pytest.raises(ValueError, match="labels has 1 entries for 2 frames"):
        sheet_labels(2, ["A"], BOARD)


def test_frames_from_lists_and_batches_and_back():
    images = [torch.rand(1, 8, 16, 3), torch.rand(2, 8, 8, 3), torch.rand(4, 4, 3)]
    frames = frames_from_images(images)
    assert [frame.size for frame in frames] == [(16, 8), (8, 8), (8, 8), (4, 4)]
    assert torch.allclose(image_tensor(frames[0]), images[0], atol=1 / 255)


def test_ui_image_and_sheet_path(tmp_path):
    path = output_path(tmp_path, "sb/seq01", "_contact_sheet.png")
    assert path == tmp_path.resolve() / "sb" / "seq01" / "_contact_sheet.png"
    assert ui_image(path, tmp_path) == {"filename": "_contact_sheet.png", "subfolder": "sb/seq01", "type": "output"}
    assert ui_image(tmp_path / "A.png", tmp_path) == {"filename": "A.png", "subfolder": "", "type": "output"}
