"""Flux.1 dev (distilled guidance), Flux.1 schnell, Chroma, Z-Image, Qwen-Image and Flux.2 end to end through
ComfyUI's executor on tiny models built from ComfyUI's own classes (scripts/tiny_models.py): training, the
saved file, core LoraLoader, Apply LoRA and Storyboard Render. A family whose model class this
ComfyUI lacks is skipped, naming the class; Flux.2 also where ComfyUI cannot build its tokenizer
(the transformers it needs), naming the reason. Every Flux.2 test has 'flux2' in its id."""

import json
import logging
import time

import pytest
import safetensors
import safetensors.torch
import torch

from lookdev.trainer.training.state import latest_checkpoint, load_checkpoint
from test_train_node import _eval_loss, _scene

FLUX = ("flux_dev", "flux_schnell", "chroma")
FAMILY = (*FLUX, "zimage", "qwen_image", "flux2")
MODELSPEC = {"flux_dev": "flux-1-dev", "flux_schnell": "flux-1-schnell", "chroma": "chroma", "zimage": "z-image",
             "qwen_image": "Qwen-Image", "flux2": "Flux.2-dev"}
LOOKDEV_ARCH = {"flux_dev": "flux", "flux_schnell": "flux", "chroma": "flux", "zimage": "zimage",
                "qwen_image": "qwen_image", "flux2": "flux2"}
# The empty latent of each family's core graph where it is not EmptySD3LatentImage (16 channels at 1/8).
EMPTY_LATENT = {"flux2": "EmptyFlux2LatentImage"}


def _missing(arch):
    """Why this ComfyUI cannot build the family (its model class is absent), or ''."""
    import comfy_host

    tiny = comfy_host.tiny_models_module()
    if arch not in tiny.MODEL_CLASS:
        return ""
    try:
        tiny.model_class(arch)
    except tiny.MissingModelClass as exc:
        return str(exc)
    return ""


def _need(arch):
    if _missing(arch):
        pytest.skip(_missing(arch))
    if arch == "flux2":
        missing = __import__("comfy_host").tiny_models_module().flux2_tokenizer_missing()
        if missing:
            pytest.skip(missing)

TRIGGER = "lkdv noir"
CAPTION = "a figure in an alley"


@pytest.fixture(scope="module")
def dataset_dir(comfy):
    folder = comfy.input_dir / "flux_noir"
    if not folder.exists():
        folder.mkdir(parents=True)
        for i in range(3):
            _scene(i, 128).save(folder / f"alley_{i}.png")
            (folder / f"alley_{i}.txt").write_text(f"{CAPTION}, rain, lamp {i}")
    return "flux_noir"


def train_prompt(arch, name, **settings):
    inputs = {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "dataset": ["2", 0], "name": name,
              "steps": 24, "learning_rate": 3e-3, "rank": 8, "alpha": 8.0, "batch_size": 2,
              "targets": "attention + feed-forward", "seed": 7, "timestep_sampling": "logit-normal",
              "caption_dropout": 0.0, "save_dtype": "fp32"}
    inputs.update(settings)
    return {
        "1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
        "2": {"class_type": "LookDevLoadDataset", "inputs": {
            "folder": "flux_noir", "trigger": TRIGGER, "resolution": "custom", "custom_resolution": 128,
            "no_upscale": False, "repeats": 1, "recursive": True, "caption_extension": "txt"}},
        "3": {"class_type": "LookDevTrainStyleLoRA", "inputs": inputs},
        "4": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["3", 0], "label": f"{name}_model"}},
        "5": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["3", 2], "label": f"{name}_path"}},
        "6": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": f"{name}_data"}},
    }


# Per-family training settings over train_prompt's; Z-Image's schedule (shift 3) puts most
# steps at high noise, where the loss moves slowly, so it gets more steps.
RUN_SETTINGS = {"zimage": {"steps": 48, "learning_rate": 5e-3}, "qwen_image": {"steps": 48, "learning_rate": 1e-2},
                "flux2": {"steps": 48, "learning_rate": 1e-2}}


class _Runs(dict):
    """One training run per family (validation renders on), made when a test first asks for it."""

    def __init__(self, comfy):
        super().__init__()
        self.comfy = comfy

    def __missing__(self, arch):
        comfy, name = self.comfy, f"noir_{arch}"
        began = time.perf_counter()
        result = comfy.run(train_prompt(arch, name, **self.settings(arch)), fresh=True)
        seconds = time.perf_counter() - began
        base = comfy.tiny_bundle(arch)
        samples = comfy.captured[f"{name}_data"].samples
        run = {"name": name, "result": result, "seconds": seconds, "path": comfy.captured[f"{name}_path"],
               "before": _eval_loss(base.model, base.clip, base.vae, samples),
               "after": _eval_loss(comfy.captured[f"{name}_model"], base.clip, base.vae, samples)}
        print(f"{arch}: {result.ui['3']['text'][0].splitlines()[1]}; run with validation renders {seconds:.1f}s; "
              f"eval loss {run['before']:.4f} -> {run['after']:.4f}")
        self[arch] = run
        return run

    @staticmethod
    def settings(arch):
        return {"validate_every": 12, "validation_prompts": f"{TRIGGER}, a pier", "validation_steps": 2,
                "validation_size": 64, **RUN_SETTINGS.get(arch, {})}


