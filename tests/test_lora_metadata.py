import json

import pytest
import torch

from lookdev.trainer.lora.io import read_metadata, save_lora
from lookdev.trainer.lora.metadata import (
    TrainingFacts,
    build_metadata,
    trigger_word_warnings,
    trigger_words,
    training_config,
)

STARTED, FINISHED = 1_700_000_000.5, 1_700_003_600.25


def _facts(**overrides):
    values = dict(
        arch="sd1", output_name="inkwash", lookdev_version="0.1.0", network_dim=16, network_alpha=8.0,
        steps=1200, max_train_steps=1500, learning_rate=1e-4, training_started_at=STARTED,
        training_finished_at=FINISHED,
    )
    return TrainingFacts(**{**values, **overrides})


def test_kohya_fields_are_formatted_like_kohya():
    md = build_metadata(_facts(
        resolution=(768, 512), text_encoder_lr=None, unet_lr=2e-4, noise_offset=0.05, seed=42,
        shuffle_caption=True, gradient_checkpointing=False, num_train_images=20, batch_size=2,
        gradient_accumulation_steps=3, tag_frequency={"10_inkwash": {"inkwash": 20, "a cat": 3}},
        dataset_dirs={"10_inkwash": {"n_repeats": 10, "img_count": 20}}, sd_model_name="v1-5.safetensors",
    ))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())
    assert md["ss_network_module"] == "networks.lora"
    assert md["ss_network_dim"] == "16"
    assert md["ss_network_alpha"] == "8.0"
    assert md["ss_resolution"] == "(768, 512)"
    assert md["ss_learning_rate"] == "0.0001"
    assert md["ss_unet_lr"] == "0.0002"
    assert md["ss_text_encoder_lr"] == "None"
    assert md["ss_min_snr_gamma"] == "None"
    assert md["ss_noise_offset"] == "0.05"
    assert md["ss_multires_noise_iterations"] == "None" and md["ss_multires_noise_discount"] == "None"
    assert md["ss_shuffle_caption"] == "True"
    assert md["ss_gradient_checkpointing"] == "False"
    assert md["ss_steps"] == "1200" and md["ss_max_train_steps"] == "1500"
    assert md["ss_seed"] == "42"
    assert md["ss_total_batch_size"] == "6"
    assert md["ss_training_started_at"] == "1700000000.5"
    assert md["ss_training_finished_at"] == "1700003600.25"
    assert json.loads(md["ss_tag_frequency"]) == {"10_inkwash": {"inkwash": 20, "a cat": 3}}
    assert json.loads(md["ss_dataset_dirs"]) == {"10_inkwash": {"n_repeats": 10, "img_count": 20}}
    assert md["ss_sd_model_name"] == "v1-5.safetensors"
    assert "ss_network_args" not in md and "ss_new_sd_model_hash" not in md


@pytest.mark.parametrize("overrides, expected, absent", [
    ({"arch": "sd1"}, {"ss_base_model_version": "sd_v1", "ss_v2": "False",
                       "modelspec.architecture": "stable-diffusion-v1/lora",
                       "modelspec.implementation": "diffusers", "modelspec.prediction_type": "epsilon"}, []),
    ({"arch": "sd2"}, {"ss_base_model_version": "sd_v2", "ss_v2": "True",
                       "modelspec.architecture": "stable-diffusion-v2-512/lora"}, []),
    ({"arch": "sd2", "v_prediction": True, "resolution": (768, 768)}, {
        "ss_base_model_version": "sd_v2_v", "modelspec.architecture": "stable-diffusion-v2-768-v/lora",
        "modelspec.prediction_type": "v", "modelspec.resolution": "768x768"}, []),
    ({"arch": "sdxl", "resolution": (1024, 1024)}, {
        "ss_base_model_version": "sdxl_base_v1-0", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "modelspec.resolution": "1024x1024"}, []),
    ({"arch": "sd3"}, {"ss_base_model_version": "sd3", "modelspec.architecture": "stable-diffusion-3-medium/lora"},
     ["modelspec.prediction_type"]),
    ({"arch": "flux"}, {"ss_base_model_version": "flux1", "modelspec.architecture": "flux-1-dev/lora",
                        "modelspec.implementation": "https://github.com/black-forest-labs/flux"},
     ["modelspec.prediction_type"]),
    ({"arch": "flux", "modelspec_architecture": "flux-1-schnell"},
     {"modelspec.architecture": "flux-1-schnell/lora"}, []),
    ({"arch": "other"}, {"modelspec.architecture": "unknown/lora", "lookdev.architecture": "other"},
     ["ss_base_model_version", "modelspec.prediction_type"]),
])
def test_architecture_fields(overrides, expected, absent):
    md = build_metadata(_facts(**overrides))
    assert {k: md[k] for k in expected} == expected
    assert [k for k in absent if k in md] == []


