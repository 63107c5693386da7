"""A style dataset from a reference video (a reel, a trailer, a test shoot): decode it with PyAV,
analyse every frame small (trainer/dataset/video.py), pick frames spread over the shots, decode
only the picks at full size, crop the letterbox/pillarbox bars, bucket and caption them.

Bounded work: every frame is analysed up to `max_analysed_frames` (an hour at 30 fps); a clip
(or its start/end range) longer than that is analysed in ANALYSIS_WINDOWS evenly spaced windows
that together hold that many frames (each window reached by a seek). Memory per analysed frame
is a 576-byte thumb and a few numbers (about 0.8 KB); full-size frames exist only for the picks,
one at a time: each is cropped, bucketed and (`write_to`) written atomically, then dropped, so no
frame file is ever half-written under its real name.

A stream that breaks in the middle keeps the frames before the break; the rest is skipped and
the report says where.
"""

import io
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .. import fileio
from ..options import check_options, option
from .buckets import make_buckets
from .dataset import StyleDataset, _caption, _sample
from .images import MIN_SIDE
from .scan import DatasetError, Issue, normalize_extension
from . import video

VIDEO_EXTENSIONS = ("mp4", "mov", "mkv", "webm", "avi", "m4v", "mpg", "mpeg", "ts", "mts",
                    "m2ts", "mxf", "wmv", "flv", "ogv", "3gp")
MAX_ANALYSED_FRAMES = 108000
"""Every frame is analysed up to this many (an hour at 30 fps, 75 minutes at 24; about 0.8 KB
each, 86 MB at the cap); longer ranges are sampled in windows."""
ANALYSIS_WINDOWS = 30
_BARS_EVERY = 2
_SEEK_AFTER_S = 2.0  # a pick further than this past the last decoded frame is reached by a seek
_EIGHT_BIT_PLANAR = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                     "nv12", "nv21", "gray", "yuv411p", "yuv440p", "yuvj440p", "yuva420p")


@dataclass
class ReelConfig:
    """How frames are chosen from a video. `validate()` raises a ValueError naming the field."""

    frames: int = option(20, "How many frames to take: spread over the shots, at least one per shot while "
                             "there are more frames than shots, the sharpest in each part of a shot.", min=1, max=500)
    start: str = option("", "Use the video from this timecode on (83.5, 1:23, 0:01:23 or 00:01:23:12); "
                            "empty for the beginning.")
    end: str = option("", "Use the video up to this timecode; empty for the end.")
    remove_bars: bool = option(True, "Crop letterbox and pillarbox bars (rows and columns that stay black, or a flat "
                                     "lifted black, through the whole clip, subtitles in the bar or not) before "
                                     "bucketing. Subtitles inside the picture are not removed.")
    max_analysed_frames: int = option(MAX_ANALYSED_FRAMES, "Longer videos (or start-end ranges) are analysed in "
                                      "evenly spaced windows holding this many frames in all, so time and memory "
                                      "stay bounded.", min=ANALYSIS_WINDOWS)

    def validate(self):
        for name in ("frames", "max_analysed_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        for name in ("start", "end"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a timecode text, got {getattr(self, name)!r}")
        if not isinstance(self.remove_bars, bool):
            raise ValueError(f"remove_bars must be true or false, got {self.remove_bars!r}")
        check_options(self)
        for name in ("start", "end"):
            # Syntax only: the frame field is checked against the video's own rate later.
            video.parse_timecode(getattr(self, name), 1000, name)
        return self


@dataclass
class Analysis:
    """What the analysis pass found. Frame lists are indexed by analysed frame."""

    name: str
    width: int
    height: int
    fps: float
    duration: float | None  # seconds, from the container; None when it does not say
    codec: str
    numbers: list  # frame number from the start of the stream, for timecodes
    times: list  # presentation time in seconds, for seeking to the picks
    stats: list  # video.FrameStats
    thumbs: np.ndarray  # [N, 18, 32] uint8
    shots: list  # [(start, end)) analysed-frame ranges
    cuts: list
    flashes: list
    reasons: list  # 'black' / 'white' / 'fade' / None per frame
    crop: tuple  # (top, bottom, left, right)
    windows: int  # 1, or the number of analysis windows of a long video
    range_s: tuple  # (start, end) seconds analysed, end None for the end of the stream
    seconds: float  # wall time of the analysis pass
    bars_checked: bool  # remove_bars was on
    problems: list = field(default_factory=list)  # stream breaks, truncation
    dissolves: list = field(default_factory=list)  # [(first, last)] analysed frames of each