@pytest.fixture(scope="module")
def trained(comfy, dataset_dir):
    return _Runs(comfy)


@pytest.mark.parametrize("arch", FAMILY)
def test_training_lowers_the_evaluation_loss(trained, arch):
    _need(arch)
    run = trained[arch]
    assert run["after"] < 0.8 * run["before"], (run["before"], run["after"])
    previews = run["result"].events_named("lookdev.train.preview")
    steps = RUN_SETTINGS.get(arch, {}).get("steps", 24)
    assert [p["step"] for p in previews] == list(range(12, steps, 12))  # validation renders while training
    assert run["result"].ui["3"]["images"]  # and the final one on the node


@pytest.mark.parametrize("arch", FAMILY)
def test_file_has_kohya_names_and_the_family_metadata(trained, arch):
    _need(arch)
    with safetensors.safe_open(trained[arch]["path"], framework="pt") as handle:
        keys, meta = list(handle.keys()), handle.metadata()
    modules = {key.split(".")[0] for key in keys}
    print(f"{arch}: {len(keys)} tensors in the file")
    assert meta["modelspec.architecture"] == f"{MODELSPEC[arch]}/lora"
    assert meta["lookdev.architecture"] == LOOKDEV_ARCH[arch] and "modelspec.prediction_type" not in meta
    if arch == "zimage":
        assert {"lora_unet_layers_0_attention_qkv", "lora_unet_layers_1_feed_forward_w2",
                "lora_unet_noise_refiner_0_attention_out", "lora_unet_context_refiner_0_feed_forward_w1"} <= modules
        assert meta["modelspec.implementation"] == "https://github.com/Tongyi-MAI/Z-Image"
        assert "ss_base_model_version" not in meta
        return
    if arch == "flux2":  # Flux.1's block names; no per-block modulation, a gated MLP
        assert {f"lora_unet_double_blocks_{i}_{layer}" for i in (0, 1) for layer in (
            "img_attn_qkv", "img_attn_proj", "txt_attn_qkv", "txt_attn_proj", "img_mlp_0", "img_mlp_2",
            "txt_mlp_0", "txt_mlp_2")} | {f"lora_unet_single_blocks_{i}_linear{n}" for i in (0, 1) for n in (1, 2)} \
            == modules
        assert meta["modelspec.implementation"] == "https://github.com/black-forest-labs/flux2"
        assert "ss_base_model_version" not in meta
        return
    if arch == "qwen_image":  # both streams' attention and MLPs of every transformer block
        assert {f"lora_unet_transformer_blocks_{i}_{layer}" for i in (0, 1) for layer in (
            "attn_to_q", "attn_add_k_proj", "attn_to_out_0", "attn_to_add_out", "img_mlp_net_0_proj",
            "txt_mlp_net_2")} <= modules
        assert all(m.startswith("lora_unet_transformer_blocks_") for m in modules)
        assert meta["modelspec.implementation"] == "https://github.com/QwenLM/Qwen-Image"
        assert "ss_base_model_version" not in meta
        return
    assert any(m.startswith("lora_unet_double_blocks_0_img_attn_qkv") for m in modules)
    assert any(m.startswith("lora_unet_double_blocks_1_txt_mlp_0") for m in modules)
    assert any(m.startswith("lora_unet_single_blocks_1_linear1") for m in modules)
    assert all(m.startswith(("lora_unet_double_blocks_", "lora_unet_single_blocks_")) for m in modules)
    assert meta["modelspec.implementation"] == "https://github.com/black-forest-labs/flux"
    assert meta["ss_base_model_version"] == "flux1"


