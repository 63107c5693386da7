"""LookDev Caption Dataset through ComfyUI's executor, captioning with the real transformers code
on tiny random-weight BLIP and Florence-2 folders in the host's models/captioners."""

import copy
import re
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from dataset_files import write_image
from dataset_prompts import cached_nodes, loader

sys.path.insert(0, str(ROOT / "scripts"))
import tiny_captioners  # noqa: E402

MODELS = {"blip": "tiny-blip", "florence2": "tiny-florence2"}


@pytest.fixture(scope="module")
def captioners(comfy):
    """The host's models/captioners folder, holding tiny-blip and tiny-florence2."""
    root = Path(comfy.folder_paths.models_dir) / "captioners"
    for family, name in MODELS.items():
        if not (root / name / "config.json").exists():
            tiny_captioners.BUILDERS[family](root / name)
    return root


@pytest.fixture(scope="module")
def capture_list(comfy):
    """The test host's node that keeps a whole list output (OUTPUT_IS_LIST)."""
    return "LookDevTest_CaptureList"


@pytest.fixture
def refs(tmp_path):
    folder = tmp_path / "refs"
    write_image(folder / "IMG_0001-dark_alley.png", (96, 80), seed=1)
    write_image(folder / "rain.jpg", (80, 96), seed=2)
    (folder / "rain.txt").write_text("lkdv, rain on glass, film noir", encoding="utf-8")
    write_image(folder / "2_neon" / "sign.png", (96, 96), seed=3)
    return folder


def captioner_node(dataset, **inputs):
    return {"class_type": "LookDevCaptionDataset", "inputs": {
        "dataset": dataset, "mode": "keep", "captioner": MODELS["blip"],
        "template": "{trigger}, {filename}", "trigger": "", "style_words": "", "keep_marker": False,
        "write": "off", "task": "(model default)", "prompt": "", "max_new_tokens": 8,
        "num_beams": 1, "batch_size": 1, **inputs}}


def caption_prompt(source, label, **inputs):
    """source node as "1", the caption node as "2", its outputs and the source dataset captured."""
    def keep(node, output, name, kind="LookDevTest_Capture"):
        return {"class_type": kind, "inputs": {"value": [node, output], "label": f"{label}.{name}"}}

    return {"1": source, "2": captioner_node(["1", 0], **inputs),
            "c0": keep("2", 0, "dataset"), "c2": keep("2", 2, "report"),
            "c1": keep("2", 1, "captions", "LookDevTest_CaptureList"), "c3": keep("1", 0, "source")}


def caption(comfy, source, label, **inputs):
    result = comfy.run(caption_prompt(source, label, **inputs))
    return result, {name: comfy.captured[f"{label}.{name}"]
                    for name in ("dataset", "captions", "report", "source")}


def caption_error(comfy, source, **inputs):
    result = comfy.run(caption_prompt(source, "error", **inputs), expect_error=True)
    assert not result.success
    return result.error["exception_message"]


@pytest.mark.parametrize("family", sorted(MODELS))
def test_model_captions_from_a_local_folder(comfy, captioners, capture_list, refs, family):
    result, out = caption(comfy, loader(refs), f"model-{family}", mode="model",
                          captioner=MODELS[family], batch_size=2)
    captions = out["captions"]
    assert len(captions) == 3 and captions == out["dataset"].captions()
    assert all(re.fullmatch(r"lkdv, \S.*", text) for text in captions), captions
    assert len(set(captions)) > 1  # each image described on its own
    assert out["source"].captions() == ["lkdv", "lkdv", "lkdv, rain on glass, film noir"]
    assert out["dataset"] is not out["source"]
    assert f"3 described by {MODELS[family]}, 0 kept" in out["report"]
    caption_bar = [value for value, total, _ in result.progress if total == 3][3:]
    assert caption_bar == [0, 2, 3]  # after the loader's 1, 2, 3: one step per batch of images


def test_style_words_are_stripped_from_model_captions(comfy, captioners, capture_list, refs):
    _, plain = caption(comfy, loader(refs), "unstripped", mode="model")
    word = next(w for w in re.findall(r"[a-z]+", plain["captions"][0].split(", ", 1)[1]))
    _, out = caption(comfy, loader(refs), "stripped", mode="model", style_words=word,
                     keep_marker=True)
    for text in out["captions"]:
        assert text.startswith("lkdv ||| ") or text == "lkdv"
        assert not re.search(rf"\b{word}\b", text.split("|||")[-1]), (word, text)
    assert f"Style words removed: {word}" in out["report"]


