#!/usr/bin/env python3
"""Write the shipped example workflows: workflows/<name>.json (the editor format ComfyUI's template
browser opens) and workflows/api/<name>.json (the API format for scripts and headless runs).

    python scripts/build_workflows.py          # needs the test host: scripts/bootstrap.sh

Then scripts/render_thumbnails.py renders each workflow's card thumbnail (workflows/<name>.jpg)
with LookDev Mini; --no-thumbnails skips that.

Both formats come from one description per workflow below. Widget order is taken from a real
server's /object_info (a ComfyUI started here on a free port), because the editor stores widget
values by position, with an extra "control after generate" value after every seed widget.
tests/test_workflows.py checks the files against /object_info and against each other.
"""

import argparse
import json
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import comfy_server

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
SEED_CONTROL = "fixed"  # the same seed every run: a LoRA or a frame can be reproduced
# A combo with one of these options gets an upload button whose widget the editor appends after
# the node's required inputs, saving this value for it (as core Load Image / Load Video do).
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
UPLOAD_VALUE = "image"
NOTE_COLOR, NOTE_BGCOLOR = "#432", "#653"
# Marks the templates in their extra, so that web/lookdev_view.js opens them at extra.ds (frontend
# 1.58 fits a template to the window instead); the same name as TEMPLATE_MARK in web/lookdev_names.js.
TEMPLATE_MARK = "lookdev_template"

CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"  # the stock ComfyUI default workflow's
TRIGGER = "lkdv_noir"
LORA_NAME = "noir_style"
DATASET_FOLDER = "noir_refs"
STORYBOARD_FOLDER = "storyboard/noir_seq01"
STYLE_WORDS = "film noir, black and white, monochrome, high contrast, grainy, film grain, vignette"
VALIDATION_PROMPTS = ("{trigger}, a detective in a trench coat under a streetlamp, rain\n"
                      "{trigger}, an empty diner at night seen through the window\n"
                      "{trigger}, close-up of a woman's face half in shadow")
SHOTS = ("# ID | description | seed | aspect | negative | duration | notes   (only the description is required)\n"
         "SH010 | wide shot, rain-slick street at night, a lone streetlamp, a car pulls up | 101 | 2.39 | | 4 | "
         "slow push in; rain SFX\n"
         "SH020 | medium shot, a detective steps out of the car, collar up | 102 | | | 3\n"
         "SH030 | close-up, his eyes under the hat brim, cigarette smoke | 103 | | | 2.5 | hold on the eyes\n"
         "SH040 | over-the-shoulder, a woman waits in a phone booth across the street | 104 | | | 3 | "
         "VO: She was trouble.\n"
         "SH050 | insert, a gloved hand drops a matchbook on wet asphalt | 105 | 1.78 | | 1.5\n"
         "SH060 | extreme wide shot, the street from above, two figures and long shadows | 106 | 2.39 | | 5 | "
         "crane up, fade out")
ANIMATIC_TITLE = "Noir - sequence 01"
NEGATIVE = "color, blurry, lowres, deformed, text, watermark, signature"


@dataclass
class Node:
    id: int
    type: str
    pos: tuple
    size: tuple
    widgets: dict = field(default_factory=dict)  # widget name -> value; others take /object_info defaults
    links: dict = field(default_factory=dict)  # input name -> (source node id, source output name)
    title: str | None = None


@dataclass
class Note:
    id: int
    pos: tuple
    size: tuple
    text: str


@dataclass
class Group:
    title: str
    members: tuple  # node ids
    color: str = "#3f789e"


# --- the workflows -------------------------------------------------------------------------------

def checkpoint(node_id, pos):
    return Node(node_id, "CheckpointLoaderSimple", pos, (380, 100), {"ckpt_name": CHECKPOINT})


def training_nodes(x, y):
    """Checkpoint (1), dataset (2), captions (3), trainer (4) at (x, y); the trainer saves its loss
    curve itself, named after the LoRA."""
    return [
        checkpoint(1, (x, y)),
        Node(2, "LookDevLoadDataset", (x, y + 160), (380, 560), {
            "folder": DATASET_FOLDER, "trigger": TRIGGER, "resolution": "512"}),
        Node(3, "LookDevCaptionDataset", (x + 440, y + 160), (400, 470), {
            "mode": "model for uncaptioned", "captioner": "(none)",
            "style_words": STYLE_WORDS}, {"dataset": (2, "dataset")}),
        Node(4, "LookDevTrainStyleLoRA", (x + 900, y), (460, 620), {
            "name": LORA_NAME, "steps": 800, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0,
            "batch_size": 1, "targets": "attention", "seed": 42, "warmup_steps": 40,
            "noise_offset": 0.05, "min_snr_gamma": 5.0, "save_every": 200, "validate_every": 200,
            "validation_steps": 20, "validation_size": 512, "validation_prompts": VALIDATION_PROMPTS},
            {"model": (1, "MODEL"), "clip": (1, "CLIP"), "vae": (1, "VAE"), "dataset": (3, "dataset")}),
    ]


