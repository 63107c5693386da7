"""The LoRA nodes in a real ComfyUI: same pixels as core LoraLoader chains, block weights, reports
for LoRAs that do not fit, file errors, the file memo, the trainer input, stack interop."""

import copy
import importlib
import json
import logging
import math
import os
import re
import sys
from types import SimpleNamespace

import pytest
import safetensors
import torch

from lora_files import ADAPTERS, adapter_tensors, write_lora
from lookdev.trainer.fileio import write_safetensors

TEXT = "a lighthouse at dusk"


@pytest.fixture(scope="module")
def pack(comfy):
    """The pack's modules as ComfyUI loaded them (not the tests' `lookdev` alias)."""
    nodes_module = sys.modules[comfy.node_class("LookDevApplyLoRA").__module__]
    root = nodes_module.__name__.rsplit(".nodes.", 1)[0]
    return SimpleNamespace(nodes=nodes_module, io=importlib.import_module(root + ".trainer.lora.io"))


def _register_test_nodes(comfy, pack):
    class LoraObject:
        """What the trainer will output: an io.LoraFile held in memory."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"path": ("STRING", {"tooltip": "a LoRA file"})}}

        RETURN_TYPES = ("LOOKDEV_LORA",)
        FUNCTION = "make"
        CATEGORY = "testing"

        def make(self, path):
            return (pack.io.read_lora(path),)

    class Stack:
        """A LORA_STACK as another pack builds it (lists of 3, "None" names)."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"entries": ("STRING", {"tooltip": "JSON list of [name, model, clip]"})}}

        RETURN_TYPES = ("LORA_STACK",)
        FUNCTION = "make"
        CATEGORY = "testing"

        def make(self, entries):
            return (json.loads(entries),)

    comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_LoraObject"] = LoraObject
    comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_Stack"] = Stack


@pytest.fixture(scope="module")
def loras(comfy, pack):
    """LoRA files in the loras folder for the tiny models: key -> file name."""
    _register_test_nodes(comfy, pack)
    folder = comfy.models_dir("loras")
    sd15 = comfy.tiny_bundle("sd15")
    files = {
        "style": write_lora(folder, "lookdev_t_style.safetensors", sd15, "sd15", seed=1,
                            trigger_words=("moody", "film grain")),
        "lens": write_lora(folder, "lookdev_t_lens.safetensors", sd15, "sd15", seed=2,
                           trigger_words=("anamorphic", "Moody")),
        "sdxl": write_lora(folder, "lookdev_t_sdxl.safetensors", comfy.tiny_bundle("sdxl"), "sdxl", seed=3),
        "sd3": write_lora(folder, "lookdev_t_sd3.safetensors", comfy.tiny_bundle("sd3"), "sd3", seed=4,
                          text_encoder=False),
    }
    return {key: path.name for key, path in files.items()}


def _render(prompt, model, clip, label, seed=5):
    """Add KSampler + VAEDecode on (model, clip) of the tiny sd15 node "1", captured as `label`."""
    prompt.update({
        "90": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": TEXT}},
        "91": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": ""}},
        "92": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "93": {"class_type": "KSampler", "inputs": {
            "model": model, "positive": ["90", 0], "negative": ["91", 0], "latent_image": ["92", 0],
            "seed": seed, "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "94": {"class_type": "VAEDecode", "inputs": {"samples": ["93", 0], "vae": ["1", 2]}},
        "95": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["94", 0], "label": label}},
    })
    return prompt


def _capture(prompt, node_id, output, label):
    prompt[f"c{node_id}_{output}"] = {"class_type": "LookDevTest_Capture",
                                      "inputs": {"value": [node_id, output], "label": label}}
    return prompt


