"""LookDev Train Style LoRA through ComfyUI's executor, on tiny architecture-faithful models."""

import json
import logging

import pytest
import safetensors
import torch
from PIL import Image, ImageDraw

from lookdev.trainer.training.state import latest_checkpoint

TRIGGER = "lkdv noir"


def _scene(index, size=96):
    """A small high-contrast 'noir' frame: dark ground, a bright shape, a hard shadow."""
    img = Image.new("RGB", (size, size), (12, 12, 16))
    draw = ImageDraw.Draw(img)
    x = 10 + (index * 17) % (size - 40)
    draw.rectangle([x, 20, x + 28, size - 10], fill=(230, 225, 210))
    draw.polygon([(0, size), (size, size // 2), (size, size)], fill=(40, 40, 48))
    return img


@pytest.fixture(scope="module")
def dataset_dir(comfy):
    folder = comfy.input_dir / "noir_set"
    if not folder.exists():
        (folder / "2_night").mkdir(parents=True)
        for i in range(3):
            _scene(i).save(folder / f"alley_{i}.png")
            (folder / f"alley_{i}.txt").write_text(f"a figure in an alley, rain, lamp {i}")
        _scene(7, 128).resize((128, 96)).save(folder / "2_night" / "street.png")
    return "noir_set"


def dataset_node(folder):
    return {"class_type": "LookDevLoadDataset", "inputs": {
        "folder": folder, "trigger": TRIGGER, "resolution": "custom", "custom_resolution": 128,
        "no_upscale": False, "repeats": 1, "recursive": True, "caption_extension": "txt"}}


def train_prompt(arch, folder, name, **settings):
    inputs = {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "dataset": ["2", 0], "name": name,
              "steps": 8, "learning_rate": 2e-3, "rank": 4, "alpha": 4.0, "batch_size": 2,
              "targets": "attention", "seed": 7, "timestep_sampling": "uniform"}
    inputs.update(settings)
    return {
        "1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
        "2": dataset_node(folder),
        "3": {"class_type": "LookDevTrainStyleLoRA", "inputs": inputs},
        "4": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["3", 0], "label": f"{name}_model"}},
        "5": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["3", 1], "label": f"{name}_lora"}},
        "6": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["3", 2], "label": f"{name}_path"}},
        "7": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["3", 3], "label": f"{name}_curve"}},
    }


def render_nodes(model_ref, clip_ref, vae_ref, label, prefix="r"):
    return {
        f"{prefix}1": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip_ref, "text": f"{TRIGGER}, a lighthouse"}},
        f"{prefix}2": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip_ref, "text": ""}},
        f"{prefix}3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        f"{prefix}4": {"class_type": "KSampler", "inputs": {
            "model": model_ref, "positive": [f"{prefix}1", 0], "negative": [f"{prefix}2", 0],
            "latent_image": [f"{prefix}3", 0], "seed": 5, "steps": 3, "cfg": 4.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0}},
        f"{prefix}5": {"class_type": "VAEDecode", "inputs": {"samples": [f"{prefix}4", 0], "vae": vae_ref}},
        f"{prefix}6": {"class_type": "LookDevTest_Capture", "inputs": {"value": [f"{prefix}5", 0], "label": label}},
    }


def base_render(comfy, arch, label):
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}}}
    prompt.update(render_nodes(["1", 0], ["1", 1], ["1", 2], label))
    comfy.run(prompt, fresh=True)
    return comfy.captured[label]


SD15_RUN = dict(save_every=4, validate_every=4, validation_prompts=f"{TRIGGER}, a pier", validation_steps=2,
                validation_size=64)


@pytest.fixture(scope="module")
def sd15_run(comfy, dataset_dir):
    before = base_render(comfy, "sd15", "base_before")
    prompt = train_prompt("sd15", dataset_dir, "noir_sd15", **SD15_RUN)
    result = comfy.run(prompt)
    after = base_render(comfy, "sd15", "base_after")
    return result, before, after


def test_base_model_is_untouched(sd15_run):
    _, before, after = sd15_run
    assert torch.equal(before, after)


