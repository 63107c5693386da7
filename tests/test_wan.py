"""Wan 2.x style LoRAs trained on stills: the tiny Wan 2.1 t2v model loaded from its three files
by the core loaders, trained through ComfyUI's executor, the file checked in core LoraLoader."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from lookdev.trainer.training.state import latest_checkpoint, load_checkpoint
from test_train_node import TRIGGER, _eval_loss, core_lora_model, dataset_dir, train_prompt  # noqa: F401  (fixture)

WAN_RUN = dict(steps=40, learning_rate=6e-3, targets="attention + feed-forward", rank=8, alpha=8.0,
               timestep_sampling="logit-normal", validation_prompts=f"{TRIGGER}, a pier", validation_steps=2,
               validation_size=64)


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
    before = _eval_loss(base.model, base.clip, base.vae, samples)
    after = _eval_loss(comfy.captured["noir_wan_model"], base.clip, base.vae, samples)
    done = wan_run.events_named("lookdev.train.progress")[-1]
    print(f"wan fixture: eval loss {before:.4f} -> {after:.4f} ({1 - after / before:.0%} lower), "
          f"{done['step'] / done['elapsed_s']:.2f} steps/s")
    assert after < 0.8 * before, (before, after)
    # The final validation render, a one-frame Wan video decoded to a still, is shown on the node.
    assert wan_run.ui["3"]["images"]


def test_wan_file_keys_load_in_core_lora_loader(comfy, wan_run, caplog):
    lora = comfy.captured["noir_wan_lora"]
    modules = {k.split(".")[0] for k in lora.tensors}
    assert len(modules) == 2 * (4 + 4 + 2)  # 2 blocks: self/cross attention q k v o, ffn.0 / ffn.2
    assert "lora_unet_blocks_0_self_attn_q" in modules and "lora_unet_blocks_1_ffn_2" in modules
    loader = {"class_type": "UNETLoader", "inputs": {"unet_name": "lookdev_tiny_wan2.1_t2v.safetensors",
                                                   "weight_dtype": "default"}}
    assert len(core_lora_model(comfy, caplog, loader, "noir_wan.safetensors").patches) == len(modules)


def test_wan_file_in_lookdev_apply_lora_with_block_weights(comfy, wan_run):
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "wan21"}},
              "2": {"class_type": "LookDevApplyLoRA", "inputs": {
                  "model": ["1", 0], "clip": ["1", 1], "lora_name": "noir_wan.safetensors", "strength_model": 1.0,
                  "strength_clip": 1.0, "block_preset": "all", "block_weights": "B01:0.5"}},
              "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": "wan_applied"}},
              "4": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 3], "label": "wan_apply_report"}}}
    comfy.run(prompt, fresh=True)
    report = comfy.captured["wan_apply_report"]
    assert "noir_wan.safetensors: 60 of 60 keys matched" in report, report  # 20 layers x down, up, alpha
    strengths = {key: [p[0] for p in patches] for key, patches in comfy.captured["wan_applied"].patches.items()}
    assert len(strengths) == 20
    for key, values in strengths.items():
        assert values == [0.5 if ".blocks.1." in key else 1.0], key


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


# --- Storyboard Render on Wan: one clip per shot, as the core Wan text-to-video graph makes it ----

@pytest.mark.parametrize("duration, fps, cap, frames, capped", [
    (0.25, 24, 81, 5, False),  # 6 frames -> the nearest 4k+1 is 5
    (0.6, 24, 81, 13, False),  # 14.4 -> 14 -> 13
    (0.3, 24, 81, 9, False),  # 7.2 -> 7 -> 7 is halfway between 5 and 9: up
    (0.01, 24, 81, 1, False),  # under one frame: a single frame
    (1.0, 16, 81, 17, False),
    (10.0, 16, 81, 81, True),  # 160 frames capped at 81
    (1.0, 24, 12, 9, True),  # the largest 4k+1 within the cap
])
def test_clip_frames(duration, fps, cap, frames, capped):
    from lookdev.trainer.render.storyboard import clip_frames

    got, note = clip_frames(duration, fps, cap)
    assert got == frames and (got - 1) % 4 == 0
    assert bool(note) == capped and (not capped or f"capped at {frames} frames" in note)


WAN_SHOTS = "A | a lighthouse | 5 | 1:1 | | 0.25\nB | a pier at night | 9 | 1:1 | | 0.6"
WAN_SHIFT = 5.0
WAN_CLIPS = {"A": 5, "B": 9}  # B's 13 frames capped at max_frames 11 -> 9


@pytest.fixture(scope="module")
def capture_whole_list(comfy):
    """A capture node that takes a list output whole (the render's clips), not item by item."""
    class CaptureWholeList(comfy.node_class("LookDevTest_Capture")):
        INPUT_IS_LIST = True

        def capture(self, value, label):
            comfy.captured[label[0]] = value
            return {}

    comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_CaptureWholeList"] = CaptureWholeList
    yield
    del comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_CaptureWholeList"]


@pytest.fixture(scope="module")
def wan_board(comfy, capture_whole_list):
    from test_animatic import animatic_node, shot_list

    prompt = {
        "m": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "wan21"}},
        "ms": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["m", 0], "shift": WAN_SHIFT}},
        "s": shot_list(WAN_SHOTS, trigger_words=TRIGGER),
        "r": {"class_type": "LookDevStoryboardRender", "inputs": {
            "model": ["ms", 0], "clip": ["m", 1], "vae": ["m", 2], "shots": ["s", 0], "negative": "blurry",
            "sampler": "euler", "scheduler": "simple", "steps": 2, "cfg": 3.0, "aspect": "1:1",
            "base_resolution": 64, "width": 64, "height": 64, "folder": "wan_board", "fps": 24.0,
            "max_frames": 11}},
        "k1": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["r", 2], "label": "wan_report"}},
        "a": animatic_node(["r", 0], ["s", 0], labels=["r", 1], folder="wan_board", fps="24"),
    }
    prompt["k2"] = {"class_type": "LookDevTest_CaptureWholeList", "inputs": {"value": ["r", 0], "label": "wan_clips"}}
    comfy.run(prompt, fresh=True)
    return comfy.captured["wan_clips"], comfy.captured["wan_report"]