def _tiny(arch="sd15"):
    return {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": arch}}}


def _apply(lora_name, strength_model=1.0, strength_clip=1.0, preset="all", weights="", model=("1", 0),
           clip=("1", 1), lora=None):
    inputs = {"model": list(model), "lora_name": lora_name, "strength_model": strength_model,
              "strength_clip": strength_clip, "block_preset": preset, "block_weights": weights}
    if clip is not None:
        inputs["clip"] = list(clip)
    if lora is not None:
        inputs["lora"] = list(lora)
    return {"class_type": "LookDevApplyLoRA", "inputs": inputs}


def _stack(rows, incoming=None):
    inputs = {}
    padded = list(rows) + [(False, "None", 1.0, 1.0)] * (4 - len(rows))
    for r, (on, name, strength_model, strength_clip) in enumerate(padded, start=1):
        inputs.update({f"on_{r}": on, f"lora_{r}": name, f"strength_model_{r}": strength_model,
                       f"strength_clip_{r}": strength_clip})
    if incoming is not None:
        inputs["lora_stack"] = list(incoming)
    return {"class_type": "LookDevLoRAStack", "inputs": inputs}


def _apply_stack(stack_ref, clip=("1", 1)):
    inputs = {"model": ["1", 0], "lora_stack": list(stack_ref)}
    if clip is not None:
        inputs["clip"] = list(clip)
    return {"class_type": "LookDevApplyLoRAStack", "inputs": inputs}


@pytest.fixture(scope="module")
def base_image(comfy, loras):
    comfy.run(_render(_tiny(), ["1", 0], ["1", 1], "base"))
    return comfy.captured["base"]


def _tensor_count(comfy, name):
    with safetensors.safe_open(str(comfy.models_dir("loras") / name), "pt") as fh:
        return len(list(fh.keys()))


def test_stack_renders_bit_identical_to_chained_core_lora_loaders(comfy, loras, base_image):
    style, lens = loras["style"], loras["lens"]
    prompt = _tiny()
    prompt["2"] = _stack([(True, style, 0.8, 1.0), (False, lens, 5.0, 5.0), (True, "None", 1.0, 1.0),
                          (True, lens, 0.6, -0.4)])
    prompt["3"] = _apply_stack(["2", 0])
    _capture(prompt, "3", 2, "stack_words")
    _capture(prompt, "3", 3, "stack_summary")
    comfy.run(_render(prompt, ["3", 0], ["3", 1], "stack"))

    core = _tiny()
    core["2"] = {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": style,
                                                        "strength_model": 0.8, "strength_clip": 1.0}}
    core["3"] = {"class_type": "LoraLoader", "inputs": {"model": ["2", 0], "clip": ["2", 1], "lora_name": lens,
                                                        "strength_model": 0.6, "strength_clip": -0.4}}
    comfy.run(_render(core, ["3", 0], ["3", 1], "core"))

    assert torch.equal(comfy.captured["stack"], comfy.captured["core"])
    assert not torch.equal(comfy.captured["stack"], base_image)
    assert comfy.captured["stack_words"] == "moody, film grain, anamorphic"
    summary = comfy.captured["stack_summary"]
    total = _tensor_count(comfy, style)
    assert f"1. [model 0.8, CLIP 1] {style}: {total} of {total} keys matched" in summary
    assert f"2. [model 0.6, CLIP -0.4] {lens}: {total} of {total} keys matched" in summary
    assert "warning" not in summary


def test_off_rows_and_zero_strengths_change_nothing(comfy, loras, base_image):
    style, lens = loras["style"], loras["lens"]
    prompt = _tiny()
    prompt["2"] = _stack([(False, style, 1.0, 1.0), (True, lens, 0.0, 0.0)])
    prompt["3"] = _apply_stack(["2", 0])
    prompt["4"] = _apply(style, 0.0, 0.0, model=("3", 0), clip=("3", 1))
    for node_id, label in (("3", "zero_stack"), ("4", "zero_apply")):
        _capture(prompt, node_id, 0, f"{label}_model")
        _capture(prompt, node_id, 1, f"{label}_clip")
    _capture(prompt, "2", 0, "zero_stack_list")
    _capture(prompt, "3", 3, "zero_summary")
    _capture(prompt, "4", 3, "zero_report")
    _capture(prompt, "4", 2, "zero_words")
    comfy.run(_render(prompt, ["4", 0], ["4", 1], "zero"))

    assert torch.equal(comfy.captured["zero"], base_image)
    assert comfy.captured["zero_stack_list"] == [(lens, 0.0, 0.0)]
    for label in ("zero_stack", "zero_apply"):
        assert comfy.captured[f"{label}_model"].patches == {}
        assert comfy.captured[f"{label}_clip"].patcher.patches == {}
    assert f"{lens}: strengths are 0, not applied" in comfy.captured["zero_summary"]
    assert comfy.captured["zero_report"] == f"{style}: strengths are 0, not applied"
    assert comfy.captured["zero_words"] == ""