@dataclass
class ReelResult:
    dataset: StyleDataset
    analysis: Analysis
    choice: video.Choice
    picks: list  # [(analysed frame index, timecode name)] of the frames in the dataset
    written: list  # paths of frames written (write_to)
    report: str
    labels: list  # display timecode per dataset sample, for the preview


def video_files(folder):
    """Names of the video files directly in `folder` (sorted), for a picker."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if entry.is_file()
                          and not entry.name.startswith(".")
                          and entry.name.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS)
    except OSError:
        return []


def check_video_file(path):
    """Raise DatasetError naming `path` when it cannot be a video: missing, a folder, a pipe,
    empty."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"video {path} does not exist; check the path")
    if path.is_dir():
        raise DatasetError(f"{path} is a folder; give a video file (use Load Dataset for a "
                           "folder of images)")
    if not path.is_file():
        raise DatasetError(f"video {path} is not a regular file (a named pipe, socket or device)")
    if path.stat().st_size == 0:
        raise DatasetError(f"video {path} is an empty file (0 bytes)")
    return path


def reel_dataset(source, name, reel_config, dataset_config, write_to=None, progress=None):
    """The ReelResult of a video: `source` is a path or a readable binary file object (a BytesIO
    from ComfyUI's VIDEO), `name` what messages and frame names call it ("reel.mp4").
    write_to: a folder to save the picked frames in (PNG, cropped, full size), or None.
    progress: optional callable(done, total) during the analysis pass.
    Raises DatasetError for a video that cannot be used, ValueError for bad settings."""
    reel_config.validate()
    dataset_config.validate()
    analysis = analyse(source, name, reel_config, progress)
    choice = video.choose_frames(analysis.shots, analysis.reasons, analysis.stats,
                                 analysis.thumbs, reel_config.frames)
    if not choice.picks:
        raise DatasetError(f"{name}: no usable frame in the {len(analysis.stats)} analysed "
                           f"({_reason_summary(analysis, choice)}); check the video and the "
                           "start/end range")
    stem = _stem(name)
    names = dict(zip(sorted(choice.picks), _names(stem, analysis, sorted(choice.picks))))
    buckets = make_buckets(dataset_config.resolution)
    extension = normalize_extension(dataset_config.caption_extension)
    samples, notes, labels, written, decoded, broken = [], [], [], [], [], []
    for index, rgb in decode_picks(source, analysis, choice.picks, broken):
        # One full-size frame at a time: written, bucketed, then dropped.
        frame_name = names[index]
        picture = Image.fromarray(rgb)
        del rgb
        path = Path(write_to) / f"{frame_name}.png" if write_to is not None else None
        if path is not None:
            written.append(fileio.write_image(path, picture, "PNG"))
        remarks = []
        caption = _caption(dataset_config, _sidecar(path, extension, remarks), "", "")
        samples.append(_sample(picture, caption, buckets, dataset_config.no_upscale,
                               path, dataset_config.default_repeats, remarks))
        notes.extend(Issue(frame_name, remark) for remark in remarks)
        labels.append(video.display_timecode(analysis.numbers[index], analysis.fps))
        decoded.append(index)
    if not samples:
        raise DatasetError(f"{name}: none of the {len(choice.picks)} chosen frames could be "
                           f"decoded ({broken[0][1]})")
    skipped = [Issue(_label(analysis, i), reason, reason) for i, reason in choice.skipped]
    skipped += [Issue(_label(analysis, i), reason, "corrupt") for i, reason in broken]
    notes += [Issue(name, problem) for problem in analysis.problems]
    source_text = f"{name} ({len(samples)} frames of {len(analysis.shots)} shots)"
    dataset = StyleDataset(samples, dataset_config.trigger, dataset_config.resolution,
                           source_text, Path(write_to) if write_to is not None else None,
                           skipped, notes, extension)
    picks = [(index, names[index]) for index in decoded]
    report = format_reel_report(analysis, choice, picks, broken, written)
    return ReelResult(dataset, analysis, choice, picks, written, report, labels)


# --- analysis pass ------------------------------------------------------------------------------