def test_model_for_uncaptioned_keeps_existing_sidecar_captions(comfy, captioners, capture_list,
                                                                refs):
    _, out = caption(comfy, loader(refs), "uncaptioned", mode="model for uncaptioned",
                     trigger="noirlook", style_words="film noir")
    captions = out["captions"]
    assert captions[2] == "noirlook, rain on glass"
    assert all(text.startswith("noirlook, ") for text in captions[:2])
    assert "2 described by tiny-blip, 1 kept" in out["report"]


def test_keep_and_template_modes_need_no_model(comfy, capture_list, refs):
    _, out = caption(comfy, loader(refs), "template", mode="template", captioner="not-installed",
                     template="{trigger} style, {folder}, {filename}", keep_marker=True)
    assert out["captions"] == ["lkdv style ||| neon, sign", "lkdv style ||| dark alley",
                               "lkdv style ||| rain"]
    _, out = caption(comfy, loader(refs), "keep", captioner="not-installed", keep_marker=True,
                     style_words="film noir")
    assert out["captions"] == ["lkdv", "lkdv", "lkdv ||| rain on glass"]


def test_sidecars_are_written_only_when_asked(comfy, capture_list, refs):
    template = {"mode": "template", "template": "{trigger}, {filename}"}
    caption(comfy, loader(refs), "write-off", **template)
    assert sorted(p.name for p in refs.rglob("*.txt")) == ["rain.txt"]
    _, out = caption(comfy, loader(refs), "write-missing", write="write missing", **template)
    assert (refs / "2_neon" / "sign.txt").read_text() == "lkdv, sign"
    assert (refs / "IMG_0001-dark_alley.txt").read_text() == "lkdv, dark alley"
    assert (refs / "rain.txt").read_text() == "lkdv, rain on glass, film noir"
    assert "Caption files (write missing): 2 written, 1 already there (left alone)" in out["report"]
    _, out = caption(comfy, loader(refs), "overwrite", write="overwrite", keep_marker=True,
                     **template)
    assert (refs / "rain.txt").read_text() == "lkdv ||| rain"
    assert (refs / "rain.txt.bak").read_text() == "lkdv, rain on glass, film noir"
    assert "3 overwritten (the old one kept as .bak)" in out["report"]


def test_written_captions_reload_once_and_then_stay_cached(comfy, capture_list, refs):
    prompt = caption_prompt(loader(refs), "reload", mode="template", write="overwrite",
                            keep_marker=True)
    first = comfy.run(copy.deepcopy(prompt))
    assert "2 written, 1 overwritten" in comfy.captured["reload.report"]
    second = comfy.run(copy.deepcopy(prompt))  # the loader sees the new files and reloads
    assert "1" not in cached_nodes(second)
    assert comfy.captured["reload.source"].captions()[2] == "lkdv, ||| rain"
    assert "3 unchanged" in comfy.captured["reload.report"]
    third = comfy.run(copy.deepcopy(prompt))
    assert {"1", "2"} <= set(cached_nodes(third))
    assert first.success and not list(refs.rglob(".*.tmp"))


def test_images_from_memory_have_no_sidecars_to_write(comfy, capture_list):
    source = {"class_type": "LookDevDatasetFromImages", "inputs": {
        "images": ["e", 0], "captions": "a wall", "trigger": "lkdv", "resolution": "custom",
        "custom_resolution": 128, "no_upscale": False, "repeats": 1}}
    prompt = caption_prompt(source, "memory", write="overwrite")
    prompt["e"] = {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 96,
                                                          "batch_size": 2, "color": 0}}
    comfy.run(prompt)
    assert comfy.captured["memory.captions"] == ["lkdv, a wall", "lkdv, a wall"]
    assert "none written; this dataset was built from images, not files" in \
        comfy.captured["memory.report"]


def test_a_missing_model_says_where_to_put_it(comfy, captioners, capture_list, refs):
    message = caption_error(comfy, loader(refs), mode="model", captioner="blip-large")
    assert "Captioning model 'blip-large'" in message and "the folder does not exist" in message
    assert "Put all of the model's files" in message and str(captioners / "blip-large") in message


