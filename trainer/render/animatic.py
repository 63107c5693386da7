"""Animatics: a storyboard's frames timed by their shots' durations and cut together into a video,
with an edit decision list (CMX3600 .edl), a CSV of the same cuts and the timelines editors import
(.otio, FCP7 .xml, .fcpxml: timeline.py) with each shot's media beside them.

`plan_timeline` is the pure timing (which frame each shot starts on); `animatic_frames` draws the
pictures (letterboxed stills, an optional slow push-in, slates, a title card, cross-dissolves);
`encode_video` turns them into H.264 through PyAV (colour matrix and tags by size, the level by
size and rate, index first); `edl_text` and `cuts_csv` describe the cuts; `event_media` makes
each event's media file; `save_animatic` writes the files atomically.

Timing is exact: a shot of d seconds lasts floor(d x fps + 1/2) frames (rounded half up, d read as
the decimal the shot list wrote), and the cuts are where the EDL says, to the frame. A title card
is an event of its own. A cross-dissolve takes the first frames of the incoming shot, blending
from the outgoing shot's last picture, so it moves no cut and changes no length.
"""

import csv
import io
import math
import tempfile
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import write_bytes, write_text
from ..options import check_options, option
from .pngmeta import output_path, to_pil
from .sheet import fit_lines, load_font
from .shots import MAX_DURATION, validate_shot_id

# name -> (exact frame rate, timecode base). NTSC rates count timecode at the round rate,
# non-drop-frame, as most editing systems import an EDL by default.
FRAME_RATES = {
    "23.976": (Fraction(24000, 1001), 24), "24": (Fraction(24), 24), "25": (Fraction(25), 25),
    "29.97": (Fraction(30000, 1001), 30), "30": (Fraction(30), 30), "48": (Fraction(48), 48),
    "50": (Fraction(50), 50), "59.94": (Fraction(60000, 1001), 60), "60": (Fraction(60), 60),
}
CONTAINERS = {"mp4": "mp4", "mov": "mov"}  # file extension -> FFmpeg muxer
# faststart: the index (moov) goes before the pictures, so web players and review tools start
# playing before the whole file is fetched; use_metadata_tags: the start timecode is a container
# tag that core Save Video copies (ComfyUI writes it with the same flag), not only a tmcd track.
MUXER_OPTIONS = {"movflags": "faststart+use_metadata_tags"}
CODEC = "h264"
PIXEL_FORMAT = "yuv420p"  # what every player and editor decodes; needs even sides
# Visually clean. 'veryfast' encoded a push-in (every pixel moves in every frame) about 5x faster
# than x264's default 'medium' here at a similar size; an animatic is a working cut, not the master.
ENCODER_OPTIONS = {"crf": "18", "preset": "veryfast"}
# Colour: players take untagged video of HD size as BT.709 and smaller as BT.601, and convert
# with that matrix whatever the file was made with; so HD and up is converted with BT.709, SD
# with BT.601, both in limited (TV) range, and every file carries all four tags.
HD_SIZE = (1280, 720)  # at least this wide or this high: HD
COLOUR = {
    "hd": {"matrix": "ITU709", "tags": {"colorspace": "bt709", "color_primaries": "bt709",
                                        "color_trc": "bt709", "color_range": "tv"}},
    "sd": {"matrix": "SMPTE170M", "tags": {"colorspace": "smpte170m", "color_primaries": "smpte170m",
                                           "color_trc": "smpte170m", "color_range": "tv"}},
}
# H.264 levels, ITU-T H.264 Table A-1: (level, macroblocks a frame, macroblocks a second, bitrate
# kbit/s and coded picture buffer kbit for Main; High allows 5/4 of both). Levels under 3.0 are
# not used: every decoder takes 3.0, and their bitrates leave crf 18 no room.
H264_LEVELS = (
    ("3.0", 1620, 40500, 10000, 10000), ("3.1", 3600, 108000, 14000, 14000),
    ("3.2", 5120, 216000, 20000, 20000), ("4.0", 8192, 245760, 20000, 25000),
    ("4.1", 8192, 245760, 50000, 62500), ("4.2", 8704, 522240, 50000, 62500),
    ("5.0", 22080, 589824, 135000, 135000), ("5.1", 36864, 983040, 240000, 240000),
    ("5.2", 36864, 2073600, 240000, 240000), ("6.0", 139264, 4177920, 240000, 240000),
    ("6.1", 139264, 8355840, 480000, 480000), ("6.2", 139264, 16711680, 800000, 800000),
)
RECORD_START = 3600  # seconds: programmes start at 01:00:00:00 by editing convention
STEM = "animatic"  # beside frames named <shot id>.png: no clash, those end in .png
TITLE_EVENT = "TITLE"  # the title card's clip name in the EDL and CSV
MAX_SIDE = 8192

