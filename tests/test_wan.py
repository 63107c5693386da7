"""Wan 2.x style LoRAs trained on stills: the tiny Wan 2.1 t2v model loaded from its three files
by the core loaders, trained through ComfyUI's executor, the file checked in core LoraLoader."""

import logging

import pytest
import torch

from lookdev.trainer.training.state import latest_checkpoint, load_checkpoint
from test_train_node import TRIGGER, _eval_loss, dataset_dir, train_prompt  # noqa: F401  (fixture)

WAN_RUN = dict(steps=40, learning_rate=6e-3, targets="attention + feed-forward", rank=8, alpha=8.0,
               timestep_sampling="logit-normal")


@pytest.fixture(scope="module")
def wan_run(comfy, dataset_dir):  # noqa: F811
    prompt = train_prompt("wan21", dataset_dir, "noir_wan", **WAN_RUN)
    prompt["8"] = {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": "noir_wan_data"}}
    result = comfy.run(prompt)
    return result


def test_wan_fixture_is_wan_from_files(comfy):
    from lookdev.trainer import comfy_bridge as bridge

    bundle = comfy.tiny_bundle("wan21")
    assert type(bundle.model.model.model_config).__name__ == "WAN21_T2V"
    assert bridge.architecture(bundle.model) == "wan" and bridge.model_kind(bundle.model) == "flow"
    assert bridge.is_video_model(bundle.model) and bridge.is_video_vae(bundle.vae)
    images = torch.rand(2, 64, 48, 3)
    with torch.inference_mode():
        latents = bridge.encode_images(bundle.vae, images)
        one = bridge.encode_images(bundle.vae, images[1:])
    assert latents.shape == (2, 16, 1, 8, 6)  # each still a one-frame video
    torch.testing.assert_close(latents[1:], one)


def test_wan_names_blocks_and_metadata(comfy):
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.lora.blocks import block_of
    from lookdev.trainer.lora.keys import kohya_names
    from lookdev.trainer.lora.metadata import build_metadata
    from test_lora_metadata import _facts

    model = comfy.tiny_bundle("wan21").model
    names = kohya_names(["blocks.0.self_attn.q", "diffusion_model.blocks.1.ffn.2", "head.head"], "wan",
                        bridge.lora_key_map(model))
    assert list(names.values()) == ["lora_unet_blocks_0_self_attn_q", "lora_unet_blocks_1_ffn_2",
                                    "lora_unet_head_head"]
    assert block_of("diffusion_model.blocks.12.cross_attn.k.weight", "wan") == "B12"
    assert block_of("diffusion_model.text_embedding.0.weight", "wan") == "BASE"
    md = build_metadata(_facts(arch="wan"))
    assert md["modelspec.architecture"] == "wan-2.1-t2v/lora" and "modelspec.prediction_type" not in md


def test_wan_targets(comfy):
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.targets import select_targets

    layers = bridge.named_layers(comfy.tiny_bundle("wan21").model)
    attention = select_targets(layers, "wan", "attention")
    assert len(attention) == 2 * 2 * 4 and "blocks.1.cross_attn.o" in attention
    both = select_targets(layers, "wan", "attention + feed-forward")
    assert set(both) - set(attention) == {f"blocks.{b}.ffn.{i}" for b in (0, 1) for i in (0, 2)}
    every = select_targets(layers, "wan", "all linear and conv")
    assert set(both) < set(every) and "head.head" in every and "text_embedding.0" in every
    with pytest.raises(ValueError, match="no definition for Wan"):
        select_targets(layers, "wan", "style blocks")


def test_wan_training_lowers_eval_loss(comfy, wan_run):
    base = comfy.tiny_bundle("wan21")
    samples = comfy.captured["noir_wan_data"].samples
    before = _eval_loss(comfy, base.model, base.clip, base.vae, samples)
    after = _eval_loss(comfy, comfy.captured["noir_wan_model"], base.clip, base.vae, samples)
    assert after < 0.8 * before, (before, after)


def test_wan_file_keys_load_in_core_lora_loader(comfy, wan_run, caplog):
    lora = comfy.captured["noir_wan_lora"]
    modules = {k.split(".")[0] for k in lora.tensors}
    assert len(modules) == 2 * (4 + 4 + 2)  # 2 blocks: self/cross attention q k v o, ffn.0 / ffn.2
    assert "lora_unet_blocks_0_self_attn_q" in modules and "lora_unet_blocks_1_ffn_2" in modules
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "lookdev_tiny_wan2.1_t2v.safetensors",
                                                         "weight_dtype": "default"}},
              "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "noir_wan.safetensors",
                                                                   "strength_model": 1.0}},
              "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": "wan_file_model"}}}
    with caplog.at_level(logging.WARNING):
        comfy.run(prompt, fresh=True)
    assert not [r for r in caplog.records if "lora key not loaded" in r.getMessage()]
    assert len(comfy.captured["wan_file_model"].patches) == len(modules)


def test_wan_file_equals_in_memory_adapter(comfy, wan_run):
    """The model ComfyUI's LoraLoader makes from the file denoises as the trained adapters do."""
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.adapters import AdapterSet, AdapterSpec
    from lookdev.trainer.training.run import target_layers

    base = comfy.tiny_bundle("wan21")
    path, header = latest_checkpoint(comfy.output_dir / "lookdev" / "noir_wan" / "checkpoints")
    assert header["step"] == WAN_RUN["steps"]
    snapshot = load_checkpoint(path)
    x = torch.randn(1, 16, 1, 12, 16, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.7])

    def denoised(model, adapter_state=None):
        with bridge.training_session(model, base.clip, torch.float32) as den, torch.no_grad():
            cond = den.encode_captions([f"{TRIGGER}, a pier"])[f"{TRIGGER}, a pier"]
            if adapter_state is None:
                return den.denoise(x, den.sigmas(sigma), [cond])
            adapters = AdapterSet(target_layers(model, "wan", WAN_RUN["targets"]),
                                  AdapterSpec(rank=WAN_RUN["rank"], alpha=WAN_RUN["alpha"]), seed=0)
            adapters.load_adapter_state(adapter_state)
            adapters.to_training(den.device)
            with adapters.attach():
                return den.denoise(x, den.sigmas(sigma), [cond])

    plain = denoised(base.model)
    in_memory = denoised(base.model, snapshot.adapter_state)
    from_file = denoised(_load_file_model(comfy))
    effect = (in_memory - plain).abs().max()
    assert effect > 1e-3
    assert (from_file - in_memory).abs().max() <= 1e-4 * effect


def _load_file_model(comfy):
    model = comfy.node_class("UNETLoader")().load_unet("lookdev_tiny_wan2.1_t2v.safetensors", "default")[0]
    return comfy.node_class("LoraLoaderModelOnly")().load_lora_model_only(model, "noir_wan.safetensors", 1.0)[0]