def animatic(node_id, pos, render, shots):
    """The animatic of a render node's frames, timed by the shot list, saved beside the frames."""
    return Node(node_id, "LookDevAnimatic", pos, (440, 620), {
        "fps": "24", "slate": True, "title": ANIMATIC_TITLE, "title_duration": 3.0, "dissolve": 0.0,
        "folder": STORYBOARD_FOLDER, "container": "mp4"},
        {"images": (render, "images"), "labels": (render, "labels"), "shots": (shots, "shots")})


def storyboard_nodes(x, y, model, clip, vae, first_id, lora_stack=None, trigger_link=None, lora=None):
    """Shot list, render and contact sheet at (x, y), rendering with the given (node, output)s. The
    shot list's trigger comes from `trigger_link` or the trained `lora`, never typed twice."""
    shots, render, sheet = first_id, first_id + 1, first_id + 2
    links = {"trigger_words": trigger_link} if trigger_link else {}
    if lora:
        links["lora"] = lora
    render_links = {"model": model, "clip": clip, "vae": vae, "shots": (shots, "shots")}
    if lora_stack:
        render_links["lora_stack"] = lora_stack
    return [
        Node(shots, "LookDevShotList", (x, y), (520, 420), {
            "shots": SHOTS, "style_prefix": "cinematic film still, 35mm,", "style_suffix": "",
            "trigger_words": "", "seed_policy": "per-shot seeds", "base_seed": 100}, links),
        Node(render, "LookDevStoryboardRender", (x + 580, y), (440, 720), {
            "negative": NEGATIVE, "sampler": "euler_ancestral", "scheduler": "normal", "steps": 25,
            "cfg": 7.0, "aspect": "1.78", "base_resolution": 512, "folder": STORYBOARD_FOLDER},
            render_links),
        Node(sheet, "LookDevContactSheet", (x + 1080, y), (620, 720), {
            "columns": 3, "title": "Noir - sequence 01", "folder": STORYBOARD_FOLDER, "pdf": True,
            "cell_width": 384, "description_lines": 3},
            {"images": (render, "images"), "labels": (render, "labels"), "shots": (shots, "shots")}),
    ]


NOTE_TRAIN_OVERVIEW = f"""TRAIN A STYLE LoRA - read me first

What this does: it teaches the model the look of your reference images (a film stock, a lighting scheme, a grade) and saves it as a small LoRA file you can use in any workflow.

Steps, left to right:
1. Checkpoint - the model you will later render with (SD1.5 here; for SDXL set resolution 1024 in Load Dataset).
2. Load Dataset - your 10-30 reference images.
3. Caption Dataset - describes what is IN each image, so the trigger word learns HOW it looks.
4. Train - trains and saves models/loras/{LORA_NAME}.safetensors. The chart on the node shows the loss; previews of the validation prompts appear as it goes.

Press Run (Queue). On a good GPU 800 steps at 512 px take roughly 10-20 minutes.

No GPU or no model yet? The pack's demo (bash scripts/demo.sh in its folder) runs this pipeline in a few minutes on a CPU with LookDev Mini, its teaching-size model, with quick settings."""

NOTE_DATASET = f"""1. YOUR REFERENCE IMAGES

Put 10-30 images that share the look into ComfyUI's input folder, in input/{DATASET_FOLDER}: 'upload images' on Load Dataset copies them there from your computer (with any caption files). Or pick another input subfolder in 'folder', or 'type a folder path' (any absolute path). No such folder yet? Press Run: LookDev creates input/{DATASET_FOLDER} with a README inside and tells you, together with anything else missing (e.g. the checkpoint), before anything runs.

- Consistency matters more than count: same grade, same kind of light.
- Vary the content (people, places, objects) so the LoRA learns the look, not a subject.
- A caption file beside an image (shot1.png + shot1.txt) is used as its caption.
- A subfolder named like 3_night repeats its images 3 times.

The trigger word ({TRIGGER}) is what you type later to call up the style. Set it here only: the captions, the trainer, the LoRA file and the Shot List take it from the dataset (a trigger typed on one of them overrides it there, and its report says so). Its preview grid shows on the node when the workflow runs; to check the dataset alone, connect its preview to a Preview Image node and queue that."""

NOTE_CAPTIONS = f"""2. CAPTIONS

Captions say what is in the picture ("a man at a bar, neon sign"), never the style. The style words below are removed from every caption, so {TRIGGER} takes on the look by itself.

- 'model for uncaptioned' describes only images without a caption file, with a BLIP or Florence-2 folder in models/captioners (nothing is downloaded; pick it in 'captioner'). With captioner (none) those images are captioned from the template (trigger + file name) and the report suggests installing a captioner: it runs either way.
- 'keep' uses your caption files as they are; 'template' builds captions from the file names.
- 'write' can save the captions next to the images so you can edit them."""