def test_modelspec_and_lookdev_fields():
    config = {"rank": 16, "optimizer": {"name": "AdamW", "betas": [0.9, 0.99]}, "targets": "attention"}
    md = build_metadata(_facts(
        title="Ink wash", description="Loose ink washes", author="Mara", trigger_words=[" inkwash ", "sumi"],
        tags=["style", "ink"], config=config, network_args={"algo": "loha", "conv_dim": 4},
        sd_model_hash="ab" * 32,
    ))
    assert md["modelspec.sai_model_spec"] == "1.0.0"
    assert md["modelspec.title"] == "Ink wash"
    assert md["modelspec.description"] == "Loose ink washes"
    assert md["modelspec.author"] == "Mara"
    assert md["modelspec.date"] == "2023-11-14T23:13:20+00:00"
    assert md["modelspec.resolution"] == "512x512"
    assert md["modelspec.trigger_phrase"] == "inkwash, sumi"
    assert md["modelspec.tags"] == "style, ink"
    assert md["lookdev.version"] == "0.1.0"
    assert json.loads(md["lookdev.trigger_words"]) == ["inkwash", "sumi"]
    assert json.loads(md["lookdev.config"]) == config
    assert json.loads(md["ss_network_args"]) == {"algo": "loha", "conv_dim": 4}
    assert md["ss_new_sd_model_hash"] == "ab" * 32


def test_optional_modelspec_fields_are_left_out_when_empty():
    md = build_metadata(_facts())
    assert md["modelspec.title"] == "inkwash"
    for key in ("modelspec.description", "modelspec.author", "modelspec.trigger_phrase", "modelspec.tags"):
        assert key not in md
    assert json.loads(md["lookdev.trigger_words"]) == []
    assert json.loads(md["lookdev.config"]) == {}


@pytest.mark.parametrize("overrides, fragment", [
    ({"arch": "sdxl-turbo"}, "unknown architecture 'sdxl-turbo'"),
    ({"output_name": ""}, "output_name is empty"),
    ({"network_dim": 0}, "network_dim must be at least 1"),
    ({"network_alpha": 0}, "network_alpha must be positive"),
    ({"resolution": (512,)}, "resolution must be (width, height)"),
    ({"resolution": (512, 0)}, "resolution must be (width, height)"),
    ({"trigger_words": ["ok", " "]}, "trigger_words must be non-empty strings"),
    ({"trigger_words": [3]}, "trigger_words must be non-empty strings"),
])
def test_bad_facts(overrides, fragment):
    with pytest.raises(ValueError) as info:
        _facts(**overrides)
    assert fragment in str(info.value)


@pytest.mark.parametrize("field, value", [("config", {"path": object()}), ("tag_frequency", {"a": {1, 2}}),
                                          ("network_args", {"x": float("nan")})])
def test_facts_that_are_not_json(field, value):
    with pytest.raises(ValueError) as info:
        build_metadata(_facts(**{field: value}))
    assert f"TrainingFacts.{field} cannot be written as JSON" in str(info.value)


def _tags(**folders):
    return json.dumps(folders)


