"""Dataset From Video: a reference reel in (a file from the input folder, a typed path, or
ComfyUI's VIDEO), a LOOKDEV_DATASET of frames spread over its shots out, with the same outputs
as the other dataset nodes. The analysis lives in trainer/dataset/reel.py and video.py."""

import os
from pathlib import Path

from ..trainer import comfy_bridge
from ..trainer.dataset.dataset import DatasetConfig, format_report, preview_grid
from ..trainer.dataset.reel import (ReelConfig, check_video_file, reel_dataset, video_files)
from ..trainer.dataset.scan import DatasetError, resolve_folder
from .common import from_config, progress_reporter, tip
from .dataset import _common_inputs, _DatasetNode, training_resolution

NO_FILE = "(none)"


def _typed_or_picked(video, path):
    """The video file the inputs name: the typed path (absolute, or relative to the input
    folder, Load Dataset's rules) when given, else the picked file."""
    input_dir = comfy_bridge.folder("input")
    if isinstance(path, str) and path.strip():
        return check_video_file(resolve_folder(path, input_dir, name="path"))
    if video in (None, "", NO_FILE):
        raise DatasetError("no video given: pick a file in 'video', type a path in 'path', or "
                           "connect a VIDEO to 'video_input'")
    return check_video_file(resolve_folder(video, input_dir, name="video"))


def frames_folder_path(frames_folder, stem):
    """Where 'write frames' saves: a folder inside ComfyUI's input folder (default
    <video name>_frames), never outside it (no absolute path, '..' or symlink leading out)."""
    input_dir = Path(comfy_bridge.folder("input"))
    text = frames_folder.strip() if isinstance(frames_folder, str) else ""
    if Path(text).is_absolute() or text.startswith("~"):
        raise DatasetError(f"frames_folder {text!r}: frames are written inside ComfyUI's input "
                           f"folder {input_dir}; give a folder name relative to it")
    target = resolve_folder(text or f"{stem}_frames", input_dir, name="frames_folder")
    if not target.resolve().is_relative_to(input_dir.resolve()):
        raise DatasetError(f"frames_folder {text!r} leads to {target.resolve()}, outside "
                           f"ComfyUI's input folder {input_dir} (a symlink?); pick another name")
    return target


class DatasetFromVideo(_DatasetNode):
    DISPLAY_NAME = "LookDev Dataset From Video"
    DESCRIPTION = ("Makes a style dataset from a reference reel: finds the shots, takes the "
                   "sharpest frames spread over them (no black, fade or near-duplicate frames), "
                   "crops letterbox/pillarbox bars and names frames by timecode.")

    @classmethod
    def INPUT_TYPES(cls):
        files = video_files(comfy_bridge.folder("input"))
        return {"required": {
            "path": tip("STRING", "The video's path, typed: absolute, or relative to "
                        "ComfyUI's input folder. Used instead of the picked 'video' (at the "
                        "bottom); empty to use the picked file.", default=""),
            "frames": from_config(ReelConfig, "frames"),
            "start": from_config(ReelConfig, "start"),
            "end": from_config(ReelConfig, "end"),
            "remove_bars": from_config(ReelConfig, "remove_bars"),
            "write_frames": tip("BOOLEAN", "Also save the chosen frames (cropped, full size, "
                                "named by timecode) as PNGs in frames_folder inside the input "
                                "folder, so you can prune them and use Load Dataset next time; "
                                "captions beside them are used.", default=False),
            "frames_folder": tip("STRING", "Folder inside ComfyUI's input folder for "
                                 "write_frames; empty for <video name>_frames.", default=""),
            **_common_inputs(),
            # Last of the required inputs: the editor appends the upload button's widget value
            # after the required widgets, so this keeps saved widget values in input order.
            "video": ([NO_FILE, *files], {
                "video_upload": True, "default": NO_FILE,
                "tooltip": "A video in ComfyUI's input folder (upload one here). A typed "
                           "'path' or a connected video_input takes precedence."}),
        }, "optional": {
            "video_input": tip("VIDEO", "A video from another node (Load Video, ...); used "
                               "instead of 'video' and 'path' when connected."),
        }}

    @classmethod
    def IS_CHANGED(cls, video=None, path=None, video_input=None, **_):
        if video_input is not None or not isinstance(path, str):
            return float("nan")  # a linked input: known at run time only
        try:
            stat = os.stat(_typed_or_picked(video, path))
        except (OSError, ValueError) as exc:
            return f"unusable: {exc}"  # execute raises the same error for the user
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def execute(self, path, frames, start, end, remove_bars, write_frames, frames_folder,
                trigger, resolution, custom_resolution, no_upscale, repeats, video,
                video_input=None):
        if video_input is not None:
            source, name = comfy_bridge.video_source(video_input), "video_input"
            if isinstance(source, str):
                name = Path(source).name
        else:
            source = _typed_or_picked(video, path)
            name = source.name
        write_to = frames_folder_path(frames_folder, Path(name).stem) if write_frames else None
        result = reel_dataset(
            str(source) if isinstance(source, Path) else source, name,
            ReelConfig(frames=frames, start=start, end=end, remove_bars=remove_bars),
            DatasetConfig(resolution=training_resolution(resolution, custom_resolution),
                          no_upscale=no_upscale, trigger=trigger, default_repeats=repeats),
            write_to=write_to, progress=progress_reporter())
        preview = preview_grid(result.dataset, labels=result.labels)
        report = f"{result.report}\n{format_report(result.dataset)}"
        return {"ui": {"images": [comfy_bridge.save_temp_image(preview, "lookdev_reel")]},
                "result": (result.dataset, preview, len(result.dataset), report)}


NODES = {"LookDevDatasetFromVideo": DatasetFromVideo}
