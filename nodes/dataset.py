"""Dataset nodes: a folder of reference images, or IMAGE batches from any node, in; the
LOOKDEV_DATASET the trainer reads, a preview grid (also shown on the node), the image count and
a report of everything skipped out."""

from ..trainer import comfy_bridge
from ..trainer.dataset.dataset import (DatasetConfig, build_dataset, dataset_from_images,
                                       format_report, preview_grid)
from ..trainer.dataset.scan import folder_fingerprint, ready_folder, resolve_folder, subfolders
from .common import CATEGORY, DATASET, from_config, progress_reporter, tip

RESOLUTIONS = {"512": 512, "768": 768, "1024": 1024, "custom": None}


def training_resolution(choice, custom):
    """The resolution a node's inputs pick: a preset, or `custom` when the choice is 'custom'."""
    if choice not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {choice!r}")
    return RESOLUTIONS[choice] or custom


def caption_lines(captions):
    """The captions input of Dataset From Images (a list, as INPUT_IS_LIST delivers it) as one
    caption per image: several texts (a STRING list from another node) are one caption each;
    a single text holds one caption per line, blank lines ignored (a single line is for all)."""
    if len(captions) > 1:
        return list(captions)
    text = captions[0] if captions else ""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _common_inputs():
    return {
        "trigger": from_config(DatasetConfig, "trigger"),
        "resolution": tip(list(RESOLUTIONS), "Training resolution: 512 for SD1.5, 1024 for SDXL "
                          "and newer; images are fitted to aspect-ratio buckets of about this "
                          "many pixels squared and center-cropped to their bucket.",
                          default="1024"),
        "custom_resolution": tip("INT", "Resolution used when 'resolution' is custom: a multiple "
                                 "of 64.", default=1024, min=128, max=4096, step=64),
        "no_upscale": from_config(DatasetConfig, "no_upscale"),
        "repeats": from_config(DatasetConfig, "default_repeats"),
    }


def _outputs(dataset):
    preview = preview_grid(dataset)
    ui_image = comfy_bridge.save_temp_image(preview, "lookdev_dataset")
    return {"ui": {"images": [ui_image]},
            "result": (dataset, preview, len(dataset), format_report(dataset))}


class _DatasetNode:
    CATEGORY = f"{CATEGORY}/dataset"
    FUNCTION = "execute"
    # Not an output node: a prompt whose trainer fails validation must not run (and "succeed")
    # on the dataset alone. The preview still shows: ComfyUI sends any node's "ui" result.
    RETURN_TYPES = (DATASET, "IMAGE", "INT", "STRING")
    RETURN_NAMES = ("dataset", "preview", "count", "report")
    OUTPUT_TOOLTIPS = (
        "The style dataset: cropped, bucketed, captioned images for LookDev's trainer.",
        "Contact sheet of the images as they will be trained (also shown on the node).",
        "Number of images used (repeats not counted).",
        "What was loaded: buckets, repeats, and every skipped file or remark with its reason.",
    )


class LoadDataset(_DatasetNode):
    DISPLAY_NAME = "LookDev Load Dataset"
    DESCRIPTION = ("Loads a folder of 10-30 style reference images with their caption files, "
                   "fitted to aspect-ratio buckets. Bad files are skipped and listed in the "
                   "report.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            # A choice of the input folder's subfolders (refreshed with the node list), but any
            # typed path is accepted: VALIDATE_INPUTS takes `folder`, so ComfyUI does not hold it
            # to the list, and saved workflows' typed values keep working.
            "folder": tip(subfolders(comfy_bridge.folder("input")),
                          "Folder of reference images: one of ComfyUI's input folder's subfolders, or "
                          "(type a folder path) an absolute path or one relative to the input folder; "
                          "(upload images) copies images and caption files from your computer into an "
                          "input subfolder. Subfolders named like 10_name repeat their images 10 times; "
                          "photo.txt beside photo.png is its caption.", default=""),
            **_common_inputs(),
            "recursive": from_config(DatasetConfig, "recursive"),
            "caption_extension": from_config(DatasetConfig, "caption_extension"),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, folder=None):
        """A missing or empty folder is reported when the prompt is queued, with every other
        missing input (e.g. the checkpoint), before anything runs."""
        if not isinstance(folder, str):
            return True  # linked from another node: checked when it runs
        try:
            ready_folder(folder, comfy_bridge.folder("input"))
        except ValueError as exc:
            return str(exc)
        return True

    @classmethod
    def IS_CHANGED(cls, folder=None, recursive=True, caption_extension="txt", **_):
        if not isinstance(folder, str):
            return float("nan")  # linked from another node: the folder is known at run time only
        try:
            root = resolve_folder(folder, comfy_bridge.folder("input"))
            return folder_fingerprint(root, recursive, caption_extension)
        except ValueError as exc:
            return f"unusable: {exc}"  # execute raises this same error for the user

    def execute(self, folder, trigger, resolution, custom_resolution, no_upscale, repeats,
                recursive, caption_extension):
        root = resolve_folder(folder, comfy_bridge.folder("input"))
        config = DatasetConfig(folder=str(root), recursive=recursive,
                               resolution=training_resolution(resolution, custom_resolution),
                               no_upscale=no_upscale, caption_extension=caption_extension,
                               trigger=trigger, default_repeats=repeats)
        return _outputs(build_dataset(config, progress=progress_reporter()))


class DatasetFromImages(_DatasetNode):
    DISPLAY_NAME = "LookDev Dataset From Images"
    DESCRIPTION = ("Makes a style dataset from images of any node (batches of any sizes) and "
                   "their captions, fitted to aspect-ratio buckets like a loaded folder.")
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": tip("IMAGE", "Reference images from any node: a batch, or several "
                          "batches of different sizes (each image gets its own bucket)."),
            "captions": tip("STRING", "One caption per line, in image order, or a single line "
                            "for every image; empty for none. A list of texts from another node "
                            "gives one caption each.", multiline=True, default=""),
            **_common_inputs(),
        }}

    def execute(self, images, captions, trigger, resolution, custom_resolution, no_upscale,
                repeats):
        # INPUT_IS_LIST: every input arrives as a list; the settings are its first value.
        config = DatasetConfig(resolution=training_resolution(resolution[0], custom_resolution[0]),
                               no_upscale=no_upscale[0], trigger=trigger[0],
                               default_repeats=repeats[0])
        return _outputs(dataset_from_images(images, caption_lines(captions), config))


NODES = {"LookDevLoadDataset": LoadDataset, "LookDevDatasetFromImages": DatasetFromImages}