NOTE_TRAINING = f"""3. TRAINING

Good starting values for 10-30 images are already set: 800 steps, rank 16, learning rate 1e-4, noise offset 0.05 (deeper blacks for high-contrast looks).

- Validation prompts are rendered every 200 steps with the same seed: watch the style appear. Stop when it looks right; re-queue with the same name to continue (resume).
- Too weak: more steps or rank 32. Too strong / content leaking: fewer steps, or targets 'style blocks'.
- Out of memory: turn on gradient_checkpointing.
- The node shows its essential inputs; right-click it > Show Advanced for the rest (validation prompts, noise offset, optimizer...). 'recipe' fills those left at their defaults with values for your model family (SD1.5, SDXL, Flux...); 'custom' keeps them as set.

The LoRA is saved as models/loras/{LORA_NAME}.safetensors (trigger word and settings inside), checkpoints every 200 steps under output/lookdev/{LORA_NAME}/. The loss curve is shown on the node and saved as output/lookdev/{LORA_NAME}_loss.png (named after the LoRA)."""

NOTE_STORYBOARD_OVERVIEW = f"""STORYBOARD IN YOUR STYLE - read me first

Renders a whole shot list in the look of your style LoRA and lays the frames out on a contact sheet.

1. Checkpoint - the model the LoRA was trained on.
2. LoRA Stack - your style LoRA ({LORA_NAME}.safetensors) plus up to three more (a character, a lens...). Turn rows on/off and set strengths; 0.7-1.0 is typical for a style.
3. Shot List - one shot per line. The LoRAs' trigger words are added to every prompt automatically.
4. Render - every shot with its own seed; frames saved as output/{STORYBOARD_FOLDER}/<shot id>.png.
5. Contact Sheet - all frames with their shot ids and descriptions, as PNG and PDF.

For a long sequence on several machines use scripts/batch_render.py with workflows/api/storyboard_in_style.json."""

NOTE_SHOTS = """SHOT LIST

One shot per line:  ID | description | seed | aspect | negative | duration | notes
Only the description is required; lines starting with # are ignored; leave a field empty to skip it.

- ID names the frame file (SH010.png). Number in tens so you can insert shots later.
- seed: keep it to re-render the same frame; change it for another take.
- aspect: 2.39, 1.85, 1.78, 1.33, 1:1, 9:16 ... (else the render node's default).
- duration: seconds the shot lasts in the animatic (3, 2.5s, 1:30); default_duration otherwise.
- notes: camera, motion, dialogue - for the editor (slate, EDL, CSV), never in the prompt.
- Or point 'shots_file' at a CSV from your script breakdown (columns shot_id, description, seed, aspect, negative, duration, notes; 'Duration (s)', 'Shot #', 'Camera', 'Dialogue' work too).

style_prefix is put before every description: the camera/film language you want in every frame."""

NOTE_RENDER = """RENDER AND CONTACT SHEET

Each frame is exactly what KSampler + VAE Decode would make with the same seed and settings, so a single frame can be re-rendered alone. Prompt, seed, sampler and LoRAs are stored in each PNG: drop a frame onto ComfyUI to get its graph back.

- base_resolution 512 suits SD1.5; use 1024 for SDXL.
- Frames of different aspects share one sheet.
- Rendering again replaces the frames of the same IDs."""

NOTE_BOTH_OVERVIEW = f"""TRAIN A STYLE, THEN STORYBOARD IN IT - one run

Top row: the style LoRA is trained from your reference images (see the notes there).
Bottom row: the model coming out of the trainer - with the fresh LoRA already applied - renders the shot list, the frames go onto a contact sheet, and the animatic cuts them together at the shots' durations (output/{STORYBOARD_FOLDER}/animatic.mp4 with an .edl for your editing system).

Press Run once: training first, then the storyboard. To see the whole pipeline in a few minutes on a CPU first, run the pack's demo (bash scripts/demo.sh): this workflow with quick settings on LookDev Mini, its teaching-size model. The trained LoRA is also saved as models/loras/{LORA_NAME}.safetensors, so later you can render more with 'storyboard_in_style' without training again.

The trigger word ({TRIGGER}) is set once, in Load Dataset: the trained LoRA carries it in its file and hands it to the Shot List (its 'lora' input), so every prompt starts with it."""


NOTE_ANIMATIC_OVERVIEW = f"""STORYBOARD TO ANIMATIC - read me first

From a timed shot list to a cut you can watch and hand to an editor, in one run.

1. Checkpoint and LoRA Stack - the model and your style LoRA ({LORA_NAME}.safetensors).
2. Shot List - each line gives the shot's duration in seconds (and notes: camera, motion, dialogue).
3. Render - one frame per shot, saved as output/{STORYBOARD_FOLDER}/<shot id>.png.
4. Animatic - holds each frame for its duration (exactly round(duration x fps) frames) and saves output/{STORYBOARD_FOLDER}/animatic.mp4, animatic.edl and animatic.csv.

Its VIDEO output plugs into Save Video or any other video node."""

NOTE_ANIMATIC = """ANIMATIC

- fps: 24 for film; 23.976 / 29.97 count timecode non-drop-frame; 25 for PAL.
- The .edl is CMX3600: import it into Premiere, Resolve or Avid with the frames (each event's clip name is its shot id) to rebuild the cut. The record timeline starts at 01:00:00:00, as is usual.
- ken_burns adds a slow push-in to each still; slate burns the shot id, duration, description and notes in; title adds a title card; dissolve cross-fades into each shot without moving any cut.
- width/height 0: the size of the first frame; frames of other aspects are letterboxed."""


