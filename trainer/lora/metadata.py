"""The metadata a LookDev LoRA carries (safetensors metadata is str -> str), and its readers.

Three families of keys:
- `ss_*`: the training facts kohya's sd-scripts write for a LoRA, formatted as kohya formats them
  (str() of the value: "True", "None", "0.0001"; ss_resolution "(512, 512)"; ss_tag_frequency and
  ss_dataset_dirs as JSON), so A1111's metadata view, civitai's uploader and kohya tools read them.
- `modelspec.*`: Stability AI's ModelSpec 1.0.0 fields kohya writes (architecture ".../lora").
- `lookdev.*`: LookDev's own: version, trigger words (JSON list), the full training config (JSON)
  and the architecture name.

The hash fields (`sshs_model_hash`, `modelspec.hash_sha256`) need the tensors: `io.save_lora`
adds them.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from ..options import REQUIRED, option
from .keys import ARCHITECTURES, UNET_ARCHITECTURES, check_arch

MODELSPEC_VERSION = "1.0.0"

_MODELSPEC_ARCH = {
    "sd1": "stable-diffusion-v1",
    "sdxl": "stable-diffusion-xl-v1-base",
    "sd3": "stable-diffusion-3-medium",
    "flux": "flux-1-dev",
    "zimage": "z-image",  # no published ModelSpec id; ours
    "qwen_image": "Qwen-Image",  # musubi-tuner's id (its sai_model_spec ARCH_QWEN_IMAGE)
    "flux2": "Flux.2-dev",  # musubi-tuner's id (its sai_model_spec ARCH_FLUX_2_DEV)
    "wan": "wan-2.1-t2v",  # modelspec has no Wan id; this follows its naming
    "other": "unknown",
}
# Where each architecture's module names come from (what the file's keys follow).
_IMPLEMENTATION = {
    "sd1": "diffusers",
    "sd2": "diffusers",
    "sdxl": "https://github.com/Stability-AI/generative-models",
    "sd3": "https://github.com/Stability-AI/sd3.5",
    "flux": "https://github.com/black-forest-labs/flux",
    "zimage": "https://github.com/Tongyi-MAI/Z-Image",
    "qwen_image": "https://github.com/QwenLM/Qwen-Image",
    "flux2": "https://github.com/black-forest-labs/flux2",
    "wan": "https://github.com/Wan-Video/Wan2.1",
    "other": "https://github.com/comfyanonymous/ComfyUI",
}
# kohya's ss_base_model_version values; sd3 is ours (kohya writes the MMDiT variant there).
_KOHYA_VERSION = {"sdxl": "sdxl_base_v1-0", "sd3": "sd3", "flux": "flux1"}


@dataclass
class TrainingFacts:
    """What a finished training run knows about itself; `build_metadata` turns it into metadata."""

    arch: str = option(REQUIRED, f"Architecture, one of {list(ARCHITECTURES)}.")
    output_name: str = option(REQUIRED, "The LoRA's name (file name without .safetensors).")
    lookdev_version: str = option(REQUIRED, "LookDev's version, e.g. '0.1.0'.")
    network_dim: int = option(REQUIRED, "LoRA rank.")
    network_alpha: float = option(REQUIRED, "LoRA alpha (scale = alpha / rank).")
    steps: int = option(REQUIRED, "Optimizer steps actually run.")
    max_train_steps: int = option(REQUIRED, "Steps the run was set up for.")
    learning_rate: float = option(REQUIRED, "Base learning rate.")
    training_started_at: float = option(REQUIRED, "Start time, Unix seconds.")
    training_finished_at: float = option(REQUIRED, "End (save) time, Unix seconds.")
    unet_lr: float | None = option(None, "Diffusion-model learning rate, if different from learning_rate.")
    text_encoder_lr: float | None = option(None, "Text-encoder learning rate; None when the text encoder is not "
                                                 "trained.")
    network_module: str = option("networks.lora", "kohya network module that reads these tensors: 'networks.lora' "
                                                  "for LoRA, 'lycoris.kohya' for LoHa/LoKr/DoRA.")
    network_args: dict = option(REQUIRED, "kohya network args (e.g. {'algo': 'loha'}); written as JSON when not "
                                          "empty.", factory=dict)
    optimizer: str = option("AdamW", "Optimizer name, e.g. 'AdamW'.")
    lr_scheduler: str = option("constant", "Learning-rate schedule name.")
    lr_warmup_steps: int = option(0, "Warm-up steps.")
    seed: int = option(0, "Training seed.")
    resolution: tuple = option((512, 512), "Training resolution (width, height).")
    num_train_images: int = option(0, "Images in the dataset (without repeats).")
    batch_size: int = option(1, "Images per step.")
    gradient_accumulation_steps: int = option(1, "Steps accumulated per optimizer step.")
    gradient_checkpointing: bool = option(False, "Whether gradient checkpointing was on.")
    mixed_precision: str = option("bf16", "'no', 'fp16' or 'bf16'.")
    noise_offset: float | None = option(None, "Noise offset; None when off.")
    min_snr_gamma: float | None = option(None, "Min-SNR gamma; None when off.")
    multires_noise_iterations: int | None = option(None, "Multi-resolution noise layers; None when off.")
    multires_noise_discount: float | None = option(None, "Multi-resolution noise discount; None when off.")
    caption_dropout_rate: float = option(0.0, "Share of steps trained with an empty caption.")
    keep_tokens: int = option(0, "Leading caption tokens kept in place when shuffling.")
    shuffle_caption: bool = option(False, "Whether caption tags were shuffled.")
    v_prediction: bool = option(False, "True for v-prediction UNet models (SD2 768-v and similar).")
    tag_frequency: dict = option(REQUIRED, "{dataset folder name: {tag: count}} over the captions; keyed by the "
                                           "folder's name as kohya writes it ('10_noir'), never a local path.",
                                 factory=dict)
    dataset_dirs: dict = option(REQUIRED, "{dataset folder name: {'n_repeats': int, 'img_count': int}}, keyed "
                                          "like tag_frequency.", factory=dict)
    training_comment: str = option("", "Free text kept in ss_training_comment.")
    sd_model_name: str = option("", "File name of the base model (no folders); empty when unknown, and then "
                                    "ss_sd_model_name is left out.")
    sd_model_hash: str = option("", "sha256 of the base model file (ss_new_sd_model_hash); empty to leave out.")
    title: str = option("", "Human title; empty = output_name.")
    description: str = option("", "What the LoRA is for.")
    author: str = option("", "Who made it.")
    trigger_words: list = option(REQUIRED, "Words that call up the style in a prompt.", factory=list)
    tags: list = option(REQUIRED, "Search tags.", factory=list)
    modelspec_architecture: str = option("", "ModelSpec architecture id of the base model without '/lora' "
                                             "(e.g. 'flux-1-schnell'); empty = the default for arch.")
    config: dict = option(REQUIRED, "The full training config (JSON-serializable), kept in lookdev.config.",
                          factory=dict)

    def __post_init__(self):
        check_arch(self.arch)
        if not self.output_name:
            raise ValueError("TrainingFacts.output_name is empty")
        if self.network_dim < 1:
            raise ValueError(f"TrainingFacts.network_dim must be at least 1, got {self.network_dim}")
        if self.network_alpha <= 0:
            raise ValueError(f"TrainingFacts.network_alpha must be positive, got {self.network_alpha}")
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            raise ValueError(f"TrainingFacts.resolution must be (width, height), got {self.resolution!r}")
        for what, folders in (("tag_frequency", self.tag_frequency), ("dataset_dirs", self.dataset_dirs)):
            paths = [name for name in folders if not isinstance(name, str) or "/" in name or "\\" in name]
            if paths:
                raise ValueError(f"TrainingFacts.{what} is keyed by folder names, got the path {paths[0]!r}: "
                                 "a shared LoRA must not carry local paths")
        if "/" in self.sd_model_name or "\\" in self.sd_model_name:
            raise ValueError(f"TrainingFacts.sd_model_name is a file name, got the path {self.sd_model_name!r}")
        if any(not isinstance(w, str) or not w.strip() for w in self.trigger_words):
            raise ValueError(f"TrainingFacts.trigger_words must be non-empty strings, got {self.trigger_words!r}")


def _json(name, value, **kwargs):
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"TrainingFacts.{name} cannot be written as JSON: {exc}") from None


def _words(facts):
    return [w.strip() for w in facts.trigger_words]


def _base_model_version(facts):
    if facts.arch in ("sd1", "sd2"):
        return ("sd_v2" if facts.arch == "sd2" else "sd_v1") + ("_v" if facts.v_prediction else "")
    return _KOHYA_VERSION.get(facts.arch)


def _kohya_fields(facts):
    width, height = facts.resolution
    fields = {
        "ss_output_name": facts.output_name,
        "ss_network_module": facts.network_module,
        "ss_network_dim": facts.network_dim,
        "ss_network_alpha": facts.network_alpha,
        "ss_v2": facts.arch == "sd2",
        "ss_resolution": (width, height),
        "ss_num_train_images": facts.num_train_images,
        "ss_batch_size_per_device": facts.batch_size,
        "ss_total_batch_size": facts.batch_size * facts.gradient_accumulation_steps,
        "ss_steps": facts.steps,
        "ss_max_train_steps": facts.max_train_steps,
        "ss_learning_rate": facts.learning_rate,
        "ss_unet_lr": facts.unet_lr,
        "ss_text_encoder_lr": facts.text_encoder_lr,
        "ss_optimizer": facts.optimizer,
        "ss_lr_scheduler": facts.lr_scheduler,
        "ss_lr_warmup_steps": facts.lr_warmup_steps,
        "ss_seed": facts.seed,
        "ss_noise_offset": facts.noise_offset,
        "ss_min_snr_gamma": facts.min_snr_gamma,
        "ss_multires_noise_iterations": facts.multires_noise_iterations,
        "ss_multires_noise_discount": facts.multires_noise_discount,
        "ss_training_started_at": facts.training_started_at,
        "ss_training_finished_at": facts.training_finished_at,
        "ss_caption_dropout_rate": facts.caption_dropout_rate,
        "ss_keep_tokens": facts.keep_tokens,
        "ss_shuffle_caption": facts.shuffle_caption,
        "ss_gradient_checkpointing": facts.gradient_checkpointing,
        "ss_gradient_accumulation_steps": facts.gradient_accumulation_steps,
        "ss_mixed_precision": facts.mixed_precision,
        "ss_training_comment": facts.training_comment,
    }
    out = {key: str(value) for key, value in fields.items()}  # kohya's format: "True", "None", "1e-05"
    out["ss_tag_frequency"] = _json("tag_frequency", facts.tag_frequency)
    out["ss_dataset_dirs"] = _json("dataset_dirs", facts.dataset_dirs)
    if facts.network_args:
        out["ss_network_args"] = _json("network_args", facts.network_args)
    if _base_model_version(facts):
        out["ss_base_model_version"] = _base_model_version(facts)
    if facts.sd_model_name:  # unknown: left out, never "" (readers show an empty name as a model)
        out["ss_sd_model_name"] = facts.sd_model_name
    if facts.sd_model_hash:
        out["ss_new_sd_model_hash"] = facts.sd_model_hash
    return out


def _modelspec_arch(facts):
    if facts.modelspec_architecture:
        return facts.modelspec_architecture
    if facts.arch == "sd2":
        return "stable-diffusion-v2-768-v" if facts.v_prediction else "stable-diffusion-v2-512"
    return _MODELSPEC_ARCH[facts.arch]


def _modelspec_fields(facts):
    width, height = facts.resolution
    finished = datetime.fromtimestamp(facts.training_finished_at, tz=timezone.utc)
    out = {
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.architecture": f"{_modelspec_arch(facts)}/lora",
        "modelspec.implementation": _IMPLEMENTATION[facts.arch],
        "modelspec.title": facts.title or facts.output_name,
        "modelspec.date": finished.isoformat(timespec="seconds"),
        "modelspec.resolution": f"{width}x{height}",
    }
    optional = {
        "modelspec.description": facts.description,
        "modelspec.author": facts.author,
        "modelspec.trigger_phrase": ", ".join(_words(facts)),
        "modelspec.tags": ", ".join(facts.tags),
    }
    out.update({key: value for key, value in optional.items() if value})
    if facts.arch in UNET_ARCHITECTURES:  # flow-matching models have no ModelSpec prediction type
        out["modelspec.prediction_type"] = "v" if facts.v_prediction else "epsilon"
    return out


def build_metadata(facts: TrainingFacts) -> dict:
    """The full str -> str metadata for a LoRA trained by LookDev (hash fields excluded)."""
    return {
        **_kohya_fields(facts),
        **_modelspec_fields(facts),
        "lookdev.version": facts.lookdev_version,
        "lookdev.architecture": facts.arch,
        "lookdev.trigger_words": _json("trigger_words", _words(facts)),
        "lookdev.config": _json("config", facts.config, sort_keys=True),
    }


def _json_or_none(text):
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None


def _top_tags(tag_frequency_json, limit):
    """Tags tied for the highest count over all dataset folders (at least 2 captions)."""
    folders = _json_or_none(tag_frequency_json)
    counts = {}
    for tags in (folders.values() if isinstance(folders, dict) else ()):
        for tag, count in (tags.items() if isinstance(tags, dict) else ()):
            if isinstance(count, int) and not isinstance(count, bool) and tag.strip():
                counts[tag.strip()] = counts.get(tag.strip(), 0) + count
    top = max(counts.values(), default=0)
    if top < 2:
        return []
    return sorted(tag for tag, count in counts.items() if count == top)[:limit]


def trigger_words(metadata: Mapping, limit: int = 3) -> list:
    """Words that call up the LoRA, best source first:

    1. `lookdev.trigger_words` (a JSON list of strings);
    2. `modelspec.trigger_phrase`, split at commas;
    3. from kohya's `ss_tag_frequency`: the tags tied for the highest caption count, summed over
       the dataset folders like A1111's "training tags" list, if that count is at least 2 (a tag
       in every caption is what trainers use as a trigger), alphabetical, at most `limit`.
    Malformed values are skipped, never raised; no source gives [].
    """
    listed = _json_or_none(metadata.get("lookdev.trigger_words"))
    if isinstance(listed, list) and all(isinstance(w, str) for w in listed):
        words = [w.strip() for w in listed if w.strip()]
        if words:
            return words
    phrase = metadata.get("modelspec.trigger_phrase")
    if isinstance(phrase, str):
        words = [w.strip() for w in phrase.split(",") if w.strip()]
        if words:
            return words
    return _top_tags(metadata.get("ss_tag_frequency"), limit)


def trigger_word_warnings(metadata: Mapping) -> list:
    """One sentence per trigger-word source (see trigger_words) that is present but unreadable,
    so a report can say why no trigger words came from it."""
    warnings = []
    listed = metadata.get("lookdev.trigger_words")
    words = _json_or_none(listed)
    if listed is not None and not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
        warnings.append("metadata lookdev.trigger_words is not a JSON list of words; no trigger words read from it")
    frequency = metadata.get("ss_tag_frequency")
    if frequency is not None and not isinstance(_json_or_none(frequency), dict):
        warnings.append("metadata ss_tag_frequency is not a JSON object of tag counts; no trigger words read from it")
    return warnings


class ConfigReading(NamedTuple):
    """A stored training config, or None and a note saying why there is none."""

    config: dict | None
    note: str


def training_config(metadata: Mapping) -> ConfigReading:
    """The LookDev training config stored in the metadata, or None with a note saying why.

    Never raises on bad metadata: a LoRA with an unreadable config still loads.
    """
    text = metadata.get("lookdev.config")
    if text is None:
        return ConfigReading(None, "this LoRA has no LookDev training config (it was not trained by LookDev)")
    try:
        config = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        return ConfigReading(None, f"lookdev.config is not valid JSON ({exc}); the training settings are unknown")
    if not isinstance(config, dict):
        return ConfigReading(None, f"lookdev.config holds a {type(config).__name__}, not a settings object; "
                                   "the training settings are unknown")
    return ConfigReading(config, "")
