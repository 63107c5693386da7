"""A style dataset: reference images brought to training size without distortion, captioned so
that the trigger word carries the style.

`build_dataset` reads a folder; `dataset_from_images` takes ComfyUI IMAGE tensors. Neither
crashes on a bad file or frame: it is skipped and listed in `format_report`. Only a dataset with
no usable image at all raises (DatasetError, naming the folder and summarising why).
"""

import hashlib
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

from ..options import option
from ..pixels import image_tensor, to_pil
from .buckets import check_resolution, choose_bucket, fit_to_bucket, make_buckets
from .captions import (KEEP_SEPARATOR, filename_words, join_tags, render_template,
                       split_tags, strip_style_words, with_trigger)
from .images import MIN_SIDE, ImageSkip, load_image
from .scan import (DatasetError, Issue, folder_label, no_usable_images,
                   normalize_extension, scan_folder)

_UPSCALE_NOTE_ABOVE = 2.0  # enlargements beyond this visibly soften the style's texture


@dataclass
class DatasetConfig:
    """What to read and how to caption it. `validate()` raises a ValueError naming the field."""

    folder: str = option("", "Folder of 10-30 reference images (subfolders named like 10_name repeat their "
                         "images 10 times).")
    recursive: bool = option(True, "Also read images in subfolders.")
    resolution: int = option(1024, "Training resolution: images are fitted to buckets of about this many pixels "
                             "squared (512 for SD1.5, 1024 for SDXL); a multiple of 64.")
    no_upscale: bool = option(False, "Never enlarge images smaller than the resolution; they train at their own "
                              "size (rounded down to 64 px).")
    caption_extension: str = option("txt", "Extension of caption files beside the images (photo.txt for photo.png).")
    trigger: str = option("", "Word(s) that will call up the style in prompts, e.g. 'lkdv style'; put first "
                          "in every caption. Several may be given, comma-separated.")
    caption_template: str = option("{trigger}, {caption}",
                                   "How each caption is built from {trigger}, {caption} (the caption file), "
                                   "{filename} (words of the file name) and {folder} (the subfolder's name).")
    strip_words: str = option("", "Comma-separated style words removed from captions (e.g. 'film noir, "
                              "cinematic') so the trigger learns the style instead of them.")
    default_repeats: int = option(1, "How often each image is seen per epoch, unless its folder is named N_name.",
                                  min=1, max=1000)

    def validate(self):
        """Raise ValueError naming the first field with an unusable value; return self."""
        if not isinstance(self.folder, (str, os.PathLike)):
            raise ValueError(f"folder must be a path, got {self.folder!r}")
        for name in ("recursive", "no_upscale"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        check_resolution(self.resolution, name="resolution")
        normalize_extension(self.caption_extension, "caption_extension")
        for name in ("trigger", "caption_template", "strip_words"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be text, got {getattr(self, name)!r}")
        render_template(self.caption_template)
        repeats = self.default_repeats
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"default_repeats must be a whole number >= 1, got {repeats!r}")
        return self


@dataclass(frozen=True, eq=False)
class Sample:
    image: torch.Tensor  # float32 [H, W, 3] in 0..1: ComfyUI's IMAGE layout without batch dim
    caption: str
    bucket: tuple  # (width, height) == (W, H) of image
    source: Path | None  # the file it came from; None for in-memory images
    repeats: int
    content_hash: str  # sha256 of the cropped 8-bit RGB pixels: changes when crop or bytes do


@dataclass(eq=False)
class StyleDataset:
    samples: list
    trigger: str
    resolution: int
    source: str  # the folder read, or a description of the in-memory input
    root: Path | None = None
    skipped: list = field(default_factory=list)  # Issue per file or frame left out
    notes: list = field(default_factory=list)  # Issue per remark (bad caption, animation, ...)
    caption_extension: str = "txt"  # of the sidecar captions beside the files under root

    def __len__(self):
        return len(self.samples)

    def effective_size(self):
        """Images per epoch, counting repeats."""
        return sum(sample.repeats for sample in self.samples)

    def captions(self):
        return [sample.caption for sample in self.samples]

    def buckets(self):
        """{(width, height): number of images}, largest count first."""
        counts = Counter(sample.bucket for sample in self.samples)
        return dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))