def _patched_weight(model, key):
    comfy_lora = importlib.import_module("comfy.lora")
    weight = model.model.state_dict()[key].detach().clone().float()
    return comfy_lora.calculate_weight(model.patches[key], weight, key)


def _run_apply(comfy, label, **kwargs):
    prompt = _tiny()
    prompt["2"] = _apply(**kwargs)
    for output, what in enumerate(("model", "clip", "words", "report")):
        _capture(prompt, "2", output, f"{label}_{what}")
    comfy.run(prompt)
    return SimpleNamespace(**{what: comfy.captured[f"{label}_{what}"] for what in ("model", "clip", "words", "report")})


ZEROS_17 = ",".join(["0"] * 17)


@pytest.mark.parametrize("preset, weights", [("all", ZEROS_17), ("all", "BASE:0, IN:0, MID:0, OUT:0"),
                                             ("style only (OUT)", "BASE:0, OUT:0")])
def test_all_zero_block_weights_change_nothing(comfy, loras, base_image, preset, weights):
    prompt = _tiny()
    prompt["2"] = _apply(loras["style"], preset=preset, weights=weights)
    _capture(prompt, "2", 0, "bw0_model")
    _capture(prompt, "2", 1, "bw0_clip")
    comfy.run(_render(prompt, ["2", 0], ["2", 1], "bw0"))
    assert comfy.captured["bw0_model"].patches == {}
    assert comfy.captured["bw0_clip"].patcher.patches == {}
    assert torch.equal(comfy.captured["bw0"], base_image)


OUT = "diffusion_model.output_blocks."


# Inspire's SD1 vector names OUT03-OUT11; the tiny UNet's OUT00-OUT02 take BASE's value (0 here).
@pytest.mark.parametrize("preset, weights, kept", [
    ("all", "BASE:0, IN:0, MID:0", OUT),
    ("style only (OUT)", "BASE:0", OUT),
    ("all", "0,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1", OUT + "3."),
])
def test_out_only_block_weights_patch_only_output_blocks(comfy, loras, preset, weights, kept):
    full = _run_apply(comfy, "full", lora_name=loras["style"], strength_model=0.7)
    out = _run_apply(comfy, "out", lora_name=loras["style"], strength_model=0.7, preset=preset, weights=weights)
    kept_keys = {k for k in full.model.patches if k.startswith(kept)}
    assert kept_keys and set(full.model.patches) - kept_keys  # the LoRA touches other blocks too
    assert set(out.model.patches) == kept_keys
    assert out.clip.patcher.patches == {}
    for key in kept_keys:
        assert torch.equal(_patched_weight(out.model, key), _patched_weight(full.model, key)), key
    assert "blocks: BASE, IN01, IN03, MID, OUT00, OUT01, OUT02, OUT03" in out.report
    assert "block weights: BASE 0, IN01 0, IN03 0, MID 0" in out.report


def test_block_weights_scale_patches_per_block(comfy, loras):
    full = _run_apply(comfy, "full", lora_name=loras["style"])
    half = _run_apply(comfy, "half", lora_name=loras["style"], weights="MID:0.5, OUT01-OUT02:0.25")
    strengths = {key: [p[0] for p in patches] for key, patches in half.model.patches.items()}
    assert set(strengths) == set(full.model.patches)
    for key, values in strengths.items():
        expected = 0.5 if ".middle_block." in key else 0.25 if re.search(r"\.output_blocks\.[12]\.", key) else 1.0
        assert values == [expected], key


def test_sdxl_lora_on_sd15_reports_matches_and_the_mismatch(comfy, loras):
    name = loras["sdxl"]
    result = _run_apply(comfy, "xl", lora_name=name)
    total = _tensor_count(comfy, name)
    matched = re.search(rf"{re.escape(name)}: (\d+) of (\d+) keys matched", result.report)
    assert matched, result.report
    assert int(matched.group(2)) == total
    assert 0 < int(matched.group(1)) < total
    assert "keys have shapes that do not fit the model and were skipped" in result.report
    assert "looks made for SDXL (cross-attention width 2048" in result.report
    assert "the model is SD1.x" in result.report
    # Misfits never reach the model, where ComfyUI would only log an error per key.
    assert result.model.patches
    assert not any("attn2.to_k" in key or "attn2.to_v" in key for key in result.model.patches)


def test_text_encoder_keys_without_clip_are_reported(comfy, loras):
    result = _run_apply(comfy, "noclip", lora_name=loras["style"], clip=None)
    assert result.clip is None
    assert re.search(r"warning: \d+ text-encoder keys not applied: no CLIP connected", result.report)