def test_qwen_image_target_presets(comfy):
    """attention: both streams' q/k/v/out; + feed-forward: img_mlp / txt_mlp too; all linear: also
    the modulation and embedding layers; style blocks (heuristic): the image stream of the second
    half of the blocks."""
    _need("qwen_image")
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.targets import select_targets

    layers = bridge.named_layers(comfy.tiny_bundle("qwen_image").model)
    chosen = {preset: select_targets(layers, "qwen_image", preset) for preset in
              ("attention", "attention + feed-forward", "all linear and conv", "style blocks")}
    block = [f"attn.{n}" for n in ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                                   "to_add_out")]
    mlp = ["img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2"]
    assert sorted(chosen["attention"]) == sorted(f"transformer_blocks.{i}.{n}" for i in (0, 1) for n in block)
    assert sorted(chosen["attention + feed-forward"]) == sorted(f"transformer_blocks.{i}.{n}" for i in (0, 1)
                                                                for n in block + mlp)
    assert {"img_in", "txt_in", "proj_out", "transformer_blocks.0.img_mod.1"} <= set(chosen["all linear and conv"])
    assert sorted(chosen["style blocks"]) == sorted(f"transformer_blocks.1.{n}" for n in (
        "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "img_mlp.net.0.proj", "img_mlp.net.2"))


def test_flux2_target_presets(comfy):
    """attention: both streams' qkv/proj of the double blocks; + feed-forward: their gated MLPs and
    the single blocks' fused linear1/linear2; all linear: also the shared modulation layers (Flux.2
    has no per-block ones) and the embedders; style blocks (heuristic): the single blocks."""
    _need("flux2")
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training.targets import select_targets

    layers = bridge.named_layers(comfy.tiny_bundle("flux2").model)
    chosen = {preset: select_targets(layers, "flux2", preset) for preset in
              ("attention", "attention + feed-forward", "all linear and conv", "style blocks")}
    attention = [f"double_blocks.{i}.{s}_attn.{n}" for i in (0, 1) for s in ("img", "txt") for n in ("qkv", "proj")]
    mlp = [f"double_blocks.{i}.{s}_mlp.{n}" for i in (0, 1) for s in ("img", "txt") for n in (0, 2)]
    single = [f"single_blocks.{i}.linear{n}" for i in (0, 1) for n in (1, 2)]
    assert sorted(chosen["attention"]) == sorted(attention)
    assert sorted(chosen["attention + feed-forward"]) == sorted(attention + mlp + single)
    assert {"double_stream_modulation_img.lin", "double_stream_modulation_txt.lin", "single_stream_modulation.lin",
            "img_in", "txt_in", "final_layer.linear", *attention, *mlp, *single} <= set(chosen["all linear and conv"])
    assert not any(".img_mod." in p or ".modulation." in p for p in chosen["all linear and conv"])
    assert sorted(chosen["style blocks"]) == sorted(single)


def _render(model_ref, clip_ref, vae_ref, label, guidance=None, cfg=1.0, text=f"{TRIGGER}, a lighthouse", seed=5,
            steps=3, scheduler="simple", arch=None):
    positive = ["r1", 0]
    nodes = {
        "r1": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip_ref, "text": text}},
        "r2": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip_ref, "text": ""}},
        "r3": {"class_type": EMPTY_LATENT.get(arch, "EmptySD3LatentImage"),
               "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "r5": {"class_type": "VAEDecode", "inputs": {"samples": ["r4", 0], "vae": vae_ref}},
        "r6": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["r5", 0], "label": label}},
    }
    if guidance is not None:
        nodes["r7"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": ["r1", 0], "guidance": guidance}}
        positive = ["r7", 0]
    nodes["r4"] = {"class_type": "KSampler", "inputs": {
        "model": model_ref, "positive": positive, "negative": ["r2", 0], "latent_image": ["r3", 0], "seed": seed,
        "steps": steps, "cfg": cfg, "sampler_name": "euler", "scheduler": scheduler, "denoise": 1.0}}
    return nodes


@pytest.mark.parametrize("arch", FAMILY)
def test_file_through_core_loader_matches_the_trained_model(comfy, trained, arch, caplog):
    _need(arch)
    name = trained[arch]["name"]
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
              "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "strength_model": 1.0,
                                                                   "lora_name": f"{name}.safetensors"}}}
    prompt.update(_render(["2", 0], ["1", 1], ["1", 2], f"{arch}_from_file", arch=arch))
    with caplog.at_level(logging.WARNING):
        comfy.run(prompt, fresh=True)
    assert not [r for r in caplog.records if "lora key not loaded" in r.getMessage()]
    trained_graph = train_prompt(arch, name, **_Runs.settings(arch))
    trained_graph.update(_render(["3", 0], ["1", 1], ["1", 2], f"{arch}_in_memory", arch=arch))
    comfy.run(trained_graph)  # the training itself is ComfyUI's cached result
    base = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}}}
    base.update(_render(["1", 0], ["1", 1], ["1", 2], f"{arch}_base", arch=arch))
    comfy.run(base)
    assert torch.equal(comfy.captured[f"{arch}_from_file"], comfy.captured[f"{arch}_in_memory"])
    assert not torch.equal(comfy.captured[f"{arch}_from_file"], comfy.captured[f"{arch}_base"])


def _denoiser_outputs(comfy, arch, name, targets):
    """(peft adapters' output, the saved file's output through ComfyUI, the base model's output) of
    the denoiser at one noise level, for the run `name`."""
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.lora.keys import kohya_names
    from lookdev.trainer.training.adapters import AdapterSet
    from lookdev.trainer.training.config import TrainConfig
    from lookdev.trainer.training.targets import select_targets

    base = comfy.tiny_bundle(arch)
    path, _ = latest_checkpoint(comfy.output_dir / "lookdev" / name / "checkpoints")
    snapshot = load_checkpoint(path)
    config = TrainConfig(**{**snapshot.config, "validation_prompts": tuple(snapshot.config["validation_prompts"])})
    # the Wan VAE's latents have a time axis; Flux.2's VAE makes 128 channels
    shape = {"qwen_image": (1, 16, 1, 8, 8), "flux2": (1, 128, 8, 8)}.get(arch, (1, 16, 8, 8))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.6])
    outputs = {}
    for label, model in (("peft", base.model), ("file", comfy.captured[f"{name}_model"]), ("base", base.model)):
        with torch.no_grad(), bridge.training_session(model, base.clip, torch.float32) as den:
            cond = den.encode_captions([CAPTION])[CAPTION]
            if label == "peft":
                paths = select_targets(bridge.named_layers(model), LOOKDEV_ARCH[arch], targets)
                names = kohya_names(paths, LOOKDEV_ARCH[arch], bridge.lora_key_map(model))
                modules = dict(bridge.named_layers(model))
                adapters = AdapterSet({n: modules[p] for p, n in names.items()}, config.adapter_spec())
                adapters.load_adapter_state(snapshot.adapter_state)
                adapters.eval()
                with adapters.attach():
                    outputs[label] = den.denoise(x, sigma, [cond])
            else:
                outputs[label] = den.denoise(x, sigma, [cond])
    return outputs["peft"], outputs["file"], outputs["base"]