def test_no_model_chosen_names_the_installed_ones(comfy, captioners, capture_list, refs):
    message = caption_error(comfy, loader(refs), mode="model", captioner="(none)")
    assert "pick a captioning model" in message and "tiny-blip" in message and "tiny-florence2" in message


def test_no_installed_model_says_where_to_put_one(comfy, captioners, capture_list, refs, tmp_path, monkeypatch):
    empty = tmp_path / "no_captioners"
    empty.mkdir()
    monkeypatch.setitem(comfy.folder_paths.folder_names_and_paths, "captioners", ([str(empty)], {".json", ".safetensors"}))
    message = caption_error(comfy, loader(refs), mode="model", captioner="(none)")
    assert "no captioning model is installed" in message and str(empty) in message


def test_a_task_the_model_cannot_do_is_named(comfy, captioners, capture_list, refs):
    message = caption_error(comfy, loader(refs), mode="model", task="<DETAILED_CAPTION>")
    assert "task '<DETAILED_CAPTION>': BLIP captioning model 'tiny-blip' can do <CAPTION>" \
        in message


def test_cancel_stops_captioning_between_batches(comfy, captioners, capture_list, refs):
    import comfy.utils as comfy_utils

    original = comfy_utils.PROGRESS_BAR_HOOK
    seen = []

    def press_cancel_after_first_batch(value, total, preview, prompt_id=None, node_id=None):
        seen.append(value)
        if seen[-2:] == [0, 1]:  # the caption bar starts at 0; the loader's does not
            comfy.nodes.interrupt_processing(True)
        return original(value, total, preview, prompt_id=prompt_id, node_id=node_id)

    comfy_utils.set_progress_bar_global_hook(press_cancel_after_first_batch)
    try:
        result = comfy.run(caption_prompt(loader(refs), "cancel", mode="model",
                                          write="overwrite"), expect_error=True)
    finally:
        comfy_utils.set_progress_bar_global_hook(original)
    assert result.interrupted
    assert seen[-2:] == [0, 1]  # nothing captioned after the cancel
    assert sorted(p.name for p in refs.rglob("*.txt")) == ["rain.txt"]


@pytest.mark.server
def test_object_info_lists_the_nodes_and_the_captioner_dropdown(server, captioners):
    folder = server.base / "models" / "captioners"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / MODELS["blip"]).exists():
        (folder / MODELS["blip"]).symlink_to(captioners / MODELS["blip"], target_is_directory=True)
    info = server.get("/object_info").json()
    assert {"LookDevLoadDataset", "LookDevDatasetFromImages", "LookDevCaptionDataset"} <= set(info)
    spec = info["LookDevCaptionDataset"]
    choices, options = spec["input"]["required"]["captioner"]
    assert choices == [MODELS["blip"], "(none)"] and options["tooltip"]  # '(none)' for keep/template
    assert spec["output_is_list"] == [False, True, False]
    assert spec["input"]["required"]["mode"][0] == ["keep", "template", "model",
                                                    "model for uncaptioned"]
    assert info["LookDevLoadDataset"]["output_node"] is False  # see test_invalid_trainer_input_is_not_a_success


def test_default_mode_without_a_model_captions_from_the_template(comfy, capture_list, refs, tmp_path, monkeypatch):
    empty = tmp_path / "no_captioners"
    empty.mkdir()
    monkeypatch.setitem(comfy.folder_paths.folder_names_and_paths, "captioners", ([str(empty)], {".json", ".safetensors"}))
    result, out = caption(comfy, loader(refs), "fallback", mode="model for uncaptioned",
                          captioner="(none)", style_words="film noir")
    assert result.success
    assert out["captions"] == ["lkdv, sign", "lkdv, dark alley", "lkdv, rain on glass"]
    report = out["report"]
    assert "2 from the template (no captioning model), 1 kept" in report
    assert "note: no captioning model was picked, so the 2 uncaptioned images" in report
    assert f"none is installed; put a model folder into {empty}" in report


def test_default_mode_note_names_the_installed_models(comfy, captioners, capture_list, refs):
    _, out = caption(comfy, loader(refs), "fallback-installed", mode="model for uncaptioned",
                     captioner="(none)")
    assert out["captions"][:2] == ["lkdv, sign", "lkdv, dark alley"]
    assert "pick a BLIP or Florence-2 model in 'captioner' (installed: tiny-blip, tiny-florence2)" in out["report"]
