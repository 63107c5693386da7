"""Caption a built dataset anew for style training, and (only when asked) save the captions as
sidecar files beside its images.

Captions are kept, filled from a template, or written by a captioning model (any callable that
describes PIL images); then the trigger goes first, style words are removed so the style is not
described, and kohya's keep marker may follow the trigger. The dataset given is never changed:
a new one is returned (ComfyUI hands one dataset object to several nodes).
"""

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import SaveError, write_bytes, write_text
from .captions import (filename_words, join_tags, plain_caption, render_template,
                       split_tags, strip_style_words, style_caption, with_keep_marker,
                       with_trigger)
from ..options import option
from ..pixels import to_pil
from ..trigger import pick_trigger
from .dataset import StyleDataset
from .scan import BACKUP_SUFFIX, Issue, folder_label

CAPTION_MODES = {
    "keep": "keep the captions the dataset has (its sidecar files, or the captions it was given)",
    "template": "build every caption from the template",
    "model": "describe every image with the captioning model",
    "model for uncaptioned": "describe only the images whose caption holds nothing but the "
                             "trigger; keep the others (with no model picked, caption those "
                             "from the template)",
}
MODEL_MODES = ("model", "model for uncaptioned")
WRITE_MODES = {
    "off": "write no caption files",
    "write missing": "write a caption file only where an image has none (or an empty one)",
    "overwrite": "write every caption file; a changed one is kept as <name>.txt.bak first",
}


