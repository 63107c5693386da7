"""Storyboard nodes through ComfyUI's executor: shot lists, seeds, saved frames, determinism
(also against core KSampler + VAE Decode), progress, Cancel and contact sheets."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lookdev.trainer.render.batch import shot_workflow
from lookdev.trainer.render.pngmeta import FrameMeta, LoraUse, read_lookdev_metadata, read_png_text
from lookdev.trainer.render.sheet import BACKGROUND, sheet_layout
from lookdev.trainer.render.shots import parse_shot_text

SHOTS = "# seq 01\nA | a lighthouse | 5 | 1:1\nB | a market | | 2.0 | people\nC | a pier | 9\n"
STACK = [("style.safetensors", 0.8, 0.5), ("None", 1.0, 1.0)]
WORKFLOW = {"nodes": [{"id": 1, "type": "LookDevShotList"}], "links": []}


def shot_list(shots="", **inputs):
    return {"class_type": "LookDevShotList", "inputs": {
        "shots": shots, "style_prefix": "", "style_suffix": "", "trigger_words": "",
        "seed_policy": "per-shot seeds", "base_seed": 0, **inputs}}


def render(folder, **inputs):
    return {"class_type": "LookDevStoryboardRender", "inputs": {
        "model": ["m", 0], "clip": ["m", 1], "vae": ["m", 2], "shots": ["s", 0], "negative": "",
        "sampler": "euler", "scheduler": "normal", "steps": 2, "cfg": 4.0, "aspect": "1:1",
        "base_resolution": 64, "width": 64, "height": 64, "folder": folder, **inputs}}


def capture(ref, label):
    return {"class_type": "LookDevTest_Capture", "inputs": {"value": ref, "label": label}}


def capture_list(ref, label):
    return {"class_type": "LookDevTest_CaptureList", "inputs": {"value": ref, "label": label}}


def storyboard_prompt(folder, shots=SHOTS, label="frames", **render_inputs):
    return {
        "m": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}},
        "s": shot_list(shots, style_prefix="ink drawing", trigger_words="lkdv"),
        "r": render(folder, negative="blurry", **render_inputs),
        "k1": capture_list(["r", 0], label),
        "k2": capture_list(["r", 1], f"{label}_labels"),
    }


def parse(comfy, expect_error=False, **inputs):
    result = comfy.run({"s": shot_list(**inputs), "k1": capture(["s", 0], "shots"), "k2": capture(["s", 1], "report")},
                       expect_error=expect_error)
    return result if expect_error else (comfy.captured["shots"], comfy.captured["report"])


def node_module(comfy, node_id):
    return sys.modules[comfy.node_class(node_id).__module__]


@pytest.fixture(scope="module", autouse=True)
def _test_nodes(comfy):
    """A LORA_STACK source (tuples and a "None" row, as Comfyroll/Efficiency stacks output) and a
    capture node that receives a list output whole instead of item by item."""
    class Stack:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        RETURN_TYPES = ("LORA_STACK",)
        FUNCTION = "stack"

        def stack(self):
            return (list(STACK),)

    added = {"LookDevTest_LoraStack": Stack}
    comfy.nodes.NODE_CLASS_MAPPINGS.update(added)
    yield
    for node_id in added:
        del comfy.nodes.NODE_CLASS_MAPPINGS[node_id]


# --- shot list ----------------------------------------------------------------------------------

def test_shot_list_builds_prompts_seeds_and_report(comfy):
    storyboard, report = parse(comfy, shots=SHOTS, style_prefix="ink drawing, lkdv", style_suffix="grain",
                               trigger_words="lkdv", base_seed=100)
    assert [(p.shot.shot_id, p.prompt, p.seed, p.shot.aspect, p.shot.negative) for p in storyboard.shots] == [
        ("A", "lkdv, ink drawing, a lighthouse, grain", 5, "1:1", None),
        ("B", "lkdv, ink drawing, a market, grain", 101, "2.0", "people"),
        ("C", "lkdv, ink drawing, a pier, grain", 9, None, None),
    ]
    assert [p.shot.line for p in storyboard.shots] == [2, 3, 4]
    assert report.splitlines() == [
        "3 shots from shots, seeds: per-shot seeds",
        "Trigger: 'lkdv' (set on this node)",
        "A  seed 5  1:1  lkdv, ink drawing, a lighthouse, grain",
        "B  seed 101  2.0  lkdv, ink drawing, a market, grain",
        "C  seed 9  default aspect  lkdv, ink drawing, a pier, grain",
    ]


@pytest.mark.parametrize("policy, seeds", [
    ("same seed for all shots", [100, 100, 100]),
    ("per-shot seeds", [5, 101, 9]),
    ("base + index", [100, 101, 102]),
])
def test_seed_policies(comfy, policy, seeds):
    storyboard, report = parse(comfy, shots=SHOTS, seed_policy=policy, base_seed=100)
    assert [p.seed for p in storyboard.shots] == seeds
    assert f"seeds: {policy}" in report


@pytest.mark.parametrize("inputs, messages", [
    ({"shots": "A | fine\nB | x | soon\n\nA | again\nC | | 3\n"},
     ["shots has 3 problems", "line 2: seed 'soon' is not a whole number",
      "line 4: shot id 'A' is already used on line 1", "line 5: the description is empty"]),
    ({"shots": "A | x | 1 | 2.35"}, ["line 1: unknown aspect '2.35'"]),
    ({"shots": "sc 01 | x"}, ["line 1: shot id 'sc 01' can't be a file name", "'sc_01'"]),
    ({"shots": "A | x", "shots_file": "seq.csv"}, ["not both"]),
    ({"shots": "  \n"}, ["there are no shots"]),
    ({"shots_file": "../outside.csv"}, ["leads outside ComfyUI's input folder"]),
    ({"shots_file": "missing.csv"}, ["does not exist"]),
])
def test_bad_shot_lists_name_the_line_or_input(comfy, inputs, messages):
    result = parse(comfy, expect_error=True, **inputs)
    assert result.error["node_id"] == "s"
    for message in messages:
        assert message in result.error["exception_message"]


def test_csv_file_in_the_input_folder_and_by_absolute_path(comfy, tmp_path):
    text = ("Shot ID,Description,Seed,Aspect,Negative,Lens\n"
            "SH010,\"wide, foggy harbor\",7,2.39,,24mm\nSH020,gulls,,,text\n")
    (comfy.input_dir / "boards").mkdir(exist_ok=True)
    (comfy.input_dir / "boards" / "seq01.csv").write_text(text)
    (tmp_path / "seq01.csv").write_text(text)
    for name in ("boards/seq01.csv", str(tmp_path / "seq01.csv")):
        storyboard, report = parse(comfy, shots_file=name, base_seed=3)
        assert [(p.shot.shot_id, p.prompt, p.seed, p.shot.aspect, p.shot.negative) for p in storyboard.shots] == [
            ("SH010", "wide, foggy harbor", 7, "2.39", None), ("SH020", "gulls", 4, None, "text")]
        assert storyboard.name == "seq01"
        assert "note: line 1: column 'Lens' is not used" in report


def test_bad_csv_row_names_its_line(comfy):
    (comfy.input_dir / "bad.csv").write_text("shot_id,description,seed\nA,fine,1\nB,broken,-4\n")
    result = parse(comfy, expect_error=True, shots_file="bad.csv")
    assert "bad.csv has 1 problem" in result.error["exception_message"]
    assert "line 3: seed '-4'" in result.error["exception_message"]


def test_editing_the_csv_reruns_the_cached_node(comfy):
    path = comfy.input_dir / "edited.csv"
    path.write_text("shot_id,description\nA,first version\n")
    assert parse(comfy, shots_file="edited.csv")[0].shots[0].shot.description == "first version"
    path.write_text("shot_id,description\nA,second version\n")
    assert parse(comfy, shots_file="edited.csv")[0].shots[0].shot.description == "second version"


# --- rendering ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def board(comfy):
    """One storyboard of three shots (two sizes) with a LoRA stack and a contact sheet, rendered once."""
    prompt = storyboard_prompt("sb/main", lora_stack=["l", 0])
    prompt["l"] = {"class_type": "LookDevTest_LoraStack", "inputs": {}}
    prompt["c"] = {"class_type": "LookDevContactSheet", "inputs": {
        "images": ["r", 0], "labels": ["r", 1], "shots": ["s", 0], "columns": 2, "title": "Harbor board",
        "folder": "sb/main", "pdf": True, "cell_width": 128, "description_lines": 2}}
    prompt["k3"] = capture(["c", 0], "sheet")
    result = comfy.run(prompt, fresh=True, extra_pnginfo={"workflow": WORKFLOW})
    return prompt, result, comfy.output_dir / "sb" / "main"


def test_frames_are_a_list_of_differently_sized_images_with_labels(comfy, board):
    frames = comfy.captured["frames"]
    assert [tuple(frame.shape) for frame in frames] == [(1, 64, 64, 3), (1, 64, 128, 3), (1, 64, 64, 3)]
    assert comfy.captured["frames_labels"] == ["A", "B", "C"]


def test_frames_are_saved_by_shot_id_and_shown_on_the_node(comfy, board):
    _, result, folder = board
    assert result.ui["r"]["images"] == [{"filename": f"{shot}.png", "subfolder": "sb/main", "type": "output"}
                                        for shot in "ABC"]
    for frame, shot in zip(comfy.captured["frames"], "ABC"):
        with Image.open(folder / f"{shot}.png") as saved:
            assert np.array_equal(np.asarray(saved), np.clip(255.0 * frame[0].numpy(), 0, 255).astype(np.uint8))


def test_frame_png_metadata(board):
    prompt, _, folder = board
    loras = (LoraUse("style.safetensors", 0.8, 0.5),)
    common = dict(sampler="euler", scheduler="normal", steps=2, cfg=4.0, loras=loras)
    assert [read_lookdev_metadata(folder / f"{shot}.png") for shot in "ABC"] == [
        FrameMeta("A", "lkdv, ink drawing, a lighthouse", "blurry", 5, size=(64, 64), **common),
        FrameMeta("B", "lkdv, ink drawing, a market", "blurry, people", 1, size=(128, 64), **common),
        FrameMeta("C", "lkdv, ink drawing, a pier", "blurry", 9, size=(64, 64), **common),
    ]
    text = read_png_text(folder / "A.png")
    # Like Save Image: the executor's prompt (it notes IS_CHANGED answers in it), so dragging a frame in reloads its graph.
    saved = {key: {k: v for k, v in node.items() if k != "is_changed"} for key, node in json.loads(text["prompt"]).items()}
    assert saved == prompt
    assert json.loads(text["workflow"]) == WORKFLOW


def test_disable_metadata_keeps_the_prompt_out_but_the_lookdev_record_in(comfy, monkeypatch):
    from comfy.cli_args import args

    monkeypatch.setattr(args, "disable_metadata", True)
    comfy.run(storyboard_prompt("sb/private", shots="A | a pier", label="private", steps=1), fresh=True,
              extra_pnginfo={"workflow": WORKFLOW})
    assert set(read_png_text(comfy.output_dir / "sb" / "private" / "A.png")) == {"lookdev"}


def test_progress_counts_shots_times_steps(board):
    _, result, _ = board
    ours = [(value, total) for value, total, _ in result.progress if total == 6]
    assert ours == [(value, 6) for value in range(1, 7)]
    events = result.events_named("lookdev.render.progress")
    assert [(e["shot"], e["index"], e["step"]) for e in events] == [
        (shot, index, step) for index, shot in enumerate("ABC", start=1) for step in (1, 2)]
    assert {(e["node"], e["total"], e["steps"]) for e in events} == {("r", 3, 2)}
    # The node says when it is finished, after the last shot's last step.
    [done] = result.events_named("lookdev.status")
    assert done["node"] == "r" and done["phase"] == "done"
    assert done["text"] == "done: 3 frames in output/sb/main" and (done["done"], done["total"]) == (3, 3)
    ours = [event for event, _ in result.events if event.startswith("lookdev.")]
    assert ours[-2:] == ["lookdev.render.progress", "lookdev.status"]


def test_same_inputs_same_frames(comfy, board):
    prompt = storyboard_prompt("sb/again", label="again")
    comfy.run(prompt, fresh=True)
    assert all(torch.equal(a, b) for a, b in zip(comfy.captured["again"], comfy.captured["frames"], strict=True))


def test_each_shot_alone_equals_the_whole_storyboard(comfy, board):
    """What the batch renderer does (one shot per queued workflow) gives the frames of one run."""
    prompt = storyboard_prompt("sb/single", label="single")
    for index, shot in enumerate(parse_shot_text(SHOTS).shots):
        comfy.run(shot_workflow(prompt, "s", shot, index), fresh=True)
        assert comfy.captured["single_labels"] == [shot.shot_id]
        assert torch.equal(comfy.captured["single"][0], comfy.captured["frames"][index])


@pytest.mark.parametrize("index, text, negative, seed, width, height", [
    (0, "lkdv, ink drawing, a lighthouse", "blurry", 5, 64, 64),
    (1, "lkdv, ink drawing, a market", "blurry, people", 1, 128, 64),
])
def test_frames_equal_core_ksampler_and_vae_decode(comfy, board, index, text, negative, seed, width, height):
    prompt = {
        "m": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}},
        "p": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["m", 1], "text": text}},
        "n": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["m", 1], "text": negative}},
        "e": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "ks": {"class_type": "KSampler", "inputs": {
            "model": ["m", 0], "positive": ["p", 0], "negative": ["n", 0], "latent_image": ["e", 0], "seed": seed,
            "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "d": {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["m", 2]}},
        "k": capture(["d", 0], "core"),
        "save": {"class_type": "SaveImage", "inputs": {"images": ["d", 0], "filename_prefix": f"core/shot{index}"}},
    }
    result = comfy.run(prompt, fresh=True)
    assert torch.equal(comfy.captured["core"], comfy.captured["frames"][index])
    # The saved files too: the same 8-bit pixels as core Save Image writes.
    saved = result.ui["save"]["images"][0]
    core_png = comfy.output_dir / saved["subfolder"] / saved["filename"]
    _, _, folder = board
    ours = folder / f"{'AB'[index]}.png"
    assert np.array_equal(np.asarray(Image.open(ours).convert("RGB")), np.asarray(Image.open(core_png).convert("RGB")))


def test_each_distinct_prompt_is_encoded_once(comfy, monkeypatch):
    bridge = node_module(comfy, "LookDevStoryboardRender").bridge
    encoded, encode = [], bridge.encode_text
    monkeypatch.setattr(bridge, "encode_text", lambda clip, text: encoded.append(text) or encode(clip, text))
    prompt = storyboard_prompt("sb/encode", shots="A | a pier\nB | a pier\nC | a boat | | | fog", label="enc", steps=1)
    result = comfy.run(prompt, fresh=True)
    assert sorted(encoded) == sorted(["lkdv, ink drawing, a pier", "lkdv, ink drawing, a boat", "blurry",
                                      "blurry, fog"])
    # Progress while encoding, before the first sampling step: an event and the node's bar per prompt.
    events = [(event, data) for event, data in result.events if event.startswith("lookdev.render.")]
    assert [(e, d["done"], d["total"]) for e, d in events[:4]] == [
        ("lookdev.render.encoding", n, 4) for n in range(1, 5)]
    assert {d["node"] for _, d in events[:4]} == {"r"} and events[4][0] == "lookdev.render.progress"
    assert [(value, total) for value, total, _ in result.progress if total == 4] == [(n, 4) for n in range(1, 5)]


def test_cancel_while_encoding_prompts_stops_before_sampling(comfy):
    shots = "\n".join(f"S{n:03d} | shot number {n}" for n in range(1, 31))

    def cancel_at_twelfth_prompt(event, data):
        if event == "lookdev.render.encoding" and data["done"] == 12:
            comfy.nodes.interrupt_processing(True)

    comfy.listeners.append(cancel_at_twelfth_prompt)
    try:
        result = comfy.run(storyboard_prompt("sb/cancel_encoding", shots=shots, label="cancel_enc"), fresh=True,
                           expect_error=True)
    finally:
        comfy.listeners.remove(cancel_at_twelfth_prompt)
    assert result.interrupted
    assert [d["done"] for d in result.events_named("lookdev.render.encoding")] == list(range(1, 13))
    assert result.events_named("lookdev.render.progress") == []
    assert not (comfy.output_dir / "sb" / "cancel_encoding").exists()


def test_cancel_stops_between_steps_and_keeps_finished_frames(comfy):
    def cancel_in_second_shot(event, data):
        if event == "lookdev.render.progress" and (data["index"], data["step"]) == (2, 1):
            comfy.nodes.interrupt_processing(True)

    comfy.listeners.append(cancel_in_second_shot)
    try:
        result = comfy.run(storyboard_prompt("sb/cancel", label="cancel"), fresh=True, expect_error=True)
    finally:
        comfy.listeners.remove(cancel_in_second_shot)
    assert result.interrupted
    steps = [(e["index"], e["step"]) for e in result.events_named("lookdev.render.progress")]
    assert steps == [(1, 1), (1, 2), (2, 1)]
    assert sorted(p.name for p in (comfy.output_dir / "sb" / "cancel").glob("*.png")) == ["A.png"]


@pytest.mark.parametrize("folder, inputs, message", [
    ("../elsewhere", {}, "folder prefix '../elsewhere' must stay inside the output folder"),
    ("sb/bad", {"aspect": "custom", "width": 100}, "width 100 must be a multiple of 8"),
])
def test_bad_render_settings_fail_before_sampling(comfy, folder, inputs, message):
    result = comfy.run(storyboard_prompt(folder, **inputs), fresh=True, expect_error=True)
    assert message in result.error["exception_message"]
    assert not result.events_named("lookdev.render.progress")


# --- contact sheet --------------------------------------------------------------------------------

def _has_pixels_unlike_background(sheet, box):
    left, top, right, bottom = box
    region = sheet[top:bottom, left:right].reshape(-1, 3)
    return bool((np.abs(region.astype(int) - BACKGROUND).sum(axis=1) > 60).any())


def test_contact_sheet_layout_and_files(comfy, board):
    _, result, folder = board
    sheet = np.rint(comfy.captured["sheet"][0].numpy() * 255).astype(np.uint8)
    layout = sheet_layout([(64, 64), (128, 64), (64, 64)], columns=2, cell_width=128, description_lines=2)
    assert sheet.shape == (layout.size[1], layout.size[0], 3)
    assert len(layout.cells) == 3
    for cell in layout.cells:
        assert _has_pixels_unlike_background(sheet, cell.frame)
        assert _has_pixels_unlike_background(sheet, cell.label)
        assert _has_pixels_unlike_background(sheet, cell.description)
    assert _has_pixels_unlike_background(sheet, layout.title)
    assert result.ui["c"]["images"] == [{"filename": "_contact_sheet.png", "subfolder": "sb/main", "type": "output"}]
    with Image.open(folder / "_contact_sheet.png") as saved:
        assert np.array_equal(np.asarray(saved.convert("RGB")), sheet)
    assert (folder / "_contact_sheet.pdf").read_bytes().startswith(b"%PDF")


def sheet_of_batch(folder, batch, labels=None):
    prompt = {
        "i": {"class_type": "EmptyImage", "inputs": {
            "width": 64, "height": 32, "batch_size": batch, "color": 0xFFFFFF}},
        "c": {"class_type": "LookDevContactSheet", "inputs": {
            "images": ["i", 0], "columns": 4, "title": "", "folder": folder, "pdf": False, "cell_width": 64,
            "description_lines": 0}},
        "k": capture(["c", 0], "batch_sheet"),
    }
    if labels:
        prompt.update(storyboard_prompt("sb/labels", shots=labels, label="unused"))
        prompt["c"]["inputs"]["labels"] = ["r", 1]
    return prompt


def test_contact_sheet_of_an_image_batch_without_labels(comfy):
    comfy.run(sheet_of_batch("sb/batch", 3))
    layout = sheet_layout([(64, 32)] * 3, columns=4, cell_width=64, description_lines=0)
    assert tuple(comfy.captured["batch_sheet"].shape) == (1, layout.size[1], layout.size[0], 3)
    assert (comfy.output_dir / "sb" / "batch" / "_contact_sheet.png").exists()


def test_contact_sheet_refuses_labels_that_do_not_match_the_frames(comfy):
    result = comfy.run(sheet_of_batch("sb/mismatch", 2, labels="A | one\nB | two\nC | three"), expect_error=True)
    assert "labels has 3 entries for 2 frames" in result.error["exception_message"]


def test_shots_file_stored_decomposed_is_found_when_typed_composed(comfy):
    import unicodedata

    stored = unicodedata.normalize("NFD", "séquence_01.csv")  # as a macOS unzip writes it
    (comfy.input_dir / stored).write_text("shot_id,description\nA,a quay at dawn\n")
    typed = unicodedata.normalize("NFC", "séquence_01.csv")
    assert not (comfy.input_dir / typed).exists()
    storyboard, _ = parse(comfy, shots_file=typed, base_seed=3)
    assert [p.shot.description for p in storyboard.shots] == ["a quay at dawn"]


# --- the LoRA stack: one validation for every node -------------------------------------------

@pytest.fixture(scope="module")
def json_stack(comfy):
    class JsonStack:
        """A LORA_STACK from JSON, as another pack might build one (null names, NaN strengths)."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"entries": ("STRING", {"tooltip": "JSON list of [name, model, clip]"})}}

        RETURN_TYPES = ("LORA_STACK",)
        FUNCTION = "stack"

        def stack(self, entries):
            return (json.loads(entries),)

    comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_JsonStack"] = JsonStack
    yield "LookDevTest_JsonStack"
    del comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_JsonStack"]


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("entries, fragment", [
    ('[["style.safetensors", 1, 1], ["x.safetensors", NaN, 1]]', "lora_stack entry 2: model strength must be a "
                                                                 "finite number, got nan"),
    ('[["x.safetensors", 1, Infinity]]', "lora_stack entry 1: CLIP strength must be a finite number, got inf"),
    ('[["x.safetensors", 1]]', "lora_stack entry 1: a LORA_STACK entry is (lora_name, model_strength, clip_strength)"),
])
@pytest.mark.parametrize("node", ["LookDevStoryboardRender", "LookDevApplyLoRAStack"])
def test_render_and_apply_stack_refuse_the_same_stacks(comfy, json_stack, entries, fragment, node):
    prompt = storyboard_prompt("sb/badstack", shots="A | a pier", lora_stack=["l", 0], steps=1)
    prompt["l"] = {"class_type": json_stack, "inputs": {"entries": entries}}
    if node == "LookDevApplyLoRAStack":
        prompt["r"] = {"class_type": node, "inputs": {"model": ["m", 0], "clip": ["m", 1], "lora_stack": ["l", 0]}}
        del prompt["k2"]
    message = comfy.run(prompt, fresh=True, expect_error=True).error["exception_message"]
    assert fragment in message, message
    assert not (comfy.output_dir / "sb" / "badstack" / "A.png").exists()