def test_lora_matching_nothing_is_a_clear_error(comfy, loras):
    prompt = _tiny()
    prompt["2"] = _apply(loras["sd3"])
    _capture(prompt, "2", 0, "never")
    result = comfy.run(prompt, expect_error=True)
    message = result.error["exception_message"]
    total = _tensor_count(comfy, loras["sd3"])
    assert f"LoRA {loras['sd3']}: none of its {total} keys match this SD1.x model" in message
    assert "looks made for SD3 (joint_blocks keys" in message


def _write_bad(folder, case):
    if case == "truncated":
        good = (folder / "lookdev_t_style.safetensors").read_bytes()
        name = "lookdev_bad_truncated.safetensors"
        (folder / name).write_bytes(good[: len(good) // 2])
    elif case == "pickle renamed":
        name = "lookdev_bad_pickle.safetensors"
        torch.save({"x.lora_up.weight": torch.zeros(2, 2)}, folder / name)
    elif case == "pickle":
        name = "lookdev_bad_pickle.pt"
        torch.save({"x.lora_up.weight": torch.zeros(2, 2)}, folder / name)
    elif case == "empty":
        name = "lookdev_bad_empty.safetensors"
        (folder / name).write_bytes(b"")
    else:
        name = "lookdev_missing.safetensors"
    return name


@pytest.mark.parametrize("case, fragment", [
    ("truncated", "is truncated"),
    ("pickle renamed", "is a PyTorch pickle checkpoint"),
    ("pickle", "is not a .safetensors file. LookDev never loads pickle files"),
    ("empty", "is empty (0 bytes)"),
    ("missing", "is not in ComfyUI's loras folders"),
])
@pytest.mark.parametrize("via", ["apply", "stack"])
def test_bad_lora_files_are_clear_errors_and_never_unpickled(comfy, loras, monkeypatch, case, fragment, via):
    comfy_utils = importlib.import_module("comfy.utils")

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle loader was called")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(comfy_utils, "load_torch_file", refuse)
    name = _write_bad(comfy.models_dir("loras"), case)
    prompt = _tiny()
    if via == "apply" and case != "missing":
        prompt["2"] = _apply(name)
    else:  # a missing name cannot pass the dropdown's validation; it comes from another pack's stack
        prompt["s"] = {"class_type": "LookDevTest_Stack", "inputs": {"entries": json.dumps([[name, 1.0, 1.0]])}}
        prompt["2"] = _apply_stack(["s", 0])
    _capture(prompt, "2", 0, "never")
    result = comfy.run(prompt, expect_error=True)
    message = result.error["exception_message"]
    assert name in message and fragment in message, message
    assert "pickle loader was called" not in message


def test_files_are_read_once_per_run_and_again_when_changed(comfy, loras, pack, monkeypatch):
    folder = comfy.models_dir("loras")
    name = "lookdev_t_memo.safetensors"
    path = write_lora(folder, name, comfy.tiny_bundle("sd15"), "sd15", seed=7, trigger_words=("first",))
    reads = []
    real_read = pack.io.read_lora

    def counting_read(p):
        reads.append(p)
        return real_read(p)

    monkeypatch.setattr(pack.io, "read_lora", counting_read)
    prompt = _tiny()
    prompt["2"] = _apply(name, 0.5, 0.5)
    prompt["3"] = _apply(name, 0.25, 0.0, model=("2", 0), clip=("2", 1))
    prompt["4"] = _stack([(True, name, 0.5, 0.5), (True, name, 0.1, 0.1)])
    prompt["5"] = _apply_stack(["4", 0], clip=("3", 1))
    _capture(prompt, "2", 2, "memo_words")
    _capture(prompt, "5", 0, "memo_model")
    comfy.run(copy.deepcopy(prompt))  # a fresh prompt per run, as the server gets (the executor annotates it)
    assert len(reads) == 1
    assert comfy.captured["memo_words"] == "first"
    before = comfy.captured["memo_model"]

    stat = os.stat(path)
    write_lora(folder, name, comfy.tiny_bundle("sd15"), "sd15", seed=8, trigger_words=("second",))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    comfy.run(copy.deepcopy(prompt))
    assert len(reads) == 2
    assert comfy.captured["memo_words"] == "second"
    key = next(iter(before.patches))
    assert not torch.equal(_patched_weight(comfy.captured["memo_model"], key), _patched_weight(before, key))


@pytest.mark.parametrize("lora_name", ["style", "None"])
def test_trainer_lora_input_wins_over_the_file_name(comfy, loras, lora_name):
    lens_path = str(comfy.models_dir("loras") / loras["lens"])
    prompt = _tiny()
    prompt["t"] = {"class_type": "LookDevTest_LoraObject", "inputs": {"path": lens_path}}
    prompt["2"] = _apply(loras.get(lora_name, lora_name), 0.9, 0.3, lora=("t", 0))
    _capture(prompt, "2", 2, "mem_words")
    _capture(prompt, "2", 3, "mem_report")
    comfy.run(_render(prompt, ["2", 0], ["2", 1], "in_memory"))

    by_name = _tiny()
    by_name["2"] = _apply(loras["lens"], 0.9, 0.3)
    comfy.run(_render(by_name, ["2", 0], ["2", 1], "by_name"))
    assert torch.equal(comfy.captured["in_memory"], comfy.captured["by_name"])
    assert comfy.captured["mem_words"] == "anamorphic, Moody"
    assert comfy.captured["mem_report"].startswith(f"{loras['lens']}: ")


def test_stacks_from_other_packs_chain_in_order(comfy, loras):
    style, lens = loras["style"], loras["lens"]
    prompt = _tiny()
    prompt["s"] = {"class_type": "LookDevTest_Stack",
                   "inputs": {"entries": json.dumps([["None", 1, 1], [lens, 0.6, -0.4]])}}
    prompt["2"] = _stack([(True, style, 0.8, 1.0)], incoming=("s", 0))
    prompt["3"] = _stack([(True, lens, 0.2, 0.0)], incoming=("2", 0))
    _capture(prompt, "3", 0, "chained")
    comfy.run(prompt)
    assert comfy.captured["chained"] == [(lens, 0.6, -0.4), (style, 0.8, 1.0), (lens, 0.2, 0.0)]


@pytest.mark.parametrize("entry, fragment", [
    (["x.safetensors", 1.0], "lora_stack entry 1: a LORA_STACK entry is (lora_name, model_strength, clip_strength)"),
    (["x.safetensors", "strong", 1.0], "lora_stack entry 1: model strength must be a finite number"),
])
def test_malformed_incoming_stacks_are_clear_errors(comfy, loras, entry, fragment):
    prompt = _tiny()
    prompt["s"] = {"class_type": "LookDevTest_Stack", "inputs": {"entries": json.dumps([entry])}}
    prompt["2"] = _apply_stack(["s", 0])
    _capture(prompt, "2", 0, "never")
    result = comfy.run(prompt, expect_error=True)
    assert fragment in result.error["exception_message"]


@pytest.mark.server
def test_server_lists_the_lora_nodes_with_the_loras_dropdown(server, comfy, loras):
    folder = server.base / "models" / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / loras["style"]).write_bytes((comfy.models_dir("loras") / loras["style"]).read_bytes())
    info = server.get("/object_info").json()
    dropdowns = {
        "LookDevApplyLoRA": info["LookDevApplyLoRA"]["input"]["required"]["lora_name"],
        **{f"LookDevLoRAStack row {r}": info["LookDevLoRAStack"]["input"]["required"][f"lora_{r}"]
           for r in range(1, 5)},
    }
    for where, entry in dropdowns.items():
        assert entry[0][0] == "None" and loras["style"] in entry[0], where
        assert entry[1]["tooltip"], where
    assert info["LookDevApplyLoRAStack"]["input"]["required"]["lora_stack"][0] == "LORA_STACK"
    assert info["LookDevLoRAStack"]["output"] == ["LORA_STACK"]
    assert info["LookDevApplyLoRA"]["input"]["optional"]["lora"][0] == "LOOKDEV_LORA"
    for node_id in ("LookDevApplyLoRA", "LookDevLoRAStack", "LookDevApplyLoRAStack"):
        assert info[node_id]["category"] == "LookDev/LoRA"


# --- every adapter type is checked against the model before it is applied ------------------

def _write_adapter(comfy, name, tensors):
    write_safetensors(comfy.models_dir("loras") / name, {k: v.contiguous() for k, v in tensors.items()})
    return name


def _first_layer(tensors):
    return sorted(tensors)[0].rsplit(".", 2 if sorted(tensors)[0].endswith(".weight") else 1)[0]


def _fault(kind, tensors, layer):
    """Spoil `layer`'s tensors the way a LoRA made for another model (or a broken converter) does."""
    t = {k: v for k, v in tensors.items() if k.startswith(layer + ".")}
    if kind == "rank 0":
        t[f"{layer}.lora_down.weight"] = t[f"{layer}.lora_down.weight"][:0]
        t[f"{layer}.lora_up.weight"] = t[f"{layer}.lora_up.weight"][:, :0]
    elif kind in ("lora", "locon"):  # inner ranks differ (lora) / a 1x1 kernel for a 3x3 conv (locon)
        down = t[f"{layer}.lora_down.weight"]
        t[f"{layer}.lora_down.weight"] = down[:-1] if kind == "lora" else down[:, :, :1, :1]
    elif kind == "loha":
        t[f"{layer}.hada_w2_b"] = torch.cat([t[f"{layer}.hada_w2_b"]] * 2, dim=1)
    elif kind == "lokr":
        t[f"{layer}.lokr_w1"] = torch.ones(3, 3)
    elif kind == "dora":
        t[f"{layer}.dora_scale"] = torch.ones(t[f"{layer}.dora_scale"].shape[0] + 1, 1)
    else:
        t[f"{layer}.diff"] = torch.cat([t[f"{layer}.diff"]] * 2)
    return {**tensors, **t}


@pytest.mark.parametrize("kind", ADAPTERS)
def test_every_adapter_type_applies_as_core_lora_loader_does(comfy, loras, base_image, caplog, kind):
    tensors = adapter_tensors(comfy.tiny_bundle("sd15"), kind, seed=11)
    name = _write_adapter(comfy, f"lookdev_t_{kind}.safetensors", tensors)
    prompt = _tiny()
    prompt["2"] = _apply(name)
    _capture(prompt, "2", 3, f"{kind}_report")
    comfy.run(_render(prompt, ["2", 0], ["2", 1], f"{kind}_ours"))
    core = _tiny()
    core["2"] = {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": name,
                                                        "strength_model": 1.0, "strength_clip": 1.0}}
    with caplog.at_level(logging.ERROR):
        comfy.run(_render(core, ["2", 0], ["2", 1], f"{kind}_core"))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert torch.equal(comfy.captured[f"{kind}_ours"], comfy.captured[f"{kind}_core"])
    assert not torch.equal(comfy.captured[f"{kind}_ours"], base_image)
    report = comfy.captured[f"{kind}_report"]
    assert f"{name}: {len(tensors)} of {len(tensors)} keys matched" in report and "warning" not in report, report