@pytest.mark.parametrize("arch", FAMILY)
@pytest.mark.parametrize("algorithm", ["lora", "loha"])
def test_saved_file_reproduces_the_trained_adapters(comfy, dataset_dir, arch, algorithm):
    _need(arch)
    name = f"exact_{arch}_{algorithm}"
    comfy.run(train_prompt(arch, name, steps=4, learning_rate=1e-2, algorithm=algorithm), fresh=True)
    peft, from_file, base = _denoiser_outputs(comfy, arch, name, "attention + feed-forward")
    change = (peft - base).abs().max().item()
    error = (peft - from_file).abs().max().item()
    assert change > 1e-3, "training changed nothing to compare"
    assert error <= 1e-4 * change + 1e-6, (error, change)


@pytest.mark.parametrize("arch", ["flux_dev", "chroma", "flux2"])
def test_gradient_checkpointing_trains_the_same_adapters(comfy, dataset_dir, arch):
    """Flux blocks add to their input in place; checkpointed, each block runs on a copy of its
    inputs so its recomputation starts from the tensor it first saw: the same LoRA as without."""
    _need(arch)
    files = {}
    for checkpointing in (False, True):
        name = f"ckpt_{arch}_{checkpointing}"
        comfy.run(train_prompt(arch, name, steps=3, gradient_checkpointing=checkpointing), fresh=True)
        files[checkpointing] = safetensors.torch.load_file(comfy.captured[f"{name}_path"])
    assert files[True].keys() == files[False].keys()
    for key, value in files[False].items():
        assert torch.allclose(files[True][key], value, rtol=1e-5, atol=1e-7), key
    assert any(not torch.all(v == 0) for k, v in files[True].items() if "lora_up" in k)


def _apply(lora_name, preset="all", weights="", model=("1", 0)):
    return {"class_type": "LookDevApplyLoRA", "inputs": {
        "model": list(model), "lora_name": lora_name, "strength_model": 1.0, "strength_clip": 0.0,
        "block_preset": preset, "block_weights": weights}}


def _stack_nodes(lora_name):
    rows = {}
    for r in range(1, 5):
        rows.update({f"on_{r}": r == 1, f"lora_{r}": lora_name if r == 1 else "None",
                     f"strength_model_{r}": 1.0, f"strength_clip_{r}": 0.0})
    return {"s1": {"class_type": "LookDevLoRAStack", "inputs": rows},
            "s2": {"class_type": "LookDevApplyLoRAStack", "inputs": {"model": ["1", 0], "lora_stack": ["s1", 0]}}}


def _apply_and_render(comfy, arch, node, label, extra=None):
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}}, "2": node, **(extra or {})}
    prompt["9"] = {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 3], "label": f"{label}_report"}}
    prompt.update(_render(["2", 0], ["1", 1], ["1", 2], label, arch=arch))
    comfy.run(prompt)
    return comfy.captured[label], comfy.captured[f"{label}_report"]


@pytest.mark.parametrize("arch", FAMILY)
def test_apply_lora_block_presets_and_stack(comfy, trained, arch):
    _need(arch)
    lora = f"{trained[arch]['name']}.safetensors"
    full, report = _apply_and_render(comfy, arch, _apply(lora), f"{arch}_all")
    assert f"{trained[arch]['name']}" in report and "keys matched" in report
    stacked, _ = _apply_and_render(comfy, arch, _stack_nodes(lora)["s2"], f"{arch}_stacked",
                                   extra={"s1": _stack_nodes(lora)["s1"]})
    assert torch.equal(stacked, full)
    if arch == "zimage":  # blocks by index: L (layers), NR / CR (refiners); BASE holds t_embedder.mlp
        comfy.run({"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
                   **_render(["1", 0], ["1", 1], ["1", 2], f"{arch}_plain", arch=arch)})
        off, _ = _apply_and_render(comfy, arch, _apply(lora, "all", "BASE:0, L:0, NR:0, CR:0"), f"{arch}_off")
        late, _ = _apply_and_render(comfy, arch, _apply(lora, "all", "BASE:0, L00:0, NR:0, CR:0"), f"{arch}_late")
        assert torch.equal(off, comfy.captured[f"{arch}_plain"])
        assert not torch.equal(late, off) and not torch.equal(late, full)
        return
    if arch == "qwen_image":  # blocks by index: T (transformer_blocks)
        comfy.run({"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
                   **_render(["1", 0], ["1", 1], ["1", 2], f"{arch}_plain", arch=arch)})
        off, _ = _apply_and_render(comfy, arch, _apply(lora, "all", "T:0"), f"{arch}_off")
        late, _ = _apply_and_render(comfy, arch, _apply(lora, "all", "T00:0"), f"{arch}_late")
        early, _ = _apply_and_render(comfy, arch, _apply(lora, "all", "T01:0"), f"{arch}_early")
        assert torch.equal(off, comfy.captured[f"{arch}_plain"])
        assert len({off.sum().item(), late.sum().item(), early.sum().item(), full.sum().item()}) == 4
        return
    double, _ = _apply_and_render(comfy, arch, _apply(lora, "double blocks only"), f"{arch}_double")
    single, _ = _apply_and_render(comfy, arch, _apply(lora, "single blocks only"), f"{arch}_single")
    by_name, _ = _apply_and_render(comfy, arch, _apply(lora, "all", "D:1, S:0"), f"{arch}_d1s0")
    off, _ = _apply_and_render(comfy, arch, _apply(lora, "all", "D:0, S:0"), f"{arch}_off")
    comfy.run({"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
               **_render(["1", 0], ["1", 1], ["1", 2], f"{arch}_plain", arch=arch)})
    assert torch.equal(double, by_name)  # the preset is the D/S block weights it names
    assert torch.equal(off, comfy.captured[f"{arch}_plain"])
    assert not torch.equal(double, full) and not torch.equal(single, full) and not torch.equal(double, single)