BLACK = (0, 0, 0)
SLATE_BAND = (0, 0, 0, 170)
SLATE_TEXT = (245, 245, 245)
SLATE_DIM = (190, 190, 195)


@dataclass
class AnimaticConfig:
    fps: str = option("24", "Frames per second of the animatic and the EDL's timecode (23.976 and 29.97 count "
                            "non-drop-frame timecode).", choices=tuple(FRAME_RATES))
    width: int = option(0, "Width of the video in pixels (even); 0: the first frame's width. Frames of another "
                           "shape are letterboxed, never cropped.", min=0, max=MAX_SIDE, step=2)
    height: int = option(0, "Height of the video in pixels (even); 0: the first frame's height.",
                         min=0, max=MAX_SIDE, step=2)
    ken_burns: bool = option(False, "A slow push-in on each still (off: the still is held as is).")
    ken_burns_zoom: float = option(1.1, "How far the push-in goes by the end of the shot (1.1 = 10% closer).",
                                   min=1.0, max=4.0, step=0.01)
    slate: bool = option(False, "Burn the shot id, duration, description and notes into the bottom of each shot.")
    title: str = option("", "Text of a title card before the first shot; empty: no title card.")
    title_duration: float = option(3.0, "Seconds the title card lasts.", step=0.5)
    dissolve: float = option(0.0, "Seconds of cross-dissolve into each shot (taken from the start of the shot, so "
                                  "cuts and lengths stay as the shot list says); 0: straight cuts.",
                             min=0.0, max=MAX_DURATION, step=0.05)
    folder: str = option("storyboard", f"Subfolder of ComfyUI's output folder; saves {STEM}.mp4 (or .mov), "
                                       f"the timeline as {STEM}.otio, .xml, .fcpxml and .edl, {STEM}.csv and "
                                       f"each shot's media in {STEM}_media/ there, replacing the previous ones.")
    container: str = option("mp4", "File type of the video: mp4, or mov for editing systems that prefer "
                                   "QuickTime. The video is H.264 either way.", choices=tuple(CONTAINERS))

    def validate(self):
        for name in ("width", "height"):
            value = getattr(self, name)
            # H.264 needs even sides; the message says so rather than check_options' generic one.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > MAX_SIDE or value % 2:
                raise ValueError(f"{name} must be 0 (from the first frame) or an even number of pixels up to "
                                 f"{MAX_SIDE} (H.264 video needs even sides), got {value!r}")
        for name in ("ken_burns_zoom", "dissolve"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), (int, float)):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}")
        if self.title.strip():
            _check_seconds("title_duration", self.title_duration)
        return check_options(self)

    @property
    def rate(self):
        return FRAME_RATES[self.fps][0]

    @property
    def timecode_base(self):
        return FRAME_RATES[self.fps][1]


