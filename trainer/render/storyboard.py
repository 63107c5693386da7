"""Storyboards inside ComfyUI: a shot list planned into prompts and seeds, rendered frame by frame
with ComfyUI's own sampling, each frame saved as `<output>/<folder>/<shot_id>.png` with its
metadata, and a contact sheet of the frames.

The storyboard nodes wrap this module; ComfyUI is reached only through comfy_bridge.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from .. import comfy_bridge as bridge
from .. import events
from ..status import send_status
from ..options import check_options, help_of, option  # noqa: F401  (help_of: the nodes read it from here)
from ..pixels import image_tensor, to_pil
from ..lora.metadata import trigger_words as lora_trigger_words
from ..lora.stack import normalize_stack
from ..trigger import pick_trigger
from .framing import ASPECTS, MAX_SEED, SEED_POLICIES, frame_size, seed_for
from .pngmeta import FrameMeta, LoraUse, frame_path, output_path, save_frame_png
from .sheet import contact_sheet, save_sheet_pdf, save_sheet_png
from .shots import MAX_DURATION, build_prompt, load_shot_file, parse_shot_text, shot_file_path

CUSTOM_SIZE = "custom"
SHEET_STEM = "_contact_sheet"  # shot ids can't start with "_", so the sheet never replaces a frame
_LATENT_MULTIPLE = 8  # SD-family VAEs downscale by 8


# --- shot list --------------------------------------------------------------------------------

@dataclass
class ShotListConfig:
    shots: str = option("", "One shot per line: 'ID | description | seed | aspect | negative | duration | notes'; "
                            "only the description is required ('a wide shot of the harbor' is a whole line). "
                            "duration is in seconds (3, 2.5s, 1:30); notes (camera, motion, dialogue) go to the "
                            "animatic, not the prompt. Lines starting with # are skipped. Leave empty to read "
                            "shots_file instead.")
    shots_file: str = option("", "Instead of the text: a .csv (header with shot_id, description, seed, aspect, "
                             "negative, duration, notes) or a text file of shot lines, in ComfyUI's input folder "
                             "or an absolute path.")
    style_prefix: str = option("", "Put before every shot's description, e.g. 'cinematic film still, 35mm'.")
    style_suffix: str = option("", "Put after every shot's description, e.g. 'muted palette, soft window light'.")
    trigger_words: str = option("", "Trigger word(s) of your style LoRA, comma-separated; each goes first in every "
                                "prompt, once. Leave empty to use the trigger of the LoRA connected to 'lora' "
                                "(stored in the file by the trainer); a value here overrides it.")
    seed_policy: str = option("per-shot seeds", "same seed for all shots: only the description changes; per-shot "
                              "seeds: a shot's own seed, else base_seed + its index; base + index: "
                              "ignore the shots' seeds.", choices=tuple(SEED_POLICIES))
    base_seed: int = option(0, "Seed the policy starts from.", min=0, max=MAX_SEED)
    default_duration: float = option(2.0, "Seconds a shot lasts in the animatic when its line gives no duration.")

    def validate(self):
        if self.seed_policy not in SEED_POLICIES:
            raise ValueError(f"seed_policy {self.seed_policy!r} is not one of {list(SEED_POLICIES)}")
        seed = self.base_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"base_seed must be a whole number from 0 to {MAX_SEED}, got {self.base_seed!r}")
        duration = self.default_duration
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration <= MAX_DURATION:
            raise ValueError(f"default_duration must be more than 0 and at most {MAX_DURATION:g} seconds, "
                             f"got {duration!r}")
        if self.shots.strip() and self.shots_file.strip():
            raise ValueError("give the shots either as text in 'shots' or as a file in 'shots_file', not both; "
                             "clear one of them")
        if not self.shots.strip() and not self.shots_file.strip():
            raise ValueError("there are no shots: write one per line in 'shots' or name a file in 'shots_file'")
        return check_options(self)


@dataclass(frozen=True)
class PlannedShot:
    shot: object  # shots.Shot
    prompt: str  # the full positive prompt
    seed: int  # the seed after the seed policy


@dataclass(frozen=True)
class Storyboard:
    """What flows through a LOOKDEV_SHOTS socket: every shot with its prompt and seed."""

    shots: tuple
    source: str  # "shots" (the text input) or the file's path, for messages
    seed_policy: str
    warnings: tuple = ()
    name: str = ""  # the shot list file's stem; empty for typed shots
    default_duration: float = 2.0  # seconds, for shots whose line gives none
    trigger_line: str = ""  # which trigger the prompts got and where from, for the report

    def duration_of(self, planned):
        """Seconds `planned` (one of self.shots) lasts in an animatic."""
        return self.default_duration if planned.shot.duration is None else planned.shot.duration

    def description_of(self, shot_id):
        return next((planned.shot.description for planned in self.shots if planned.shot.shot_id == shot_id), "")


def plan_storyboard(config, input_dir, lora=None):
    """Parse the shots (text or file), raise one ValueError listing every bad line, build prompts and seeds.
    lora: a LoraFile (e.g. the trainer's) whose metadata trigger words are used unless config gives some."""
    config.validate()
    carried = ", ".join(lora_trigger_words(lora.metadata)) if lora is not None else ""
    triggers, trigger_line = pick_trigger(config.trigger_words, carried,
                                          f"LoRA {lora.path.name}" if lora is not None else "")
    if config.shots.strip():
        shot_list, name = parse_shot_text(config.shots, source="shots"), ""
    else:
        path = shot_file_path(input_dir, config.shots_file)
        shot_list, name = load_shot_file(path), path.stem
    shot_list.raise_if_problems()
    planned = tuple(
        PlannedShot(shot, build_prompt(shot, config.style_prefix, config.style_suffix, triggers),
                    seed_for(config.seed_policy, config.base_seed, index, shot))
        for index, shot in enumerate(shot_list.shots))
    return Storyboard(planned, shot_list.source, config.seed_policy, tuple(str(w) for w in shot_list.warnings), name,
                      float(config.default_duration), trigger_line)


def storyboard_report(storyboard):
    """A readable summary: count, source, seed policy, then warnings and one line per shot."""
    count = len(storyboard.shots)
    lines = [f"{count} shot{'s' if count != 1 else ''} from {storyboard.source}, seeds: {storyboard.seed_policy}"]
    lines += [storyboard.trigger_line] if storyboard.trigger_line else []
    lines += [f"note: {warning}" for warning in storyboard.warnings]
    lines += [f"{p.shot.shot_id}  seed {p.seed}  {p.shot.aspect or 'default aspect'}  {p.prompt}"
              for p in storyboard.shots]
    return "\n".join(lines)


# --- rendering --------------------------------------------------------------------------------

@dataclass
class RenderConfig:
    negative: str = option("", "Negative prompt for every shot; a shot's own negative is added to it.")
    sampler: str = option("euler", "ComfyUI sampler, as in KSampler.")
    scheduler: str = option("normal", "ComfyUI scheduler, as in KSampler.")
    steps: int = option(20, "Sampling steps per shot.", min=1, max=10000)
    cfg: float = option(7.0, "Classifier-free guidance scale, as in KSampler.", min=0.0, max=100.0)
    guidance: float = option(3.5, "Distilled guidance, as core FluxGuidance sets it on the prompt: used only by "
                             "models that have it (Flux.1 dev, Flux.2 dev; render those at cfg 1); every other model, "
                             "Flux.1 schnell and Chroma included, ignores it. 3.5 is FluxGuidance's default.",
                             min=0.0, max=100.0)
    aspect: str = option("1.78", "Frame shape for shots that name none; 'custom' uses width and height.",
                     choices=(CUSTOM_SIZE, *ASPECTS))
    base_resolution: int = option(1024, "Aspect presets get about this many pixels squared, sides multiples of 64 "
                                  "(512 for SD1.5, 1024 for SDXL, SD3 and Flux).", min=64, max=8192, step=32)
    width: int = option(1024, "Frame width when aspect is 'custom' (multiple of 8).")
    height: int = option(576, "Frame height when aspect is 'custom' (multiple of 8).")
    folder: str = option("storyboard", "Subfolder of ComfyUI's output folder; each frame is saved there as "
                         "<shot_id>.png and replaced when rendered again.")
    fps: float = option(24.0, "Video models (Wan): frames per second of each shot's clip; a clip lasts the shot's "
                        "duration, rounded to the 4k+1 frames Wan makes. Keep it equal to LookDev Animatic's fps "
                        "(it plays one clip frame per animatic frame); Wan's own rate is 16. Image models render "
                        "one still.", min=1.0, max=120.0)
    max_frames: int = option(81, "Video models: the most frames one clip may have (Wan is trained on up to 81); "
                             "longer shots are capped, with a note in the report.", min=1, max=1025)

    def validate(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a whole number >= 1, got {self.steps!r}")
        for name in ("cfg", "guidance"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}")
        if self.aspect not in (CUSTOM_SIZE, *ASPECTS):
            raise ValueError(f"aspect {self.aspect!r} is not one of {[CUSTOM_SIZE, *ASPECTS]}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if self.aspect == CUSTOM_SIZE and (value < 64 or value % _LATENT_MULTIPLE):
                raise ValueError(f"{name} {value} must be a multiple of {_LATENT_MULTIPLE}, at least 64")
        if self.base_resolution < 64:
            raise ValueError(f"base_resolution must be at least 64, got {self.base_resolution}")
        return check_options(self)


@dataclass(frozen=True)
class FrameJob:
    shot_id: str
    description: str
    prompt: str
    negative: str
    seed: int
    width: int
    height: int
    frames: int = 1  # video frames of the shot's clip; 1 renders a still
    note: str = ""  # why the clip is shorter than the shot (capped), else empty


# Wan's VAE (as HunyuanVideo's) keeps the first frame and packs each following 4 into one latent
# frame, so its clips have 4k+1 frames: EmptyHunyuanLatentVideo's length 4k+1 -> k+1 latent frames.
VIDEO_FRAME_STEP = 4


def clip_frames(duration, fps, max_frames):
    """(frames, note) for a shot of `duration` seconds: round(duration x fps) frames, rounded to the
    nearest 4k+1 (halfway up; at least 1), capped at the largest 4k+1 <= max_frames with a note."""
    wanted = max(1, round(duration * fps))
    frames = VIDEO_FRAME_STEP * math.floor((wanted - 1) / VIDEO_FRAME_STEP + 0.5) + 1
    cap = VIDEO_FRAME_STEP * ((max_frames - 1) // VIDEO_FRAME_STEP) + 1
    if frames > cap:
        return cap, (f"capped at {cap} frames ({cap / fps:.2f} s at {fps:g} fps; max_frames {max_frames}) of the "
                     f"{duration:g} s shot ({frames} frames); the animatic holds its last frame for the rest")
    return frames, ""


def combine_negative(common, own):
    """The storyboard's negative prompt followed by the shot's own, comma-joined."""
    parts = [(text or "").strip(" ,\n") for text in (common, own)]
    return ", ".join(part for part in parts if part)


def shot_size(aspect, config):
    """(width, height) of a shot: its own aspect, else the config's preset or custom size."""
    aspect = aspect or config.aspect
    if aspect == CUSTOM_SIZE:
        return config.width, config.height
    return frame_size(aspect, config.base_resolution)


def plan_frames(storyboard, config, video=False):
    """One FrameJob per shot, in order; for a video model each a clip of the shot's duration."""
    config.validate()
    jobs = []
    for p in storyboard.shots:
        frames, note = clip_frames(storyboard.duration_of(p), config.fps, config.max_frames) if video else (1, "")
        jobs.append(FrameJob(p.shot.shot_id, p.shot.description, p.prompt,
                             combine_negative(config.negative, p.shot.negative), p.seed,
                             *shot_size(p.shot.aspect, config), frames, note))
    return jobs


def render_report(jobs, config, video=False):
    """One line per shot: its size, and for clips their frames, length and any cap note."""
    lines = []
    for job in jobs:
        line = f"{job.shot_id}: {job.width}x{job.height}"
        if video:
            line += f", {job.frames} frames ({job.frames / config.fps:.2f} s at {config.fps:g} fps)"
        lines.append(line + (f"; note: {job.note}" if job.note else ""))
    return "\n".join(lines)


def loras_from_stack(stack):
    """LoraUse per entry of a LORA_STACK, checked by the same rules as LookDev Apply LoRA Stack
    (stack.normalize_stack): strengths finite numbers, rows naming no LoRA dropped."""
    return tuple(LoraUse(*entry) for entry in normalize_stack(stack))


@dataclass(frozen=True)
class RenderedFrame:
    job: FrameJob
    image: object  # IMAGE tensor [1, H, W, 3], or a clip's frames [frames, H, W, 3]
    path: Path  # the still (a clip's first frame) as PNG


class _Progress:
    """ComfyUI's progress bar over shots x steps, the websocket event, and Cancel between steps."""

    def __init__(self, shots, steps, node_id):
        self.shots, self.steps, self.node_id = shots, steps, node_id
        self.prompt_id = bridge.current_prompt_id()
        self.bar = bridge.progress_bar(shots * steps)

    def step_callback(self, index, shot_id):
        def on_step(step, _total):
            step = min(step, self.steps)
            self.bar.update_absolute(index * self.steps + step)
            bridge.send_event(events.EVENT_RENDER_PROGRESS, {
                "node": self.node_id, "prompt_id": self.prompt_id, "shot": shot_id, "index": index + 1,
                "total": self.shots, "step": step, "steps": self.steps})
            bridge.check_cancel()
        return on_step


def encode_prompts(clip, texts, node_id=None):
    """{text: CONDITIONING} for distinct texts, with a progress bar, an event per prompt (the node
    shows "encoding prompts 12 / 300") and Cancel between prompts: hundreds of shots take minutes."""
    prompt_id = bridge.current_prompt_id()
    bar = bridge.progress_bar(len(texts))
    conditioning = {}
    for done, text in enumerate(texts, start=1):
        bridge.check_cancel()
        conditioning[text] = bridge.conditioning(bridge.encode_text(clip, text))
        bar.update_absolute(done, len(texts))
        bridge.send_event(events.EVENT_RENDER_ENCODING, {"node": node_id, "prompt_id": prompt_id, "done": done,
                                                  "total": len(texts)})
    return conditioning


def render_storyboard(model, clip, vae, jobs, config, output_dir, loras=(), png_prompt=None, extra_pnginfo=None,
                      node_id=None):
    """Render each FrameJob with ComfyUI's sampler and VAE, saving every frame as soon as it is done.

    Each distinct prompt is encoded once, all before sampling starts, so the text encoder and the
    diffusion model are not swapped in and out between shots; the model itself stays loaded and
    patched across shots (ComfyUI reloads it only if its patches change).

    Shots are sampled one at a time, never batched: even with each shot's own noise, a batch is
    computed by other kernels than a single image and rounds differently (measured on CPU: two
    64 px shots in one batch differ from the same shots alone by up to 1e-3 in the latents), so
    a frame would depend on the shots it shared a batch with. One by one, it depends only on its shot.
    """
    paths = [frame_path(output_dir, config.folder, job.shot_id) for job in jobs]  # bad names fail before rendering
    texts = list(dict.fromkeys(text for job in jobs for text in (job.prompt, job.negative)))
    conditioning = encode_prompts(clip, texts, node_id)
    progress = _Progress(len(jobs), config.steps, node_id)
    keep_prompt = bridge.metadata_enabled()
    # Only on the positive prompt, as a user wires FluxGuidance; a model without it never sees it.
    guidance = config.guidance if bridge.takes_distilled_guidance(model) else None
    frames = []
    for index, (job, path) in enumerate(zip(jobs, paths)):
        bridge.check_cancel()
        positive = conditioning[job.prompt]
        if guidance is not None:
            positive = bridge.with_guidance(positive, guidance)
        image = bridge.render(model, positive, conditioning[job.negative], vae, job.width, job.height,
                              job.seed, config.steps, config.cfg, config.sampler, config.scheduler,
                              on_step=progress.step_callback(index, job.shot_id), length=job.frames)
        meta = FrameMeta(job.shot_id, job.prompt, job.negative, job.seed, config.sampler, config.scheduler,
                         config.steps, config.cfg, (job.width, job.height), tuple(loras), guidance)
        save_frame_png(path, image[:1], meta, png_prompt if keep_prompt else None, extra_pnginfo if keep_prompt else None)
        frames.append(RenderedFrame(job, image, path))
    folder = "/".join(filter(None, ["output", config.folder.strip("/")]))
    send_status(node_id, progress.prompt_id, "done",
                f"done: {len(frames)} frame{'s' * (len(frames) != 1)} in {folder}", len(frames), len(frames))
    return frames


def ui_image(path, output_dir):
    """The {filename, subfolder, type} entry ComfyUI's frontend shows for a file in the output folder."""
    relative = Path(path).resolve().relative_to(Path(output_dir).resolve())
    subfolder = relative.parent.as_posix()
    return {"filename": relative.name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"}


# --- contact sheet ----------------------------------------------------------------------------

@dataclass
class SheetConfig:
    columns: int = option(4, "Frames per row.", min=1, max=16)
    title: str = option("", "Title line at the top; empty: 'Storyboard' and the shot list file's name.")
    folder: str = option("storyboard", "Subfolder of ComfyUI's output folder; the sheet is saved there as "
                                   f"{SHEET_STEM}.png (replaced each run).")
    pdf: bool = option(False, f"Also save the sheet as {SHEET_STEM}.pdf, e.g. to send or print.")
    cell_width: int = option(384, "Width of each frame on the sheet in pixels; text scales with it.",
                             min=64, max=2048, step=16)
    description_lines: int = option(3, "Lines of shot description under each frame (0: shot ids only).",
                                    min=0, max=10)

    def validate(self):
        return check_options(self)


def frames_from_images(images, first_only=False):
    """PIL frames from IMAGE tensors: a list of single images, batches, or both. first_only: one
    frame per entry (a video model's clips, one per shot)."""
    frames = []
    for image in images:
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        frames += [to_pil(single) for single in (batch[:1] if first_only else batch)]
    return frames


def sheet_labels(count, labels, storyboard):
    """(labels, descriptions) for `count` frames; labels default to the storyboard's shot ids, else 1..count."""
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != count:
            raise ValueError(f"labels has {len(labels)} entries for {count} frames; connect the labels output "
                             "of the same LookDev Storyboard Render node as the images")
    elif storyboard is not None and len(storyboard.shots) == count:
        labels = [planned.shot.shot_id for planned in storyboard.shots]
    else:
        labels = [str(number) for number in range(1, count + 1)]
    descriptions = [storyboard.description_of(label) if storyboard is not None else "" for label in labels]
    return labels, descriptions


def make_contact_sheet(images, labels, storyboard, config, output_dir):
    """Draw the sheet for IMAGE tensors and save it (PNG, optionally PDF); returns (sheet, [paths])."""
    config.validate()
    # One label per entry of the list: the render's clips, each shown by its first frame.
    frames = frames_from_images(images, first_only=labels is not None and len(labels) == len(images))
    if not frames:
        raise ValueError("images is empty; connect the images output of LookDev Storyboard Render")
    labels, descriptions = sheet_labels(len(frames), labels, storyboard)
    title = config.title.strip() or " - ".join(filter(None, ["Storyboard", storyboard and storyboard.name]))
    sheet = contact_sheet(frames, labels, descriptions, config.columns, title, config.cell_width,
                          config.description_lines)
    png = output_path(output_dir, config.folder, f"{SHEET_STEM}.png")
    save_sheet_png(png, sheet)
    paths = [png]
    if config.pdf:
        save_sheet_pdf(png.with_suffix(".pdf"), sheet)
        paths.append(png.with_suffix(".pdf"))
    return sheet, paths
