"""The pack loads in a real ComfyUI, every node documents its inputs, and the test host works."""

import subprocess
import sys
import textwrap

import pytest
import torch

import comfy_host
from conftest import ROOT

# Every node the pack ships. Node ids are part of saved workflows and never change.
SHIPPED_NODES = {
    "LookDevLoadDataset", "LookDevDatasetFromImages", "LookDevDatasetFromVideo", "LookDevCaptionDataset",
    "LookDevTrainStyleLoRA",
    "LookDevApplyLoRA", "LookDevLoRAStack", "LookDevApplyLoRAStack",
    "LookDevShotList", "LookDevStoryboardRender", "LookDevContactSheet", "LookDevAnimatic",
}


def pack_node_ids(mapping):
    return {node_id for node_id in mapping if node_id.startswith("LookDev") and not node_id.startswith("LookDevTest_")}


def test_trainer_imports_without_comfyui():
    """The library is usable outside ComfyUI: no module but comfy_bridge may import it."""
    code = textwrap.dedent(f"""
        import importlib, importlib.machinery, importlib.util, pkgutil, sys
        spec = importlib.machinery.ModuleSpec("lookdev", None, is_package=True)
        pack = importlib.util.module_from_spec(spec); pack.__path__ = [{str(ROOT)!r}]
        sys.modules["lookdev"] = pack
        import lookdev.trainer as trainer
        names = [m.name for m in pkgutil.walk_packages(trainer.__path__, "lookdev.trainer.")]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m == "comfy" or m.startswith("comfy.")
                        or m in ("folder_paths", "nodes", "server", "execution"))
        assert not leaked, leaked
        print(len(names))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 1


def test_pack_nodes_registered_in_process(comfy):
    assert pack_node_ids(comfy.nodes.NODE_CLASS_MAPPINGS) == SHIPPED_NODES


@pytest.mark.parametrize("arch", ["sd15", "sd15_v", "sdxl", "sd3"])
def test_tiny_models_sample_through_executor(comfy, arch):
    latent = ("EmptySD3LatentImage" if arch == "sd3" else "EmptyLatentImage")
    prompt = {
        "1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a lighthouse at dusk"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": latent, "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": 1, "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["6", 0], "label": f"image_{arch}"}},
    }
    comfy.run(prompt)
    image = comfy.captured[f"image_{arch}"]
    assert image.shape == (1, 64, 64, 3)
    assert torch.isfinite(image).all()
    # The random-weight denoiser must really use its conditioning (a dead network would not).
    prompt["2"]["inputs"]["text"] = "a crowded market at noon"
    comfy.run(prompt)
    assert not torch.equal(comfy.captured[f"image_{arch}"], image)


@pytest.mark.parametrize("arch", ["sd15", "sd15_v", "sdxl", "sd3", "auraflow", "flux_dev", "chroma", "zimage",
                                  "qwen_image", "flux2"])
def test_tiny_models_leave_no_tensor_uninitialised(comfy, monkeypatch, arch):
    """ComfyUI allocates weights and some fixed tables (MMDiT's pos_embed) with torch.empty and
    expects a checkpoint to fill them. Poison torch.empty with NaN: every parameter and buffer of
    a tiny model must still be finite, or a test's result depends on leftover memory."""
    tiny = comfy_host.tiny_models_module()
    if arch in tiny.MODEL_CLASS:
        try:
            tiny.model_class(arch)
        except tiny.MissingModelClass as missing:
            pytest.skip(str(missing))
    if arch == "flux2" and tiny.flux2_tokenizer_missing():
        pytest.skip(tiny.flux2_tokenizer_missing())
    real_empty = torch.empty

    def poisoned_empty(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        return out.fill_(float("nan")) if out.is_floating_point() else out

    monkeypatch.setattr(torch, "empty", poisoned_empty)
    built = tiny.build(arch, seed=0)
    monkeypatch.undo()
    parts = {"model": built.model.model.diffusion_model, "clip": built.clip.cond_stage_model,
             "vae": built.vae.first_stage_model}
    unfilled = sorted(f"{part}.{name}" for part, module in parts.items()
                      for name, tensor in [*module.named_parameters(), *module.named_buffers()]
                      if tensor.is_floating_point() and not tensor.float().isfinite().all())
    assert not unfilled, unfilled


def test_tiny_checkpoint_loads_through_stock_loader(comfy, tiny_checkpoint):
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tiny_checkpoint}},
        "2": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["1", 0], "label": "ckpt_model"}},
    }
    comfy.run(prompt)
    model = comfy.captured["ckpt_model"].model
    assert type(model).__name__ == "BaseModel"
    assert model.model_config.__class__.__name__ == "SD15"
    assert model.diffusion_model.model_channels == 320


@pytest.mark.server
def test_server_loads_pack_and_documents_every_input(server):
    lines = server.log().splitlines()
    failures = [line for line in lines if "LookDev" in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
    assert not failures, failures
    assert any("seconds:" in line and "custom_nodes/LookDev" in line for line in lines), "pack not in import log"
    info = server.get("/object_info").json()
    ours = pack_node_ids(info)
    assert ours == SHIPPED_NODES
    for node_id in ours:
        spec = info[node_id]
        assert spec["category"].startswith("LookDev"), node_id
        assert spec.get("description"), f"{node_id} has no description"
        for section in ("required", "optional"):
            for name, entry in spec["input"].get(section, {}).items():
                options = entry[1] if len(entry) > 1 else {}
                assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"


@pytest.mark.server
def test_server_renders_tiny_checkpoint_with_core_nodes(server, tiny_checkpoint):
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tiny_checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "rain on a window, night"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "host_check"}},
    }
    entry = server.wait(server.queue(prompt))
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = entry["outputs"]["7"]["images"]
    assert len(images) == 1
    png = server.get(f"/view?filename={images[0]['filename']}&subfolder={images[0]['subfolder']}&type=output").content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