def analyse(source, name, config, progress=None):
    """Decode the video (or its range) once and analyse every frame small; see the module doc."""
    import av

    began = time.monotonic()
    with _open(source, name) as container:
        stream = _video_stream(container, name)
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        origin = float(stream.start_time * stream.time_base) \
            if stream.start_time is not None and stream.time_base else 0.0
        duration = _duration(container, stream)
        start = video.parse_timecode(config.start, fps, "start") or 0.0
        end = video.parse_timecode(config.end, fps, "end")
        if duration is not None and start >= duration:
            raise DatasetError(f"{name}: start {config.start!r} is at or after the end of the "
                               f"video ({duration:.2f} s long)")
        if end is not None and end <= start:
            raise DatasetError(f"{name}: end {config.end!r} is not after start "
                               f"{config.start or '0'!r}")
        stop = min(end, duration) if end is not None and duration is not None else end or duration
        segments, windows = _segments(start, stop, fps, config.max_analysed_frames)
        state = _Pass(fps, origin)
        total = sum(limit for _, _, limit in segments)
        stream.thread_type = "AUTO"
        for first, last, limit in segments:
            if first > 0:
                container.seek(int((origin + first) / stream.time_base), stream=stream,
                               backward=True)
            state.boundaries.append(len(state.stats))
            try:
                state.read(container.decode(stream), first, last, limit, progress, total)
            except av.error.FFmpegError as exc:
                if not state.stats:
                    raise DatasetError(f"{name}: cannot decode its video stream "
                                       f"({stream.codec_context.name}): {_ffmpeg_text(exc)}; "
                                       "convert it to H.264 or ProRes") from exc
                state.problems.append(
                    f"the video stream is damaged after "
                    f"{video.display_timecode(state.numbers[-1], fps)} ({_ffmpeg_text(exc)}); "
                    "the frames after it are skipped")
                break
            except ValueError as exc:  # frame size changed mid-stream
                raise DatasetError(f"{name}: {exc}") from exc
        codec = stream.codec_context.name
        expected = stream.frames
    if not state.stats:
        what = "its start-end range holds no frames" if (config.start or config.end) \
            else "it holds no video frames (zero length)"
        raise DatasetError(f"{name}: {what}")
    if windows == 1 and not (config.start or config.end) and not state.problems:
        state.problems.extend(_short_stream(state, expected, duration, fps))
    thumbs = state.thumbs[:len(state.stats)].copy()  # the growing buffer's slack is let go
    cuts, flashes, dissolves = [], [], []
    bounds = state.boundaries + [len(thumbs)]
    for a, b in zip(bounds, bounds[1:]):
        found = video.detect_cuts(thumbs[a:b], fps)
        cuts += [a + i for i in found.cuts]
        flashes += [a + i for i in found.flashes]
        dissolves += [(a + first, a + last) for first, last in video.find_dissolves(thumbs[a:b], found.cuts)]
    # A dissolve splits its shots at its middle: each side is judged (and picked from) on its own.
    middles = [(first + last + 1) // 2 for first, last in dissolves]
    shots = video.shots_from_cuts(cuts + middles, len(thumbs), state.boundaries)
    crop = state.bars.crop() if config.remove_bars else (0, 0, 0, 0)
    width, height = state.size
    if min(width - crop[2] - crop[3], height - crop[0] - crop[1]) < MIN_SIDE:
        raise DatasetError(f"{name}: the picture is {width}x{height} px"
                           + (" inside its black bars" if any(crop) else "")
                           + f"; LookDev needs at least {MIN_SIDE} px on each side")
    return Analysis(name, width, height, fps, duration, codec, state.numbers, state.times,
                    state.stats, thumbs, shots, cuts, flashes,
                    video.classify_frames(state.stats, shots, fps, dissolves), crop, windows,
                    (start, stop), time.monotonic() - began, config.remove_bars,
                    state.problems, dissolves)


def _short_stream(state, expected, duration, fps):
    """A note when the stream stops well before its header says it ends (a truncated copy)."""
    count = len(state.stats)
    if expected and count < expected - max(2, expected // 50):
        return [f"the video stream ends after {count} of the {expected} frames its header "
                "announces (the file is truncated or damaged); the rest is skipped"]
    end = state.times[-1] + 1 / fps
    if not expected and duration and end < duration - max(1.0, duration / 50):
        return [f"the video stream ends at {end:.2f} s but the file says it is {duration:.2f} s "
                "long (the file is truncated or damaged); the rest is skipped"]
    return []


class _Pass:
    """Per-frame numbers gathered while decoding."""

    def __init__(self, fps, origin):
        self.fps, self.origin = fps, origin
        self.numbers, self.times, self.stats = [], [], []
        self.thumbs = np.empty((256, *video.THUMB_SHAPE), np.uint8)  # grown by doubling: no per-frame object
        self.boundaries, self.problems = [], []
        self.bars = video.Bars()
        self.size = None

    def read(self, frames, first, last, limit, progress, total):
        taken = 0
        for frame in frames:
            at = self._time(frame)
            if at < first - 1e-6:
                continue  # decoded from the keyframe before a seek target
            if (last is not None and at >= last - 1e-6) or taken >= limit:
                break
            luma = _luma(frame)
            if self.size is None:
                self.size = (frame.width, frame.height)
            if len(self.stats) % _BARS_EVERY == 0:  # bars last for seconds: every other frame is plenty
                self.bars.add(luma)
            step = video.analysis_step(luma.shape[0])
            picture = luma[::step, ::step]
            self.stats.append(video.frame_stats(picture))
            if len(self.stats) > len(self.thumbs):
                self.thumbs = np.concatenate([self.thumbs, np.empty_like(self.thumbs)])
            self.thumbs[len(self.stats) - 1] = video.thumb(picture)
            self.numbers.append(round(at * self.fps))
            self.times.append(at)
            taken += 1
            if progress is not None and len(self.stats) % 50 == 0:
                progress(len(self.stats), total)

    def _time(self, frame):
        if frame.time is not None:
            return float(frame.time) - self.origin
        return len(self.stats) / self.fps  # a stream without timestamps: count frames


def _segments(start, stop, fps, cap):
    """[(first, last, frame limit)] seconds to analyse and the number of windows."""
    length = (stop - start) if stop is not None else None
    if length is None or length * fps <= cap:
        return [(start, stop, cap)], 1
    per_window = cap // ANALYSIS_WINDOWS
    span = per_window / fps
    gap = (length - span) / (ANALYSIS_WINDOWS - 1)
    return [(start + n * gap, start + n * gap + span, per_window)
            for n in range(ANALYSIS_WINDOWS)], ANALYSIS_WINDOWS


def _luma(frame):
    """The frame's luma as a 2-D uint8 array (a view of the Y plane when the format allows)."""
    if frame.format.name in _EIGHT_BIT_PLANAR:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, :plane.width]
    return frame.to_ndarray(format="gray")


# --- picks at full size -----------------------------------------------------------------------

def decode_picks(source, analysis, picks, broken, seek=True):
    """Yield (frame index, RGB uint8 array, cropped) per pick, one at a time; append (frame index,
    reason) to `broken` for picks that cannot be decoded. Picks are reached in time order: by
    decoding on when close, else a seek. Containers that cannot seek there (MPEG-TS without enough
    keyframes) are read again from the start for the picks a seek missed."""
    import av

    top, bottom, left, right = analysis.crop
    missed = []
    with _open(source, analysis.name) as container:
        stream = _video_stream(container, analysis.name)
        stream.thread_type = "AUTO"
        origin = float(stream.start_time * stream.time_base) \
            if stream.start_time is not None and stream.time_base else 0.0
        decoder, last = None, None
        for index in sorted(picks):
            target = analysis.times[index]
            if decoder is None or (seek and (last is None or target <= last
                                             or target - last > _SEEK_AFTER_S)):
                if seek:
                    container.seek(max(0, int((origin + target) / stream.time_base)),
                                   stream=stream, backward=True)
                decoder = container.decode(stream)
            found = None
            try:
                for frame in decoder:
                    at = float(frame.time) - origin if frame.time is not None else None
                    if at is None:
                        break
                    last = at
                    if at >= target - 0.5 / analysis.fps:
                        found = frame
                        break
            except av.error.FFmpegError as exc:
                broken.append((index, f"cannot decode this frame: {_ffmpeg_text(exc)}"))
                decoder = None
                continue
            if found is None:
                missed.append(index)
                decoder = None
                continue
            rgb = found.to_ndarray(format="rgb24")
            yield index, np.ascontiguousarray(rgb[top:rgb.shape[0] - bottom, left:rgb.shape[1] - right])
    if seek and missed:
        yield from decode_picks(source, analysis, missed, broken, seek=False)
    elif missed:
        broken.extend((index, "the frame was not found again when decoding at full size (the stream has "
                              "no timestamps there or ends early)") for index in missed)


# --- helpers ----------------------------------------------------------------------------------

class _open:
    """av.open with the errors a person can act on; seeks a file object back to its start."""

    def __init__(self, source, name):
        self.source, self.name = source, name

    def __enter__(self):
        import av

        if isinstance(self.source, io.IOBase) or hasattr(self.source, "read"):
            self.source.seek(0)
        try:
            self.container = av.open(self.source, mode="r")
        except av.error.FFmpegError as exc:
            raise DatasetError(f"{self.name}: not a video file FFmpeg can read "
                               f"({_ffmpeg_text(exc)})") from exc
        return self.container

    def __exit__(self, *exc):
        self.container.close()
        return False


def _video_stream(container, name):
    streams = container.streams.video
    if not streams:
        kinds = sorted({stream.type for stream in container.streams})
        what = "audio only" if kinds == ["audio"] else (", ".join(kinds) or "no streams")
        raise DatasetError(f"{name}: has no video stream ({what}); give a video file")
    stream = streams[0]
    if stream.codec_context is None or not stream.codec_context.name:
        raise DatasetError(f"{name}: its video codec is not supported by this FFmpeg build")
    return stream


def _duration(container, stream):
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _ffmpeg_text(exc):
    return getattr(exc, "strerror", None) or str(exc)


def _stem(name):
    stem = Path(str(name)).stem or "reel"
    clean = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem).strip("_")
    return clean[:60] or "reel"