@pytest.mark.parametrize("kind, reason", [
    ("lora", r"LoRA: lora_up (\d+)x4x1x1 does not fit lora_down 3x\1x1x1 \(inner rank\)"),
    ("rank 0", r"LoRA: lora_down has rank 0; a rank is at least 1"),
    ("locon", r"LoRA makes (\d+)x(\d+)x1x1 for weight \1x\2x3x3"),
    ("loha", r"LoHa: its two Hadamard factors differ \((\d+)x(\d+) and \1x(\d+)\)"),
    ("lokr", r"LoKr makes \d+x\d+ for weight \d+x\d+x1x1"),
    ("dora", r"DoRA scale (\d+)x1 for weight \d+x\d+"),
    ("diff", r"diff (\d+)x(\d+)x1x1 for weight \d+x\2x1x1"),
])
def test_adapters_that_do_not_fit_are_skipped_and_reported(comfy, loras, caplog, kind, reason):
    good = adapter_tensors(comfy.tiny_bundle("sd15"), "lora" if kind == "rank 0" else kind, seed=12)
    layer = _first_layer(good)
    name = _write_adapter(comfy, f"lookdev_t_misfit_{kind.replace(' ', '')}.safetensors", _fault(kind, good, layer))
    prompt = _tiny()
    prompt["2"] = _apply(name)
    _capture(prompt, "2", 0, f"misfit_{kind}_model")
    _capture(prompt, "2", 3, f"misfit_{kind}_report")
    with caplog.at_level(logging.ERROR):
        comfy.run(_render(prompt, ["2", 0], ["2", 1], f"misfit_{kind}"))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    report = comfy.captured[f"misfit_{kind}_report"]
    layer_tensors = sum(k.startswith(layer + ".") for k in good)
    assert f"{name}: {len(good) - layer_tensors} of {len(good)} keys matched" in report, report
    assert f"warning: {layer_tensors} keys have shapes that do not fit the model and were skipped" in report
    assert re.search(reason, report), report
    patched = comfy.captured[f"misfit_{kind}_model"].patches
    skipped = re.search(r"\(e\.g\. (diffusion_model\.\S+):", report).group(1)
    assert patched and skipped not in patched  # never handed to ComfyUI, which would log an error at sampling

    # Every layer spoilt: nothing fits, which is an error naming the file, also inside a stack.
    spoilt = good
    for each in sorted({k.rsplit(".", 2 if k.endswith(".weight") else 1)[0] for k in good}):
        spoilt = _fault(kind, spoilt, each)
    bad = _write_adapter(comfy, f"lookdev_t_allbad_{kind.replace(' ', '')}.safetensors", spoilt)
    prompt = _tiny()
    prompt["s"] = {"class_type": "LookDevTest_Stack",
                   "inputs": {"entries": json.dumps([[loras["style"], 1, 1], [bad, 1, 1]])}}
    prompt["2"] = _apply_stack(["s", 0])
    _capture(prompt, "2", 0, "never")
    message = comfy.run(prompt, expect_error=True).error["exception_message"]
    assert f"lora_stack entry 2 ({bad}): LoRA {bad}: none of its" in message and re.search(reason, message), message