@pytest.mark.parametrize("metadata, expected", [
    ({"lookdev.trigger_words": '["inkwash", " sumi "]', "modelspec.trigger_phrase": "other"}, ["inkwash", "sumi"]),
    ({"lookdev.trigger_words": "not json", "modelspec.trigger_phrase": "inkwash, sumi e"}, ["inkwash", "sumi e"]),
    ({"lookdev.trigger_words": '"inkwash"', "modelspec.trigger_phrase": "sumi"}, ["sumi"]),
    ({"lookdev.trigger_words": "[1, 2]", "modelspec.trigger_phrase": "sumi"}, ["sumi"]),
    ({"lookdev.trigger_words": "[]", "modelspec.trigger_phrase": " , "}, []),
    ({"ss_tag_frequency": _tags(**{"10_ink": {"inkwash": 20, "a cat": 3, "tree": 5}})}, ["inkwash"]),
    ({"ss_tag_frequency": _tags(**{"10_ink": {"inkwash": 12, "ink": 3}, "5_more": {"inkwash": 8, "ink": 18}})},
     ["ink"]),
    ({"ss_tag_frequency": _tags(a={" zeta ": 4, "alpha": 4, "mu": 4, "beta": 4, "x": 1})},
     ["alpha", "beta", "mu"]),
    ({"ss_tag_frequency": _tags(a={"one": 1, "two": 1})}, []),
    ({"ss_tag_frequency": _tags(a={"ok": 3, "bad": "7", "flag": True}, b=[1, 2])}, ["ok"]),
    ({"ss_tag_frequency": "{broken"}, []),
    ({"ss_tag_frequency": "[]"}, []),
    ({}, []),
])
def test_trigger_words(metadata, expected):
    assert trigger_words(metadata) == expected


def test_trigger_words_limit():
    md = {"ss_tag_frequency": _tags(a={"d": 2, "c": 2, "b": 2, "a": 2})}
    assert trigger_words(md, limit=2) == ["a", "b"]


@pytest.mark.parametrize("metadata, warned", [
    ({"lookdev.trigger_words": '["inkwash"]', "ss_tag_frequency": _tags(a={"ink": 2})}, []),
    ({}, []),
    ({"lookdev.trigger_words": "[inkwash, 'sumi'"}, ["lookdev.trigger_words is not a JSON list of words"]),
    ({"lookdev.trigger_words": "[1, 2]"}, ["lookdev.trigger_words is not a JSON list of words"]),
    ({"ss_tag_frequency": "{broken"}, ["ss_tag_frequency is not a JSON object of tag counts"]),
    ({"lookdev.trigger_words": "", "ss_tag_frequency": "[]"},
     ["lookdev.trigger_words is not", "ss_tag_frequency is not"]),
])
def test_trigger_word_warnings_name_the_unreadable_field(metadata, warned):
    warnings = trigger_word_warnings(metadata)
    assert len(warnings) == len(warned)
    for warning, words in zip(warnings, warned):
        assert warning.startswith(f"metadata {words}") and warning.endswith("no trigger words read from it")


@pytest.mark.parametrize("metadata, config, note", [
    ({"lookdev.config": '{"rank": 16}'}, {"rank": 16}, ""),
    ({}, None, "has no LookDev training config"),
    ({"lookdev.config": "{rank: 16"}, None, "lookdev.config is not valid JSON"),
    ({"lookdev.config": ""}, None, "lookdev.config is not valid JSON"),
    ({"lookdev.config": "[1, 2]"}, None, "holds a list, not a settings object"),
    ({"lookdev.config": "null"}, None, "holds a NoneType"),
])
def test_training_config(metadata, config, note):
    result = training_config(metadata)
    assert result.config == config
    assert note in result.note and bool(result.note) == bool(note)