def test_outputs_and_kohya_file(comfy, sd15_run):
    result, _, _ = sd15_run
    path = comfy.captured["noir_sd15_path"]
    assert path.endswith("noir_sd15.safetensors") and path.startswith(str(comfy.models_dir("loras")))
    lora = comfy.captured["noir_sd15_lora"]
    keys = set(lora.tensors)
    modules = {k.split(".")[0] for k in keys}
    assert modules and all(m.startswith("lora_unet_") for m in modules)
    assert any("_attn1_to_q" in m and m.startswith("lora_unet_down_blocks_0_attentions_0") for m in modules)
    for m in modules:
        assert {f"{m}.lora_up.weight", f"{m}.lora_down.weight", f"{m}.alpha"} <= keys
    with safetensors.safe_open(path, framework="pt") as handle:
        meta = handle.metadata()
        assert set(handle.keys()) == keys
    assert meta["ss_network_dim"] == "4" and meta["ss_network_module"] == "networks.lora"
    assert meta["modelspec.architecture"].startswith("stable-diffusion-v1")
    assert json.loads(meta["lookdev.trigger_words"]) == [TRIGGER]
    # kohya's keys: the folders' names, never where the user keeps them; no base-model name to tell
    assert json.loads(meta["ss_dataset_dirs"]) == {"noir_set": {"n_repeats": 1, "img_count": 3},
                                                   "2_night": {"n_repeats": 2, "img_count": 1}}
    assert set(json.loads(meta["ss_tag_frequency"])) == {"noir_set", "2_night"}
    assert not [key for key, value in meta.items() if str(comfy.base) in value or str(comfy.input_dir) in value]
    assert "ss_sd_model_name" not in meta
    config = json.loads(meta["lookdev.config"])
    assert config["steps"] == 8 and config["targets"] == "attention"
    curve = comfy.captured["noir_sd15_curve"]
    assert curve.ndim == 4 and curve.shape[-1] == 3
    *renders, chart = result.ui["3"]["images"]
    assert len(renders) == 1 and renders[0]["type"] == "temp", "the final validation render is on the node"
    # The loss chart is saved under the LoRA's name (no workflow's Save Image prefix) and shown too.
    assert chart == {"filename": "noir_sd15_loss.png", "subfolder": "lookdev", "type": "output"}
    saved = comfy.output_dir / "lookdev" / "noir_sd15_loss.png"
    with Image.open(saved) as image:
        assert image.size == (curve.shape[2], curve.shape[1])
    [done] = result.events_named("lookdev.train.done")
    assert done["loss_curve"] == str(saved)
    assert f"loss curve {saved}" in result.ui["3"]["text"][0]


def test_progress_events_and_checkpoints(comfy, sd15_run):
    result, _, _ = sd15_run
    steps = [e["step"] for e in result.events_named("lookdev.train.progress")]
    assert steps == list(range(1, 9))
    event = result.events_named("lookdev.train.progress")[-1]
    assert {"loss", "loss_smooth", "lr", "eta_s", "total", "node"} <= set(event)
    assert [p[:2] for p in result.progress if p[1] == 8][-1] == (8, 8)
    assert result.events_named("lookdev.train.done")
    previews = result.events_named("lookdev.train.preview")
    assert [p["step"] for p in previews] == [4]  # step 8 is the end: its render is the node's output
    ref = previews[0]["images"][0]
    assert (comfy.base / "temp" / ref["subfolder"] / ref["filename"]).exists()
    work = comfy.output_dir / "lookdev" / "noir_sd15"
    assert (work / "noir_sd15-step000004.safetensors").exists()
    path, header = latest_checkpoint(work / "checkpoints")
    assert header["step"] == 8


def test_every_phase_sends_a_status_line(comfy, sd15_run):
    """caching -> training -> validation renders (step 4) -> training -> saving -> final renders ->
    done: the trainer never sits on a stale step line while it renders or saves."""
    result, _, _ = sd15_run
    statuses = [(e["phase"], e["text"]) for e in result.events_named("lookdev.status")]
    phases = [phase for phase, _ in statuses]
    assert phases[0] == "caching" and phases[-1] == "done"
    order = [phase for i, phase in enumerate(phases) if i == 0 or phase != phases[i - 1]]
    assert order == ["caching", "training", "validation", "training", "saving", "validation", "done"]
    texts = [text for _, text in statuses]
    assert "rendering validation images 1 / 1 (step 4)" in texts
    assert "rendering final validation images 1 / 1" in texts
    assert "saving noir_sd15.safetensors" in texts
    assert texts[-1].startswith("done: 8 steps in ") and texts[-1].endswith("saved noir_sd15.safetensors")
    caching = [text for phase, text in statuses if phase == "caching"]
    assert caching[0] == "caching latents of 4 images"  # then "caching latents k / N" unless cached
    assert {e["node"] for e in result.events_named("lookdev.status")} == {"3"}
    [done] = result.events_named("lookdev.train.done")
    assert set(done["phases"]) == {"caching", "training", "saving", "validation"}
    assert done["node_seconds"] >= done["seconds"] > 0
    # The final renders and the loss curve, for the node's panel, are the node's own images.
    assert [*done["images"], done["loss_image"]] == result.ui["3"]["images"]
    assert done["prompts"] == [f"{TRIGGER}, a pier"]
    assert "time " in result.ui["3"]["text"][0] and " in all: caching " in result.ui["3"]["text"][0]