def _check_seconds(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_DURATION:
        raise ValueError(f"{name} must be more than 0 and at most {MAX_DURATION:g} seconds, got {value!r}")


def frames_for(seconds, rate):
    """Frames `seconds` last at `rate`: floor(seconds x rate + 1/2), with seconds taken as the decimal
    it prints as (2.3 is 23/10, not the float just below it)."""
    return math.floor(Fraction(repr(float(seconds))) * rate + Fraction(1, 2))


# --- timing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimedShot:
    """One shot as the animatic needs it."""

    name: str  # shot id
    description: str = ""
    notes: str = ""
    duration: float = 2.0  # seconds
    line: int = 0  # shot list line, for messages


@dataclass(frozen=True)
class Event:
    number: int  # 1-based, as in the EDL
    name: str  # shot id, or TITLE_EVENT
    description: str
    notes: str
    duration: float  # seconds asked for
    start: int  # first frame in the animatic (0-based)
    length: int  # frames
    dissolve: int  # frames at the start blending in from the previous event
    title: bool = False  # the title card, not a shot

    @property
    def end(self):
        """First frame after the event."""
        return self.start + self.length


def plan_timeline(shots, rate, title="", title_duration=3.0, dissolve=0.0):
    """Events (an optional title card, then one per TimedShot) with exact frame positions."""
    rate = Fraction(rate)
    if not shots:
        raise ValueError("an animatic needs at least one shot")
    card = [(TimedShot(TITLE_EVENT, title.strip(), "", title_duration), "title_duration")] if title.strip() else []
    entries = card + [(shot, f"shot {shot.name!r}" + (f" (line {shot.line})" if shot.line else "") + ": duration")
                      for shot in shots]
    dissolve_frames = frames_for(dissolve, rate) if dissolve else 0
    events, start = [], 0
    for number, (shot, where) in enumerate(entries, start=1):
        _check_seconds(where, shot.duration)
        length = frames_for(shot.duration, rate)
        if length < 1:
            raise ValueError(f"{where} {shot.duration:g} s is shorter than one frame at "
                             f"{float(rate):g} fps; make it at least {float(1 / rate):.3f} s")
        blend = min(dissolve_frames, length) if events else 0
        events.append(Event(number, shot.name, shot.description, shot.notes or "", float(shot.duration), start,
                            length, blend, title=bool(card) and number == 1))
        start += length
    return events


def timecode(frame, base):
    """HH:MM:SS:FF of frame number `frame` counted at `base` frames per second (non-drop-frame)."""
    seconds, frames = divmod(frame, base)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


def parse_timecode(text, base):
    """Frame number of a HH:MM:SS:FF timecode at `base` frames per second."""
    hours, minutes, seconds, frames = (int(part) for part in text.replace(";", ":").split(":"))
    return ((hours * 60 + minutes) * 60 + seconds) * base + frames


# --- edit decision list and CSV ---------------------------------------------------------------

EDL_EVENTS = 999  # CMX3600 event numbers have three digits; after 999 they start again at 001
# Characters NFKD does not take apart, spelt in ASCII; anything else left non-ASCII becomes '?'.
ASCII_SPELLINGS = str.maketrans({
    "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l",
    "Ł": "L", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D", "ı": "i", "‘": "'", "’": "'", "‚": ",", "‛": "'",
    "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‹": "'", "›": "'", "–": "-", "—": "-", "‐": "-",
    "‑": "-", "−": "-", "⁄": "/", "×": "x", "÷": "/", "•": "*", "·": ".", "€": "EUR", "£": "GBP", "°": "deg",
})


def ascii_text(text):
    """`text` in printable ASCII, as CMX3600 (7-bit) needs: compatibility forms unfolded and accents
    dropped (NFKD: é -> e, ﬁ -> fi, full-width Ａ -> A), a few letters and marks spelt out
    (ASCII_SPELLINGS: ß -> ss, curly quotes -> straight, dashes -> -), anything else '?'."""
    unfolded = unicodedata.normalize("NFKD", str(text).translate(ASCII_SPELLINGS)).translate(ASCII_SPELLINGS)
    kept = (ch for ch in unfolded if not unicodedata.combining(ch))
    return "".join(ch if " " <= ch <= "~" else "?" for ch in kept)


def check_record_length(events, base):
    """Raise a ValueError when the record timecodes, from 01:00:00:00, would pass 23:59:59:ff."""
    last = 24 * 3600 * base - 1
    end = RECORD_START * base + events[-1].end
    if end > last:
        raise ValueError(f"the animatic is {timecode(events[-1].end, base)} long: its record timecodes, from "
                         f"{timecode(RECORD_START * base, base)}, would pass {timecode(last, base)}, the last an EDL "
                         f"can hold (at most {timecode(last - RECORD_START * base, base)} in all); "
                         "cut the shot list into parts")


def _edl_line(number, transition, source_in, source_out, record_in, record_out, base, blend=None):
    times = " ".join(timecode(frame, base) for frame in (source_in, source_out, record_in, record_out))
    length = f"{blend:03d}" if blend is not None else "   "
    number = (number - 1) % EDL_EVENTS + 1
    return f"{number:03d}  {'AX':<8} {'V':<5} {transition:<4} {length} {times}"


def _comment(text):
    return " ".join(ascii_text(text).split())


def edl_text(events, base, title="animatic"):
    """A CMX3600 edit decision list of `events`: each a file-based source ("AX", named in a
    FROM CLIP NAME comment, starting at 00:00:00:00) cut or dissolved onto the record timeline,
    which starts at 01:00:00:00. Lines end in CRLF, as CMX3600 readers expect; the text is ASCII
    (ascii_text); event numbers after 999 start again at 001 (EDL_EVENTS)."""
    check_record_length(events, base)
    offset = RECORD_START * base
    lines = [f"TITLE: {_comment(title)[:70] or 'animatic'}", "FCM: NON-DROP FRAME", ""]
    previous = None
    for event in events:
        record_in, record_out = offset + event.start, offset + event.end
        if event.dissolve and previous is not None:
            held = previous.length  # the outgoing source, from its out point
            lines.append(_edl_line(event.number, "C", held, held, record_in, record_in, base))
            lines.append(_edl_line(event.number, "D", 0, event.length, record_in, record_out, base, event.dissolve))
            lines.append(f"* FROM CLIP NAME: {_comment(previous.name)}")
            lines.append(f"* TO CLIP NAME: {_comment(event.name)}")
        else:
            lines.append(_edl_line(event.number, "C", 0, event.length, record_in, record_out, base))
            lines.append(f"* FROM CLIP NAME: {_comment(event.name)}")
        for label, text in (("", event.description), ("NOTES: ", event.notes)):
            if _comment(text):
                lines.append(f"* COMMENT: {label}{_comment(text)}")
        lines.append("")
        previous = event
    return "\r\n".join(lines)


CSV_FIELDS = ("event", "shot_id", "description", "notes", "duration_s", "frames", "first_frame", "last_frame",
              "record_in", "record_out", "dissolve_frames")


def cuts_csv(events, base):
    """The cuts as CSV (one row per event; frames 0-based in the video, timecodes as in the EDL)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    offset = RECORD_START * base
    for event in events:
        writer.writerow([event.number, event.name, event.description, event.notes, f"{event.duration:g}",
                         event.length, event.start, event.end - 1, timecode(offset + event.start, base),
                         timecode(offset + event.end, base), event.dissolve])
    return buffer.getvalue()


# --- pictures ---------------------------------------------------------------------------------

def canvas_size(config, first_picture_size):
    """(width, height) of the video: the config's, else the first picture's, rounded down to even."""
    width = config.width or first_picture_size[0] - first_picture_size[0] % 2
    height = config.height or first_picture_size[1] - first_picture_size[1] % 2
    if width < 16 or height < 16:
        raise ValueError(f"the animatic would be {width}x{height} pixels; frames must be at least 16 px a side")
    return width, height


def fit(picture, size):
    """`picture` (PIL) scaled to fit inside `size`, centred on black: letterboxed, never cropped."""
    width, height = size
    scale = min(width / picture.width, height / picture.height)
    inner = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    canvas = Image.new("RGB", size, BLACK)
    resized = picture.convert("RGB") if inner == picture.size else picture.convert("RGB").resize(inner, Image.LANCZOS)
    canvas.paste(resized, ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


def push_in(picture, zoom):
    """`picture` seen `zoom` times closer, about its centre, at the same size."""
    if zoom <= 1.0:
        return picture
    width, height = picture.size
    crop_w, crop_h = width / zoom, height / zoom
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return picture.resize(picture.size, Image.BILINEAR, box=(left, top, left + crop_w, top + crop_h))


def slate_overlay(event, size):
    """(RGBA band, its top row): a translucent dark band for the bottom of the frame with the shot id,
    duration, description and notes."""
    width, height = size
    font_size = max(10, height // 28)
    line_height = round(font_size * 1.3)
    font, margin = load_font(font_size), max(4, font_size // 2)
    text_width = width - 2 * margin
    lines = [(f"{event.name}   {event.duration:g} s", SLATE_TEXT)]
    lines += [(line, SLATE_DIM) for line in fit_lines(event.description, font, text_width, 2)]
    lines += [(line, SLATE_DIM) for line in fit_lines(event.notes, font, text_width, 1)]
    lines = lines[:max(1, (height // 3 - 2 * margin) // line_height)]  # the band covers at most a third
    top = max(0, height - len(lines) * line_height - 2 * margin)
    band = Image.new("RGBA", (width, height - top), SLATE_BAND)
    draw = ImageDraw.Draw(band)
    for number, (text, color) in enumerate(lines):
        draw.text((margin, margin + number * line_height), text, font=font, fill=color)
    return band, top


def title_card(text, subtitle, size):
    """Black card with `text` large and `subtitle` small, centred."""
    width, height = size
    card = Image.new("RGB", size, BLACK)
    draw = ImageDraw.Draw(card)
    big, small = load_font(max(12, height // 10)), load_font(max(10, height // 28))
    lines = fit_lines(text, big, width * 0.9, 2)
    big_height = round(big.size * 1.25) if hasattr(big, "size") else 12
    top = height // 2 - len(lines) * big_height // 2 - big_height // 2
    for number, line in enumerate(lines):
        draw.text((width / 2, top + number * big_height), line, font=big, fill=SLATE_TEXT, anchor="ma")
    if subtitle:
        draw.text((width / 2, top + len(lines) * big_height + big_height // 2), subtitle, font=small,
                  fill=SLATE_DIM, anchor="ma")
    return card


def _overlay(picture, slate):
    if slate is None:
        return picture
    band, top = slate
    picture = picture.copy()
    picture.paste(band, (0, top), band)  # blends the band region only
    return picture


def _array(picture):
    return np.asarray(picture, dtype=np.uint8)


class _Shot:
    """The frames of one event: a held (optionally pushed-in) still, or a clip whose last frame holds."""

    def __init__(self, event, pictures, size, config):
        self.event = event
        self.fitted = [fit(picture, size) for picture in pictures]
        self.slate = slate_overlay(event, size) if config.slate and not event.title else None
        self.zoom = config.ken_burns_zoom if config.ken_burns and len(pictures) == 1 else 1.0
        self._still = None

    def frame(self, index):
        if len(self.fitted) == 1 and self.zoom == 1.0:
            if self._still is None:
                self._still = _array(_overlay(self.fitted[0], self.slate))
            return self._still
        if len(self.fitted) > 1:
            return _array(_overlay(self.fitted[min(index, len(self.fitted) - 1)], self.slate))
        progress = index / max(1, self.event.length - 1)
        return _array(_overlay(push_in(self.fitted[0], 1.0 + (self.zoom - 1.0) * progress), self.slate))


def animatic_frames(events, pictures, config, size, subtitle=""):
    """Yield every frame of the animatic as an [H, W, 3] uint8 array. `pictures` has one list of PIL
    images per shot event (one image: a still; more: a clip); the title card is drawn here."""
    shot_events = [event for event in events if not event.title]
    if len(shot_events) != len(pictures):
        raise ValueError(f"{len(pictures)} pictures for {len(shot_events)} shots")
    sources = iter(pictures)
    previous = None
    for event in events:
        if event.title:
            shot = _Shot(event, [title_card(event.description, subtitle, size)], size,
                         AnimaticConfig(ken_burns=False, slate=False))
        else:
            shot = _Shot(event, next(sources), size, config)
        for index in range(event.length):
            frame = shot.frame(index)
            if index < event.dissolve and previous is not None:
                weight = (index + 1) / (event.dissolve + 1)
                frame = (previous.astype(np.float32) * (1 - weight) + frame.astype(np.float32) * weight + 0.5
                         ).astype(np.uint8)
            yield frame
        previous = shot.frame(event.length - 1)


# --- a storyboard's frames -------------------------------------------------------------------

def timed_shots(storyboard):
    """TimedShot per shot of a Storyboard (storyboard.py), durations defaulted."""
    return [TimedShot(p.shot.shot_id, p.shot.description, p.shot.notes or "", storyboard.duration_of(p), p.shot.line)
            for p in storyboard.shots]


def shot_pictures(images, labels, shot_ids):
    """One list of PIL pictures per shot id, from IMAGE tensors: a list with one entry per shot (a
    single image is a still, a batch a clip), matched by `labels` (shot ids, one per entry) or by
    position; or one batch holding a still per shot."""
    entries = [image if image.ndim == 4 else image.unsqueeze(0) for image in images]
    if not entries:
        raise ValueError("images is empty; connect the images output of LookDev Storyboard Render")
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != len(entries):
            raise ValueError(f"labels has {len(labels)} entries for {len(entries)} images; connect the labels "
                             "output of the same LookDev Storyboard Render node as the images")
        by_label = dict(zip(labels, entries))
        unknown = [label for label in labels if label not in shot_ids]
        missing = [shot_id for shot_id in shot_ids if shot_id not in by_label]
        if unknown or missing:
            raise ValueError("the frames and the shot list don't match: "
                             + "; ".join(filter(None, [unknown and f"frames for shots not in the list: {unknown}",
                                                       missing and f"shots without a frame: {missing}"])))
        entries = [by_label[shot_id] for shot_id in shot_ids]
    elif len(entries) == 1 and entries[0].shape[0] == len(shot_ids) > 1:
        entries = [entries[0][index:index + 1] for index in range(len(shot_ids))]
    elif len(entries) != len(shot_ids):
        raise ValueError(f"got {len(entries)} images for {len(shot_ids)} shots; connect the images (and labels) "
                         "outputs of the LookDev Storyboard Render node that rendered this shot list")
    return [[to_pil(frame) for frame in entry] for entry in entries]


def clip_notes(events, pictures):
    """A note per clip whose frame count differs from its shot's length (trimmed, or last frame held)."""
    shot_events = [event for event in events if not event.title]
    notes = []
    for event, frames in zip(shot_events, pictures):
        if len(frames) > 1 and len(frames) != event.length:
            change = (f"the last {len(frames) - event.length} are cut" if len(frames) > event.length else
                      f"its last frame is held for {event.length - len(frames)} more")
            notes.append(f"{event.name}: the clip has {len(frames)} frames for a {event.length}-frame shot; {change}")
    return notes


def animatic_report(animatic, config, paths, notes=()):
    """Totals, then one line per event (record in-out, frames, seconds), notes and the files."""
    base, offset = config.timecode_base, RECORD_START * config.timecode_base
    seconds = float(animatic.frames / config.rate)
    lines = [f"animatic: {len(animatic.events)} events, {animatic.frames} frames at {config.fps} fps "
             f"({seconds:.2f} s), {animatic.size[0]}x{animatic.size[1]}"]
    lines += [f"{event.name}  {timecode(offset + event.start, base)}-{timecode(offset + event.end, base)}  "
              f"{event.length} frames ({event.duration:g} s)" + (f", dissolve {event.dissolve}" if event.dissolve else "")
              for event in animatic.events]
    lines += [f"note: {note}" for note in notes]
    lines += [f"{kind}: {path}" for kind, path in paths.items()]
    return "\n".join(lines)


# --- encoding and saving ----------------------------------------------------------------------

@dataclass(frozen=True)
class H264Level:
    name: str  # "4.0"
    max_kbps: int  # the High profile's bitrate ceiling at this level (the VBV cap)
    buffer_kbit: int  # its coded picture buffer (the VBV buffer)


def h264_level(size, rate):
    """The lowest H.264 level (3.0 and up) that holds frames of `size` at `rate` fps: macroblocks a
    frame, the longest side (at most sqrt(8 x frame macroblocks)) and macroblocks a second. A size
    no level holds (beyond 6.2) is a ValueError: hardware decoders refuse such a stream."""
    width, height = size
    columns, rows = -(-width // 16), -(-height // 16)
    per_frame = columns * rows
    per_second = per_frame * Fraction(rate)
    for name, max_frame, max_second, kbps, kbit in H264_LEVELS:
        if per_frame <= max_frame and max(columns, rows) ** 2 <= 8 * max_frame and per_second <= max_second:
            return H264Level(name, kbps * 5 // 4, kbit * 5 // 4)
    name, max_frame, max_second, *_ = H264_LEVELS[-1]
    raise ValueError(f"the animatic would be {width}x{height} at {float(rate):g} fps: beyond H.264's highest "
                     f"level {name} ({per_frame} macroblocks of 16x16 a frame, at most {max_frame}, e.g. "
                     f"8192x4320; {int(per_second)} a second, at most {max_second}), so players and hardware "
                     "decoders would refuse it; set width and height smaller")


def colour_of(size):
    """COLOUR's "hd" or "sd" entry for frames of `size` (see COLOUR)."""
    return COLOUR["hd" if size[0] >= HD_SIZE[0] or size[1] >= HD_SIZE[1] else "sd"]


def encode_video(frames, size, rate, total=None, codec=CODEC, container="mp4", metadata=None, on_frame=None):
    """Encode `frames` ([H, W, 3] uint8 RGB arrays of `size`) at `rate` fps with PyAV into the bytes of a
    `container` file; `on_frame(done, total)` after each frame. Colour per COLOUR, level per
    h264_level (bitrate capped at its ceiling), index first (faststart). The file is written in a
    private temporary folder (FFmpeg's faststart re-reads what it wrote) and returned as bytes."""
    import av

    try:
        av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError) as exc:  # UnknownCodecError is a ValueError
        raise ValueError(f"cannot encode the animatic: this PyAV (FFmpeg) has no encoder for codec {codec!r}; "
                         "install a PyAV build with it (the PyPI wheels include H.264)") from exc
    level, colour = h264_level(size, rate), colour_of(size)
    options = {**ENCODER_OPTIONS, **colour["tags"], "level": level.name,
               "maxrate": f"{level.max_kbps}k", "bufsize": f"{level.buffer_kbit}k"}
    with tempfile.TemporaryDirectory(prefix="lookdev-animatic-") as folder:
        path = Path(folder) / f"video.{container}"
        try:
            output = av.open(str(path), mode="w", format=container, options=dict(MUXER_OPTIONS))
        except (av.error.FFmpegError, ValueError) as exc:
            raise ValueError(f"cannot write a {container!r} file: FFmpeg has no such container format ({exc})") from exc
        count = 0
        try:
            with output:
                for key, value in (metadata or {}).items():
                    output.metadata[key] = value
                try:
                    stream = output.add_stream(codec, rate=Fraction(rate), options=options)
                except ValueError as exc:  # the container can't hold the codec
                    raise av.error.FFmpegError(0, str(exc)) from exc
                stream.width, stream.height = size
                stream.pix_fmt = PIXEL_FORMAT
                stream.codec_context.time_base = 1 / Fraction(rate)
                for array in frames:
                    if array.shape[1::-1] != tuple(size):
                        raise ValueError(f"frame {count} is {array.shape[1]}x{array.shape[0]}, the video {size[0]}x{size[1]}")
                    frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(
                        format=PIXEL_FORMAT, dst_colorspace=colour["matrix"], src_color_range="JPEG",
                        dst_color_range="MPEG")
                    frame.pts = count
                    frame.time_base = stream.codec_context.time_base
                    output.mux(stream.encode(frame))
                    count += 1
                    if on_frame is not None:
                        on_frame(count, total or count)
                output.mux(stream.encode(None))
        except av.error.FFmpegError as exc:
            raise ValueError(f"cannot write {codec} video into a {container!r} file: {exc.strerror or exc}") from exc
        return path.read_bytes()


MEDIA_FOLDER = f"{STEM}_media"  # beside the animatic: the files the timelines' clips link to
TITLE_MEDIA = "_title"  # the title card's media name: shot ids never start with '_'


@dataclass(frozen=True)
class Media:
    """The file a timeline clip links to: a still as PNG, a clip as a short video of the frames the
    animatic plays, each at the animatic's size, without slate or push-in."""

    name: str  # file name inside MEDIA_FOLDER
    data: bytes
    frames: int  # frames it offers: its event's length plus the next dissolve's (the held picture)


def event_media(events, pictures, config, size, subtitle=""):
    """A Media per event (title card first, if any), in event order."""
    shot_events = [event for event in events if not event.title]
    handles = {event.number - 1: event.dissolve for event in events}  # the next event's dissolve
    sources = dict(zip((event.number for event in shot_events), pictures))
    plain = AnimaticConfig(ken_burns=False, slate=False)
    media = []
    for event in events:
        frames = event.length + handles.get(event.number, 0)
        if event.title:
            stills = [title_card(event.description, subtitle, size)]
        else:
            validate_shot_id(event.name)  # it names a file
            stills = sources[event.number]
        if len(stills) == 1:
            buffer = io.BytesIO()
            fit(stills[0], size).save(buffer, format="PNG", compress_level=4)
            name = f"{TITLE_MEDIA if event.title else event.name}.png"
            media.append(Media(name, buffer.getvalue(), frames))
        else:
            shot = _Shot(event, stills, size, plain)
            data = encode_video((shot.frame(index) for index in range(frames)), size, config.rate,
                                container=CONTAINERS[config.container])
            media.append(Media(f"{event.name}.{config.container}", data, frames))
    return tuple(media)


@dataclass(frozen=True)
class Animatic:
    video: bytes
    edl: str
    csv: str
    events: tuple
    size: tuple
    frames: int
    media: tuple = ()  # a Media per event, for the timelines
    rate: Fraction = Fraction(24)
    timecode_base: int = 24
    name: str = "animatic"


def make_animatic(shots, pictures, config, name="animatic", on_frame=None):
    """Time, draw and encode the animatic of TimedShots with their pictures (one list of PIL images per
    shot), with its EDL, CSV and timeline media; nothing is written. Every error surfaces before a
    byte is on disk."""
    config.validate()
    if len(shots) != len(pictures):
        raise ValueError(f"{len(pictures)} pictures for {len(shots)} shots")
    if not all(pictures):
        raise ValueError("every shot needs at least one picture")
    events = tuple(plan_timeline(shots, config.rate, config.title, config.title_duration, config.dissolve))
    size = canvas_size(config, pictures[0][0].size)
    h264_level(size, config.rate)  # a size no decoder takes fails before any drawing
    title = config.title.strip() or name
    edl = edl_text(events, config.timecode_base, title)  # an EDL too long fails here too
    total = events[-1].end
    minutes, seconds = divmod(round(float(total / config.rate)), 60)
    subtitle = f"{len(shots)} shot{'s' if len(shots) != 1 else ''}, {minutes}:{seconds:02d}"
    video = encode_video(animatic_frames(events, pictures, config, size, subtitle), size, config.rate, total,
                         container=CONTAINERS[config.container],
                         metadata={"title": title, "comment": "LookDev animatic",
                                   "timecode": timecode(RECORD_START * config.timecode_base, config.timecode_base)},
                         on_frame=on_frame)
    return Animatic(video, edl, cuts_csv(events, config.timecode_base), events, size, total,
                    event_media(events, pictures, config, size, subtitle), config.rate, config.timecode_base, title)


def animatic_paths(output_dir, config):
    """{"video", "edl", "csv", "otio", "xml", "fcpxml", "media"}: where the files go (media: the
    folder of the timelines' media); a folder leading out of output_dir is refused first."""
    video = output_path(output_dir, config.folder, f"{STEM}.{config.container}")
    return {"video": video, "edl": video.with_suffix(".edl"), "csv": video.with_suffix(".csv"),
            "otio": video.with_suffix(".otio"), "xml": video.with_suffix(".xml"),
            "fcpxml": video.with_suffix(".fcpxml"), "media": video.parent / MEDIA_FOLDER}


def save_animatic(animatic, paths):
    """Write the media, the timelines (.otio, .xml, .fcpxml), the EDL, the CSV and the video, each
    atomically; the timelines are made before anything is written."""
    from .timeline import timeline_texts  # timeline.py builds on this module

    timelines = timeline_texts(animatic, paths["media"])
    for media in animatic.media:
        write_bytes(paths["media"] / media.name, media.data)
    for extension, text in timelines.items():
        write_text(paths[extension], text)
    write_text(paths["edl"], animatic.edl)
    write_text(paths["csv"], animatic.csv)
    write_bytes(paths["video"], animatic.video)
    return paths
