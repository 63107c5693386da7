"""Captioning runs the real transformers code on tiny random-weight BLIP and Florence-2 folders that
the tests build; captions are gibberish, so tests check shape, determinism and errors, not words."""

import dataclasses
import json
import shutil
import socket
import sys
import types
import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from lookdev.trainer.captioning import (
    CAPTIONER_FAMILIES,
    CaptionerModelError,
    CaptionOptions,
    caption_images,
    clean_model_caption,
    list_captioner_folders,
    load_captioner,
)
from lookdev.trainer.captioning.common import dtype_keyword

sys.path.insert(0, str(ROOT / "scripts"))
import tiny_captioners  # noqa: E402
from lookdev.trainer.options import help_of

FAMILIES = sorted(tiny_captioners.BUILDERS)
SHORT = CaptionOptions(max_new_tokens=10, num_beams=2)


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioners")
    return {family: build(root / f"tiny-{family}") for family, build in tiny_captioners.BUILDERS.items()}


@pytest.fixture(scope="module")
def captioners(tiny_folders):
    loaded = {family: load_captioner(folder) for family, folder in tiny_folders.items()}
    yield loaded
    for captioner in loaded.values():
        captioner.unload()


@pytest.fixture
def copy_of(tiny_folders, tmp_path):
    """A writable copy of a tiny model folder, named like a user's model folder."""
    def copy(family, name="my-model"):
        return shutil.copytree(tiny_folders[family], tmp_path / "captioners" / name)
    return copy


def frames(count=3):
    """Distinct small images in the modes a dataset brings (RGB, greyscale, with alpha)."""
    rng = np.random.default_rng(7)
    made = [Image.new("RGB", (40, 48), "black"), Image.new("L", (36, 30), 200),
            Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)),
            Image.new("RGBA", (32, 32), (200, 30, 30, 128)), Image.new("RGB", (64, 40), "white")]
    return made[:count]


# --- captioning -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_one_string_caption_per_image(captioners, family):
    captioner = captioners[family]
    assert captioner.family == family
    captions = captioner.caption(frames(3), SHORT)
    assert len(captions) == 3
    assert all(isinstance(text, str) and text == text.strip() for text in captions)


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_models_tell_images_apart(captioners, family):
    # Otherwise the batching test below could not notice images being mixed up.
    assert len(set(captioners[family].caption(frames(3), SHORT))) > 1


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_batch_gives_the_same_captions_as_one_by_one(captioners, family, num_beams):
    captioner, images = captioners[family], frames(3)
    options = CaptionOptions(max_new_tokens=10, num_beams=num_beams)
    assert captioner.caption(images, options) == [captioner.caption([image], options)[0] for image in images]


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_even_when_the_folder_asks_for_sampling(captioners, copy_of, family):
    folder = copy_of(family)
    settings = json.loads((folder / "generation_config.json").read_text())
    settings.update(do_sample=True, temperature=2.0, top_k=0)
    (folder / "generation_config.json").write_text(json.dumps(settings))
    with load_captioner(folder) as sampling_folder:
        first = sampling_folder.caption(frames(3), SHORT)
        assert sampling_folder.caption(frames(3), SHORT) == first
    assert first == captioners[family].caption(frames(3), SHORT)


@pytest.mark.parametrize("family", FAMILIES)
def test_progress_is_reported_after_each_batch(captioners, family):
    captioner, calls = captioners[family], []
    captions = caption_images(captioner, frames(5), SHORT, batch_size=2,
                              on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert captions == captioner.caption(frames(5), SHORT)


def test_progress_callback_can_stop_captioning(captioners):
    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        caption_images(captioners["blip"], frames(4), SHORT, batch_size=2, on_progress=cancel)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "2"])
