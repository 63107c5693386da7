"""The style captioner node: captions a dataset for style training (kept, from a template, or by
a local captioning model), trigger first and style words removed, and writes caption files only
when asked."""

from ..trainer import comfy_bridge
from ..trainer.captioning import (CAPTIONER_FAMILIES, CaptionerModelError, CaptionOptions,
                                  caption_images, find_captioner_folder, list_captioner_folders,
                                  load_captioner)
from ..trainer.dataset.recaption import CaptionConfig, recaption
from ..trainer.options import help_of
from .common import CATEGORY, DATASET, from_config, progress_reporter, tip

NO_MODEL = "(none)"  # always offered, so a workflow that needs no model validates anywhere
DEFAULT_TASK = "(model default)"
# The shipped workflows' mode: with captioner (none) it captions from the template, never fails.
DEFAULT_MODE = "model for uncaptioned"


def captioner_names():
    """Model folders in every captioners folder, for the dropdown (the first of a name wins)."""
    names = []
    for root in comfy_bridge.captioner_roots():
        names += [name for name in list_captioner_folders(root) if name not in names]
    return names


def _model_hint():
    installed = captioner_names()
    if installed:
        return f"installed: {', '.join(installed)}"
    return f"none is installed; put a model folder into {comfy_bridge.captioner_roots()[0]}"


def task_names():
    tasks = [task for family in CAPTIONER_FAMILIES.values() for task in family.tasks]
    return [DEFAULT_TASK] + list(dict.fromkeys(tasks))


def _describer(name, options, batch_size):
    """describe(images) -> captions with the model folder `name`, loaded only when called."""
    def describe(images):
        roots = comfy_bridge.captioner_roots()
        if name == NO_MODEL:
            installed = captioner_names()
            if installed:
                raise CaptionerModelError(f"captioner is {NO_MODEL}: pick a captioning model in 'captioner' "
                                          f"({', '.join(installed)}) or use the keep or template mode")
            raise CaptionerModelError(
                f"no captioning model is installed: put a BLIP or Florence-2 model folder "
                f"(config.json, model.safetensors, tokenizer and preprocessor files) into "
                f"{roots[0]}, refresh the page and pick it in 'captioner'")
        device, dtype = comfy_bridge.captioning_device()
        report = progress_reporter()
        report(0, len(images))

        def after_batch(done, total):
            report(done, total)
            comfy_bridge.check_cancel()

        with load_captioner(find_captioner_folder(name, roots), name=name, device=device,
                            dtype=dtype) as captioner:
            return caption_images(captioner, images, options, batch_size=batch_size,
                                  on_progress=after_batch)
    return describe


class CaptionDataset:
    DISPLAY_NAME = "LookDev Caption Dataset"
    CATEGORY = f"{CATEGORY}/dataset"
    DESCRIPTION = ("Captions a style dataset: keeps its captions, fills a template, or describes "
                   "each image with a local captioning model (models/captioners; nothing is "
                   "downloaded). The trigger goes first and style words are removed, so the "
                   "trigger learns the style. Writes caption files only when asked.")
    FUNCTION = "execute"
    OUTPUT_NODE = True  # queue it alone to caption a folder's files
    RETURN_TYPES = (DATASET, "STRING", "STRING")
    RETURN_NAMES = ("dataset", "captions", "report")
    OUTPUT_IS_LIST = (False, True, False)
    OUTPUT_TOOLTIPS = (
        "A new dataset with the new captions (the input dataset is unchanged).",
        "The captions, one text per image, in dataset order.",
        "How the captions were made and which caption files were written, left alone or "
        "refused, with reasons.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dataset": tip(DATASET, "The dataset to caption, from LookDev Load Dataset or "
                               "Dataset From Images."),
                "mode": from_config(CaptionConfig, "mode"),
                "captioner": tip([*captioner_names(), NO_MODEL], "Captioning model for the "
                                 "model modes: a folder in ComfyUI's models/captioners holding a "
                                 "BLIP or Florence-2 model (config.json, model.safetensors, "
                                 f"tokenizer and preprocessor files). Nothing is downloaded. "
                                 f"{NO_MODEL}: no model, for the keep and template modes; in 'model for "
                                 "uncaptioned' the template then captions the uncaptioned images."),
                "template": from_config(CaptionConfig, "template"),
                "trigger": from_config(CaptionConfig, "trigger"),
                "style_words": from_config(CaptionConfig, "style_words"),
                "keep_marker": from_config(CaptionConfig, "keep_marker"),
                "write": from_config(CaptionConfig, "write"),
            },
            "optional": {
                "task": tip(task_names(), help_of(CaptionOptions, "task"), default=DEFAULT_TASK),
                "prompt": from_config(CaptionOptions, "prompt"),
                "max_new_tokens": from_config(CaptionOptions, "max_new_tokens"),
                "num_beams": from_config(CaptionOptions, "num_beams"),
                "batch_size": tip("INT", "Images the model captions at once; lower it if memory "
                                  "runs out.", default=4, min=1, max=64),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, captioner):
        # Any name passes: keep and template modes need no model, and execute says where to put
        # a missing one (ComfyUI's own check would only say "not in list").
        return True

    def execute(self, dataset, mode, captioner, template, trigger, style_words, keep_marker, write,
                task=DEFAULT_TASK, prompt="", max_new_tokens=CaptionOptions.max_new_tokens,
                num_beams=CaptionOptions.num_beams, batch_size=4):
        config = CaptionConfig(mode=mode, template=template, trigger=trigger,
                               style_words=style_words, keep_marker=keep_marker, write=write)
        options = CaptionOptions(task="" if task == DEFAULT_TASK else task, prompt=prompt,
                                 max_new_tokens=max_new_tokens, num_beams=num_beams)
        describe = None
        if config.needs_model and not (captioner == NO_MODEL and config.mode == DEFAULT_MODE):
            describe = _describer(captioner, options, batch_size)
        result = recaption(dataset, config, describe, model_name=captioner,
                           no_model_hint=_model_hint())
        return (result.dataset, result.dataset.captions(), result.report)


NODES = {"LookDevCaptionDataset": CaptionDataset}