@dataclass(frozen=True)
class CaptionConfig:
    """How to caption a dataset. `validate()` raises a ValueError naming the field."""

    mode: str = option("keep", "Where captions come from. "
                       + "; ".join(f"{name}: {text}" for name, text in CAPTION_MODES.items()) + ".",
                       choices=tuple(CAPTION_MODES))
    template: str = option("{trigger}, {filename}",
                           "Template mode: each caption from {trigger}, {filename} (words of the file "
                           "name), {folder} (its subfolder's name) and {caption} (its current caption). "
                           "A template without {trigger} gets the trigger first.")
    trigger: str = option("", "Trigger word(s) put first in every caption. Leave empty: the dataset's trigger "
                          "(set once on Load Dataset) is used; a value here overrides it, for these captions "
                          "and the nodes after them.")
    style_words: str = option("", "Comma-separated words that describe the style (e.g. 'film noir, grainy, "
                              "cinematic'); removed from every caption so the trigger learns the style "
                              "instead of them.")
    keep_marker: bool = option(False, "Put kohya's keep marker '|||' after the trigger: caption shuffling and "
                               "dropout never move or drop what comes before it.")
    write: str = option("off", "Save the captions as caption files beside the images (only inside the dataset "
                        "folder). " + "; ".join(f"{name}: {text}" for name, text in WRITE_MODES.items())
                        + ".", choices=tuple(WRITE_MODES))

    def validate(self):
        for name, choices in (("mode", CAPTION_MODES), ("write", WRITE_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}; "
                                 f"got {getattr(self, name)!r}")
        for name in ("template", "trigger", "style_words"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be text, got {getattr(self, name)!r}")
        if not isinstance(self.keep_marker, bool):
            raise ValueError(f"keep_marker must be true or false, got {self.keep_marker!r}")
        render_template(self.template)
        return self

    @property
    def needs_model(self):
        return self.mode in MODEL_MODES


@dataclass(frozen=True)
class CaptionResult:
    dataset: StyleDataset  # a new dataset; the one given is unchanged
    report: str


def recaption(dataset, config, describe=None, model_name="", no_model_hint=""):
    """Caption every sample of `dataset` as `config` says and write sidecars if asked.

    describe: callable(list of PIL images) -> one content caption per image; needed by the
    "model" mode (called once, only for the images that need it). In "model for uncaptioned"
    mode without one, the uncaptioned images are captioned from the template instead and the
    report says so, adding `no_model_hint` (where to put a model). model_name: for the report.
    """
    config.validate()
    if not isinstance(dataset, StyleDataset):
        raise ValueError(f"dataset must be a LookDev dataset, got {type(dataset).__name__}")
    trigger, trigger_line = pick_trigger(config.trigger, dataset.trigger, "the dataset")
    known_triggers = f"{dataset.trigger}, {trigger}"
    contents = [_content(sample.caption, known_triggers) for sample in dataset.samples]
    described, templated = [], []
    if config.needs_model:
        described = [index for index, content in enumerate(contents)
                     if config.mode == "model" or not content]
        if describe is None and config.mode == "model for uncaptioned":
            described, templated = [], described  # the default mode never needs a model
        for index, text in zip(described, _describe(dataset, described, describe)):
            contents[index] = text
    if config.mode == "template":
        templated = range(len(contents))
    captions = [style_caption(content, trigger, config.style_words, config.keep_marker)
                for content in contents]
    for index in templated:
        captions[index] = _from_template(config, trigger, dataset.samples[index], dataset.root,
                                         contents[index])
    samples = [dataclasses.replace(sample, caption=caption)
               for sample, caption in zip(dataset.samples, captions)]
    new = dataclasses.replace(dataset, samples=samples, trigger=trigger,
                              skipped=list(dataset.skipped), notes=list(dataset.notes))
    writes = write_sidecars(new, config.write)
    fallback = len(templated) if config.mode != "template" else 0
    report = _report(new, config, len(described), model_name, writes, trigger_line, fallback)
    if fallback:
        report += (f"\nnote: no captioning model was picked, so the {fallback} uncaptioned "
                   f"images were captioned from the template {config.template!r}, which names "
                   "the file, not what it shows. Captions that describe each image train a "
                   "cleaner style: pick a BLIP or Florence-2 model in 'captioner'"
                   + (f" ({no_model_hint})" if no_model_hint else "") + ".")
    return CaptionResult(new, report)


def sidecar_path(source, extension):
    """Where the caption of image `source` lives: photo.png -> photo.txt."""
    return Path(source).with_suffix(f".{extension}")


@dataclass
class SidecarWrites:
    """What write_sidecars did. Lists hold paths; `refused` holds an Issue per file not written."""

    mode: str
    written: list = field(default_factory=list)
    backed_up: list = field(default_factory=list)  # overwritten, old text kept as .bak
    unchanged: list = field(default_factory=list)  # already held this caption
    left_alone: list = field(default_factory=list)  # existed, and the mode writes missing only
    refused: list = field(default_factory=list)
    no_files: bool = False  # the dataset was built from images in memory


def write_sidecars(dataset, mode):
    """Save each sample's caption beside its source file, for samples under `dataset.root`
    only; atomically, never through a symlink. Returns SidecarWrites, or None for mode "off"."""
    if mode not in WRITE_MODES:
        raise ValueError(f"write must be one of {', '.join(WRITE_MODES)}; got {mode!r}")
    if mode == "off":
        return None
    writes = SidecarWrites(mode)
    if dataset.root is None:
        writes.no_files = True
        return writes
    root = Path(dataset.root).resolve()
    targets = defaultdict(list)
    for sample in dataset.samples:
        if sample.source is not None:
            targets[sidecar_path(sample.source, dataset.caption_extension)].append(sample)
    for path, group in targets.items():
        problem = _unwritable(path, group, root)
        if problem:
            writes.refused.append(Issue(path, problem, "not written"))
        else:
            _write_one(path, group[0].caption, mode, writes)
    return writes


def _content(caption, triggers):
    """What a caption says besides its trigger tags (whole tags only) and keep marker."""
    unwanted = {tag.casefold() for tag in split_tags(triggers)}
    return join_tags(tag for tag in split_tags(plain_caption(caption))
                     if tag.casefold() not in unwanted)


def _from_template(config, trigger, sample, root, content):
    """As the loader builds captions: a template that places {trigger} is followed as written
    ("{trigger} style, ..."); one without it gets the trigger first. Style words are removed
    from the filled-in values, not from the template's own words."""
    filename = filename_words(sample.source) if sample.source is not None else ""
    folder = ""
    if sample.source is not None and root is not None \
            and Path(sample.source).parent.is_relative_to(root):
        subfolder = Path(sample.source).parent.relative_to(root).as_posix()
        folder = folder_label("" if subfolder == "." else subfolder)
    values = {name: strip_style_words(value, config.style_words)
              for name, value in (("filename", filename), ("folder", folder),
                                  ("caption", content))}
    text = render_template(config.template, trigger=trigger, **values)
    if "{trigger}" not in config.template:
        text = with_trigger(text, trigger)
    return with_keep_marker(text, trigger) if config.keep_marker else text


def _describe(dataset, indices, describe):
    if not indices:
        return []
    if describe is None:
        raise ValueError("this caption mode needs a captioning model; pick one in 'captioner'")
    texts = describe([to_pil(dataset.samples[index].image, rounded=True) for index in indices])
    if len(texts) != len(indices) or not all(isinstance(text, str) for text in texts):
        raise ValueError(f"the captioning model gave {len(texts)} captions for {len(indices)} "
                         "images")
    return texts


def _unwritable(path, group, root):
    if len(group) > 1:
        names = " and ".join(sorted(Path(sample.source).name for sample in group))
        return f"shared by {names}; rename one of them so each image has its own caption file"
    if not path.parent.resolve().is_relative_to(root):
        return "outside the dataset folder; LookDev writes caption files only inside it"
    if path.is_symlink():
        return "the caption file is a symlink; left alone"
    if path.exists() and not path.is_file():
        return "something other than a file has the caption file's name; left alone"
    return None


def _write_one(path, caption, mode, writes):
    try:
        old = path.read_bytes() if path.exists() else b""
    except OSError as exc:
        writes.refused.append(Issue(path, f"cannot read it ({exc.strerror or exc}); left alone",
                                    "not written"))
        return
    old_text = old.decode("utf-8-sig", errors="replace").strip()
    try:
        if not old_text:
            write_text(path, caption)
            writes.written.append(path)
        elif old_text == caption:
            writes.unchanged.append(path)
        elif mode == "write missing":
            writes.left_alone.append(path)
        else:
            write_bytes(path.with_name(path.name + BACKUP_SUFFIX), old)
            write_text(path, caption)
            writes.backed_up.append(path)
    except SaveError as exc:
        writes.refused.append(Issue(path, str(exc), "not written"))


def _report(dataset, config, described, model_name, writes, trigger_line, fallback=0):
    kept = len(dataset) - described
    how = {"keep": f"{len(dataset)} kept", "template": f"{len(dataset)} from the template"}.get(
        config.mode, f"{described} described by {model_name or 'the model'}, {kept} kept")
    if fallback:
        how = f"{fallback} from the template (no captioning model), {kept - fallback} kept"
    lines = [f"LookDev captions ({config.mode}): {len(dataset)} images, {how}", trigger_line]
    if split_tags(config.style_words):
        lines.append("Style words removed: " + ", ".join(split_tags(config.style_words)))
    if config.keep_marker:
        lines.append("Keep marker '|||' after the trigger")
    lines.extend(_write_lines(writes, dataset.root))
    return "\n".join(lines)


def _write_lines(writes, root):
    if writes is None:
        return ["Caption files: not written (write is off)"]
    if writes.no_files:
        return ["Caption files: none written; this dataset was built from images, not files"]
    counts = [(len(writes.written), "written"),
              (len(writes.backed_up), f"overwritten (the old one kept as {BACKUP_SUFFIX})"),
              (len(writes.unchanged), "unchanged"),
              (len(writes.left_alone), "already there (left alone)"),
              (len(writes.refused), "not written")]
    lines = [f"Caption files ({writes.mode}): "
             + ", ".join(f"{count} {what}" for count, what in counts if count)]
    if writes.refused:
        lines.append(f"Not written ({len(writes.refused)}):")
        lines.extend(f"  {_relative(issue.path, root)}: {issue.message}"
                     for issue in writes.refused)
    return lines


def _relative(path, root):
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