def train_style_lora():
    nodes = training_nodes(40, 300)
    notes = [Note(10, (40, -20), (820, 220), NOTE_TRAIN_OVERVIEW),
             Note(11, (40, 1060), (380, 400), NOTE_DATASET),
             Note(12, (480, 1060), (400, 400), NOTE_CAPTIONS),
             Note(13, (1460, 720), (420, 520), NOTE_TRAINING)]
    groups = [Group("1 - Reference images", (1, 2)), Group("2 - Captions", (3,)),
              Group("3 - Train and save", (4,))]
    return nodes, notes, groups


def storyboard_in_style():
    stack = Node(2, "LookDevLoRAStack", (40, 460), (400, 520), {
        "on_1": True, "lora_1": f"{LORA_NAME}.safetensors", "strength_model_1": 0.9, "strength_clip_1": 0.9,
        **{f"on_{row}": False for row in (2, 3, 4)}, **{f"lora_{row}": "None" for row in (2, 3, 4)}})
    apply = Node(3, "LookDevApplyLoRAStack", (500, 300), (320, 140), {},
                 {"model": (1, "MODEL"), "lora_stack": (2, "lora_stack"), "clip": (1, "CLIP")})
    nodes = [checkpoint(1, (40, 300)), stack, apply,
             *storyboard_nodes(880, 300, model=(3, "model"), clip=(3, "clip"), vae=(1, "VAE"), first_id=4,
                               lora_stack=(2, "lora_stack"), trigger_link=(3, "trigger_words"))]
    notes = [Note(10, (40, -40), (780, 240), NOTE_STORYBOARD_OVERVIEW),
             Note(11, (880, 760), (520, 340), NOTE_SHOTS),
             Note(12, (1460, 1060), (440, 260), NOTE_RENDER)]
    groups = [Group("1 - Model and LoRAs", (1, 2, 3)), Group("2 - Shots", (4,)),
              Group("3 - Render and contact sheet", (5, 6))]
    return nodes, notes, groups


def train_and_storyboard():
    nodes = [*training_nodes(40, 340),
             *storyboard_nodes(940, 2000, model=(4, "model"), clip=(1, "CLIP"), vae=(1, "VAE"), first_id=6,
                               lora=(4, "lora")),
             animatic(9, (2080, 2000), render=7, shots=6)]
    notes = [Note(10, (40, -20), (820, 240), NOTE_BOTH_OVERVIEW),
             Note(11, (40, 1100), (380, 400), NOTE_DATASET),
             Note(12, (480, 1100), (400, 400), NOTE_CAPTIONS),
             Note(13, (1460, 760), (420, 520), NOTE_TRAINING),
             Note(14, (380, 2000), (520, 340), NOTE_SHOTS),
             Note(15, (1520, 2780), (440, 260), NOTE_RENDER)]
    groups = [Group("1 - Reference images", (1, 2)), Group("2 - Captions", (3,)),
              Group("3 - Train and save", (4,)), Group("4 - Storyboard in the new style", (6, 7, 8, 9), "#8a8")]
    return nodes, notes, groups


def storyboard_to_animatic():
    stack = Node(2, "LookDevLoRAStack", (40, 460), (400, 520), {
        "on_1": True, "lora_1": f"{LORA_NAME}.safetensors", "strength_model_1": 0.9, "strength_clip_1": 0.9,
        **{f"on_{row}": False for row in (2, 3, 4)}, **{f"lora_{row}": "None" for row in (2, 3, 4)}})
    apply = Node(3, "LookDevApplyLoRAStack", (500, 300), (320, 140), {},
                 {"model": (1, "MODEL"), "lora_stack": (2, "lora_stack"), "clip": (1, "CLIP")})
    shots = Node(4, "LookDevShotList", (880, 300), (520, 420), {
        "shots": SHOTS, "style_prefix": "cinematic film still, 35mm,", "style_suffix": "",
        "trigger_words": "", "seed_policy": "per-shot seeds", "base_seed": 100, "default_duration": 2.0},
        {"trigger_words": (3, "trigger_words")})
    render = Node(5, "LookDevStoryboardRender", (1460, 300), (440, 720), {
        "negative": NEGATIVE, "sampler": "euler_ancestral", "scheduler": "normal", "steps": 25,
        "cfg": 7.0, "aspect": "1.78", "base_resolution": 512, "folder": STORYBOARD_FOLDER},
        {"model": (3, "model"), "clip": (3, "clip"), "vae": (1, "VAE"), "shots": (4, "shots"),
         "lora_stack": (2, "lora_stack")})
    nodes = [checkpoint(1, (40, 300)), stack, apply, shots, render, animatic(6, (1960, 300), render=5, shots=4)]
    notes = [Note(10, (40, -40), (780, 240), NOTE_ANIMATIC_OVERVIEW),
             Note(11, (880, 760), (520, 400), NOTE_SHOTS),
             Note(12, (1960, 960), (440, 400), NOTE_ANIMATIC)]
    groups = [Group("1 - Model and LoRAs", (1, 2, 3)), Group("2 - Timed shots", (4,)),
              Group("3 - Render", (5,)), Group("4 - Animatic", (6,), "#8a8")]
    return nodes, notes, groups


