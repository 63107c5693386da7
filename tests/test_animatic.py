"""Animatics: timing, the MP4 decoded with PyAV (frame count, fps, each shot starting on the frame
the EDL says), the EDL read as CMX3600, the CSV, push-in, dissolves, slates and title card, bad
input and failed encodes; through ComfyUI's executor: shot-list durations, the node, core Save
Video taking its VIDEO, and the Storyboard Render -> Animatic graph."""

import csv
import io
import re
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from lookdev.trainer.render.animatic import (
    FRAME_RATES, RECORD_START, AnimaticConfig, TimedShot, edl_text, encode_video, frames_for, make_animatic,
    parse_timecode, plan_timeline, push_in, save_animatic, animatic_paths,
)

COLORS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (240, 240, 240), (20, 20, 20), (230, 200, 20)]


def stills(count, size=(64, 36)):
    return [[Image.new("RGB", size, COLORS[index])] for index in range(count)]


def shots(durations, notes=""):
    return [TimedShot(f"SH{index + 1:02d}0", f"shot number {index + 1}", notes, duration, index + 2)
            for index, duration in enumerate(durations)]


def decode(data):
    """(frames as [H, W, 3] uint8 arrays, average rate, stream frame count, codec name) of a video file's bytes."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, stream.average_rate, stream.frames, stream.codec_context.name


def nearest(frame, colors):
    """Index of the colour the upper middle of `frame` shows (a slate covers the bottom)."""
    h, w = frame.shape[:2]
    centre = frame[h // 8: h // 2, w // 4: w - w // 4].reshape(-1, 3).mean(axis=0)
    return int(np.argmin([np.abs(centre - np.array(color)).sum() for color in colors]))


# --- CMX3600 reader: strict about the layout editors' importers rely on --------------------------

EVENT = re.compile(r"^(\d{3})  (.{8}) (.{5}) (C   |D   ) (\d{3}|   ) "
                   r"(\d\d:\d\d:\d\d:\d\d) (\d\d:\d\d:\d\d:\d\d) (\d\d:\d\d:\d\d:\d\d) (\d\d:\d\d:\d\d:\d\d)$")


def read_cmx3600(text, base):
    """[(event number, clip name, record in, record out, dissolve frames)] of a CMX3600 EDL; fails on
    anything a CMX3600 reader would not take."""
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")
    assert re.fullmatch(r"TITLE: .{1,70}", lines[0]) and lines[1] == "FCM: NON-DROP FRAME"
    events, current = [], None
    for line in lines[2:]:
        if not line.strip():
            continue
        if line.startswith("* "):
            assert current is not None, line
            if line.startswith(("* FROM CLIP NAME: ", "* TO CLIP NAME: ")):
                current["name"] = line.split(": ", 1)[1]
            else:
                assert line.startswith("* COMMENT: "), line
            continue
        match = EVENT.fullmatch(line)
        assert match, f"not a CMX3600 event line: {line!r}"
        number, reel, track, transition, blend, *times = match.groups()
        source_in, source_out, record_in, record_out = (parse_timecode(t, base) for t in times)
        assert reel.strip() == "AX" and track.strip() == "V"
        assert source_out - source_in == record_out - record_in
        if current is not None and current["number"] == int(number):  # the incoming half of a dissolve
            assert transition.strip() == "D" and current["record_out"] == record_in
            current.update(record_out=record_out, dissolve=int(blend))
            continue
        current = {"number": int(number), "record_in": record_in, "record_out": record_out, "dissolve": 0}
        assert transition.strip() == "C" and blend == "   "
        events.append(current)
    numbers = [event["number"] for event in events]
    assert numbers == list(range(1, len(events) + 1))
    for before, after in zip(events, events[1:]):
        assert before["record_out"] == after["record_in"]
    return [(e["number"], e["name"], e["record_in"], e["record_out"], e["dissolve"]) for e in events]


# --- timing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", ["23.976", "24", "25", "29.97", "60"])
def test_each_shot_lasts_its_duration_times_fps_rounded(fps):
    rate = FRAME_RATES[fps][0]
    durations = [1.0, 2.5, 0.3, 0.5, 7.77, 0.03]
    events = plan_timeline(shots(durations), rate)
    expected = [int(Fraction(str(d)) * rate + Fraction(1, 2)) for d in durations]
    assert [event.length for event in events] == expected
    assert [event.start for event in events] == [sum(expected[:i]) for i in range(len(expected))]
    assert frames_for(0.3, 25) == 8 and frames_for(0.5, 25) == 13  # half up, from the decimal written


@pytest.mark.parametrize("duration, message", [
    (0.01, "shot 'SH010' (line 2): duration 0.01 s is shorter than one frame at 24 fps"),
    (0, "shot 'SH010' (line 2): duration must be more than 0"),
    (-1.0, "must be more than 0 and at most 600 seconds, got -1.0"),
    (601.0, "at most 600 seconds, got 601.0"),
    (float("nan"), "got nan"),
])
def test_bad_durations_are_clear_errors(duration, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        plan_timeline(shots([duration]), 24)


@pytest.mark.parametrize("settings, message", [
    ({"fps": "12"}, "fps '12' is not one of"),
    ({"width": 65}, "width must be 0 (from the first frame) or an even number"),
    ({"ken_burns_zoom": 0.5}, "ken_burns_zoom must be between 1.0 and 4.0, got 0.5"),
    ({"title": "x", "title_duration": 0.0}, "title_duration must be more than 0"),
    ({"dissolve": -1.0}, "dissolve must be between 0.0 and 600.0, got -1.0"),
    ({"dissolve": "1"}, "dissolve must be a number, got '1'"),
    ({"container": "avi"}, "container 'avi' is not one of"),
])
def test_bad_settings(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AnimaticConfig(**settings).validate()


# --- the video, the EDL, the CSV ------------------------------------------------------------------

@pytest.mark.parametrize("fps, title", [("24", ""), ("23.976", "Noir - seq 01"), ("25", "")])
def test_video_frames_start_where_the_edl_says(fps, title):
    durations = [1.0, 0.5, 1.25, 0.04, 2.0]
    config = AnimaticConfig(fps=fps, title=title, title_duration=1.0, slate=bool(title))
    animatic = make_animatic(shots(durations), stills(len(durations), (128, 72)), config, "seq01")
    rate, base = FRAME_RATES[fps]
    frames, average_rate, stream_frames, codec = decode(animatic.video)
    assert codec == "h264" and average_rate == rate
    lengths = [frames_for(d, rate) for d in durations]
    title_frames = frames_for(1.0, rate) if title else 0
    assert len(frames) == stream_frames == animatic.frames == title_frames + sum(lengths)
    assert frames[0].shape == (72, 128, 3)
    with av.open(io.BytesIO(animatic.video)) as container:  # the record timeline's start, for conforming
        assert container.streams.video[0].metadata["timecode"] == "01:00:00:00"

    events = read_cmx3600(animatic.edl, base)
    offset = RECORD_START * base
    names = (["TITLE"] if title else []) + [f"SH{i + 1:02d}0" for i in range(len(durations))]
    assert [name for _, name, *_ in events] == names
    assert events[-1][3] - offset == len(frames)
    palette = COLORS[:len(durations)] + [(0, 0, 0)]  # black: the title card
    shown = [nearest(frame, palette) for frame in frames]
    for (number, name, record_in, record_out, _), expected in zip(events[-len(durations):], range(len(durations))):
        first, end = record_in - offset, record_out - offset
        assert shown[first:end] == [expected] * (end - first), name
        assert first == 0 or shown[first - 1] != expected  # the cut is on this frame, not later or earlier

    rows = list(csv.DictReader(io.StringIO(animatic.csv)))
    assert [row["shot_id"] for row in rows] == names
    for row, (_, _, record_in, record_out, _) in zip(rows, events):
        assert int(row["first_frame"]) == record_in - offset and int(row["last_frame"]) == record_out - offset - 1
        assert parse_timecode(row["record_in"], base) == record_in


def test_frames_of_other_shapes_are_letterboxed_and_sizes_follow_settings():
    pictures = [[Image.new("RGB", (64, 64), COLORS[0])], [Image.new("RGB", (96, 32), COLORS[1])]]
    animatic = make_animatic(shots([0.25, 0.25]), pictures, AnimaticConfig(width=128, height=72))
    frames, *_ = decode(animatic.video)
    assert frames[0].shape == (72, 128, 3)
    assert frames[0][36, 10].max() < 24 and nearest(frames[0], COLORS[:2]) == 0  # pillarbox bars are black
    assert frames[-1][5, 64].max() < 24 and nearest(frames[-1], COLORS[:2]) == 1  # letterbox bars


def test_push_in_moves_from_the_still_to_the_zoom():
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (36, 1))
    picture = Image.fromarray(np.stack([gradient, gradient[:, ::-1], np.full_like(gradient, 128)], -1).astype(np.uint8))
    animatic = make_animatic(shots([1.0]), [[picture]], AnimaticConfig(ken_burns=True, ken_burns_zoom=1.5))
    frames, *_ = decode(animatic.video)
    first, last = (frame.astype(np.float32) for frame in (frames[0], frames[-1]))
    def error(frame, picture):
        return np.abs(frame - np.asarray(picture, dtype=np.float32)).mean()
    assert error(first, picture) < 3 and error(last, push_in(picture, 1.5)) < 3
    assert error(last, picture) > 10
    spreads = [np.abs(frame[:, 32:, 0].astype(np.float32) - frame[:, :32, 0]).mean() for frame in frames]
    assert spreads[0] > spreads[len(spreads) // 2] > spreads[-1]  # the gradient flattens as it zooms in


def test_dissolve_blends_into_the_shot_without_moving_the_cut():
    config = AnimaticConfig(dissolve=0.25)
    animatic = make_animatic(shots([1.0, 1.0]), stills(2), config)
    frames, *_ = decode(animatic.video)
    assert len(frames) == 48
    events = read_cmx3600(animatic.edl, 24)
    assert [(e[2] - RECORD_START * 24, e[4]) for e in events] == [(0, 0), (24, 6)]
    red = [float(frame[18, 32, 0]) for frame in frames]
    assert abs(red[23] - COLORS[0][0]) < 8 and abs(red[30] - COLORS[1][0]) < 8
    blend = red[24:30]
    assert all(a > b for a, b in zip(blend, blend[1:])) and COLORS[1][0] < blend[-1] < blend[0] < COLORS[0][0]


def test_edl_is_cmx3600_with_comments():
    events = plan_timeline(shots([2.0, 1.0], notes="dolly in; VO: hello"), 24, title="Seq 01", title_duration=2.0)
    text = edl_text(events, 24, "Seq 01")
    assert text.split("\r\n")[:5] == [
        "TITLE: Seq 01", "FCM: NON-DROP FRAME", "",
        "001  AX       V     C        00:00:00:00 00:00:02:00 01:00:00:00 01:00:02:00",
        "* FROM CLIP NAME: TITLE"]
    assert "* COMMENT: NOTES: dolly in; VO: hello" in text
    assert read_cmx3600(text, 24)[1:] == [(2, "SH010", 86400 + 48, 86400 + 96, 0), (3, "SH020", 86400 + 96, 86400 + 120, 0)]


# --- failures leave nothing behind -------------------------------------------------------------

def frame_source(count, size=(64, 36)):
    return (np.zeros((size[1], size[0], 3), np.uint8) for _ in range(count))


@pytest.mark.parametrize("codec, container, message", [
    ("no_such_codec", "mp4", "this PyAV (FFmpeg) has no encoder for codec 'no_such_codec'"),
    ("h264", "no_such_container", "cannot write a 'no_such_container' file"),
    ("h264", "wav", "cannot write h264 video into a 'wav' file"),
])
def test_unwritable_codec_or_container_is_a_clear_error(codec, container, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        encode_video(frame_source(3), (64, 36), 24, codec=codec, container=container)


def test_failed_encode_or_save_leaves_no_partial_file(tmp_path):
    config = AnimaticConfig(folder="seq")
    paths = animatic_paths(tmp_path, config)
    good = make_animatic(shots([0.5]), stills(1), config)
    save_animatic(good, paths)
    saved = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {path: path.read_bytes() for path in saved}
    assert len(saved) == 7  # video, edl, csv, otio, xml, fcpxml and the shot's still
    with pytest.raises(ValueError, match="frame 1 is 32x36"):
        encode_video(iter([np.zeros((36, 64, 3), np.uint8), np.zeros((36, 32, 3), np.uint8)]), (64, 36), 24)
    assert {path: path.read_bytes() for path in saved} == before
    (tmp_path / "blocked").write_text("a file where the folder should be")
    blocked = animatic_paths(tmp_path, AnimaticConfig(folder="blocked/seq"))
    with pytest.raises(OSError, match=r"cannot save .*blocked/seq/animatic_media/SH010\.png"):
        save_animatic(good, blocked)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(saved + [tmp_path / "blocked"])
    assert not [p for p in tmp_path.rglob(".*")]  # no temp file left
    with pytest.raises(ValueError, match="must stay inside the output folder"):
        animatic_paths(tmp_path, AnimaticConfig(folder="../up"))


# --- through ComfyUI ----------------------------------------------------------------------------

def shot_list(shots_text, **inputs):
    return {"class_type": "LookDevShotList", "inputs": {
        "shots": shots_text, "style_prefix": "", "style_suffix": "", "trigger_words": "",
        "seed_policy": "per-shot seeds", "base_seed": 0, **inputs}}


def animatic_node(images, shots_ref, labels=None, **inputs):
    node = {"class_type": "LookDevAnimatic", "inputs": {
        "images": images, "shots": shots_ref, "fps": "24", "width": 0, "height": 0, "ken_burns": False,
        "ken_burns_zoom": 1.1, "slate": False, "title": "", "title_duration": 3.0, "dissolve": 0.0,
        "folder": "anim", "container": "mp4", **inputs}}
    if labels is not None:
        node["inputs"]["labels"] = labels
    return node


@pytest.fixture(scope="module")
def comfy_stills(comfy):
    """Solid-colour stills as a list, one per shot, as Storyboard Render outputs them."""
    class Stills:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"count": ("INT", {"default": 3, "tooltip": "how many"})}}

        RETURN_TYPES = ("IMAGE",)
        OUTPUT_IS_LIST = (True,)
        FUNCTION = "make"
        CATEGORY = "testing"

        def make(self, count):
            return ([torch.tensor(COLORS[i], dtype=torch.float32).div(255).expand(1, 36, 64, 3).clone()
                     for i in range(count)],)

    comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_Stills"] = Stills
    yield comfy
    del comfy.nodes.NODE_CLASS_MAPPINGS["LookDevTest_Stills"]


def capture(ref, label):
    return {"class_type": "LookDevTest_Capture", "inputs": {"value": ref, "label": label}}


def test_shot_list_node_reads_durations_and_defaults_them(comfy):
    comfy.run({"s": shot_list("A | wide | | | | 3.5 | dolly in\nB | close\nC | insert | | | | 0:02",
                              default_duration=1.5),
               "k": capture(["s", 0], "shots")})
    storyboard = comfy.captured["shots"]
    assert [(p.shot.shot_id, storyboard.duration_of(p), p.shot.notes) for p in storyboard.shots] == [
        ("A", 3.5, "dolly in"), ("B", 1.5, None), ("C", 2.0, None)]


def test_shot_list_node_reports_bad_durations_by_line(comfy):
    result = comfy.run({"s": shot_list("A | wide | | | | 0\nB | close | | | | later\nC | x | | | | 900"),
                        "k": capture(["s", 0], "shots")}, expect_error=True)
    message = result.error["exception_message"]
    assert "shots has 3 problems" in message
    assert "line 1: duration '0' must be more than 0 seconds" in message
    assert "line 2: duration 'later' is not a number of seconds" in message
    assert "line 3: duration '900' is longer than 10 minutes" in message


def test_animatic_node_saves_files_and_core_save_video_takes_its_video(comfy_stills):
    comfy = comfy_stills
    prompt = {
        "s": shot_list("SH010 | a | | | | 1\nSH020 | b | | | | 0.5 | pan left\nSH030 | c | | | | 2"),
        "i": {"class_type": "LookDevTest_Stills", "inputs": {"count": 3}},
        "a": animatic_node(["i", 0], ["s", 0], slate=True),
        "v": {"class_type": "SaveVideo", "inputs": {"video": ["a", 0], "filename_prefix": "anim/core",
                                                    "format": "auto", "codec": "auto"}},
        "k": capture(["a", 1], "report"),
    }
    result = comfy.run(prompt)
    folder = comfy.output_dir / "anim"
    assert sorted(p.name for p in folder.iterdir()) == [
        "animatic.csv", "animatic.edl", "animatic.fcpxml", "animatic.mp4", "animatic.otio", "animatic.xml",
        "animatic_media", "core_00001_.mp4"]
    assert sorted(p.name for p in (folder / "animatic_media").iterdir()) == ["SH010.png", "SH020.png", "SH030.png"]
    for name in ("animatic.mp4", "core_00001_.mp4"):  # Save Video's copy keeps the start timecode
        with av.open(str(folder / name)) as container:
            assert container.streams.video[0].metadata["timecode"] == "01:00:00:00", name
    assert result.ui["a"]["images"] == [{"filename": "animatic.mp4", "subfolder": "anim", "type": "output"}]
    ours = decode((folder / "animatic.mp4").read_bytes())
    core = decode((folder / "core_00001_.mp4").read_bytes())
    assert len(ours[0]) == len(core[0]) == 24 + 12 + 48 and ours[1] == core[1] == 24
    assert all(np.array_equal(a, b) for a, b in zip(ours[0], core[0]))  # streams copied, not re-encoded
    events = read_cmx3600((folder / "animatic.edl").read_bytes().decode(), 24)
    assert [(e[1], e[2] - RECORD_START * 24) for e in events] == [("SH010", 0), ("SH020", 24), ("SH030", 36)]
    report = comfy.captured["report"]
    assert report.splitlines()[0] == "animatic: 3 events, 84 frames at 24 fps (3.50 s), 64x36"
    assert "SH020  01:00:01:00-01:00:01:12  12 frames (0.5 s)" in report
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


THREE = "SH010 | a\nSH020 | b\nSH030 | c"


@pytest.mark.parametrize("text, count, inputs, message", [
    (THREE, 2, {}, "got 2 images for 3 shots"),
    (THREE, 3, {"folder": "../up"}, "folder prefix '../up' must stay inside the output folder"),
    ("SH010 | a | | | | 0.01", 1, {}, "shot 'SH010' (line 1): duration 0.01 s is shorter than one frame at 24 fps"),
    (THREE, 3, {"width": 63}, "width must be 0 (from the first frame) or an even number"),
])
def test_animatic_node_errors(comfy_stills, text, count, inputs, message):
    comfy = comfy_stills
    prompt = {"s": shot_list(text), "i": {"class_type": "LookDevTest_Stills", "inputs": {"count": count}},
              "a": animatic_node(["i", 0], ["s", 0], **{"folder": "errors", **inputs})}
    result = comfy.run(prompt, expect_error=True)
    assert message in result.error["exception_message"]
    assert not (comfy.output_dir / "errors").exists() and not (comfy.output_dir.parent / "up").exists()


def test_storyboard_render_to_animatic(comfy):
    prompt = {
        "m": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}},
        "s": shot_list("A | a lighthouse | 5 | | | 0.5\nB | a market | 6 | | | 0.25\nC | a pier | 7 | | | 1"),
        "r": {"class_type": "LookDevStoryboardRender", "inputs": {
            "model": ["m", 0], "clip": ["m", 1], "vae": ["m", 2], "shots": ["s", 0], "negative": "",
            "sampler": "euler", "scheduler": "normal", "steps": 2, "cfg": 4.0, "aspect": "1:1",
            "base_resolution": 64, "width": 64, "height": 64, "folder": "board"}},
        "a": animatic_node(["r", 0], ["s", 0], labels=["r", 1], folder="board", fps="25"),
    }
    comfy.run(prompt)
    folder = comfy.output_dir / "board"
    frames, rate, *_ = decode((folder / "animatic.mp4").read_bytes())
    assert rate == 25 and len(frames) == 13 + 6 + 25
    rendered = [np.asarray(Image.open(folder / f"{shot}.png").convert("RGB"), dtype=np.float32) for shot in "ABC"]
    shown = [int(np.argmin([np.abs(frame.astype(np.float32) - r).mean() for r in rendered])) for frame in frames]
    assert shown == [0] * 13 + [1] * 6 + [2] * 25


def test_slate_and_title_card_are_burnt_in():
    config = AnimaticConfig(slate=True, title="Noir - sequence 01", title_duration=0.5)
    white = [[Image.new("RGB", (256, 144), (240, 240, 240))]]
    animatic = make_animatic(shots([0.5], notes="dolly in"), white, config)
    frames, *_ = decode(animatic.video)
    assert len(frames) == 24
    title, shot = frames[0].astype(np.float32), frames[-1].astype(np.float32)
    assert title.mean() < 30 and title.max() > 200  # a black card with light text
    assert np.abs(shot[:72] - 240).max() < 12  # the top of the still is untouched
    band = shot[-20:]
    assert band.mean() < 150 and band.max() > 170  # a dark band with light text at the bottom
