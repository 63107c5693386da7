"""LookDev Train Style LoRA without surprises, through ComfyUI's executor: a Cancel anywhere keeps
the last completed step, resume continues only the same recipe, no LoRA is overwritten silently,
a deleted LoRA is made again, a rejected trainer input is no success, Unicode names and folders."""

import json
import unicodedata

import pytest
import safetensors
import torch
from test_train_node import TRIGGER, _scene, train_prompt

from lookdev.trainer.training.state import latest_checkpoint

# Steps 8; checkpoints every 3 and renders every 4, so the interrupted steps 4 and 5 are no save steps.
SETTINGS = dict(steps=8, save_every=3, validate_every=4, validation_prompts=f"{TRIGGER}, a pier",
                validation_steps=2, validation_size=64)


@pytest.fixture(scope="module")
def folder(comfy):
    root = comfy.input_dir / "reliab_set"
    if not root.exists():
        root.mkdir()
        for i in range(3):
            _scene(20 + i).save(root / f"shot_{i}.png")
            (root / f"shot_{i}.txt").write_text(f"a doorway, rain, lamp {i}")
    return "reliab_set"


def lora_file(comfy, name):
    return comfy.models_dir("loras") / f"{name}.safetensors"


def checkpoint_step(comfy, name):
    found = latest_checkpoint(comfy.output_dir / "lookdev" / name / "checkpoints")
    return found[1]["step"] if found else None


@pytest.fixture(scope="module")
def straight(comfy, folder):
    comfy.run(train_prompt("sd15", folder, "rel_straight", **SETTINGS), fresh=True)
    return comfy.captured["rel_straight_lora"].tensors


def _trainer_step_tracker(comfy, seen, when=None):
    """Follows the trainer's progress bar; presses Cancel from inside ComfyUI's progress hook when
    `when(value, total)` (the hook raises right there, as main.py's does)."""
    def listen(value, total, node_id):
        if total == SETTINGS["steps"]:
            seen["step"] = value
        if when is not None and when(value, total):
            comfy.nodes.interrupt_processing(True)

    comfy.progress_listeners.append(listen)
    return lambda: comfy.progress_listeners.remove(listen)


def _in_a_forward(comfy, when):
    """Cancel pressed as the UNet starts a forward for which `when(training, trainer step, training
    forwards so far)` holds: ComfyUI's own layers (comfy.ops) raise on their next operation."""
    block = comfy.tiny_bundle("sd15").model.model.diffusion_model.middle_block[0]
    seen = {"step": 0, "calls": 0}

    def press(module, args):
        training = torch.is_grad_enabled()  # validation renders run without gradients
        seen["calls"] += training
        if when(training, seen["step"], seen["calls"]):
            comfy.nodes.interrupt_processing(True)

    handle = block.register_forward_pre_hook(press)
    stop_tracking = _trainer_step_tracker(comfy, seen)

    def remove():
        handle.remove()
        stop_tracking()
    return remove


CANCELS = {
    # where the Cancel lands: (install it, the last completed step)
    "inside a training forward": (lambda comfy: _in_a_forward(comfy, lambda train, step, calls: train and calls == 6), 5),
    "in the trainer's progress hook": (lambda comfy: _trainer_step_tracker(comfy, {}, lambda v, t: t == 8 and v == 5), 5),
    "during a validation render": (lambda comfy: _in_a_forward(comfy, lambda train, step, calls: not train and step == 4), 4),
    "during the final renders": (lambda comfy: _in_a_forward(comfy, lambda train, step, calls: not train and step == 8), 8),
}


@pytest.mark.parametrize("where", list(CANCELS))
def test_cancel_anywhere_resumes_bit_identical(comfy, folder, straight, where):
    install, done = CANCELS[where]
    name = "rel_cancel_" + where.split()[-1]
    remove = install(comfy)
    try:
        result = comfy.run(train_prompt("sd15", folder, name, **SETTINGS), fresh=True, expect_error=True)
    finally:
        remove()
    assert result.interrupted
    assert checkpoint_step(comfy, name) == done  # whatever save_every is
    assert lora_file(comfy, name).exists() == (done == 8)  # saved before the final renders

    resumed = comfy.run(train_prompt("sd15", folder, name, **SETTINGS), fresh=True)
    progress = resumed.events_named("lookdev.train.progress")
    assert [e["step"] for e in progress] == list(range(done + 1, 9))
    assert f"steps {done} -> 8" in resumed.ui["3"]["text"][0]
    tensors = comfy.captured[f"{name}_lora"].tensors
    assert tensors.keys() == straight.keys()
    for key in straight:
        assert torch.equal(tensors[key], straight[key]), key