REEL_TRIGGER = "lkdv_reel"
REEL_LORA_NAME = "reel_style"

NOTE_REEL_OVERVIEW = f"""TRAIN THE LOOK OF A REFERENCE REEL - read me first

What this does: it takes a video you already have (a reference reel, a trailer, a graded test shoot, a scene from your last film), picks good frames from it by itself, and trains a style LoRA on them. No frame export by hand.

Steps, left to right:
1. Checkpoint - the model you will later render with (SD1.5 here; for SDXL set resolution 1024 in Dataset From Video).
2. Dataset From Video - pick or upload your video at the bottom of the node.
3. Caption Dataset - describes what is IN each frame, so the trigger word ({REEL_TRIGGER}) learns HOW it looks.
4. Train - saves models/loras/{REEL_LORA_NAME}.safetensors.

Queue the Dataset From Video node alone first to see which frames it takes."""

NOTE_REEL = """1. YOUR REFERENCE REEL

Pick a video from ComfyUI's input folder in 'video' (or upload one), or type a path in 'path', or connect a VIDEO from Load Video.

- The node finds the shots (hard cuts; fades, flashes and dissolves are not cuts) and takes 'frames' frames spread over them: the sharpest of each part of a shot, never black, white, faded or near-duplicate frames.
- Letterbox / pillarbox bars are found over the whole clip and cropped. Burnt-in subtitles are not removed: prune such frames.
- start / end keep a part of the video (1:23 or 00:01:23:12).
- write_frames saves the chosen frames (named by timecode, e.g. reel_00h01m23s12f.png) into input/<video>_frames: delete the ones you don't want, add captions beside them, and switch to Load Dataset on that folder next time.

The preview shows the frames with their timecodes; the report lists the shots, the crop and every skipped frame with its reason."""

NOTE_REEL_TRAINING = f"""3. TRAINING

The same starting values as for a folder of stills: 800 steps, rank 16, learning rate 1e-4. A reel's frames share one grade, so the look comes through quickly; watch the validation renders every 200 steps and stop when it looks right (re-queue with the same name to continue).

The LoRA is saved as models/loras/{REEL_LORA_NAME}.safetensors, with checkpoints under output/lookdev/{REEL_LORA_NAME}/ and the loss curve in output/lookdev/{REEL_LORA_NAME}_loss.png."""


def train_style_from_reel():
    x, y = 40, 300
    nodes = [
        checkpoint(1, (x, y)),
        Node(2, "LookDevDatasetFromVideo", (x, y + 160), (380, 640), {
            "frames": 24, "trigger": REEL_TRIGGER, "resolution": "512"}),
        Node(3, "LookDevCaptionDataset", (x + 440, y + 160), (400, 470), {
            "mode": "model for uncaptioned", "captioner": "(none)"}, {"dataset": (2, "dataset")}),
        Node(4, "LookDevTrainStyleLoRA", (x + 900, y), (460, 620), {
            "name": REEL_LORA_NAME, "steps": 800, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0,
            "batch_size": 1, "targets": "attention", "seed": 42, "warmup_steps": 40,
            "noise_offset": 0.05, "min_snr_gamma": 5.0, "save_every": 200, "validate_every": 200,
            "validation_steps": 20, "validation_size": 512, "validation_prompts": (
                "{trigger}, a woman waits at a bus stop at dusk\n"
                "{trigger}, a kitchen table with breakfast, morning light\n"
                "{trigger}, wide shot of a harbour with boats")},
            {"model": (1, "MODEL"), "clip": (1, "CLIP"), "vae": (1, "VAE"), "dataset": (3, "dataset")}),
    ]
    notes = [Note(10, (40, -20), (820, 220), NOTE_REEL_OVERVIEW),
             Note(11, (40, 1140), (380, 520), NOTE_REEL),
             Note(12, (480, 1140), (400, 400), NOTE_CAPTIONS.replace(TRIGGER, REEL_TRIGGER)),
             Note(13, (1460, 720), (420, 420), NOTE_REEL_TRAINING)]
    groups = [Group("1 - Reference reel", (1, 2)), Group("2 - Captions", (3,)),
              Group("3 - Train and save", (4,))]
    return nodes, notes, groups


# Flux.1 dev as Flux users load it: the diffusion model, the two text encoders and the VAE as
# separate files (the names of BFL's and ComfyUI's downloads).
FLUX_UNET = "flux1-dev.safetensors"
FLUX_CLIP_L = "clip_l.safetensors"
FLUX_T5 = "t5xxl_fp16.safetensors"
FLUX_VAE = "ae.safetensors"
FLUX_LORA_NAME = "noir_style_flux"
FLUX_VALIDATION_PROMPTS = ("{trigger}, a detective in a trench coat stands under a streetlamp in the rain\n"
                           "{trigger}, an empty diner at night, seen through the rain-streaked window\n"
                           "{trigger}, close-up of a woman's face, half of it in deep shadow")

