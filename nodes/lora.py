"""LoRA nodes: apply one LoRA (a file or the trainer's output), build LORA_STACKs that flow to and
from Comfyroll, Efficiency and LoRA-Manager nodes, and apply a stack."""

import os

from ..trainer import comfy_bridge as bridge
from ..trainer.lora.apply import ApplyOptions, apply_source, apply_stack, choose_source
from ..trainer.lora.io import LoraFileCache
from ..trainer.lora.stack import NO_LORA, build_stack, normalize_stack
from .common import CATEGORY, LORA, LORA_STACK, from_config, tip

FAMILY = f"{CATEGORY}/LoRA"
STACK_ROWS = 4
_STRENGTH = {"min": -100.0, "max": 100.0, "step": 0.01}

# Memoization of read LoRA files, shared by every node so a file several nodes use is read once.
# Keyed by path, mtime and size, so an edited file is read again; bounded to a few files.
_LORA_FILES = LoraFileCache(max_entries=8)


def _lora_names():
    return [NO_LORA] + bridge.model_files("loras")


def _file_state(names):
    """What IS_CHANGED compares: the files' mtimes and sizes, so ComfyUI re-runs a node whose
    LoRA file was replaced under the same name."""
    state = []
    for name in names:
        path = None if name == NO_LORA else bridge.model_file_path("loras", name)
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        state.append((name, st.st_mtime_ns, st.st_size) if st else (name, None, None))
    return repr(state)


class _AppliesLoRAs:
    """What both apply nodes share: a patched MODEL and CLIP, trigger words and a report out."""

    CATEGORY = FAMILY
    FUNCTION = "execute"
    RETURN_TYPES = ("MODEL", "CLIP", "STRING", "STRING")


class LookDevApplyLoRA(_AppliesLoRAs):
    DISPLAY_NAME = "LookDev Apply LoRA"
    DESCRIPTION = ("Applies one LoRA (a file from the loras folder, or the LoRA the LookDev trainer just made) "
                   "to the model and CLIP through ComfyUI's own LoRA loading, optionally per block. Reports how "
                   "many of the LoRA's keys matched and why a LoRA does not fit the model.")
    RETURN_NAMES = ("model", "clip", "trigger_words", "report")
    OUTPUT_TOOLTIPS = ("The model with the LoRA applied.",
                       "The CLIP with the LoRA applied (empty when no CLIP is connected).",
                       "The LoRA's trigger words from its metadata, comma-separated: put them in the prompt.",
                       "How many keys matched, which blocks the LoRA touches, and warnings.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": tip("MODEL", "The diffusion model to apply the LoRA to."),
                "lora_name": tip(_lora_names(), "A LoRA file from ComfyUI's loras folder. Ignored when the "
                                                "lora input is connected."),
                "strength_model": from_config(ApplyOptions, "strength_model", **_STRENGTH),
                "strength_clip": from_config(ApplyOptions, "strength_clip", **_STRENGTH),
                "block_preset": from_config(ApplyOptions, "block_preset"),
                "block_weights": from_config(ApplyOptions, "block_weights", "STRING"),
            },
            "optional": {
                "clip": tip("CLIP", "The text encoder to apply the LoRA to; leave empty for a model-only LoRA."),
                "lora": tip(LORA, "A LoRA straight from the LookDev trainer; when connected it is used "
                                  "instead of lora_name."),
            },
        }

    @classmethod
    def IS_CHANGED(cls, lora_name=NO_LORA, **_):
        return _file_state([lora_name])

    def execute(self, model, lora_name, strength_model, strength_clip, block_preset, block_weights,
                clip=None, lora=None):
        options = ApplyOptions(strength_model, strength_clip, block_preset, block_weights)
        source = choose_source(lora_name, lora)
        applied = apply_source(model, clip, source, options, _LORA_FILES)
        return applied.model, applied.clip, ", ".join(applied.trigger_words), applied.report


class LookDevLoRAStack:
    DISPLAY_NAME = "LookDev LoRA Stack"
    CATEGORY = FAMILY
    DESCRIPTION = (f"Lists up to {STACK_ROWS} LoRAs with strengths as a LORA_STACK, after an optional incoming "
                   "stack, so stacks chain to any length. The stack works with Comfyroll, Efficiency and "
                   "LoRA-Manager stack nodes in both directions. Nothing is loaded here.")
    FUNCTION = "execute"
    RETURN_TYPES = (LORA_STACK,)
    RETURN_NAMES = ("lora_stack",)
    OUTPUT_TOOLTIPS = ("The incoming entries, then the rows that are on: (lora_name, model strength, "
                       "CLIP strength) each.",)

    @classmethod
    def INPUT_TYPES(cls):
        names = _lora_names()
        required = {}
        for row in range(1, STACK_ROWS + 1):
            required[f"on_{row}"] = tip("BOOLEAN", f"Include row {row} in the stack.", default=True)
            required[f"lora_{row}"] = tip(names, f"The LoRA of row {row}; None leaves the row out.")
            required[f"strength_model_{row}"] = tip("FLOAT", f"Row {row}: how strongly the LoRA changes the "
                                                             "diffusion model.", default=1.0, **_STRENGTH)
            required[f"strength_clip_{row}"] = tip("FLOAT", f"Row {row}: how strongly the LoRA changes the "
                                                            "text encoder (CLIP).", default=1.0, **_STRENGTH)
        return {"required": required,
                "optional": {"lora_stack": tip(LORA_STACK, "A stack to extend (from this node or another pack's); "
                                                           "its entries come first.")}}

    @classmethod
    def IS_CHANGED(cls, **inputs):
        return _file_state(inputs.get(f"lora_{row}", NO_LORA) for row in range(1, STACK_ROWS + 1))

    def execute(self, lora_stack=None, **rows):
        table = [(rows[f"on_{r}"], rows[f"lora_{r}"], rows[f"strength_model_{r}"], rows[f"strength_clip_{r}"])
                 for r in range(1, STACK_ROWS + 1)]
        return (build_stack(lora_stack, table),)


class LookDevApplyLoRAStack(_AppliesLoRAs):
    DISPLAY_NAME = "LookDev Apply LoRA Stack"
    DESCRIPTION = ("Applies every LoRA of a LORA_STACK in order, as chained LoraLoader nodes would, and "
                   "collects their trigger words.")
    RETURN_NAMES = ("model", "clip", "trigger_words", "summary")
    OUTPUT_TOOLTIPS = ("The model with the stack applied.",
                       "The CLIP with the stack applied (empty when no CLIP is connected).",
                       "Trigger words of the applied LoRAs, in stack order, without repeats, comma-separated.",
                       "One report per stack entry: keys matched, blocks, warnings.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": tip("MODEL", "The diffusion model to apply the stack to."),
                "lora_stack": tip(LORA_STACK, "The LoRAs to apply, from a LoRA stack node (LookDev, Comfyroll, "
                                              "Efficiency, LoRA-Manager)."),
            },
            "optional": {
                "clip": tip("CLIP", "The text encoder to apply the stack to; leave empty for model-only."),
            },
        }

    def execute(self, model, lora_stack, clip=None):
        entries = normalize_stack(lora_stack)
        applied = apply_stack(model, clip, entries, _LORA_FILES)
        return applied.model, applied.clip, ", ".join(applied.trigger_words), applied.summary


NODES = {
    "LookDevApplyLoRA": LookDevApplyLoRA,
    "LookDevLoRAStack": LookDevLoRAStack,
    "LookDevApplyLoRAStack": LookDevApplyLoRAStack,
}