def test_wan_storyboard_renders_clips_of_the_shot_durations(wan_board):
    clips, report = wan_board
    assert [tuple(clip.shape) for clip in clips] == [(WAN_CLIPS[s], 64, 64, 3) for s in "AB"]
    lines = report.splitlines()
    assert lines[0] == "A: 64x64, 5 frames (0.21 s at 24 fps)"
    assert lines[1].startswith("B: 64x64, 9 frames (0.38 s at 24 fps); note: capped at 9 frames")


@pytest.mark.parametrize("index, shot, text, seed", [(0, "A", "a lighthouse", 5), (1, "B", "a pier at night", 9)])
def test_wan_clips_equal_core_wan_graph(comfy, wan_board, index, shot, text, seed):
    clips, _ = wan_board
    prompt = {
        "m": {"class_type": "UNETLoader", "inputs": {"unet_name": "lookdev_tiny_wan2.1_t2v.safetensors",
                                                   "weight_dtype": "default"}},
        "v": {"class_type": "VAELoader", "inputs": {"vae_name": "lookdev_tiny_wan_2.1_vae.safetensors"}},
        "c": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "wan21"}},
        "ms": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["m", 0], "shift": WAN_SHIFT}},
        "p": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["c", 1], "text": f"{TRIGGER}, {text}"}},
        "n": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["c", 1], "text": "blurry"}},
        "e": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64,
                                                                  "length": WAN_CLIPS[shot], "batch_size": 1}},
        "ks": {"class_type": "KSampler", "inputs": {
            "model": ["ms", 0], "positive": ["p", 0], "negative": ["n", 0], "latent_image": ["e", 0], "seed": seed,
            "steps": 2, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "d": {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["v", 0]}},
        "k": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["d", 0], "label": "wan_core"}},
    }
    comfy.run(prompt, fresh=True)
    core = comfy.captured["wan_core"]
    assert core.shape == clips[index].shape
    assert torch.equal(core, clips[index])
    assert core.std() > 0.01  # a picture, not a constant


def test_wan_clips_play_in_the_animatic_where_the_edl_says(comfy, wan_board):
    from lookdev.trainer.render.animatic import RECORD_START
    from test_animatic import decode, read_cmx3600

    clips, _ = wan_board
    folder = comfy.output_dir / "wan_board"
    frames, rate, *_ = decode((folder / "animatic.mp4").read_bytes())
    events = read_cmx3600((folder / "animatic.edl").read_bytes().decode("utf-8"), 24)
    assert rate == 24 and len(frames) == 6 + 14  # round(0.25 x 24), round(0.6 x 24)
    starts = [record_in - RECORD_START * 24 for _, _, record_in, _, _ in events]
    assert [name for _, name, *_ in events] == ["A", "B"] and starts == [0, 6]
    ends = [record_out - RECORD_START * 24 for _, _, _, record_out, _ in events]
    for (start, end), clip in zip(zip(starts, ends), clips):
        expected = (clip.numpy() * 255).astype(np.float32)
        for offset in range(end - start):
            # Each animatic frame shows its clip frame (the last one held once the clip ends).
            frame = frames[start + offset].astype(np.float32)
            errors = [np.abs(frame - picture).mean() for picture in expected]
            others = [np.abs(frame - (c.numpy() * 255)).mean() for c2 in clips if c2 is not clip for c in c2]
            wanted = min(offset, len(clip) - 1)
            # H.264 (yuv420p, crf 18) of 64 px noise-like pictures: about 14 levels off; others 50+.
            assert int(np.argmin(errors)) == wanted and errors[wanted] < min(others), (start, offset, errors)