def test_a_lora_for_another_family_is_named_both_ways(comfy):
    from lora_files import write_lora

    sd15_lora = write_lora(comfy.models_dir("loras"), "lookdev_t_sd15_for_flux.safetensors",
                           comfy.tiny_bundle("sd15"), "sd15", text_encoder=False).name
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "flux_dev"}}, "2": _apply(sd15_lora),
              "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": "mismatch"}}}
    message = comfy.run(prompt, fresh=True, expect_error=True).error["exception_message"]
    assert "this Flux model" in message and "The LoRA looks made for SD1.x" in message
    assert "but the model is Flux: use it with SD1.x models" in message


# Flux.1 dev samples with distilled guidance (Storyboard Render's guidance, FluxGuidance on the
# prompt) and no CFG (cfg 1); schnell: cfg 1, and the guidance input changes nothing; Chroma and
# Z-Image: real CFG, no FluxGuidance in the core graph (Storyboard Render's guidance is ignored).
# Qwen-Image: ComfyUI's template, ModelSamplingAuraFlow shift 3.1 then KSampler cfg 2.5. Flux.2
# dev: distilled guidance as Flux.1 dev (FluxGuidance, cfg 1) on EmptyFlux2LatentImage.
SAMPLING = {"flux_dev": (1.0, 3.5), "flux_schnell": (1.0, None), "chroma": (4.0, None), "zimage": (4.0, None),
            "qwen_image": (2.5, None), "flux2": (1.0, 3.5)}
AURAFLOW_SHIFT = {"qwen_image": 3.1}


def _storyboard(arch, lora, cfg, label, guidance=None, folder=None):
    model = ["2", 0]
    extra = {}
    if arch in AURAFLOW_SHIFT:  # the core template's sampling patch, between the LoRA and the sampler
        extra["2m"] = {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": model, "shift": AURAFLOW_SHIFT[arch]}}
        model = ["2m", 0]
    render = {"model": model, "clip": ["1", 1], "vae": ["1", 2], "shots": ["s", 0], "negative": "",
              "sampler": "euler", "scheduler": "simple", "steps": 3, "cfg": cfg, "aspect": "1:1",
              "base_resolution": 64, "width": 64, "height": 64, "folder": folder or f"flux_sb/{arch}"}
    if guidance is not None:
        render["guidance"] = guidance
    return {
        "1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
        "2": _apply(lora),
        "s": {"class_type": "LookDevShotList", "inputs": {
            "shots": f"SH010 | {TRIGGER}, a lighthouse | 5", "style_prefix": "", "style_suffix": "",
            "trigger_words": "", "seed_policy": "per-shot seeds", "base_seed": 0}},
        "r": {"class_type": "LookDevStoryboardRender", "inputs": render},
        "c": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["r", 0], "label": label}},
        **extra,
    }


@pytest.mark.parametrize("arch", FAMILY)
def test_storyboard_frames_equal_the_core_graph(comfy, trained, arch):
    """At the node's default guidance (3.5, FluxGuidance's default) on every family."""
    _need(arch)
    cfg, guidance = SAMPLING[arch]
    prompt = _storyboard(arch, f"{trained[arch]['name']}.safetensors", cfg, f"{arch}_frame")
    model = ["2m", 0] if arch in AURAFLOW_SHIFT else ["2", 0]
    prompt.update(_render(model, ["1", 1], ["1", 2], f"{arch}_core", guidance=guidance, cfg=cfg, arch=arch))
    comfy.run(prompt, fresh=True)
    frame, core = comfy.captured[f"{arch}_frame"], comfy.captured[f"{arch}_core"]
    assert frame.shape == core.shape == (1, 64, 64, 3)
    assert torch.equal(frame, core)
    assert (comfy.output_dir / "flux_sb" / arch / "SH010.png").exists()