NOTE_FLUX_OVERVIEW = f"""TRAIN A FLUX.1 STYLE LoRA - read me first

What this does: it teaches Flux.1 dev the look of your reference images and saves it as a LoRA in the format Flux users exchange (kohya names: it loads in ComfyUI's Load LoRA, Forge and diffusers).

Steps, left to right:
1. Flux model files - the diffusion model, the two text encoders and the VAE, loaded as separate files the way Flux is usually installed.
2. Load Dataset - your 10-30 reference images.
3. Caption Dataset - describes what is IN each image, in plain sentences (Flux reads sentences through T5).
4. Train - saves models/loras/{FLUX_LORA_NAME}.safetensors.

The settings are the ones the Flux LoRA trainers ship (ai-toolkit's Flux LoRA example, kohya sd-scripts' Flux guides); each note says why. Needs a GPU with 24 GB or more. Flux.1 schnell works the same way (its own model file, no guidance)."""

NOTE_FLUX_MODEL = f"""1. FLUX MODEL FILES

- Load Diffusion Model: {FLUX_UNET} from models/diffusion_models. weight_dtype fp8_e4m3fn stores the 12B model in 8 bits (about 12 GB instead of 24) so training fits a 24 GB GPU, as kohya's --fp8_base and ai-toolkit's 'quantize' do; the LoRA itself trains in full precision and is saved in bf16. With 48 GB or more, 'default' keeps bf16 weights.
- DualCLIPLoader: {FLUX_CLIP_L} and {FLUX_T5} from models/text_encoders, type flux. The text encoders are not trained (no Flux trainer trains T5 by default).
- Load VAE: {FLUX_VAE}, Flux's 16-channel autoencoder, from models/vae."""

NOTE_FLUX_DATASET = f"""2. REFERENCE IMAGES AND CAPTIONS

Put 10-30 images that share the look in input/{DATASET_FOLDER} (or type another folder). Trigger word: {TRIGGER}, set here only.

- resolution 1024: Flux's native size; images are bucketed by aspect at about 1024x1024 pixels. ai-toolkit trains Flux at 512, 768 and 1024 together; LookDev trains one size per run: 512 has a quarter of the tokens per image (several times faster) and still carries a look, 1024 keeps fine grain and texture.
- Captions say what is in the picture, in a sentence; the style words are stripped so {TRIGGER} takes the look by itself."""

NOTE_FLUX_TRAINING = f"""3. TRAINING - why these values

- steps 1500: ai-toolkit's example runs 2000 and calls 500-4000 a good range; a style from 10-30 images usually settles in 1000-2000 steps at batch 1. Watch the renders every 250 steps and stop when the look is there.
- rank 16, alpha 16: ai-toolkit's default (kohya guides use 4-32); 32 for more texture, larger file.
- learning rate 1e-4, AdamW, constant: ai-toolkit's setting. kohya's Flux guides use 8e-4 with rank 4 and Adafactor; a higher rate needs fewer steps but overshoots more easily. Constant, not decaying: every checkpoint is a usable LoRA, so you can stop anywhere.
- targets attention + feed-forward: the double blocks' attention and MLP and the single blocks' linear layers, the bulk of what kohya's and ai-toolkit's Flux LoRAs train (they also adapt the modulation layers; 'all linear and conv' does too). 'style blocks' trains the single blocks only.
- timestep sampling logit-normal: the sigmoid sampling kohya and ai-toolkit use for Flux, shifted by image size as Flux.1 dev was trained (automatic).
- Guidance: training runs at distilled guidance 1, kohya's and ai-toolkit's default; the validation renders use cfg 1 with guidance 3.5, as Flux.1 dev is sampled.
- shuffle captions off: T5 reads sentences, and shuffled fragments are not sentences (ai-toolkit's shuffle_tokens is off). caption dropout 0.05 as ai-toolkit.
- noise offset and min-SNR off: they are for SD's noise schedule, not flow models.
- gradient checkpointing on and save bf16: what every Flux trainer does on a 24 GB GPU.

Saved as models/loras/{FLUX_LORA_NAME}.safetensors, checkpoints every 250 steps in output/lookdev/{FLUX_LORA_NAME}/, the loss curve as output/lookdev/{FLUX_LORA_NAME}_loss.png."""