def test_file_through_stock_loader_matches_in_memory(comfy, sd15_run, caplog):
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}},
              "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                          "lora_name": "noir_sd15.safetensors",
                                                          "strength_model": 1.0, "strength_clip": 1.0}}}
    prompt.update(render_nodes(["2", 0], ["1", 1], ["1", 2], "from_file"))
    with caplog.at_level(logging.WARNING):
        comfy.run(prompt, fresh=True)
    assert not [r for r in caplog.records if "lora key not loaded" in r.getMessage()]
    trained = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}}}
    trained.update(train_prompt("sd15", "noir_set", "noir_sd15", **SD15_RUN))
    trained.update(render_nodes(["3", 0], ["1", 1], ["1", 2], "in_memory"))
    comfy.run(trained)  # cached training result from the fixture's run
    assert torch.equal(comfy.captured["from_file"], comfy.captured["in_memory"])
    assert not torch.equal(comfy.captured["from_file"], comfy.captured["base_before"])


def _eval_loss(model, clip, vae, dataset_samples):
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.data import Example
    from lookdev.trainer.training.loop import evaluation_loss

    with torch.inference_mode():
        latents = [bridge.encode_images(vae, s.image[None]) for s in dataset_samples]
    with bridge.training_session(model, clip, torch.float32) as den:
        examples = [Example(latent=den.to_model_space(l.clone())[0], captions=(s.caption,), dropped_caption="")
                    for l, s in zip(latents, dataset_samples)]
        return evaluation_loss(den, examples)


@pytest.mark.slow  # trains through the executor
@pytest.mark.parametrize("arch", ["sd15", "sd15_v", "sdxl", "sd3"])
def test_evaluation_loss_falls(comfy, dataset_dir, arch):
    name = f"fall_{arch}"
    prompt = train_prompt(arch, dataset_dir, name, steps=30, learning_rate=3e-3,
                          targets="attention + feed-forward", rank=8, alpha=8.0)
    prompt["8"] = {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": f"{name}_data"}}
    comfy.run(prompt)
    base = comfy.tiny_bundle(arch)
    samples = comfy.captured[f"{name}_data"].samples
    before = _eval_loss(base.model, base.clip, base.vae, samples)
    after = _eval_loss(comfy.captured[f"{name}_model"], base.clip, base.vae, samples)
    assert after < 0.85 * before, (before, after)


def core_lora_model(comfy, caplog, loader, lora_name):
    """The MODEL core LoraLoaderModelOnly makes from the `loader` node's model and a file of the
    loras folder; fails on any key ComfyUI could not place ("lora key not loaded")."""
    prompt = {"1": loader,
              "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": lora_name,
                                                                   "strength_model": 1.0}},
              "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": "core_lora_model"}}}
    with caplog.at_level(logging.WARNING):
        comfy.run(prompt, fresh=True)
    assert not [r for r in caplog.records if "lora key not loaded" in r.getMessage()]
    return comfy.captured["core_lora_model"]