@pytest.mark.parametrize("fault, fragment", [
    ("alpha", "holds 2 values (shape (2,)); an alpha is one number per layer"),
    ("inf", "holds 1 NaN or infinite values of"),
    ("nan", "holds 1 NaN or infinite values of"),
])
@pytest.mark.parametrize("via", ["apply", "stack"])
def test_bad_values_are_refused_naming_the_file_and_tensor(comfy, loras, fault, fragment, via):
    tensors = adapter_tensors(comfy.tiny_bundle("sd15"), "loha", seed=13)
    key = sorted(k for k in tensors if k.endswith(".alpha" if fault == "alpha" else ".hada_w1_a"))[0]
    if fault == "alpha":
        tensors[key] = torch.tensor([4.0, 4.0])
    else:
        tensors[key] = tensors[key].clone()
        tensors[key][0, 0] = math.inf if fault == "inf" else math.nan
    name = _write_adapter(comfy, f"lookdev_t_values_{fault}.safetensors", tensors)
    prompt = _tiny()
    if via == "apply":
        prompt["2"] = _apply(name)
    else:
        prompt["s"] = {"class_type": "LookDevTest_Stack", "inputs": {"entries": json.dumps([[name, 1, 1]])}}
        prompt["2"] = _apply_stack(["s", 0])
    _capture(prompt, "2", 0, "never")
    message = comfy.run(prompt, expect_error=True).error["exception_message"]
    assert f"LoRA {name}: {key} {fragment}" in message, message
    assert via == "apply" or message.startswith(f"lora_stack entry 1 ({name}): ")


