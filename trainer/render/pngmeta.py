"""Storyboard frames as PNG files that remember how they were made.

Each frame carries ComfyUI's own text chunks ("prompt" and the extra_pnginfo keys such as
"workflow", JSON, exactly as ComfyUI's Save Image writes them, so dragging a frame into ComfyUI
reloads its workflow) plus a "lookdev" chunk: the shot, prompt, seed, sampler settings and LoRAs.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..fileio import write_image
from ..pixels import to_pil
from .shots import validate_shot_id

LOOKDEV_KEY = "lookdev"
_FORMAT = "lookdev.frame"
_VERSION = 1


@dataclass(frozen=True)
class LoraUse:
    name: str = field(metadata={"help": "LoRA file name as ComfyUI lists it."})
    strength_model: float = field(default=1.0, metadata={"help": "Strength applied to the diffusion model."})
    strength_clip: float = field(default=1.0, metadata={"help": "Strength applied to the text encoder."})


@dataclass(frozen=True)
class FrameMeta:
    shot_id: str = field(metadata={"help": "The shot this frame renders."})
    prompt: str = field(metadata={"help": "Positive prompt as sent to the text encoder."})
    negative: str = field(metadata={"help": "Negative prompt."})
    seed: int = field(metadata={"help": "Sampler seed."})
    sampler: str = field(metadata={"help": "Sampler name, e.g. 'euler'."})
    scheduler: str = field(metadata={"help": "Scheduler name, e.g. 'normal'."})
    steps: int = field(metadata={"help": "Sampling steps."})
    cfg: float = field(metadata={"help": "Classifier-free guidance scale."})
    size: tuple = field(metadata={"help": "(width, height) the frame was rendered at."})
    loras: tuple = field(default=(), metadata={"help": "LoraUse per LoRA applied, in stack order."})

    def to_json(self):
        data = asdict(self)
        data["size"] = list(self.size)
        return {"format": _FORMAT, "version": _VERSION, **data}

    @classmethod
    def from_json(cls, data, source="frame"):
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{source}: the lookdev metadata is not a LookDev frame record")
        if data.get("version") != _VERSION:
            raise ValueError(f"{source}: LookDev frame metadata version {data.get('version')!r} is not "
                             f"supported (this LookDev reads version {_VERSION}); update LookDev")
        try:
            loras = tuple(LoraUse(**lora) for lora in data["loras"])
            values = {name: data[name] for name in ("shot_id", "prompt", "negative", "seed", "sampler",
                                                    "scheduler", "steps", "cfg")}
            return cls(**values, size=tuple(data["size"]), loras=loras)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: the lookdev metadata is incomplete or damaged ({exc})") from exc


def save_frame_png(path, image, meta, prompt=None, extra_pnginfo=None, compress_level=4):
    """Save `image` to `path` as PNG atomically, with ComfyUI's chunks and the "lookdev" chunk.

    `prompt` and `extra_pnginfo` are the hidden PROMPT / EXTRA_PNGINFO inputs ComfyUI gives nodes;
    each is written only when given. Returns the path.
    """
    info = PngImagePlugin.PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        if key != LOOKDEV_KEY:
            info.add_text(key, json.dumps(value))
    info.add_text(LOOKDEV_KEY, json.dumps(meta.to_json()))
    return write_image(path, to_pil(image), "PNG", pnginfo=info, compress_level=compress_level)


def read_png_text(path):
    """All text chunks of a PNG as {key: text}; ValueError naming the file if it is not a PNG."""
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ValueError(f"{path} is a {image.format} image, not a PNG")
            return dict(image.text)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read {path} as an image: {exc}") from exc


def read_lookdev_metadata(path):
    """The FrameMeta saved in a LookDev frame; ValueError if the file has none."""
    text = read_png_text(path).get(LOOKDEV_KEY)
    if text is None:
        raise ValueError(f"{path} has no LookDev metadata (it was not saved by LookDev, or an editor stripped it)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the lookdev metadata is not valid JSON ({exc})") from exc
    return FrameMeta.from_json(data, source=str(path))


def frame_path(output_dir, prefix, shot_id):
    """`<output_dir>/<prefix>/<shot_id>.png`, refusing anything that would land outside output_dir.

    `prefix` may name subfolders with "/" (like ComfyUI's filename_prefix) and may be empty; it may
    not be absolute or contain "..". `shot_id` must be a safe shot id (see shots.validate_shot_id).
    """
    validate_shot_id(shot_id)
    return output_path(output_dir, prefix, f"{shot_id}.png")


def output_path(output_dir, prefix, filename):
    """`<output_dir>/<prefix>/<filename>` for a file the caller names; `prefix` checked as in frame_path."""
    prefix = prefix or ""
    parts = PurePosixPath(prefix.replace("\\", "/")).parts
    if prefix.startswith(("/", "\\")) or (len(prefix) > 1 and prefix[1] == ":") or ".." in parts:
        raise ValueError(f"folder prefix {prefix!r} must stay inside the output folder: no leading '/', "
                         "drive letter or '..'")
    root = Path(output_dir).resolve()
    target = root.joinpath(*parts, filename)
    if not target.resolve().is_relative_to(root):  # e.g. a prefix folder that is a symlink elsewhere
        raise ValueError(f"folder prefix {prefix!r} leads outside the output folder {root}")
    return target