@pytest.mark.slow  # trains through the executor
def test_sdxl_file_has_no_unloaded_keys(comfy, dataset_dir, caplog):
    comfy.run(train_prompt("sdxl", dataset_dir, "noir_sdxl", steps=2, targets="all linear and conv"))
    model = core_lora_model(comfy, caplog, {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sdxl"}},
                            "noir_sdxl.safetensors")
    assert len(model.patches) > 0


@pytest.mark.slow  # trains through the executor
def test_cancel_then_resume_is_bit_identical(comfy, dataset_dir):
    settings = dict(steps=10, save_every=3, shuffle_captions=True, caption_dropout=0.2, noise_offset=0.05)
    comfy.run(train_prompt("sd15", dataset_dir, "straight", **settings), fresh=True)
    straight = comfy.captured["straight_lora"].tensors

    def cancel_at_step_6(event, data):
        if event == "lookdev.train.progress" and data["step"] == 6:
            comfy.nodes.interrupt_processing(True)

    comfy.listeners.append(cancel_at_step_6)
    try:
        result = comfy.run(train_prompt("sd15", dataset_dir, "resumed", **settings), fresh=True, expect_error=True)
    finally:
        comfy.listeners.remove(cancel_at_step_6)
    assert result.interrupted
    _, header = latest_checkpoint(comfy.output_dir / "lookdev" / "resumed" / "checkpoints")
    assert header["step"] == 6  # Cancel stops at the next step boundary and leaves a checkpoint

    result = comfy.run(train_prompt("sd15", dataset_dir, "resumed", **settings), fresh=True)
    assert result.events_named("lookdev.train.progress")[0]["resumed_from"] == 6
    resumed = comfy.captured["resumed_lora"].tensors
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


@pytest.mark.slow  # trains through the executor
def test_divergence_is_a_clear_error_and_keeps_last_checkpoint(comfy, dataset_dir):
    # Lion moves every weight by the full learning rate each step: at 0.5 the adapters grow until
    # fp16 activations overflow, the classic way a too-high learning rate ends a run.
    prompt = train_prompt("sd15", dataset_dir, "diverge", steps=60, learning_rate=0.5, optimizer="Lion",
                          save_every=1, dtype="fp16", targets="all linear and conv")
    result = comfy.run(prompt, fresh=True, expect_error=True)
    message = result.error["exception_message"]
    assert "at step" in message and "Lower the learning rate" in message
    found = latest_checkpoint(comfy.output_dir / "lookdev" / "diverge" / "checkpoints")
    assert found is not None and found[1]["step"] >= 1


def test_second_run_uses_the_latent_cache(comfy):
    folder = comfy.input_dir / "cache_set"
    folder.mkdir()
    for i in range(3):
        _scene(100 + i).save(folder / f"frame_{i}.png")
    bundle = comfy.tiny_bundle("sd15")
    encoded = []
    original = bundle.vae.encode

    def counting_encode(pixels):
        encoded.append(pixels.shape[0])
        return original(pixels)

    bundle.vae.encode = counting_encode  # instance attribute: the VAE object itself is unchanged
    try:
        comfy.run(train_prompt("sd15", "cache_set", "cache_a", steps=1), fresh=True)
        first = sum(encoded)
        comfy.run(train_prompt("sd15", "cache_set", "cache_b", steps=1, seed=8), fresh=True)
    finally:
        del bundle.vae.encode
    assert first == 3
    assert sum(encoded) == first  # the second run encoded nothing


@pytest.mark.slow  # trains through the executor
@pytest.mark.parametrize("algorithm,exact", [("lora", True), ("loha", True), ("lokr", True), ("dora", False)])
def test_saved_file_reproduces_the_trained_adapters(comfy, dataset_dir, algorithm, exact):
    """ComfyUI applying the saved file gives the same denoiser as the peft adapters that trained.

    DoRA is the exception: ComfyUI 0.3.75 normalises DoRA by the base weight's norm where peft
    (and LyCORIS) use the adapted weight's, so the two agree only approximately.
    """
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.adapters import AdapterSet
    from lookdev.trainer.training.config import TrainConfig
    from lookdev.trainer.training.state import load_checkpoint
    from lookdev.trainer.lora.keys import kohya_names
    from lookdev.trainer.training.targets import select_targets

    name = f"algo_{algorithm}"
    comfy.run(train_prompt("sd15", dataset_dir, name, steps=6, learning_rate=1e-2, algorithm=algorithm,
                           save_dtype="fp32", targets="attention + feed-forward"), fresh=True)
    base = comfy.tiny_bundle("sd15")
    path, _ = latest_checkpoint(comfy.output_dir / "lookdev" / name / "checkpoints")
    snapshot = load_checkpoint(path)
    config = TrainConfig(**{**snapshot.config, "validation_prompts": tuple(snapshot.config["validation_prompts"])})

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 16, 16, generator=gen)
    sigma = torch.tensor([2.0])
    outputs = {}
    for label, model in (("peft", base.model), ("file", comfy.captured[f"{name}_model"])):
        with bridge.training_session(model, base.clip, torch.float32) as den:
            cond = den.encode_captions(["a figure in an alley"])["a figure in an alley"]
            if label == "peft":
                paths = select_targets(bridge.named_layers(model), "sd1", config.targets)
                names = kohya_names(paths, "sd1", bridge.lora_key_map(model))
                modules = dict(bridge.named_layers(model))
                adapters = AdapterSet({n: modules[p] for p, n in names.items()}, config.adapter_spec())
                adapters.load_adapter_state(snapshot.adapter_state)
                adapters.eval()
                with adapters.attach(), torch.no_grad():
                    outputs[label] = den.denoise(x, sigma, [cond])
            else:
                with torch.no_grad():
                    outputs[label] = den.denoise(x, sigma, [cond])
    with torch.no_grad(), bridge.training_session(base.model, base.clip, torch.float32) as den:
        untrained = den.denoise(x, sigma, [den.encode_captions(["a figure in an alley"])["a figure in an alley"]])
    change = (outputs["peft"] - untrained).abs().max().item()
    error = (outputs["peft"] - outputs["file"]).abs().max().item()
    assert change > 1e-3, "training changed nothing to compare"
    if exact:
        assert error < 1e-4 * max(1.0, change) + 1e-5, (error, change)
    else:
        assert error < 0.02 * change, (error, change)  # measured: 0.35% of the change