def test_resume_refuses_another_recipe_and_lists_the_differences(comfy, folder):
    name = "rel_recipe"
    comfy.run(train_prompt("sd15", folder, name, steps=3), fresh=True)
    first = lora_file(comfy, name).read_bytes()

    result = comfy.run(train_prompt("sd15", folder, name, steps=3, seed=8, learning_rate=1e-3, rank=8),
                       fresh=True, expect_error=True)
    message = result.error["exception_message"]
    for words in ("cannot resume LoRA 'rel_recipe'", "seed: 7 in the checkpoint, 8 now", "learning_rate:",
                  "rank: 4 in the checkpoint, 8 now", "new name", "turn resume off"):
        assert words in message, message
    assert "alpha" not in message and "dataset" not in message  # only what differs
    assert lora_file(comfy, name).read_bytes() == first  # nothing written

    other = comfy.input_dir / "reliab_recaptioned"
    other.mkdir()
    for i in range(3):
        _scene(20 + i).save(other / f"shot_{i}.png")
        (other / f"shot_{i}.txt").write_text(f"a doorway at night, lamp {i}")  # only the captions differ
    result = comfy.run(train_prompt("sd15", "reliab_recaptioned", name, steps=3), fresh=True, expect_error=True)
    assert "dataset: its images, captions" in result.error["exception_message"]

    # Way out: resume off. The old recipe's LoRA keeps its bytes as a .bak; the report says so.
    result = comfy.run(train_prompt("sd15", folder, name, steps=3, seed=8, resume=False), fresh=True)
    backup = lora_file(comfy, name).with_name(f"{name}.safetensors.bak")
    assert backup.read_bytes() == first
    assert f"as {backup.name}" in result.ui["3"]["text"][0]
    with safetensors.safe_open(str(lora_file(comfy, name)), framework="pt") as handle:
        assert handle.metadata()["ss_seed"] == "8"  # the metadata describes the weights in the file

    # More steps of the same recipe continue it, and overwrite its own file without a backup.
    result = comfy.run(train_prompt("sd15", folder, name, steps=5, seed=8), fresh=True)
    assert "steps 3 -> 5" in result.ui["3"]["text"][0] and ".bak" not in result.ui["3"]["text"][0]
    assert not backup.with_name(f"{name}.safetensors.bak2").exists()
    # Fewer steps than the checkpoint holds cannot be made from it.
    result = comfy.run(train_prompt("sd15", folder, name, steps=2, seed=8), fresh=True, expect_error=True)
    assert "steps: the checkpoint has 5 steps done, this run asks for 2" in result.error["exception_message"]


def test_a_foreign_lora_of_that_name_keeps_its_bytes(comfy, folder):
    name = "rel_foreign"
    path = lora_file(comfy, name)
    foreign = safetensors.torch.save({"lora_unet_x.lora_up.weight": torch.ones(2, 2)}, metadata={"made": "elsewhere"})
    path.write_bytes(foreign)
    result = comfy.run(train_prompt("sd15", folder, name, steps=1), fresh=True)
    assert path.with_name(f"{name}.safetensors.bak").read_bytes() == foreign
    assert f"kept the existing {name}.safetensors (not made by this recipe) as {name}.safetensors.bak" \
        in result.ui["3"]["text"][0]
    path.write_bytes(foreign)  # again: a second backup, the first one kept
    comfy.run(train_prompt("sd15", folder, name, steps=1, resume=False), fresh=True)
    assert path.with_name(f"{name}.safetensors.bak2").read_bytes() == foreign


def test_a_deleted_lora_is_made_again_from_the_same_prompt(comfy, folder):
    from dataset_prompts import cached_nodes

    name = "rel_deleted"
    prompt = train_prompt("sd15", folder, name, steps=2)
    comfy.run(prompt, fresh=True)
    path = lora_file(comfy, name)
    made = path.read_bytes()
    assert "3" in cached_nodes(comfy.run(prompt))  # unchanged: ComfyUI's cache answers

    path.unlink()
    result = comfy.run(prompt)
    assert "3" not in cached_nodes(result) and path.exists()
    assert "steps 2 -> 2" in result.ui["3"]["text"][0]  # from the final checkpoint: no retraining
    assert safetensors.torch.load(path.read_bytes()).keys() == safetensors.torch.load(made).keys()
    assert "3" in cached_nodes(comfy.run(prompt))  # and cached again once it is back


def test_an_invalid_trainer_input_is_not_a_success(comfy, folder):
    prompt = train_prompt("sd15", folder, "rel_invalid", steps=2)
    prompt["3"]["inputs"]["rank"] = 0  # below the input's minimum
    result = comfy.run(prompt, fresh=True, expect_error=True)
    assert not result.success
    errors = result.messages[0][1]["node_errors"]
    assert "3" in errors and not lora_file(comfy, "rel_invalid").exists()

    # The dataset's preview still shows on its node in a prompt that runs.
    result = comfy.run(train_prompt("sd15", folder, "rel_invalid", steps=1), fresh=True)
    assert result.ui["2"]["images"][0]["filename"].startswith("lookdev_dataset")


def test_unicode_names_and_a_decomposed_dataset_folder(comfy):
    stored = unicodedata.normalize("NFD", "Référence noir")  # as a macOS unzip writes it
    root = comfy.input_dir / stored
    root.mkdir()
    for i in range(2):
        _scene(40 + i).save(root / f"plan_{i}.png")
    typed_folder = unicodedata.normalize("NFC", "Référence noir")
    assert not (comfy.input_dir / typed_folder).exists()  # the two spellings are different names here
    name = unicodedata.normalize("NFD", "フィルム Référence")  # typed decomposed: saved composed
    prompt = train_prompt("sd15", typed_folder, name, steps=1)
    comfy.run(prompt, fresh=True)
    assert lora_file(comfy, unicodedata.normalize("NFC", name)).exists()
    assert not lora_file(comfy, name).exists()

    for bad, words in (("a/b", "no folders"), ("tab\there", "use letters, digits (any script)"), ("é" * 61, "120 bytes")):
        result = comfy.run(train_prompt("sd15", typed_folder, bad, steps=1), fresh=True, expect_error=True)
        assert words in result.error["exception_message"]


def test_report_metadata_names_the_recipe(comfy, folder):
    comfy.run(train_prompt("sd15", folder, "rel_meta", steps=1), fresh=True)
    with safetensors.safe_open(str(lora_file(comfy, "rel_meta")), framework="pt") as handle:
        meta = handle.metadata()
    assert len(meta["lookdev.recipe"]) == 32 and meta["lookdev.made"] == "1"
    assert json.loads(meta["lookdev.config"])["seed"] == 7
