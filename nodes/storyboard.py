"""Storyboard nodes: a shot list, rendering it frame by frame in the style, and a contact sheet."""

import hashlib

from ..trainer import comfy_bridge as bridge
from ..trainer.render.shots import shot_file_path
from ..trainer.render.storyboard import (
    RenderConfig, SheetConfig, ShotListConfig, help_of, loras_from_stack, make_contact_sheet, plan_frames,
    plan_storyboard, render_report, render_storyboard, storyboard_report, ui_image, image_tensor,
)
from .common import CATEGORY, LORA, LORA_STACK, SHOTS, from_config, tip

FAMILY = f"{CATEGORY}/storyboard"
_EXAMPLE = ("SH010 | wide shot, a harbor at dawn, fog | 42 | 2.39\n"
            "SH020 | close-up of a fisherman's weathered hands\n"
            "a gull takes off from a mooring post")


class ShotList:
    DISPLAY_NAME = "LookDev Shot List"
    DESCRIPTION = ("Your storyboard's shots, typed one per line ('ID | description | seed | aspect | negative | "
                   "duration | notes') or "
                   "read from a CSV file, each turned into a prompt with your style words and trigger, and given "
                   "a seed. A bad line stops the run with its line number; the report lists every shot.")
    CATEGORY = FAMILY
    RETURN_TYPES = (SHOTS, "STRING")
    RETURN_NAMES = ("shots", "report")
    OUTPUT_TOOLTIPS = ("The shots with their prompts and seeds, for LookDev Storyboard Render.",
                       "One line per shot (id, seed, aspect, prompt) plus notes such as unused CSV columns.")
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "shots": from_config(ShotListConfig, "shots", multiline=True, placeholder=_EXAMPLE),
                "style_prefix": from_config(ShotListConfig, "style_prefix"),
                "style_suffix": from_config(ShotListConfig, "style_suffix"),
                "trigger_words": from_config(ShotListConfig, "trigger_words"),
                "seed_policy": from_config(ShotListConfig, "seed_policy"),
                "base_seed": from_config(ShotListConfig, "base_seed"),
            },
            "optional": {"lora": tip(LORA, "Optional: the trained LoRA (the trainer's 'lora' output). Its trigger "
                                     "words, stored in the file, go first in every prompt when 'trigger_words' "
                                     "is empty."),
                         "shots_file": from_config(ShotListConfig, "shots_file"),
                         "default_duration": from_config(ShotListConfig, "default_duration", min=0.01,
                                                         max=600.0, step=0.5, round=0.01)},
        }

    @classmethod
    def IS_CHANGED(cls, shots_file="", **_):
        # A file's content is an input too: edit the CSV and the shots are read again.
        if not shots_file.strip():
            return ""
        return hashlib.sha256(shot_file_path(bridge.folder("input"), shots_file).read_bytes()).hexdigest()

    def execute(self, lora=None, **settings):
        storyboard = plan_storyboard(ShotListConfig(**settings), bridge.folder("input"), lora)
        return (storyboard, storyboard_report(storyboard))