def test_block_weights_naming_missing_blocks_are_reported(comfy, loras):
    result = _run_apply(comfy, "idle", lora_name=loras["style"], weights="IN04:0, OUT12:0.5, IN02:0, OUT01:0.5")
    assert ("warning: block weight 'IN04:0' changes nothing: this model has no block IN04 "
            "(its blocks: BASE, IN00-IN03, MID, OUT00-OUT03)") in result.report, result.report
    assert "warning: block weight 'OUT12:0.5' changes nothing: this model has no block OUT12" in result.report
    assert "warning: block weight 'IN02:0' changes nothing: the LoRA has no layers in IN02" in result.report
    assert not [line for line in result.report.splitlines() if line.startswith("warning") and "OUT01" in line]
    assert "block weights: OUT01 0.5" in result.report


@pytest.mark.parametrize("weights, fragment", [
    ("IN01:1e6", "block weight 'IN01:1e6': 1e+06 is outside the valid range -10 to 10"),
    ("OUT:nan", "block weight 'OUT:nan': 'nan' is not a number; block weights are numbers from -10 to 10"),
])
def test_absurd_block_weights_are_refused_with_the_range(comfy, loras, weights, fragment):
    prompt = _tiny()
    prompt["2"] = _apply(loras["style"], weights=weights)
    _capture(prompt, "2", 0, "never")
    assert fragment in comfy.run(prompt, expect_error=True).error["exception_message"]