def build_dataset(config, progress=None):
    """Scan `config.folder`, load, bucket, crop and caption every image.

    progress: optional callable(done, total) called after each image.
    Raises ValueError for a bad config and DatasetError when no image is usable.
    """
    config.validate()
    scan = scan_folder(config.folder, config.recursive, caption_extension=config.caption_extension,
                       default_repeats=config.default_repeats)
    buckets = make_buckets(config.resolution)
    samples, skipped, notes = [], [], list(scan.notes)
    for done, item in enumerate(scan.items, start=1):
        remarks = []
        try:
            img = load_image(item.path, remarks, shrink_to=config.resolution)
        except ImageSkip as skip:
            skipped.append(Issue(item.path, skip.reason, skip.kind))
        else:
            caption = _caption(config, item.caption or "", filename_words(item.path),
                               folder_label(item.subfolder))
            samples.append(_sample(img, caption, buckets, config.no_upscale, item.path,
                                   item.repeats, remarks))
        notes.extend(Issue(item.path, remark) for remark in remarks)
        if progress is not None:
            progress(done, len(scan.items))
    if not samples:
        raise no_usable_images(scan, skipped)
    return StyleDataset(samples, config.trigger, config.resolution, str(scan.root), scan.root,
                        list(scan.skipped) + skipped, notes,
                        normalize_extension(config.caption_extension))


def dataset_from_images(images, captions, config):
    """A dataset from in-memory images: a ComfyUI IMAGE tensor [B, H, W, 3], a single image
    [H, W, 3], or a list mixing both. `captions` is a list of strings: one per image, or a
    single one for all (an empty list means no captions). `config.folder` is ignored.
    Frames smaller than MIN_SIDE are skipped and reported; ValueError for bad shapes or counts.
    """
    config.validate()
    frames = _frames(images)
    texts = _broadcast_captions(captions, len(frames))
    buckets = make_buckets(config.resolution)
    samples, skipped, notes = [], [], []
    for number, (frame, text) in enumerate(zip(frames, texts), start=1):
        label = f"input image {number}"
        height, width = frame.shape[:2]
        if min(width, height) < MIN_SIDE:
            skipped.append(Issue(label, f"too small: {width}x{height} px; LookDev needs at "
                                 f"least {MIN_SIDE} px on each side", "too small"))
            continue
        remarks = []
        caption = _caption(config, text, "", "")
        samples.append(_sample(to_pil(frame, rounded=True), caption, buckets, config.no_upscale, None,
                               config.default_repeats, remarks))
        notes.extend(Issue(label, remark) for remark in remarks)
    source = f"{len(frames)} input images"
    if not samples:
        raise DatasetError(f"none of the {source} is usable: {len(skipped)} too small "
                           f"(each side needs at least {MIN_SIDE} px)")
    return StyleDataset(samples, config.trigger, config.resolution, source, None, skipped, notes,
                        normalize_extension(config.caption_extension))