@pytest.mark.parametrize("arch", ["flux_dev", "flux2"])
def test_storyboard_guidance_is_flux_guidance_on_distilled_models(comfy, trained, arch):
    """guidance 2.0 gives the frame of CLIPTextEncode -> FluxGuidance 2.0 -> KSampler cfg 1 at the
    same seed, unlike 3.5; the frame's metadata records it (Flux.1 dev and Flux.2 dev)."""
    from lookdev.trainer.render.pngmeta import read_lookdev_metadata

    _need(arch)
    lora = f"{trained[arch]['name']}.safetensors"
    prompt = _storyboard(arch, lora, 1.0, f"{arch}_g2", guidance=2.0, folder=f"flux_sb/{arch}_g2")
    prompt.update(_render(["2", 0], ["1", 1], ["1", 2], f"{arch}_core_g2", guidance=2.0, cfg=1.0, arch=arch))
    comfy.run(prompt, fresh=True)
    comfy.run(_storyboard(arch, lora, 1.0, f"{arch}_g35", guidance=3.5, folder=f"flux_sb/{arch}_g35"))
    frame, core, default = (comfy.captured[k] for k in (f"{arch}_g2", f"{arch}_core_g2", f"{arch}_g35"))
    assert torch.equal(frame, core)
    assert not torch.equal(frame, default)
    assert read_lookdev_metadata(comfy.output_dir / "flux_sb" / f"{arch}_g2" / "SH010.png").guidance == 2.0


@pytest.mark.parametrize("arch", ["flux_schnell", "chroma"])
def test_storyboard_guidance_changes_nothing_without_distilled_guidance(comfy, trained, arch):
    _need(arch)
    lora, cfg = f"{trained[arch]['name']}.safetensors", SAMPLING[arch][0]
    comfy.run(_storyboard(arch, lora, cfg, f"{arch}_g2", guidance=2.0, folder=f"flux_sb/{arch}_g2"), fresh=True)
    comfy.run(_storyboard(arch, lora, cfg, f"{arch}_g35", guidance=3.5, folder=f"flux_sb/{arch}_g35"))
    assert torch.equal(comfy.captured[f"{arch}_g2"], comfy.captured[f"{arch}_g35"])


# The CFG and guidance each family's validation renders use (its usual sampling).
VALIDATION_SAMPLING = {"flux_dev": (1.0, 3.5), "flux_schnell": (1.0, None), "chroma": (4.0, None),
                       "zimage": (1.0, None), "qwen_image": (2.5, None), "flux2": (1.0, 4.0)}


@pytest.mark.parametrize("arch", FAMILY)
def test_validation_renders_use_the_family_sampling(comfy, arch):
    """A validation render is the core graph at the family's usual CFG (Flux.1 dev: cfg 1 with
    FluxGuidance 3.5), not one CFG for every model."""
    from lookdev.trainer.training.config import TrainConfig
    from lookdev.trainer.training.run import render_validation

    _need(arch)
    cfg, guidance = VALIDATION_SAMPLING[arch]
    config = TrainConfig(validation_prompts=("{trigger}, a pier",), trigger=TRIGGER, validation_steps=2,
                         validation_size=64, validation_seed=11)
    base = comfy.tiny_bundle(arch)
    rendered = render_validation(config, base.clip, base.vae, base.model)
    core = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}}}
    core.update(_render(["1", 0], ["1", 1], ["1", 2], f"{arch}_validation_core", guidance=guidance, cfg=cfg,
                        text=f"{TRIGGER}, a pier", seed=11, steps=2, scheduler="normal", arch=arch))
    comfy.run(core, fresh=True)
    assert len(rendered) == 1 and torch.equal(rendered[0], comfy.captured[f"{arch}_validation_core"])


# (tokens, mu) at both ends of each family's resolution-dependent shift: Flux.1 dev as BFL's
# get_schedule (= ComfyUI's Flux schedule at 4096 tokens, 1024 px); Qwen-Image as diffusers'
# QwenImagePipeline scheduler (use_dynamic_shifting, base/max shift 0.5/0.9 at 256/8192 tokens),
# what musubi-tuner's qwen_shift trains with; Flux.2 as musubi-tuner's flux2_shift (Flux.1's line
# over one token per latent pixel: 4096 at 1024 px again).
RESOLUTION_SHIFT = {"flux_dev": (256, 0.5, 4096, 1.15), "qwen_image": (256, 0.5, 8192, 0.9),
                    "flux2": (256, 0.5, 4096, 1.15)}