class StoryboardRender:
    DISPLAY_NAME = "LookDev Storyboard Render"
    DESCRIPTION = ("Renders every shot of a shot list with ComfyUI's own sampler (each frame equals KSampler + "
                   "VAE Decode with the same seed and settings) and saves it as <folder>/<shot_id>.png in the "
                   "output folder, with prompt, seed, sampler and LoRAs in the PNG. Frames may differ in size "
                   "(per-shot aspect), so they come out as a list.")
    CATEGORY = FAMILY
    RETURN_TYPES = ("IMAGE", "STRING", "STRING")
    RETURN_NAMES = ("images", "labels", "report")
    OUTPUT_IS_LIST = (True, True, False)
    OUTPUT_TOOLTIPS = ("One image per shot, in shot order; on a video model (Wan) one clip (a batch of frames) "
                       "per shot.", "The shot id of each image, for the contact sheet.",
                       "One line per shot: size, and for clips the frame count and any cap note.")
    FUNCTION = "execute"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": tip("MODEL", "The model to render with, with your style LoRA applied."),
                "clip": tip("CLIP", "Text encoder of the same checkpoint (with the LoRA's text-encoder part)."),
                "vae": tip("VAE", "VAE to decode the frames with."),
                "shots": tip(SHOTS, "Shots from LookDev Shot List (prompts and seeds are decided there)."),
                "negative": from_config(RenderConfig, "negative", multiline=True),
                "sampler": tip(bridge.sampler_names(), help_of(RenderConfig, "sampler"), default="euler"),
                "scheduler": tip(bridge.scheduler_names(), help_of(RenderConfig, "scheduler"), default="normal"),
                "steps": from_config(RenderConfig, "steps"),
                "cfg": from_config(RenderConfig, "cfg", step=0.1, round=0.01),
                "aspect": from_config(RenderConfig, "aspect"),
                "base_resolution": from_config(RenderConfig, "base_resolution"),
                "width": from_config(RenderConfig, "width", min=64, max=8192, step=8),
                "height": from_config(RenderConfig, "height", min=64, max=8192, step=8),
                "folder": from_config(RenderConfig, "folder"),
            },
            "optional": {
                "fps": from_config(RenderConfig, "fps", step=0.001, round=0.001),
                "max_frames": from_config(RenderConfig, "max_frames"),
                "lora_stack": tip(LORA_STACK, "The LoRA stack applied to the model, recorded in each frame's "
                                              "metadata (ComfyUI's model does not remember LoRA names). It is "
                                              "not applied here."),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def execute(self, model, clip, vae, shots, lora_stack=None, prompt=None, extra_pnginfo=None, unique_id=None,
                **settings):
        config = RenderConfig(**settings)
        output = bridge.folder("output")
        video = bridge.is_video_model(model)
        jobs = plan_frames(shots, config, video)
        frames = render_storyboard(model, clip, vae, jobs, config, output, loras_from_stack(lora_stack), prompt,
                                   extra_pnginfo, unique_id)
        return {"ui": {"images": [ui_image(frame.path, output) for frame in frames]},
                "result": ([frame.image for frame in frames], [frame.job.shot_id for frame in frames],
                           render_report(jobs, config, video))}


class ContactSheet:
    DISPLAY_NAME = "LookDev Contact Sheet"
    DESCRIPTION = ("All frames on one page: a title line, then a grid with each shot's id and description under "
                   "its frame. Saved as <folder>/_contact_sheet.png (and .pdf if asked) in the output folder.")
    CATEGORY = FAMILY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("sheet",)
    OUTPUT_TOOLTIPS = ("The contact sheet as an image.",)
    FUNCTION = "execute"
    OUTPUT_NODE = True
    INPUT_IS_LIST = True  # frames of different sizes arrive as a list

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": tip("IMAGE", "Frames from LookDev Storyboard Render (a list), or any image batch."),
                "columns": from_config(SheetConfig, "columns"),
                "title": from_config(SheetConfig, "title"),
                "folder": from_config(SheetConfig, "folder"),
                "pdf": from_config(SheetConfig, "pdf"),
                "cell_width": from_config(SheetConfig, "cell_width"),
                "description_lines": from_config(SheetConfig, "description_lines"),
            },
            "optional": {
                "labels": tip("STRING", "Shot id per frame, from the render node's labels output; without it "
                                        "the shots' ids (or 1, 2, 3...) are used.", forceInput=True),
                "shots": tip(SHOTS, "The shot list, to print each shot's description under its frame."),
            },
        }

    def execute(self, images, labels=None, shots=None, **settings):
        config = SheetConfig(**{name: values[0] for name, values in settings.items()})
        output = bridge.folder("output")
        sheet, paths = make_contact_sheet(images, labels, shots[0] if shots else None, config, output)
        return {"ui": {"images": [ui_image(paths[0], output)]}, "result": (image_tensor(sheet),)}


NODES = {
    "LookDevShotList": ShotList,
    "LookDevStoryboardRender": StoryboardRender,
    "LookDevContactSheet": ContactSheet,
}