def train_flux_style_lora():
    nodes = [
        Node(1, "UNETLoader", (40, 300), (380, 110), {"unet_name": FLUX_UNET, "weight_dtype": "fp8_e4m3fn"}),
        Node(5, "DualCLIPLoader", (40, 460), (380, 130), {
            "clip_name1": FLUX_CLIP_L, "clip_name2": FLUX_T5, "type": "flux"}),
        Node(6, "VAELoader", (40, 640), (380, 60), {"vae_name": FLUX_VAE}),
        Node(2, "LookDevLoadDataset", (480, 300), (380, 560), {
            "folder": DATASET_FOLDER, "trigger": TRIGGER, "resolution": "1024"}),
        Node(3, "LookDevCaptionDataset", (920, 300), (400, 470), {
            "mode": "model for uncaptioned", "captioner": "(none)", "style_words": STYLE_WORDS},
            {"dataset": (2, "dataset")}),
        Node(4, "LookDevTrainStyleLoRA", (1380, 300), (460, 1560), {
            "name": FLUX_LORA_NAME, "steps": 1500, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0,
            "batch_size": 1, "targets": "attention + feed-forward", "seed": 42, "optimizer": "AdamW",
            "schedule": "constant", "warmup_steps": 0, "gradient_checkpointing": True,
            "timestep_sampling": "logit-normal", "noise_offset": 0.0, "min_snr_gamma": 0.0,
            "caption_dropout": 0.05, "shuffle_captions": False, "save_every": 250, "validate_every": 250,
            "validation_steps": 20, "validation_size": 1024, "validation_prompts": FLUX_VALIDATION_PROMPTS,
            "save_dtype": "bf16"},
            {"model": (1, "MODEL"), "clip": (5, "CLIP"), "vae": (6, "VAE"), "dataset": (3, "dataset")}),
    ]
    notes = [Note(10, (40, -20), (1280, 220), NOTE_FLUX_OVERVIEW),
             Note(11, (40, 780), (380, 520), NOTE_FLUX_MODEL),
             Note(12, (480, 920), (840, 360), NOTE_FLUX_DATASET),
             Note(13, (1900, 300), (480, 1100), NOTE_FLUX_TRAINING)]
    groups = [Group("1 - Flux model files", (1, 5, 6)), Group("2 - Reference images", (2,)),
              Group("3 - Captions", (3,)), Group("4 - Train and save", (4,))]
    return nodes, notes, groups


# Title and one line for each workflow's card in the template browser (drawn on its thumbnail).
TITLES = {
    "train_style_lora": ("Train a style LoRA", "Reference images -> captions -> a style LoRA in models/loras"),
    "storyboard_in_style": ("Storyboard in your style", "Shot list -> frames in your LoRA's look -> contact sheet"),
    "train_and_storyboard": ("Train, then storyboard", "Train a style LoRA and render a storyboard with it in one run"),
    "train_style_from_reel": ("Style from a reference reel", "A video -> frames picked per shot -> a style LoRA"),
    "storyboard_to_animatic": ("Storyboard to animatic", "Timed shots -> frames -> animatic .mp4 and .edl"),
    "train_flux_style_lora": ("Train a Flux.1 style LoRA", "Flux.1 dev files -> captions -> a kohya-format Flux LoRA"),
}

BUILDERS = {"train_style_lora": train_style_lora, "storyboard_in_style": storyboard_in_style,
            "train_and_storyboard": train_and_storyboard, "train_style_from_reel": train_style_from_reel,
            "storyboard_to_animatic": storyboard_to_animatic, "train_flux_style_lora": train_flux_style_lora}


# --- serialisation -------------------------------------------------------------------------------

def input_specs(info):
    """[(name, kind, options, choices)] of a node's inputs in the order the editor builds them."""
    specs = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            spec = info["input"][section][name]
            choices = spec[0] if isinstance(spec[0], list) else None
            specs.append((name, "COMBO" if choices is not None else spec[0], spec[1] if len(spec) > 1 else {}, choices))
    return specs


def is_widget(kind, options):
    return kind in WIDGET_TYPES and not options.get("forceInput")


def has_seed_control(name, kind, options):
    """The editor adds a 'control after generate' widget after these (and saves its value)."""
    return kind == "INT" and options.get("control_after_generate", name in ("seed", "noise_seed"))


def has_upload(info):
    """Does the editor add an upload widget (after the required inputs) to this node type?"""
    return any(isinstance(spec[0], list) and len(spec) > 1
               and any(spec[1].get(option) for option in UPLOAD_OPTIONS)
               for spec in info["input"].get("required", {}).values())


def widget_values(node, info):
    """{name: value} of every widget of `node`: its own values, else the /object_info defaults."""
    values = {}
    for name, kind, options, choices in input_specs(info):
        if not is_widget(kind, options):
            continue
        if name in node.widgets:
            values[name] = node.widgets[name]
        elif "default" in options:
            values[name] = options["default"]
        elif choices:
            values[name] = choices[0]
        else:
            raise ValueError(f"{node.type}.{name} has no default; give it a value")
    unknown = set(node.widgets) - set(values)
    if unknown:
        raise ValueError(f"{node.type} has no widgets {sorted(unknown)}")
    return values