@pytest.mark.parametrize("arch", FAMILY)
def test_timestep_shift_follows_the_image_size_where_the_family_does(comfy, arch):
    """Flux.1 dev, Qwen-Image and Flux.2 train with mu growing linearly with the image's token count;
    the other families keep their own schedule."""
    _need(arch)
    import math

    from lookdev.trainer import comfy_bridge as bridge

    u = torch.tensor([0.1, 0.5, 0.9])
    base = comfy.tiny_bundle(arch)
    latent = {"qwen_image": (1, 16, 1), "flux2": (1, 128)}.get(arch, (1, 16))  # Wan VAE latents: a time axis
    per_pixel = 16 if arch == "flux2" else 8  # image pixels per latent pixel
    with torch.no_grad(), bridge.training_session(base.model, base.clip, torch.float32) as den:
        own = den.sigmas(u)
        at_1024 = den.sigmas(u, (*latent, 1024 // per_pixel, 1024 // per_pixel))
        at_128 = den.sigmas(u, (*latent, 128 // per_pixel, 128 // per_pixel))
    if arch not in RESOLUTION_SHIFT:
        assert torch.equal(at_128, own) and torch.equal(at_1024, own)
        return
    t = den._t_lo + u * (den._t_hi - den._t_lo)
    x1, y1, x2, y2 = RESOLUTION_SHIFT[arch]
    for tokens, sigmas in ((64, at_128), (4096, at_1024)):
        mu = y1 + (y2 - y1) / (x2 - x1) * (tokens - x1)
        assert torch.allclose(sigmas, math.exp(mu) / (math.exp(mu) + (1 / t - 1)), atol=1e-6)
    assert (at_128 < at_1024).all()  # a small image is trained at less noise
    if arch == "flux_dev":
        assert torch.allclose(at_1024, own, atol=1e-6)


def test_a_flux_lora_on_z_image_is_named_both_ways(comfy, trained):
    _need("zimage")
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "zimage"}},
              "2": _apply(f"{trained['flux_dev']['name']}.safetensors"),
              "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": "mismatch_z"}}}
    message = comfy.run(prompt, fresh=True, expect_error=True).error["exception_message"]
    assert "this Z-Image model" in message and "The LoRA looks made for Flux" in message
    assert "but the model is Z-Image: use it with Flux models" in message


def test_flux_and_qwen_image_loras_are_named_both_ways(comfy, trained):
    _need("qwen_image")
    for model_arch, lora_arch, label in (("qwen_image", "flux_dev", "mismatch_q"),
                                         ("flux_dev", "qwen_image", "mismatch_f")):
        prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": model_arch}},
                  "2": _apply(f"{trained[lora_arch]['name']}.safetensors"),
                  "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 0], "label": label}}}
        message = comfy.run(prompt, fresh=True, expect_error=True).error["exception_message"]
        model, lora = ("Qwen-Image", "Flux") if model_arch == "qwen_image" else ("Flux", "Qwen-Image")
        assert f"this {model} model" in message and f"The LoRA looks made for {lora}" in message
        assert f"but the model is {model}: use it with {lora} models" in message


def test_flux_and_flux2_loras_are_named_both_ways(comfy, trained):
    """Flux.1 and Flux.2 share block names (and at the fixtures' width the attention layers fit
    both): the layers that do not fit are skipped and the report names both architectures."""
    _need("flux2")
    for model_arch, lora_arch, label in (("flux2", "flux_dev", "mismatch_f2"), ("flux_dev", "flux2", "mismatch_f1")):
        prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": model_arch}},
                  "2": _apply(f"{trained[lora_arch]['name']}.safetensors"),
                  "3": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 3], "label": label}}}
        comfy.run(prompt, fresh=True)
        report = comfy.captured[label]
        model, lora = ("Flux.2", "Flux") if model_arch == "flux2" else ("Flux", "Flux.2")
        assert "keys have shapes that do not fit the model and were skipped" in report
        assert f"The LoRA looks made for {lora} (" in report
        assert f"but the model is {model}: use it with {lora} models" in report


def _need_flux2():
    _need("flux2")


def test_flux2_tokenizer_from_a_text_encoder_file(comfy):
    """Flux.2's tokenizer comes from its text-encoder file: Mistral's tekken.json as a uint8 tensor
    `tekken_model`, which comfy.sd hands to the tokenizer as tokenizer_data. A Flux.2 fixture needs
    ComfyUI to build it from a tiny one; where it cannot, the reason is the skip message."""
    _need_flux2()
    import comfy.text_encoders.flux as flux_te

    tiny = __import__("comfy_host").tiny_models_module()
    tekken = torch.frombuffer(bytearray(tiny.tiny_tekken_json()), dtype=torch.uint8)
    tokenizer = flux_te.Flux2Tokenizer(tokenizer_data={"tekken_model": tekken})
    ids = {text: [t[0] for t in tokenizer.tokenize_with_weights(text)["mistral3_24b"][0]]
           for text in ("a noir street", "a red car")}
    assert ids["a noir street"] != ids["a red car"]
    # <s>, then ComfyUI's Flux.2 template with Mistral's control tokens at their ranks around the prompt:
    # [SYSTEM_PROMPT] 17 ... [/SYSTEM_PROMPT] 18 [INST] 3 a noir street [/INST] 4, each word one token.
    assert ids["a noir street"][:2] == [1, 17]
    assert ids["a noir street"][-6:-4] == [18, 3] and ids["a noir street"][-1] == 4
    assert min(ids["a noir street"][-4:-1]) >= tiny.TEKKEN_NUM_SPECIAL


def _flux2_render(label, text, guidance):
    """The core Flux.2 text-to-image graph with KSampler: CLIPTextEncode -> FluxGuidance ->
    KSampler cfg 1 on EmptyFlux2LatentImage -> VAEDecode; the conditioning captured too."""
    nodes = _render(["1", 0], ["1", 1], ["1", 2], label, guidance=guidance, text=text)
    nodes["r3"] = {"class_type": "EmptyFlux2LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    nodes["r8"] = {"class_type": "LookDevTest_Capture", "inputs": {"value": ["r1", 0], "label": f"{label}_cond"}}
    nodes["r9"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["r5", 0], "vae": ["1", 2]}}
    nodes["r10"] = {"class_type": "LookDevTest_Capture", "inputs": {"value": ["r9", 0], "label": f"{label}_latent"}}
    return {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "flux2"}}, **nodes}


