"""Find, check and load local image-to-text models, and caption PIL images with them.

A model is a folder <ComfyUI models>/captioners/<name>/ holding a transformers checkpoint:
config.json, safetensors weights, tokenizer and preprocessor files. Its family comes from
config.json's model_type; each family in CAPTIONER_FAMILIES knows how to load and prompt it.
Nothing is fetched from a hub and no code from a model folder is ever run.
"""

import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from . import blip, florence2
from .cleaning import clean_model_caption
from .common import CaptionerModelError, CaptionOptions, ModelFolder

SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Files whose "auto_map" entry points at Python code inside the model folder.
REMOTE_CODE_MARKERS = ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json")
# transformers quietly builds an empty tokenizer when these are missing, so check for them first.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


@dataclass(frozen=True)
class CaptionerFamily:
    """How to load and prompt one kind of model (one config.json model_type)."""

    label: str
    tasks: tuple[str, ...]
    default_task: str
    takes_prompt: bool
    load: Callable  # (ModelFolder, device, dtype) -> (model, processor)
    caption: Callable  # (model, processor, images, task, CaptionOptions) -> raw captions
    check_config: Callable  # (config dict, ModelFolder) -> None; raises what makes it unloadable


CAPTIONER_FAMILIES: dict[str, CaptionerFamily] = {
    "blip": CaptionerFamily(
        label="BLIP", tasks=blip.TASKS, default_task=blip.TASKS[0], takes_prompt=True,
        load=blip.load_blip, caption=blip.caption_blip, check_config=blip.check_blip_config),
    "florence2": CaptionerFamily(
        label="Florence-2", tasks=florence2.TASKS, default_task=florence2.DEFAULT_TASK, takes_prompt=False,
        load=florence2.load_florence2, caption=florence2.caption_florence2,
        check_config=florence2.check_florence2_config),
}


def list_captioner_folders(root) -> list[str]:
    """Names of the model folders (sub-folders with a config.json) in `root`; [] if it does not exist."""
    root = Path(root)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir()
             if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()]
    return sorted(names, key=str.lower)


def find_captioner_folder(name: str, roots) -> Path:
    """The folder of the captioning model `name` (a folder name, as list_captioner_folders gives)
    in the first of `roots` that has it; otherwise where it belongs (the first root), so that
    load_captioner's error says where to put it. A name that is not a plain folder name raises."""
    roots = [Path(root) for root in roots]
    if not roots:
        raise ValueError("no folder for captioning models is configured")
    if not isinstance(name, str) or not name.strip() or Path(name).name != name \
            or name in (".", "..") or "\\" in name:
        raise CaptionerModelError(f"captioner {name!r} is not the name of a model folder; put the "
                                  f"model's folder into {roots[0]} and pick its name")
    for root in roots:
        if (root / name).is_dir():
            return root / name
    return roots[0] / name


def load_captioner(folder, *, name: str = "", models_root_hint: str = "", device="cpu",
                   dtype: torch.dtype = torch.float32) -> "Captioner":
    """Check the model folder, then load its model and processor onto `device` in `dtype`.

    `name` is what the user picked (default: the folder's name); `models_root_hint` is the captioners
    folder to mention in errors (default: the folder's parent). Raises CaptionerModelError with
    what to put where when the folder is missing, incomplete or in a format LookDev does not load.
    """
    path = Path(folder)
    where = ModelFolder(path=path, name=name or path.name, models_root_hint=models_root_hint or str(path.parent))
    model_type = check_model_folder(where)
    family = CAPTIONER_FAMILIES[model_type]
    try:
        model, processor = family.load(where, torch.device(device), dtype)
    except OSError as exc:
        raise where.error(f"transformers could not load it: {exc}") from exc
    return Captioner(model_type, family, where, model, processor)


def check_model_folder(where: ModelFolder) -> str:
    """The folder's model_type, once the folder is known to be loadable without pickles or remote code."""
    if not where.path.is_dir():
        problem = "this is a file, not a folder." if where.path.exists() else "the folder does not exist."
        raise where.error(problem)
    config = _read_config(where)
    _refuse_remote_code(where)
    model_type = config.get("model_type")
    family = CAPTIONER_FAMILIES.get(model_type)
    if family is None:
        known = ", ".join(f"{key} ({fam.label})" for key, fam in CAPTIONER_FAMILIES.items())
        raise where.error(f"config.json says model_type {model_type!r}, which LookDev cannot caption with.",
                          f"Use a model of one of these types: {known}, in {where.expected_place}")
    family.check_config(config, where)
    _check_weights(where)
    _check_processor_files(where)
    return model_type