def test_rows_naming_no_lora_are_dropped_and_the_metadata_is_json(comfy, json_stack):
    prompt = storyboard_prompt("sb/nullname", shots="A | a pier", lora_stack=["l", 0], steps=1)
    prompt["l"] = {"class_type": json_stack, "inputs": {"entries": '[[null, 1, 1], ["None", 1, 1], ["", 2, 2], '
                                                                   '["style.safetensors", 0.5, -1]]'}}
    comfy.run(prompt, fresh=True)
    text = read_png_text(comfy.output_dir / "sb" / "nullname" / "A.png")
    assert _strict_json(text["lookdev"])["loras"] == [
        {"name": "style.safetensors", "strength_model": 0.5, "strength_clip": -1.0}]
    assert read_lookdev_metadata(comfy.output_dir / "sb" / "nullname" / "A.png").loras == (
        LoraUse("style.safetensors", 0.5, -1.0),)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_frames_and_sheets_get_the_mode_a_plain_write_gives(comfy, board):
    """As ComfyUI's own Save Image files: readable by colleagues on a shared disk (0644 under umask 022)."""
    _, _, folder = board
    expected = 0o666 & ~_umask()
    for name in ("A.png", "B.png", "C.png", "_contact_sheet.png", "_contact_sheet.pdf"):
        assert (folder / name).stat().st_mode & 0o777 == expected, name


def test_the_demo_dataset_gets_the_mode_a_plain_write_gives(tmp_path):
    from demo_dataset import write_dataset

    old = os.umask(0o022)
    try:
        folder = write_dataset(tmp_path / "noir", count=2)
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        name: 0o644 for name in ("noir_00.png", "noir_00.txt", "noir_01.png", "noir_01.txt")}