def test_batch_size_must_be_a_positive_whole_number(captioners, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        caption_images(captioners["blip"], frames(1), SHORT, batch_size=batch_size)


def test_no_images_no_captions(captioners):
    assert captioners["florence2"].caption([], SHORT) == []
    assert caption_images(captioners["florence2"], [], SHORT) == []


@pytest.mark.parametrize("images, message", [
    ([Image.new("RGB", (8, 8)), np.zeros((8, 8, 3))], r"images\[1\] is a ndarray"),
    (Image.new("RGB", (8, 8)), "single image"),
])
def test_images_must_be_a_list_of_pil_images(captioners, images, message):
    with pytest.raises(ValueError, match=message):
        captioners["blip"].caption(images, SHORT)


@pytest.mark.parametrize("task", ["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"])
def test_florence2_caption_tasks(captioners, task):
    captions = captioners["florence2"].caption(frames(2), CaptionOptions(task=task, max_new_tokens=8))
    assert len(captions) == 2 and all(isinstance(text, str) for text in captions)


def test_blip_continues_its_prompt(captioners):
    captions = captioners["blip"].caption(frames(2), CaptionOptions(prompt="a photo of", max_new_tokens=8))
    assert all(text.startswith("a photo of") for text in captions)


@pytest.mark.parametrize("family, options, message", [
    ("blip", CaptionOptions(task="<DETAILED_CAPTION>"), "task '<DETAILED_CAPTION>'.*BLIP.*<CAPTION>"),
    ("florence2", CaptionOptions(task="<OD>"), "task '<OD>'.*<MORE_DETAILED_CAPTION>"),
    ("florence2", CaptionOptions(prompt="a photo of"), "prompt: Florence-2 .* takes no prompt"),
])
def test_options_the_family_cannot_use_are_refused(captioners, family, options, message):
    with pytest.raises(ValueError, match=message):
        captioners[family].caption(frames(1), options)


@pytest.mark.parametrize("field_name, value", [
    ("max_new_tokens", 0), ("max_new_tokens", 5000), ("max_new_tokens", "20"), ("max_new_tokens", True),
    ("num_beams", 0), ("num_beams", 17), ("num_beams", 2.0), ("task", None), ("prompt", 3),
])
def test_caption_options_are_checked(field_name, value):
    with pytest.raises(ValueError, match=field_name):
        CaptionOptions(**{field_name: value})


def test_every_caption_option_has_help():
    assert all(help_of(CaptionOptions, f.name).strip() for f in dataclasses.fields(CaptionOptions))


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_in_the_requested_dtype(tiny_folders, family):
    with load_captioner(tiny_folders[family], dtype=torch.bfloat16) as captioner:
        assert {p.dtype for p in captioner._model.parameters()} == {torch.bfloat16}
        assert all(isinstance(text, str) for text in captioner.caption(frames(2), SHORT))


@pytest.mark.parametrize("family", FAMILIES)
def test_unload_frees_the_model(tiny_folders, family):
    captioner = load_captioner(tiny_folders[family])
    model = weakref.ref(captioner._model)
    captioner.unload()
    assert model() is None and not captioner.loaded
    captioner.unload()  # twice is harmless
    with pytest.raises(RuntimeError, match="unloaded"):
        captioner.caption(frames(1), SHORT)


def test_with_block_unloads(tiny_folders):
    with load_captioner(tiny_folders["blip"]) as captioner:
        assert captioner.loaded
    assert not captioner.loaded


@pytest.mark.parametrize("family", FAMILIES)
def test_loading_and_captioning_never_touch_the_network(tiny_folders, monkeypatch, family):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with load_captioner(tiny_folders[family]) as captioner:
        captioner.caption(frames(1), SHORT)
    assert attempts == []


# --- model folders and their errors -----------------------------------------------------------


def test_list_captioner_folders(tmp_path):
    for name in ("florence-2-base", "BLIP-large", ".cache", "empty"):
        (tmp_path / name).mkdir()
    for name in ("florence-2-base", "BLIP-large", ".cache"):
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a model")
    assert list_captioner_folders(tmp_path) == ["BLIP-large", "florence-2-base"]
    assert list_captioner_folders(tmp_path / "missing") == []


def test_missing_folder_says_where_to_put_the_model(tmp_path):
    hint = str(tmp_path / "ComfyUI" / "models" / "captioners")
    with pytest.raises(CaptionerModelError) as caught:
        load_captioner(tmp_path / "nowhere", name="Florence-2-large", models_root_hint=hint)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "'Florence-2-large'" in message and "does not exist" in message
    assert str(tmp_path / "ComfyUI" / "models" / "captioners" / "Florence-2-large") in message


def _remove(*names):
    def change(folder):
        for name in names:
            (folder / name).unlink(missing_ok=True)  # file names vary between transformers versions
    return change


def _edit_json(file_name, **changes):
    def change(folder):
        data = json.loads((folder / file_name).read_text())
        data.update(changes)
        (folder / file_name).write_text(json.dumps(data))
    return change


def _pickle_weights_only(folder):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded: LookDev refuses pickles before opening them")


def _broken_config(folder):
    (folder / "config.json").write_text("{not json")


def _folder_is_a_file(folder):
    shutil.rmtree(folder)
    folder.write_text("a file where a folder should be")


def _old_florence2_vision_config(folder):
    data = json.loads((folder / "config.json").read_text())
    data["vision_config"]["model_type"] = "davit"
    (folder / "config.json").write_text(json.dumps(data))


def _missing_shard(folder):
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    weight_map = {"text_decoder.bert.embeddings.word_embeddings.weight": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


FOLDER_PROBLEMS = [
    ("blip", _folder_is_a_file, "is a file, not a folder"),
    ("blip", _remove("config.json"), "has no config.json"),
    ("blip", _broken_config, "config.json is not valid JSON"),
    ("blip", _pickle_weights_only, r"only has pickle weights \(pytorch_model.bin\).*only .safetensors"),
    ("florence2", _remove("model.safetensors"), "has no weights: expected model.safetensors"),
    ("blip", _edit_json("config.json", model_type="blip-2"), "model_type 'blip-2'.*blip \\(BLIP\\), florence2"),
    ("blip", _edit_json("config.json", architectures=["BlipForQuestionAnswering"]),
     "not a BLIP captioning model.*Salesforce"),
    ("florence2", _old_florence2_vision_config, "original Florence-2 format.*remote code.*florence-community"),
    ("blip", _remove("tokenizer.json", "vocab.txt"), "has no tokenizer"),
    ("florence2", _remove("tokenizer.json", "vocab.json"), "has no tokenizer"),
    ("florence2", _remove("processor_config.json", "preprocessor_config.json"),
     "has no image preprocessor settings"),
    ("blip", _missing_shard, "transformers could not load it.*model-00002-of-00002.safetensors"),
]


@pytest.mark.parametrize("family, spoil, message", FOLDER_PROBLEMS)
def test_unusable_folders_are_explained(copy_of, family, spoil, message):
    folder = copy_of(family, name="user-model")
    spoil(folder)
    with pytest.raises(CaptionerModelError, match=message) as caught:
        load_captioner(folder, models_root_hint="/comfy/models/captioners")
    assert f"'user-model' ({folder})" in str(caught.value)


@pytest.mark.parametrize("marker", ["config.json", "processor_config.json", "tokenizer_config.json"])
def test_remote_code_models_are_refused_without_running_their_code(copy_of, tmp_path, marker):
    folder = copy_of("florence2")
    ran = tmp_path / "remote-code-ran"
    (folder / "configuration_florence2.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    _edit_json(marker, auto_map={"AutoConfig": "configuration_florence2.Florence2Config"})(folder)
    with pytest.raises(CaptionerModelError, match=f"{marker} has an 'auto_map'.*never runs.*florence-community"):
        load_captioner(folder)
    assert not ran.exists()


def test_florence2_on_a_transformers_without_it(copy_of, monkeypatch):
    old = types.ModuleType("transformers")
    old.__version__ = "4.50.0"
    monkeypatch.setitem(sys.modules, "transformers", old)
    with pytest.raises(CaptionerModelError, match="needs transformers 4.56 or newer.*4.50.0.*BLIP"):
        load_captioner(copy_of("florence2"))


def test_every_family_lists_its_default_task():
    assert all(family.default_task in family.tasks for family in CAPTIONER_FAMILIES.values())


@pytest.mark.parametrize("version, keyword", [
    ("4.45.0", "torch_dtype"), ("4.55.4", "torch_dtype"), ("4.56.0", "dtype"), ("4.57.1", "dtype"),
    ("5.0.0rc1", "dtype"), ("5.24.0", "dtype"),
])
def test_dtype_keyword_follows_the_transformers_version(version, keyword):
    assert dtype_keyword(version) == keyword


# --- caption cleaning -------------------------------------------------------------------------


@pytest.mark.parametrize("raw, clean", [
    ("a man   sitting\non a\tbench ", "a man sitting on a bench"),
    ("arafed man sitting on a bench", "man sitting on a bench"),
    ("a arafed woman in a red dress", "a woman in a red dress"),
    ("an arafed man with a hat", "a man with a hat"),
    ("a araffe elephant standing", "an elephant standing"),
    ("An arafed woman walking", "A woman walking"),
    ("two arrafed men and an arafly dog", "two men and a dog"),
    ("there is a woman that is standing in the street", "a woman that is standing in the street"),
    ("there are two dogs playing", "two dogs playing"),
    ("there is a arafed car parked", "a car parked"),
    ("The image shows a car parked on a street.", "a car parked on a street."),
    ("In this image we can see a boat.", "a boat."),
    ("In this image, there is a boat.", "a boat."),
    ("the image is a close up of a hand", "a close up of a hand"),
    ("a man , a dog .", "a man, a dog."),
    ("a\x00man\x1fwith\x7fa dog", "a man with a dog"),
    ("thereafter a man", "thereafter a man"),
    ("a giraffe and an arabian horse", "a giraffe and an arabian horse"),
    ("there is", "there is"),
    ("", ""),
])
def test_clean_model_caption(raw, clean):
    assert clean_model_caption(raw) == clean