def preview_grid(dataset, columns=4, cell=256, labels=None):
    """A contact sheet of the cropped training images: tensor [1, H, W, 3] (ComfyUI IMAGE).
    labels: optional text per image (e.g. a video frame's timecode), written under it."""
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a whole number >= 1, got {columns!r}")
    if isinstance(cell, bool) or not isinstance(cell, int) or cell < 16:
        raise ValueError(f"cell must be a whole number of pixels >= 16, got {cell!r}")
    if not dataset.samples:
        raise ValueError("the dataset has no images to preview")
    if labels is not None and len(labels) != len(dataset.samples):
        raise ValueError(f"{len(labels)} labels for {len(dataset.samples)} images")
    columns = min(columns, len(dataset.samples))
    rows = math.ceil(len(dataset.samples) / columns)
    band = 18 if labels else 0  # room for a line of text under each picture
    sheet = Image.new("RGB", (columns * cell, rows * (cell + band)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for index, sample in enumerate(dataset.samples):
        thumb = ImageOps.contain(to_pil(sample.image, rounded=True), (cell - 4, cell - 4),
                                 Image.Resampling.LANCZOS)
        left = index % columns * cell + (cell - thumb.width) // 2
        top = index // columns * (cell + band) + (cell - thumb.height) // 2
        sheet.paste(thumb, (left, top))
        if labels:
            draw.text((index % columns * cell + 4, index // columns * (cell + band) + cell),
                      str(labels[index]), fill=(230, 230, 230))
    return image_tensor(sheet)


def format_report(dataset):
    """A plain-text report: counts, buckets, repeats, every skipped file with its reason and
    every note."""
    lines = [f"LookDev dataset from {dataset.source}: {len(dataset)} images, "
             f"{dataset.effective_size()} per epoch with repeats, at {dataset.resolution} px",
             f"Trigger: {dataset.trigger!r}" if dataset.trigger else "Trigger: (none)",
             "Buckets: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in dataset.buckets().items())]
    repeated = Counter(sample.repeats for sample in dataset.samples)
    if set(repeated) != {1}:
        lines.append("Repeats: " + ", ".join(f"x{r}: {n} image{'s' * (n != 1)}"
                                             for r, n in sorted(repeated.items())))
    for title, issues in (("Skipped", dataset.skipped), ("Notes", dataset.notes)):
        if issues:
            lines.append(f"{title} ({len(issues)}):")
            lines.extend(f"  {_label(issue.path, dataset.root)}: {issue.message}"
                         for issue in issues)
    return "\n".join(lines)


def _caption(config, caption, filename, folder):
    # Captions written for an earlier run often hold the trigger already; the template places it.
    triggers = {tag.casefold() for tag in split_tags(config.trigger)}
    caption = _without_tags(caption, triggers)
    caption = strip_style_words(caption, config.strip_words)
    filename = strip_style_words(filename, config.strip_words)
    text = render_template(config.caption_template, trigger=config.trigger, filename=filename,
                           folder=folder, caption=caption)
    # A template that places {trigger} itself is respected; otherwise the trigger goes first.
    if "{trigger}" in config.caption_template or not split_tags(config.trigger):
        return text
    return with_trigger(text, config.trigger)


def _without_tags(caption, unwanted):
    """`caption` minus the tags in `unwanted` (casefolded). A keep marker stays where it was, even
    with nothing left before it: "lkdv ||| rain" -> "||| rain", which the template turns back
    into "lkdv, ||| rain" (the trigger still before the marker)."""
    parts = caption.split(KEEP_SEPARATOR, 1)
    kept = [join_tags(tag for tag in split_tags(part) if tag.casefold() not in unwanted)
            for part in parts]
    return f"{kept[0]} {KEEP_SEPARATOR} {kept[1]}".strip() if len(kept) == 2 else kept[0]


def _sample(img, caption, buckets, no_upscale, source, repeats, remarks):
    bucket = choose_bucket(img.width, img.height, buckets, no_upscale)
    scale = max(bucket[0] / img.width, bucket[1] / img.height)
    if scale > _UPSCALE_NOTE_ABOVE:
        remarks.append(f"small image ({img.width}x{img.height}) enlarged {scale:.1f}x to "
                       f"{bucket[0]}x{bucket[1]}; a larger source (or no_upscale) keeps it sharp")
    pixels = np.asarray(fit_to_bucket(img, bucket), dtype=np.uint8)
    content_hash = hashlib.sha256(pixels.tobytes()).hexdigest()
    image = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    return Sample(image, caption, bucket, source, repeats, content_hash)


def _frames(images):
    batches = list(images) if isinstance(images, (list, tuple)) else [images]
    frames = []
    for number, batch in enumerate(batches, start=1):
        if not isinstance(batch, torch.Tensor) or batch.dim() not in (3, 4) \
                or batch.shape[-1] != 3 or not batch.is_floating_point():
            shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise ValueError(f"images item {number} is {shape}; expected a float tensor "
                             "[H, W, 3] or [B, H, W, 3] in 0..1 (ComfyUI IMAGE)")
        if not torch.isfinite(batch).all():
            raise ValueError(f"images item {number} contains NaN or infinite values")
        frames.extend(batch.unbind(0) if batch.dim() == 4 else [batch])
    if not frames:
        raise ValueError("no images given")
    return frames


def _broadcast_captions(captions, count):
    captions = list(captions) if captions is not None else []
    for number, caption in enumerate(captions, start=1):
        if not isinstance(caption, str):
            raise ValueError(f"caption {number} must be text, got {type(caption).__name__}")
    if len(captions) <= 1:
        return (captions or [""]) * count
    if len(captions) != count:
        raise ValueError(f"got {len(captions)} captions for {count} images; give one caption "
                         "per image, or a single caption for all")
    return captions


def _label(path, root):
    if root is not None and isinstance(path, Path) and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)