def test_flux2_samples_through_ksampler(comfy):
    """The tiny Flux.2 (DiT from comfy.supported_models.Flux2, a 31-layer Mistral Small 3 read at
    layers 10, 20 and 30, the VAE's 128-channel latents at 1/16) renders through core nodes; the
    prompt and FluxGuidance (Flux.2 dev's distilled guidance) both steer the frame."""
    _need_flux2()
    tiny = __import__("comfy_host").tiny_models_module()
    for label, text, guidance in (("f2a", "a noir street", 4.0), ("f2b", "a red car", 4.0), ("f2c", "a noir street", 1.0)):
        comfy.run(_flux2_render(label, text, guidance))
    frames = {key: comfy.captured[key] for key in ("f2a", "f2b", "f2c")}
    cond = comfy.captured["f2a_cond"][0][0]
    assert cond.shape[-1] == 3 * tiny.TINY_MISTRAL3_WIDTH  # the three layers, side by side
    assert comfy.captured["f2a_latent"]["samples"].shape == (1, 128, 4, 4)  # VAEEncode: 128 channels at 1/16
    for frame in frames.values():
        assert frame.shape == (1, 64, 64, 3) and torch.isfinite(frame).all()
    assert not torch.equal(frames["f2a"], frames["f2b"])
    assert not torch.equal(frames["f2a"], frames["f2c"])


def test_tiny_tekken_reads_as_a_tekken_file(comfy, tmp_path):
    """The tiny tekken.json reads with transformers' own tekken reader (where it reads files):
    Flux.2's control tokens at Mistral's ranks, the words as single byte-level BPE tokens."""
    import inspect

    try:
        from transformers.integrations.mistral import MistralConverter
    except ImportError as exc:
        pytest.skip(f"this transformers has no tekken reader: {exc}")
    if "vocab_file" not in inspect.signature(MistralConverter.__init__).parameters:
        pytest.skip("this transformers' MistralConverter builds from a vocabulary, not a tekken.json file")
    tiny = __import__("comfy_host").tiny_models_module()
    path = tmp_path / "tekken.json"
    path.write_bytes(tiny.tiny_tekken_json())
    encoded = MistralConverter(vocab_file=str(path)).converted().encode(
        "[SYSTEM_PROMPT]x[/SYSTEM_PROMPT][INST]a noir street[/INST]", add_special_tokens=False)
    assert encoded.tokens == ["[SYSTEM_PROMPT]", "x", "[/SYSTEM_PROMPT]", "[INST]", "a", "Ġnoir", "Ġstreet",
                              "[/INST]"]
    assert encoded.ids[:4] == [17, 120 + tiny.TEKKEN_NUM_SPECIAL, 18, 3]


def test_missing_model_class_is_named(comfy):
    import comfy_host

    tiny = comfy_host.tiny_models_module()
    tiny.MODEL_CLASS["lookdev_absent"] = "NoSuchModel"
    try:
        with pytest.raises(tiny.MissingModelClass, match="this ComfyUI has no comfy.supported_models.NoSuchModel"):
            tiny.model_class("lookdev_absent")
        assert _missing("lookdev_absent") == "this ComfyUI has no comfy.supported_models.NoSuchModel"
    finally:
        del tiny.MODEL_CLASS["lookdev_absent"]


@pytest.mark.parametrize("arch", ("flux_dev", "zimage", "qwen_image", "flux2"))
def test_fp8_base_weights_train_and_the_lora_is_saved_in_bf16(comfy, dataset_dir, arch):
    """Base weights in fp8_e4m3fn as UNETLoader's weight_dtype loads them (each layer cast to the
    compute dtype as it runs): the loss falls, the base stays fp8, the file holds bf16."""
    _need(arch)
    name = f"noir_{arch}_fp8"
    comfy.run(train_prompt(f"{arch}_fp8", name, save_dtype="bf16", **RUN_SETTINGS.get(arch, {})), fresh=True)
    base = comfy.tiny_bundle(f"{arch}_fp8")
    linears = [m.weight for m in base.model.model.diffusion_model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and {w.dtype for w in linears} == {torch.float8_e4m3fn}
    samples = comfy.captured[f"{name}_data"].samples
    before = _eval_loss(base.model, base.clip, base.vae, samples)
    after = _eval_loss(comfy.captured[f"{name}_model"], base.clip, base.vae, samples)
    print(f"{arch} fp8 base: eval loss {before:.4f} -> {after:.4f}")
    assert after < 0.8 * before, (before, after)
    with safetensors.safe_open(comfy.captured[f"{name}_path"], framework="pt") as handle:
        dtypes = {key: handle.get_slice(key).get_dtype() for key in handle.keys()}
    assert {d for key, d in dtypes.items() if not key.endswith(".alpha")} == {"BF16"}