def _read_config(where):
    if not (where.path / "config.json").is_file():
        raise where.error("the folder has no config.json.")
    return _read_json_object(where, "config.json")


def _read_json_object(where, file_name):
    try:
        data = json.loads((where.path / file_name).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise where.error(f"{file_name} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise where.error(f"{file_name} does not hold a JSON object.")
    return data


def _refuse_remote_code(where):
    for marker in REMOTE_CODE_MARKERS:
        if (where.path / marker).is_file() and "auto_map" in _read_json_object(where, marker):
            raise where.error(
                f"{marker} has an 'auto_map': this model is in a format that needs Python code from the "
                "model folder (remote code), which LookDev never runs.",
                "Use a transformers-native conversion of the model instead (for Florence-2: "
                f"florence-community/Florence-2-base or -large) in {where.expected_place}")


def _check_weights(where):
    if any((where.path / weights).is_file() for weights in SAFETENSORS_WEIGHTS):
        return
    pickles = sorted(p.name for p in where.path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise where.error(
            f"it only has pickle weights ({', '.join(pickles)}). LookDev loads only .safetensors weights, "
            "because loading a pickle can run arbitrary code.",
            f"Get the model's model.safetensors (most models on the Hugging Face Hub have one) into "
            f"{where.expected_place}")
    raise where.error("the folder has no weights: expected model.safetensors "
                      "(or model.safetensors.index.json with its shards).")


def _check_processor_files(where):
    for wanted, what in ((TOKENIZER_FILES, "tokenizer"), (IMAGE_PROCESSOR_FILES, "image preprocessor settings")):
        if not any((where.path / name).is_file() for name in wanted):
            raise where.error(f"the folder has no {what} ({' or '.join(wanted)}).")


class Captioner:
    """A loaded captioning model. Reuse it for many images; `unload()` (or a `with` block) frees it."""

    def __init__(self, family_name: str, family: CaptionerFamily, where: ModelFolder, model, processor):
        self.family = family_name
        self.label = family.label
        self.tasks = family.tasks
        self.name = where.name
        self.folder = where.path
        self._family = family
        self._model = model
        self._processor = processor

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def caption(self, images, options: CaptionOptions = CaptionOptions()) -> list[str]:
        """One cleaned caption per image, all in one batch, deterministically (greedy or beam search)."""
        if not self.loaded:
            raise RuntimeError(f"captioning model '{self.name}' was unloaded; load it again to caption")
        task = self._checked_task(options)
        rgb = _rgb_images(images)
        if not rgb:
            return []
        raw = self._family.caption(self._model, self._processor, rgb, task, options)
        return [clean_model_caption(text) for text in raw]

    def _checked_task(self, options):
        task = options.task or self._family.default_task
        if task not in self.tasks:
            raise ValueError(f"task {task!r}: {self.label} captioning model '{self.name}' can do "
                             f"{', '.join(self.tasks)}")
        if options.prompt and not self._family.takes_prompt:
            raise ValueError(f"prompt: {self.label} captioning model '{self.name}' takes no prompt; "
                             "leave it empty and pick a task instead")
        return task

    def unload(self):
        """Drop the model and free its memory; the captioner cannot caption afterwards."""
        if not self.loaded:
            return
        on_cuda = self._model.device.type == "cuda"
        self._model = None
        self._processor = None
        gc.collect()  # model modules hold reference cycles; collect now so the memory is free now
        if on_cuda:
            torch.cuda.empty_cache()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.unload()


def caption_images(captioner: Captioner, images, options: CaptionOptions = CaptionOptions(), *,
                   batch_size: int = 4, on_progress=None) -> list[str]:
    """Caption `images` in batches of `batch_size`; `on_progress(done, total)` after each batch
    (it may raise to stop, e.g. when the user cancels)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    images = list(images)
    captions = []
    for start in range(0, len(images), batch_size):
        captions += captioner.caption(images[start:start + batch_size], options)
        if on_progress is not None:
            on_progress(len(captions), len(images))
    return captions


def _rgb_images(images):
    if isinstance(images, Image.Image):
        raise ValueError("images must be a list of PIL images, got a single image; wrap it in a list")
    rgb = []
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise ValueError(f"images[{index}] is a {type(image).__name__}, not a PIL image")
        rgb.append(image if image.mode == "RGB" else image.convert("RGB"))
    return rgb