def test_trigger_set_once_on_the_dataset_reaches_every_node(comfy, dataset_dir):
    """The trigger typed only on Load Dataset reaches the captions, the LoRA's metadata, Apply LoRA's
    trigger output and the Shot List's prompts; a value typed on a node overrides it there, and
    the reports say where each trigger came from."""
    prompt = train_prompt("sd15", dataset_dir, "trigger_once", steps=1, batch_size=1)
    prompt["c"] = {"class_type": "LookDevCaptionDataset", "inputs": {
        "dataset": ["2", 0], "mode": "keep", "captioner": "(none)", "template": "{trigger}", "trigger": "",
        "style_words": "", "keep_marker": False, "write": "off"}}
    prompt["3"]["inputs"]["dataset"] = ["c", 0]
    shots = {"shots": "A | a pier", "style_prefix": "", "style_suffix": "", "seed_policy": "per-shot seeds",
             "base_seed": 0}
    prompt.update({
        "s1": {"class_type": "LookDevShotList", "inputs": {**shots, "trigger_words": "", "lora": ["3", 1]}},
        "s2": {"class_type": "LookDevShotList", "inputs": {**shots, "trigger_words": "inkwash", "lora": ["3", 1]}},
        "a": {"class_type": "LookDevApplyLoRA", "inputs": {
            "model": ["1", 0], "lora_name": "None", "strength_model": 1.0, "strength_clip": 1.0,
            "block_preset": "all", "block_weights": "", "lora": ["3", 1]}},
        "k1": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["c", 2], "label": "once_captions"}},
        "k2": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["s1", 0], "label": "once_shots"}},
        "k3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["s1", 1], "label": "once_shots_report"}},
        "k4": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["s2", 1], "label": "once_override"}},
        "k5": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["a", 2], "label": "once_apply"}},
    })
    result = comfy.run(prompt)
    assert f"Trigger: '{TRIGGER}' (from the dataset)" in comfy.captured["once_captions"]
    assert f"Trigger: '{TRIGGER}' (from the dataset)" in result.ui["3"]["text"][0]
    with safetensors.safe_open(comfy.captured["trigger_once_path"], framework="pt") as handle:
        assert json.loads(handle.metadata()["lookdev.trigger_words"]) == [TRIGGER]
    assert comfy.captured["once_apply"] == TRIGGER
    assert comfy.captured["once_shots"].shots[0].prompt == f"{TRIGGER}, a pier"
    assert f"Trigger: '{TRIGGER}' (from LoRA trigger_once.safetensors)" in comfy.captured["once_shots_report"]
    assert (f"Trigger: 'inkwash' (set on this node; overrides '{TRIGGER}' from LoRA trigger_once.safetensors)"
            in comfy.captured["once_override"])

    # Typed on the trainer: the file carries the trainer's value, and its report says it overrode the dataset's.
    prompt["3"]["inputs"]["trigger"] = "noirlook"
    result = comfy.run(prompt)
    assert f"Trigger: 'noirlook' (set on this node; overrides '{TRIGGER}' from the dataset)" in result.ui["3"]["text"][0]
    assert comfy.captured["once_apply"] == "noirlook"
    assert comfy.captured["once_shots"].shots[0].prompt == "noirlook, a pier"