def test_plan_frames_clips_only_for_video_models(tmp_path):
    from lookdev.trainer.render.storyboard import (
        RenderConfig, ShotListConfig, plan_frames, plan_storyboard, render_report,
    )

    board = plan_storyboard(ShotListConfig(shots="A | a | | 1:1 | | 0.5\nB | b | | 1:1", default_duration=2.0), tmp_path)
    config = RenderConfig(aspect="1:1", base_resolution=64, fps=16.0, max_frames=25)
    stills = plan_frames(board, config)
    assert [job.frames for job in stills] == [1, 1]
    assert render_report(stills, config).splitlines() == ["A: 64x64", "B: 64x64"]
    clips = plan_frames(board, config, video=True)
    assert [job.frames for job in clips] == [9, 25]  # 8 frames -> 9; the default 2 s: 32 -> 33, capped at 25
    assert render_report(clips, config, video=True).splitlines()[1].startswith(
        "B: 64x64, 25 frames (1.56 s at 16 fps); note: capped at 25 frames")
    with pytest.raises(ValueError, match="fps"):
        plan_frames(board, RenderConfig(fps=0.5), video=True)


def test_wan_gradient_checkpointing_gives_the_same_gradients(comfy):
    """Each Wan transformer block is recomputed in backward (the blocks ModuleList's children)."""
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.adapters import AdapterSet, AdapterSpec

    bundle = comfy.tiny_bundle("wan21")
    modules = dict(bridge.named_layers(bundle.model))
    calls = {"blocks.0.norm1": 0, "blocks.1.ffn.0": 0}

    def grads(checkpointing):
        with bridge.training_session(bundle.model, bundle.clip, torch.float32, checkpointing) as den:
            adapters = AdapterSet({"q": modules["blocks.0.self_attn.q"], "f": modules["blocks.1.ffn.2"]},
                                  AdapterSpec(rank=4), seed=0)
            with torch.no_grad():
                for param in adapters.trainable_parameters():
                    param.normal_(generator=torch.Generator().manual_seed(param.numel()), std=0.1)
            cond = den.encode_captions(["a pier"])["a pier"]
            x = torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
            with adapters.attach():
                den.denoise(x, den.sigmas(torch.tensor([0.6])), [cond]).square().mean().backward()
            return [p.grad.clone() for p in adapters.trainable_parameters()]

    def count(path):
        def hook(module, args):
            calls[path] += 1
        return hook

    handles = [modules[path].register_forward_pre_hook(count(path)) for path in calls]
    try:
        plain = grads(False)
        assert set(calls.values()) == {1}
        checkpointed = grads(True)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == {path: 3 for path in calls}  # once more in the checkpointed backward
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algorithm", ["dora", "loha", "lokr"])
def test_wan_other_algorithms_load_in_core_lora_loader(comfy, dataset_dir, algorithm, caplog):  # noqa: F811
    name = f"wan_{algorithm}"
    comfy.run(train_prompt("wan21", dataset_dir, name, steps=2, algorithm=algorithm))
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "lookdev_tiny_wan2.1_t2v.safetensors",
                                                         "weight_dtype": "default"}},
              "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": f"{name}.safetensors",
                                                                   "strength_model": 1.0}},
              "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": f"{name}_loaded"}}}
    with caplog.at_level(logging.WARNING):
        comfy.run(prompt, fresh=True)
    assert not [r for r in caplog.records if "lora key not loaded" in r.getMessage()]
    assert len(comfy.captured[f"{name}_loaded"].patches) == 2 * 4 * 2  # attention: 2 blocks x 2 x q k v o


def test_contact_sheet_shows_each_clip_by_its_first_frame(tmp_path):
    from lookdev.trainer.render.storyboard import SheetConfig, make_contact_sheet

    clips = [torch.zeros(5, 32, 32, 3), torch.ones(9, 32, 32, 3)]
    _, paths = make_contact_sheet(clips, ["A", "B"], None, SheetConfig(columns=4, folder="sheet"), tmp_path)
    with_labels = np.asarray(Image.open(paths[0]))
    _, paths = make_contact_sheet(clips, None, None, SheetConfig(columns=4, folder="all"), tmp_path)
    every_frame = np.asarray(Image.open(paths[0]))
    assert with_labels.shape[0] < every_frame.shape[0]  # 2 cells in one row; 14 cells in four rows