def _names(stem, analysis, indices):
    """reel_00h01m23s12f per frame; a second frame with the same timecode (a stream with
    duplicate timestamps) gets _2."""
    seen, names = Counter(), []
    for index in indices:
        base = f"{stem}_{video.timecode(analysis.numbers[index], analysis.fps)}"
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def _sidecar(path, extension, remarks):
    """The caption beside a written frame (from an earlier run the user captioned), or ""."""
    if path is None:
        return ""
    caption = path.with_suffix(f".{extension}")
    if not caption.is_file():
        return ""
    data = caption.read_bytes()
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        remarks.append(f"{caption.name}: caption is not UTF-8 text: unreadable characters "
                       "were replaced with \ufffd; re-save the file as UTF-8")
        return data.decode("utf-8", errors="replace").strip()


def _label(analysis, index):
    return f"frame {video.display_timecode(analysis.numbers[index], analysis.fps)}"


def _reason_summary(analysis, choice):
    counts = Counter(reason for reason in analysis.reasons if reason)
    counts.update(reason for _, reason in choice.skipped)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common()) or "none usable"


def format_reel_report(analysis, choice, picks, broken, written):
    """The video part of the node's report: shots, picks per shot, skips by reason, crop."""
    a = analysis
    tc = lambda index: video.display_timecode(a.numbers[index], a.fps)  # noqa: E731
    count = len(a.stats)
    rate = count / a.seconds if a.seconds > 0 else math.inf
    length = f"{a.duration:.1f} s" if a.duration is not None else "length unknown"
    lines = [f"Video {a.name}: {a.width}x{a.height}, {video.rate_text(a.fps)} fps, {length}, {a.codec}; "
             f"analysed {count} frames in {a.seconds:.1f} s ({rate:.0f} frames/s)"]
    if a.range_s[0] or a.range_s[1] is not None and (a.duration is None or a.range_s[1] < a.duration):
        end = f"{a.range_s[1]:.2f} s" if a.range_s[1] is not None else "the end"
        lines.append(f"Range: {a.range_s[0]:.2f} s to {end}")
    if a.windows > 1:
        lines.append(f"Long video: analysed in {a.windows} evenly spaced windows of "
                     f"{count // a.windows} frames (max_analysed_frames); each window starts a "
                     "shot, and cuts between windows are not seen")
    flashes = f"; {len(a.flashes)} flash{'es' * (len(a.flashes) != 1)} not taken as cuts" \
        if a.flashes else ""
    dissolves = f", {len(a.dissolves)} dissolve{'s' * (len(a.dissolves) != 1)}" if a.dissolves else ""
    lines.append(f"Shots: {len(a.shots)} ({len(a.cuts)} cuts{dissolves}{flashes})")
    described = video.describe_crop(a.crop, a.width, a.height)
    lines.append(f"Crop: {described}" if described else "Crop: none (no black bars found)"
                 if a.bars_checked else "Crop: off (remove_bars is off)")
    per_shot = ", ".join(f"shot {n + 1} ({tc(a.shots[n][0])}): {k}"
                         for n, k in sorted(choice.per_shot.items()))
    lines.append(f"Frames taken: {len(picks)}" + (f" ({per_shot})" if per_shot else ""))
    counts = Counter(reason for reason in a.reasons if reason)
    counts.update(reason for _, reason in choice.skipped)
    if broken:
        counts["undecodable"] += len(broken)
    if counts:
        lines.append("Skipped frames: " + ", ".join(f"{n} {reason}"
                                                   for reason, n in counts.most_common()))
    lines.append("Picks: " + ", ".join(f"{tc(index)} ({frame_name})" for index, frame_name in picks))
    if written:
        lines.append(f"Wrote {len(written)} frames to {Path(written[0]).parent}")
    lines.extend(f"Problem: {problem}" for problem in a.problems)
    lines.append("Subtitles and logos inside the picture are not detected; prune such frames by hand "
                 "(write frames, then Load Dataset).")
    return "\n".join(lines)