def test_base_model_file_is_named_through_loaders(comfy, dataset_dir, tiny_checkpoint):
    """ss_sd_model_name: the checkpoint the MODEL came from, followed through a LoRA loader."""
    prompt = train_prompt("sd15", dataset_dir, "named_base", steps=1)
    prompt["1"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tiny_checkpoint}}
    from lora_files import write_lora

    write_lora(comfy.models_dir("loras"), "between.safetensors", comfy.tiny_bundle("sd15"), "sd15")
    prompt["9"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "strength_model": 0.0,
                                                                  "lora_name": "between.safetensors"}}
    prompt["3"]["inputs"]["model"] = ["9", 0]
    comfy.run(prompt, fresh=True)
    with safetensors.safe_open(comfy.captured["named_base_path"], framework="pt") as handle:
        assert handle.metadata()["ss_sd_model_name"] == tiny_checkpoint


@pytest.mark.parametrize("prompt, expected", [
    ({"3": {"inputs": {"model": ["2", 0]}}, "2": {"inputs": {"model": ["1", 0], "lora_name": "x.safetensors"}},
      "1": {"inputs": {"ckpt_name": "sdxl/juggernaut.safetensors"}}}, "juggernaut.safetensors"),
    ({"3": {"inputs": {"model": ["1", 0]}}, "1": {"inputs": {"unet_name": "flux\\flux1-dev.safetensors"}}},
     "flux1-dev.safetensors"),
    ({"3": {"inputs": {"model": ["1", 0]}}, "1": {"inputs": {"arch": "sd15"}}}, None),
    ({"3": {"inputs": {"model": ["2", 0]}}, "2": {"inputs": {"model": ["2", 0]}}}, None),  # a loop
    (None, None),
])
def test_model_file_name_follows_model_links(prompt, expected):
    from lookdev.trainer import comfy_bridge as bridge

    assert bridge.model_file_name(prompt, "3") == expected


def test_all_linear_and_conv_says_what_kohya_resume_skips(comfy):
    tooltip = comfy.node_class("LookDevTrainStyleLoRA").INPUT_TYPES()["required"]["targets"][1]["tooltip"]
    assert "'all linear and conv'" in tooltip
    assert all(name in tooltip for name in ("networks.lora", "conv_in", "conv_out", "time_embedding"))


