"""The animatic node: a storyboard's frames timed by their shots and cut into a video plus an EDL."""

from ..trainer import comfy_bridge as bridge
from ..trainer.render.animatic import (
    AnimaticConfig, animatic_paths, animatic_report, clip_notes, make_animatic, save_animatic, shot_pictures,
    timed_shots,
)
from ..trainer.render.storyboard import ui_image
from .common import CATEGORY, SHOTS, from_config, progress_reporter, tip

FAMILY = f"{CATEGORY}/storyboard"
_PROGRESS_EVERY = 12  # frames between progress-bar updates and Cancel checks


class Animatic:
    DISPLAY_NAME = "LookDev Animatic"
    DESCRIPTION = ("Cuts the storyboard's frames together at each shot's duration (round(duration x fps) frames "
                   "per shot), with an optional push-in, slates, title card and dissolves. Saves "
                   "<folder>/animatic.mp4 (H.264), the timeline as animatic.otio, animatic.xml (Premiere, "
                   "Resolve), animatic.fcpxml (Final Cut Pro) and animatic.edl (CMX3600), each shot's media in "
                   "animatic_media/ and animatic.csv in the output folder, and outputs ComfyUI's VIDEO for Save "
                   "Video and other video nodes.")
    CATEGORY = FAMILY
    RETURN_TYPES = ("VIDEO", "STRING")
    RETURN_NAMES = ("video", "report")
    OUTPUT_TOOLTIPS = ("The animatic as ComfyUI's VIDEO (the saved file's contents).",
                       "Frames, timecodes and length of every shot, notes, and the files written.")
    FUNCTION = "execute"
    OUTPUT_NODE = True
    INPUT_IS_LIST = True  # frames of different sizes arrive as a list

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": tip("IMAGE", "Frames from LookDev Storyboard Render (a list, one per shot; a batch of "
                                       "several frames is played as a clip), or one batch with a still per shot."),
                "shots": tip(SHOTS, "The shot list the frames were rendered from: its durations time the cuts."),
                "fps": from_config(AnimaticConfig, "fps"),
                "width": from_config(AnimaticConfig, "width"),
                "height": from_config(AnimaticConfig, "height"),
                "ken_burns": from_config(AnimaticConfig, "ken_burns"),
                "ken_burns_zoom": from_config(AnimaticConfig, "ken_burns_zoom"),
                "slate": from_config(AnimaticConfig, "slate"),
                "title": from_config(AnimaticConfig, "title"),
                "title_duration": from_config(AnimaticConfig, "title_duration", min=0.1, max=600.0, step=0.5),
                "dissolve": from_config(AnimaticConfig, "dissolve"),
                "folder": from_config(AnimaticConfig, "folder"),
                "container": from_config(AnimaticConfig, "container"),
            },
            "optional": {
                "labels": tip("STRING", "Shot id per frame, from the render node's labels output; without it "
                                        "frames are matched to shots in order.", forceInput=True),
            },
        }

    def execute(self, images, shots, labels=None, **settings):
        config = AnimaticConfig(**{name: values[0] for name, values in settings.items()}).validate()
        storyboard, output = shots[0], bridge.folder("output")
        paths = animatic_paths(output, config)  # a bad folder fails before any drawing
        shot_list = timed_shots(storyboard)
        pictures = shot_pictures(images, labels, [shot.name for shot in shot_list])
        report = progress_reporter()

        def on_frame(done, total):
            if done % _PROGRESS_EVERY == 0 or done == total:
                report(done, total)
                bridge.check_cancel()

        animatic = make_animatic(shot_list, pictures, config, storyboard.name or "animatic", on_frame)
        save_animatic(animatic, paths)
        text = animatic_report(animatic, config, paths, clip_notes(animatic.events, pictures))
        return {"ui": {"images": [ui_image(paths["video"], output)], "animated": (True,)},
                "result": (bridge.video_from_bytes(animatic.video), text)}


NODES = {"LookDevAnimatic": Animatic}
