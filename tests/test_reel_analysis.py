"""Reel analysis (trainer/dataset/video.py): pure functions on luma arrays, table-tested."""

import numpy as np
import pytest

from lookdev.trainer.dataset import video
from lookdev.trainer.dataset.video import FrameStats


def thumbs_of(levels, noise=0, seed=0):
    """One thumb per frame: a flat picture of that luma, with optional per-frame noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for level in levels:
        if isinstance(level, tuple):  # (level, pattern seed): a textured picture
            frame = np.random.default_rng(level[1]).integers(0, 60, video.THUMB_SHAPE) + level[0]
        else:
            frame = np.full(video.THUMB_SHAPE, level, np.int16)
        frame = frame + rng.integers(-noise, noise + 1, video.THUMB_SHAPE) if noise else frame
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


A, B, C = (60, 1), (120, 2), (30, 3)


@pytest.mark.parametrize("levels, cuts, flashes", [
    ([A] * 10 + [B] * 10, [10], []),  # hard cut
    ([A] * 6 + [B] * 6 + [C] * 6, [6, 12], []),
    ([A] * 10, [], []),  # one shot
    ([A] * 5 + [(250, 9)] + [A] * 5, [], [5, 6]),  # one-frame flash: both edges are flashes
    ([A] * 5 + [(250, 9)] * 3 + [A] * 5, [], [5, 8]),  # three-frame flash
    ([A] * 5 + [(250, 9)] * 5 + [A] * 5, [], [5, 10]),  # A comes back within 0.5 s: a strobe
    ([A] * 5 + [(250, 9)] * 14 + [A] * 5, [5, 19], []),  # 14 frames is a shot, not a flash
    ([A] * 8 + [B] * 2 + [C] * 8, [10], []),  # a 2-frame shot: one event, cut where C starts
    ([A] * 10 + [(250, 9)] + [B] * 10, [11], []),  # a white flash between two shots hides no cut
    ([A] * 10 + [(250, 9)] * 2 + [B] * 10, [12], []),  # ... placed on the next shot's first frame
    ([A] * 10 + [(250, 9)] * 3 + [B] * 10, [13], []),
    ([A] * 4 + ([(20, 1)] * 4 + [A] * 4) * 5 + [A] * 6, [], [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]),  # strobe
    ([A] * 4 + ([(20, 1)] * 6 + [A] * 6) * 3 + [B] * 12, [40], [4, 10, 16, 22, 28, 34]),  # strobe, then a cut
], ids=["cut", "two cuts", "none", "flash 1", "flash 3", "insert 5", "insert 14", "min shot",
        "flash between 1", "flash between 2", "flash between 3", "strobe 4", "strobe 6 then cut"])
def test_cuts_and_flashes(levels, cuts, flashes):
    found = video.detect_cuts(thumbs_of(levels))
    assert (found.cuts, found.flashes) == (cuts, flashes)


def test_a_fade_is_no_cut():
    fade = [int(200 * k) for k in np.linspace(1, 0, 12)] + [16] * 6 + \
        [int(180 * k) for k in np.linspace(0, 1, 12)]
    assert video.detect_cuts(thumbs_of(fade, noise=2)).cuts == []


def test_camera_motion_is_no_cut():
    rng = np.random.default_rng(0)
    pan = rng.integers(0, 255, (video.THUMB_SHAPE[0], 200), np.uint8)
    frames = np.stack([pan[:, n:n + video.THUMB_SHAPE[1]] for n in range(0, 60, 3)])
    assert video.detect_cuts(frames).cuts == []


@pytest.mark.parametrize("rows, columns, crop", [
    ([16] * 20 + [128] * 100 + [16] * 20, [128] * 200, (20, 20, 0, 0)),
    ([128] * 100, [16] * 30 + [128] * 140 + [16] * 25, (0, 0, 30, 25)),
    ([16] * 1 + [128] * 100 + [16] * 1, [128] * 200, (0, 0, 0, 0)),  # 1 px: padding, kept
    ([16] * 100, [16] * 200, (0, 0, 0, 0)),  # dark throughout: no picture to find
    ([20] * 10 + [60] * 80 + [20] * 10, [60] * 50, (10, 10, 0, 0)),  # dark scene, still bars
])
def test_find_bars(rows, columns, crop):
    assert video.find_bars(np.array(rows, np.float32), np.array(columns, np.float32)) == crop


@pytest.mark.parametrize("bar", [16, 31])
def test_a_dark_grainy_picture_is_no_bar_but_a_lifted_black_is(bar):
    bars = video.Bars()
    rng = np.random.default_rng(0)
    for _ in range(4):
        frame = np.full((100, 160), bar, np.uint8)  # bars 10 rows each
        frame[10:90] = 20 + rng.integers(0, 30, (80, 160))  # a night scene as dark as a lifted black
        bars.add(frame)
    assert bars.crop() == (10, 10, 0, 0)


def test_subtitles_in_a_lifted_bar_do_not_hide_it():
    bars = video.Bars()
    rng = np.random.default_rng(0)
    for n in range(6):
        frame = np.full((100, 160), 32, np.uint8)  # lifted black bars, 18 rows each
        frame[18:82] = rng.integers(40, 220, (64, 160))
        if n % 2:
            frame[86:94, 40:120:3] = 235  # subtitle strokes in the bottom bar
        bars.add(frame)
    assert bars.crop() == (18, 18, 0, 0)


def test_bars_accumulate_the_brightest_frame():
    bars = video.Bars()
    frame = np.full((90, 160), 16, np.uint8)
    night = frame.copy()
    night[10:80, 8:150] = 24 + np.random.default_rng(0).integers(0, 40, (70, 142))  # a dark, grainy frame
    bright = frame.copy()
    bright[12:78, 8:150] = 200  # a bright frame shows the real picture edges
    for luma in (night, bright):
        bars.add(luma)
    assert bars.crop() == (10, 10, 8, 10)
    with pytest.raises(ValueError, match="frame size changed from 160x90 to 80x90"):
        bars.add(np.zeros((90, 80), np.uint8))


@pytest.mark.parametrize("crop, text", [
    ((140, 140, 0, 0), "cropped 2.40:1 letterbox: 140 px top and bottom (picture 1920x800 of 1920x1080)"),
    ((0, 0, 240, 240), "cropped 1.33:1 pillarbox: 240 px left and right (picture 1440x1080 of 1920x1080)"),
    ((10, 12, 0, 0), "cropped 1.81:1 letterbox: 10 px top, 12 px bottom (picture 1920x1058 of 1920x1080)"),
    ((0, 0, 0, 0), None),
])
def test_describe_crop(crop, text):
    assert video.describe_crop(crop, 1920, 1080) == text


def test_sharpness_prefers_detail():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (60, 80)).astype(np.float32)
    soft = (sharp + np.roll(sharp, 1, 0) + np.roll(sharp, 1, 1) + np.roll(sharp, 1, (0, 1))) / 4
    assert video.sharpness(sharp) > 3 * video.sharpness(soft) > 0
    assert video.sharpness(np.full((60, 80), 9.0)) == 0.0


def test_difference_hash_finds_near_duplicates():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 255, (90, 160)).astype(np.uint8)
    brighter = np.clip(picture.astype(int) + 12, 0, 255).astype(np.uint8)
    other = rng.integers(0, 255, (90, 160)).astype(np.uint8)
    code = video.difference_hash(picture)
    assert video.hamming(code, video.difference_hash(brighter)) <= video.DUPLICATE_BITS
    assert video.hamming(code, video.difference_hash(other)) > video.DUPLICATE_BITS


def stats(mean, contrast, sharp=100.0):
    return FrameStats(mean, contrast, sharp)


def test_classify_frames():
    frames = [stats(17, 2), stats(240, 3), stats(120, 40), stats(110, 40), stats(60, 15)]
    assert video.classify_frames(frames, [(0, 5)]) == ["black", "white", None, None, "fade"]
    assert video.classify_frames([stats(16, 1)] * 3, [(0, 3)]) == ["black"] * 3


def distinct_thumbs(count):
    return np.stack([np.random.default_rng(n).integers(0, 255, video.THUMB_SHAPE, np.uint8)
                     for n in range(count)])


@pytest.mark.parametrize("shot_lengths, count, per_shot", [
    ([10, 10, 10], 3, {0: 1, 1: 1, 2: 1}),  # one each
    ([10, 10, 10, 10, 10], 3, {0: 1, 2: 1, 4: 1}),  # more shots than frames: spread evenly
    ([30, 10], 4, {0: 3, 1: 1}),  # the rest goes to the longer shot
    ([2, 2], 10, {0: 2, 1: 2}),  # never more than a shot's frames
])
def test_choose_frames_spreads_over_shots(shot_lengths, count, per_shot):
    bounds = np.cumsum([0] + shot_lengths)
    shots = list(zip(bounds[:-1], bounds[1:]))
    total = bounds[-1]
    choice = video.choose_frames(shots, [None] * total, [stats(100, 30)] * total,
                                 distinct_thumbs(total), count)
    assert choice.per_shot == per_shot and choice.skipped == []
    assert choice.picks == sorted(choice.picks)


def test_choose_frames_takes_the_sharpest_and_drops_blur_black_and_duplicates():
    thumbs = distinct_thumbs(30)
    thumbs[20:30] = thumbs[4]  # shot 3 repeats shot 1's sharpest picture
    sharp = [stats(100, 30, 0.5 if 10 <= i < 20 else 10.0) for i in range(30)]  # shot 2: blurry
    sharp[4] = stats(100, 30, 500.0)  # the sharpest frame of shot 1
    reasons = [None] * 5 + ["black"] * 5 + [None] * 20
    choice = video.choose_frames([(0, 10), (10, 20), (20, 30)], reasons, sharp, thumbs, 3)
    assert sorted(reason for _, reason in choice.skipped) == ["blurry", "duplicate"]
    # The two dropped picks are replaced by the sharp, new frames farthest from the picks.
    assert choice.picks == [0, 2, 4] and choice.per_shot == {0: 3}


def test_choose_frames_with_nothing_usable():
    choice = video.choose_frames([(0, 3)], ["black"] * 3, [stats(16, 1)] * 3, distinct_thumbs(3), 5)
    assert choice.picks == [] and choice.per_shot == {}
    with pytest.raises(ValueError, match="frames must be a whole number >= 1, got 0"):
        video.choose_frames([(0, 3)], [None] * 3, [stats(16, 1)] * 3, distinct_thumbs(3), 0)


@pytest.mark.parametrize("frame, fps, name, shown", [
    (0, 24, "00h00m00s00f", "00:00:00:00"),
    (2003, 24, "00h01m23s11f", "00:01:23:11"),
    (90000, 25, "01h00m00s00f", "01:00:00:00"),
    (2399, 23.976, "00h01m39s23f", "00:01:39:23"),  # non-drop at the nominal 24
])
def test_timecodes(frame, fps, name, shown):
    assert video.timecode(frame, fps) == name
    assert video.display_timecode(frame, fps) == shown


@pytest.mark.parametrize("text, seconds", [
    ("", None), ("  ", None), ("83.5", 83.5), ("1:23", 83.0), ("0:01:23", 83.0),
    ("00:01:23:12", 83.5), ("2:00:00", 7200.0),
])
def test_parse_timecode(text, seconds):
    assert video.parse_timecode(text, 24) == seconds


@pytest.mark.parametrize("text", ["abc", "1:75", "1:2:3:4:5", "-3", "00:00:01:30", "1e400"])
def test_parse_timecode_refuses(text):
    with pytest.raises(ValueError, match=f"end {text!r} is not a timecode"):
        video.parse_timecode(text, 24, "end")


@pytest.mark.parametrize("settings, message", [
    ({"frames": 0}, "frames must be between 1 and 500, got 0"),
    ({"frames": 501}, "frames must be between 1 and 500, got 501"),
    ({"frames": True}, "frames must be a whole number, got True"),
    ({"max_analysed_frames": 29}, "max_analysed_frames must be at least 30, got 29"),
    ({"start": "1:xx"}, "start '1:xx' is not a timecode"),
    ({"end": 12}, "end must be a timecode text, got 12"),
    ({"remove_bars": "yes"}, "remove_bars must be true or false"),
])
def test_reel_config_names_the_setting_at_fault(settings, message):
    from lookdev.trainer.dataset.reel import ReelConfig

    with pytest.raises(ValueError, match=message):
        ReelConfig(**settings).validate()
    assert ReelConfig().validate().frames == 20


def test_a_dimmer_shot_merged_with_a_brighter_one_keeps_its_frames():
    """A missed cut (or a dissolve) merges a shot of contrast 40 with one of 15: only the dimmer
    frames within a second of the brighter ones count as a fade, not the whole dimmer shot."""
    frames = [stats(120, 40)] * 48 + [stats(110, 15)] * 72
    reasons = video.classify_frames(frames, [(0, 120)], rate=24)
    assert reasons[:48] == [None] * 48 and reasons[48:72] == ["fade"] * 24 and reasons[72:] == [None] * 48


def blend_thumbs(a, b, weights):
    return [np.clip(a * (1 - k) + b * k, 0, 255).astype(np.uint8) for k in weights]


@pytest.mark.parametrize("case", ["dissolve", "fade to black", "cut", "still"])
def test_find_dissolves(case):
    rng = np.random.default_rng(3)
    a = rng.integers(30, 220, video.THUMB_SHAPE).astype(np.float32)
    b = rng.integers(30, 220, video.THUMB_SHAPE).astype(np.float32)
    if case == "dissolve":
        thumbs = blend_thumbs(a, b, [0] * 20 + list(np.arange(1, 13) / 13) + [1] * 20)
    elif case == "fade to black":
        thumbs = blend_thumbs(a, np.zeros_like(a), [0] * 20 + list(np.arange(1, 13) / 13) + [1] * 20)
    elif case == "cut":
        thumbs = blend_thumbs(a, b, [0] * 26 + [1] * 26)
    else:
        thumbs = blend_thumbs(a, b, [0] * 52)
    found = video.find_dissolves(np.stack(thumbs), [26] if case == "cut" else [])
    if case == "dissolve":
        [(first, last)] = found
        assert first <= 20 and last >= 31 and last - first < 36  # the 12 blends, widened
    else:
        assert found == []