def _files_under(folder):
    return sorted(str(p) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("arch, model_class", [("auraflow", "AuraFlow")])
def test_unsupported_architecture_stops_before_any_work(comfy, dataset_dir, arch, model_class):
    """AuraFlow loads in ComfyUI but LookDev has no targets or names for it: refused by name."""
    from lookdev.trainer.lora.keys import ARCHITECTURES, TRAINABLE

    written_before = _files_under(comfy.output_dir / "lookdev") + _files_under(comfy.models_dir("loras"))
    result = comfy.run(train_prompt(arch, dataset_dir, f"{arch}_style"), fresh=True, expect_error=True)
    message = result.error["exception_message"]
    assert f"ComfyUI loaded it as {model_class}, an architecture LookDev does not handle" in message
    assert all(ARCHITECTURES[arch] in message for arch in TRAINABLE) and "Nothing was written" in message
    assert not result.events_named("lookdev.train.progress")
    assert _files_under(comfy.output_dir / "lookdev") + _files_under(comfy.models_dir("loras")) == written_before


def test_recipe_fills_the_inputs_left_at_their_defaults_and_says_so(comfy, dataset_dir):
    """'quick test' sets the schedule and the validation steps (left at their defaults) and keeps the
    steps and learning rate typed on the node; the report and the file's config show both; the run
    really trains with the recipe's constant schedule."""
    prompt = train_prompt("sd15", dataset_dir, "recipe_quick", steps=3, batch_size=1, recipe="quick test")
    result = comfy.run(prompt)
    report = result.ui["3"]["text"][0].splitlines()
    assert "recipe quick test: set schedule constant, validation_steps 8" in report
    assert "recipe left your values: steps 3, learning_rate 0.002" in report
    with safetensors.safe_open(comfy.captured["recipe_quick_path"], framework="pt") as handle:
        meta = handle.metadata()
    config = json.loads(meta["lookdev.config"])
    assert (config["recipe"], config["schedule"], config["validation_steps"]) == ("quick test", "constant", 8)
    assert (config["steps"], config["learning_rate"], config["rank"]) == (3, 2e-3, 4)
    assert meta["ss_lr_scheduler"] == "constant"
    lrs = [event["lr"] for event in result.events_named("lookdev.train.progress")]
    assert len(lrs) == 3 and max(lrs) == min(lrs) == pytest.approx(2e-3)  # cosine would decay it


def test_recipe_without_recipe_input_is_custom(sd15_run):
    """A prompt saved before recipes existed (no recipe input) trains exactly as set: no recipe line."""
    result, _, _ = sd15_run
    assert not [line for line in result.ui["3"]["text"][0].splitlines() if line.startswith("recipe")]


def test_recipe_for_another_family_is_refused_before_any_work(comfy, dataset_dir):
    written_before = _files_under(comfy.output_dir / "lookdev") + _files_under(comfy.models_dir("loras"))
    result = comfy.run(train_prompt("sd15", dataset_dir, "recipe_wrong", recipe="SDXL style"), expect_error=True)
    message = result.error["exception_message"]
    assert message.startswith("recipe 'SDXL style' is for SDXL (ldm UNet, CLIP-L + CLIP-G) models, "
                              "but this model is Stable Diffusion 1.x")
    assert "Nothing was written" in message and "'SD1.5 style'" in message and "'quick test'" in message
    assert "'Flux style'" not in message.split("pick")[1]
    assert not result.events_named("lookdev.train.progress")
    assert _files_under(comfy.output_dir / "lookdev") + _files_under(comfy.models_dir("loras")) == written_before


# The trainer's inputs in the order they shipped. The editor stores widget values by position, so
# a saved workflow loads only while these keep their places: new inputs go after them.
SHIPPED_INPUTS = {
    "required": ["model", "clip", "vae", "dataset", "name", "steps", "learning_rate", "rank", "alpha", "batch_size",
                 "targets", "seed"],
    "optional": ["trigger", "algorithm", "optimizer", "schedule", "warmup_steps", "grad_accum", "dtype",
                 "gradient_checkpointing", "timestep_sampling", "noise_offset", "min_snr_gamma", "loss",
                 "caption_dropout", "shuffle_captions", "keep_tokens", "save_every", "validate_every",
                 "validation_steps", "validation_size", "resume", "save_dtype", "validation_prompts", "recipe"],
}


def test_shipped_trainer_inputs_keep_their_places_and_recipe_defaults_to_custom(comfy):
    inputs = comfy.node_class("LookDevTrainStyleLoRA").INPUT_TYPES()
    assert list(inputs["required"]) == SHIPPED_INPUTS["required"]
    optional = inputs["optional"]
    assert list(optional)[:len(SHIPPED_INPUTS["optional"])] == SHIPPED_INPUTS["optional"]
    assert list(optional)[len(SHIPPED_INPUTS["optional"]):] == ["multires_noise_iterations", "multires_noise_discount"]
    choices, options = optional["recipe"]
    assert options["default"] == "custom" and choices[0] == "custom"
    assert all(f"'{name}'" in options["tooltip"] for name in choices)


@pytest.mark.parametrize("name", ["targets", "timestep_sampling"])
def test_choice_tooltips_say_what_each_choice_does_and_when_to_pick_it(comfy, name):
    choices, options = comfy.node_class("LookDevTrainStyleLoRA").INPUT_TYPES()["required" if name == "targets"
                                                                                 else "optional"][name]
    tooltip = options["tooltip"]
    starts = [tooltip.find(f"'{choice}': ") for choice in choices]
    assert -1 not in starts and starts == sorted(starts), tooltip  # every choice explained, in menu order
    assert tooltip.count("Pick it") == len(choices), tooltip


def test_only_the_essential_trainer_inputs_are_basic(comfy):
    """name, steps, learning rate, rank, targets, seed and recipe show; every other widget input is
    `advanced` (folded by the frontend, still saved and queued); sockets are never advanced."""
    inputs = comfy.node_class("LookDevTrainStyleLoRA").INPUT_TYPES()
    basic = [name for group in ("required", "optional") for name, (_, options) in inputs[group].items()
             if not options.get("advanced")]
    assert basic == ["model", "clip", "vae", "dataset", "name", "steps", "learning_rate", "rank", "targets",
                     "seed", "recipe"]
    assert all(options["advanced"] is True for group in ("required", "optional")
               for name, (_, options) in inputs[group].items() if name not in basic)