def build(name, object_info):
    """(editor-format workflow, API-format workflow) of workflow `name`."""
    nodes, notes, groups = BUILDERS[name]()
    by_id = {node.id: node for node in nodes}
    links, ui_nodes, api = [], [], {}
    outputs_of = {node.id: object_info[node.type]["output_name"] for node in nodes}
    out_links = {}  # (node id, output index) -> [link ids]
    for node in nodes:
        info = object_info[node.type]
        values = widget_values(node, info)
        inputs, api_inputs, ui_values = [], {}, []
        required = len(info["input_order"].get("required", []))
        for position, (name_, kind, options, _) in enumerate(input_specs(info)):
            if position == required and has_upload(info):
                ui_values.append(UPLOAD_VALUE)
            link_id = None
            if name_ in node.links:
                source, output = node.links[name_]
                slot = outputs_of[source].index(output)
                link_id = len(links) + 1
                links.append([link_id, source, slot, node.id, len(inputs), object_info[by_id[source].type]["output"][slot]])
                out_links.setdefault((source, slot), []).append(link_id)
                api_inputs[name_] = [str(source), slot]
            if is_widget(kind, options):
                ui_values.append(values[name_])
                if has_seed_control(name_, kind, options):
                    ui_values.append(SEED_CONTROL)
                api_inputs.setdefault(name_, values[name_])
                if link_id is not None:
                    inputs.append({"name": name_, "type": kind,
                                   "widget": {"name": name_}, "link": link_id})
            else:
                inputs.append({"name": name_, "type": kind, "link": link_id})
        if len(input_specs(info)) == required and has_upload(info):
            ui_values.append(UPLOAD_VALUE)
        ui_nodes.append({"id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size),
                         "flags": {}, "order": 0, "mode": 0, "inputs": inputs, "outputs": [],
                         "properties": {"Node name for S&R": node.type}, "widgets_values": ui_values,
                         **({"title": node.title} if node.title else {})})
        api[str(node.id)] = {"inputs": api_inputs, "class_type": node.type,
                             "_meta": {"title": node.title or info["display_name"]}}
    for ui_node, node in zip(ui_nodes, nodes):
        info = object_info[node.type]
        ui_node["outputs"] = [{"name": out_name, "type": kind, "links": out_links.get((node.id, slot), []),
                               "slot_index": slot}
                              for slot, (out_name, kind) in enumerate(zip(info["output_name"], info["output"]))]
    for order, node_id in enumerate(execution_order(nodes)):
        next(n for n in ui_nodes if n["id"] == node_id)["order"] = order
    note_nodes = [{"id": note.id, "type": "Note", "pos": list(note.pos), "size": list(note.size), "flags": {},
                   "order": len(nodes) + index, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                   "widgets_values": [note.text], "color": NOTE_COLOR, "bgcolor": NOTE_BGCOLOR}
                  for index, note in enumerate(notes)]
    ui = {"last_node_id": max(n.id for n in [*nodes, *notes]), "last_link_id": len(links),
          "nodes": ui_nodes + note_nodes, "links": links,
          "groups": [group_json(group, by_id) for group in groups],
          "config": {}, "extra": {}, "version": 0.4}
    ui["extra"] = {"ds": opening_view(ui), TEMPLATE_MARK: name}
    return ui, api


# The view a workflow opens at (its extra.ds): readable text, the top-left of the graph (the
# read-me note and the first group's title) clear of the frontend's tab bar and floating toolbars,
# which cover about the top 130 px and the left 60 px of a 1280x800 window (frontend 1.32).
OPENING_SCALE = 0.85
OPENING_SCREEN_CORNER = (80, 150)
NODE_TITLE_HEIGHT = 30


def opening_view(ui):
    """{"scale", "offset"} that puts the graph's top-left corner at OPENING_SCREEN_CORNER."""
    lefts = [node["pos"][0] for node in ui["nodes"]] + [group["bounding"][0] for group in ui["groups"]]
    tops = ([node["pos"][1] - NODE_TITLE_HEIGHT for node in ui["nodes"]]
            + [group["bounding"][1] for group in ui["groups"]])
    x, y = OPENING_SCREEN_CORNER
    return {"scale": OPENING_SCALE,
            "offset": [round(x / OPENING_SCALE - min(lefts), 1), round(y / OPENING_SCALE - min(tops), 1)]}


def execution_order(nodes):
    done, order = set(), []
    pending = list(nodes)
    while pending:
        for node in pending:
            if all(source in done for source, _ in node.links.values()):
                order.append(node.id)
                done.add(node.id)
                pending.remove(node)
                break
        else:
            raise ValueError("the workflow has a cycle")
    return order


def group_json(group, by_id):
    members = [by_id[node_id] for node_id in group.members]
    left = min(n.pos[0] for n in members) - 20
    top = min(n.pos[1] for n in members) - 70
    right = max(n.pos[0] + n.size[0] for n in members) + 20
    bottom = max(n.pos[1] + n.size[1] for n in members) + 20
    return {"title": group.title, "bounding": [left, top, right - left, bottom - top], "color": group.color,
            "font_size": 24, "flags": {}}


def fetch_object_info():
    with tempfile.TemporaryDirectory(prefix="lookdev-workflows-") as base:
        server = comfy_server.start(Path(base))
        try:
            with urllib.request.urlopen(server.url + "/object_info", timeout=60) as response:
                return json.load(response)
        finally:
            server.stop()


def write_json(path, data):
    from _pack import alias_pack

    alias_pack()
    from lookdev.trainer.fileio import write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-thumbnails", action="store_true",
                        help="write the JSON only; keep the card thumbnails (rendering them takes minutes)")
    args = parser.parse_args(argv)
    object_info = fetch_object_info()
    for name in BUILDERS:
        ui, api = build(name, object_info)
        write_json(WORKFLOWS / f"{name}.json", ui)
        write_json(WORKFLOWS / "api" / f"{name}.json", api)
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json")
    if not args.no_thumbnails:
        import render_thumbnails  # renders the API workflows just written

        render_thumbnails.render_all(TITLES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