def test_metadata_survives_a_save_and_read(tmp_path):
    facts = _facts(trigger_words=["inkwash"], config={"rank": 16, "steps": 1500}, title="Ink")
    path = tmp_path / "inkwash.safetensors"
    save_lora(path, {"lora_unet_x.lora_down.weight": torch.zeros(2, 4)}, build_metadata(facts))
    md = read_metadata(path)
    assert {k: v for k, v in md.items() if k not in ("sshs_model_hash", "modelspec.hash_sha256")} == \
        build_metadata(facts)
    assert trigger_words(md) == ["inkwash"]
    config, note = training_config(md)
    assert config == {"rank": 16, "steps": 1500} and note == ""


# --- what a shared file tells others (issue 15, item 10) -----------------------------------------

def test_unknown_base_model_is_left_out_not_empty():
    md = build_metadata(_facts())
    assert "ss_sd_model_name" not in md and "ss_new_sd_model_hash" not in md


@pytest.mark.parametrize("overrides, named", [
    ({"dataset_dirs": {"/home/ana/refs/10_noir": {"n_repeats": 10, "img_count": 3}}}, "dataset_dirs"),
    ({"tag_frequency": {"C:\\Users\\ana\\noir": {"noir": 3}}}, "tag_frequency"),
    ({"sd_model_name": "/models/checkpoints/v1-5.safetensors"}, "sd_model_name"),
])
def test_local_paths_are_refused(overrides, named):
    with pytest.raises(ValueError, match=f"TrainingFacts.{named} .*path"):
        _facts(**overrides)


def _sample(source, caption, repeats=1):
    from pathlib import Path

    from lookdev.trainer.dataset.dataset import Sample

    return Sample(torch.zeros(8, 8, 3), caption, (8, 8), Path(source) if source else None, repeats, "x")


def test_dataset_folders_are_keyed_by_name_as_kohya_keys_them():
    from lookdev.trainer.dataset.dataset import StyleDataset
    from lookdev.trainer.training.run import dataset_folders

    samples = [_sample("/home/ana/refs/noir/a.png", "noir, rain"), _sample("/home/ana/refs/noir/b.png", "noir"),
               _sample("/home/ana/refs/noir/10_night/c.png", "noir, street", repeats=10),
               _sample(None, "noir, pier")]
    dataset = StyleDataset(samples, "noir", 512, "/home/ana/refs/noir")
    tags, dirs = dataset_folders(dataset)
    assert dirs == {"noir": {"n_repeats": 1, "img_count": 2}, "10_night": {"n_repeats": 10, "img_count": 1},
                    "images": {"n_repeats": 1, "img_count": 1}}
    assert tags == {"noir": {"noir": 2, "rain": 1}, "10_night": {"noir": 1, "street": 1},
                    "images": {"noir": 1, "pier": 1}}
    md = build_metadata(_facts(tag_frequency=tags, dataset_dirs=dirs))
    assert not [key for key, value in md.items() if "/home/ana" in value]


def test_dora_scale_is_written_per_output_row():
    from lookdev.trainer.training.adapters import AdapterSpec
    from lookdev.trainer.training.export import kohya_tensors

    spec = AdapterSpec(algorithm="dora", rank=2, alpha=2.0)
    state = {"lora_unet_x": {"lora_A.weight": torch.ones(2, 6), "lora_B.weight": torch.ones(5, 2),
                             "lora_magnitude_vector": torch.ones(5)},
             "lora_unet_c": {"lora_A.weight": torch.ones(2, 3, 3, 3), "lora_B.weight": torch.ones(4, 2, 1, 1),
                             "lora_magnitude_vector": torch.ones(4)}}
    out = kohya_tensors(state, spec, {"lora_unet_x": torch.zeros(5, 6), "lora_unet_c": torch.zeros(4, 3, 3, 3)})
    assert out["lora_unet_x.dora_scale"].shape == (5, 1)
    assert out["lora_unet_c.dora_scale"].shape == (4, 1, 1, 1)


def test_multires_noise_is_written_as_kohya_writes_it():
    md = build_metadata(_facts(multires_noise_iterations=6, multires_noise_discount=0.3))
    assert (md["ss_multires_noise_iterations"], md["ss_multires_noise_discount"]) == ("6", "0.3")
