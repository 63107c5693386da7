"""The animatic as editors and players receive it: colour matrix and tags (decoded YUV values),
faststart (atom order), the H.264 level, the EDL's limits (events past 999, ASCII, the 24-hour
timecode), and the timelines (.otio, FCP7 .xml, .fcpxml, .edl) read back with OpenTimelineIO
against the timeline LookDev built, with media files that exist; in headless Chromium, the colour
an HD animatic shows."""

import functools
import http.server
import io
import shutil
import threading
import xml.etree.ElementTree as ElementTree
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import av
import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

from lookdev.trainer.render.animatic import (
    FRAME_RATES, AnimaticConfig, TimedShot, animatic_paths, ascii_text, edl_text, h264_level, make_animatic,
    plan_timeline, save_animatic,
)
from lookdev.trainer.render.timeline import build_timeline

GREEN, RED, BLUE = (50, 200, 50), (200, 30, 30), (30, 30, 200)
# (Kr, Kb) of each matrix: Y = Kr R + (1 - Kr - Kb) G + Kb B, limited range 16-235 / 16-240.
MATRICES = {"bt709": (0.2126, 0.0722), "smpte170m": (0.299, 0.114)}


def shots(durations, names=None):
    names = names or [f"SH{index + 1:02d}0" for index in range(len(durations))]
    return [TimedShot(name, f"shot {name}", "", duration) for name, duration in zip(names, durations)]


def solid(color, size=(64, 36)):
    return [Image.new("RGB", size, color)]


def expected_yuv(rgb, matrix):
    kr, kb = MATRICES[matrix]
    r, g, b = (value / 255 for value in rgb)
    y = kr * r + (1 - kr - kb) * g + kb * b
    return 16 + 219 * y, 128 + 224 * (b - y) / (2 * (1 - kb)), 128 + 224 * (r - y) / (2 * (1 - kr))


def atoms(data):
    """Names of the top-level atoms of an MP4/MOV file, in order."""
    names, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        names.append(data[at + 4:at + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[at + 8:at + 16], "big")
        assert size >= 8, names
        at += size
    return names


# --- colour, faststart, level -------------------------------------------------------------------

@pytest.mark.parametrize("size, matrix", [((1280, 720), "bt709"), ((640, 360), "smpte170m"),
                                          ((720, 1280), "bt709")], ids=["720p", "360p", "vertical HD"])
def test_colour_matrix_and_tags_by_size(size, matrix):
    config = AnimaticConfig(width=size[0], height=size[1])
    animatic = make_animatic(shots([0.125] * 3), [solid(c, size) for c in (GREEN, RED, BLUE)], config)
    with av.open(io.BytesIO(animatic.video)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        tags = (context.color_primaries, context.color_trc, context.colorspace, context.color_range)
        planes = [frame.to_ndarray() for frame in container.decode(stream)]  # yuv420p: Y rows, then U, V
    code = 1 if matrix == "bt709" else 6  # ISO/IEC 23091-4 code points; range 1: limited (MPEG)
    assert tags == (code, code, code, 1)
    width, height = size
    for index, color in zip((1, 4, 7), (GREEN, RED, BLUE)):
        plane = planes[index]
        y = plane[:height].astype(float).mean()
        chroma = plane[height:].reshape(-1).astype(float)
        u, v = chroma[:chroma.size // 2].mean(), chroma[chroma.size // 2:].mean()
        assert np.allclose((y, u, v), expected_yuv(color, matrix), atol=1.5), (color, (y, u, v))


@pytest.mark.parametrize("container", ["mp4", "mov"])
def test_faststart_index_before_the_pictures(container):
    animatic = make_animatic(shots([0.25]), [solid(GREEN)], AnimaticConfig(container=container))
    order = atoms(animatic.video)
    assert order.index("moov") < order.index("mdat"), order


@pytest.mark.parametrize("size, fps, level", [
    ((64, 36), "24", "3.0"), ((720, 576), "25", "3.0"), ((1280, 720), "24", "3.1"), ((1280, 720), "60", "3.2"),
    ((1920, 1080), "24", "4.0"), ((1920, 1080), "59.94", "4.2"), ((3840, 2160), "24", "5.1"),
    ((3840, 2160), "60", "5.2"), ((16, 8192), "24", "5.1"), ((8192, 4320), "24", "6.0"), ((8192, 4320), "60", "6.1"),
])
def test_h264_level_from_size_and_rate(size, fps, level):
    assert h264_level(size, FRAME_RATES[fps][0]).name == level


def test_level_is_written_and_sizes_beyond_6_2_are_refused():
    animatic = make_animatic(shots([0.125]), [solid(GREEN, (1280, 720))], AnimaticConfig())
    with av.open(io.BytesIO(animatic.video)) as container:
        assert container.streams.video[0].codec_context.level == 31
    with pytest.raises(ValueError, match=r"the animatic would be 8192x8192 at 24 fps: beyond H\.264's highest "
                                         r"level 6\.2 \(262144 macroblocks of 16x16 a frame, at most 139264"):
        make_animatic(shots([1.0]), [solid(GREEN)], AnimaticConfig(width=8192, height=8192))


# --- EDL limits ---------------------------------------------------------------------------------

def test_edl_past_999_events_wraps_numbers_and_reads_back():
    count = 1005
    events = plan_timeline(shots([1 / 24] * count), 24)
    text = edl_text(events, 24, "long")
    numbers = [line[:3] for line in text.split("\r\n") if line[:3].isdigit()]
    assert numbers[997:1002] == ["998", "999", "001", "002", "003"] and len(numbers) == count
    assert {len(line) for line in text.split("\r\n") if line[:3].isdigit()} == {76}  # CMX columns hold
    timeline = otio.adapters.read_from_string(text, "cmx_3600", rate=24)
    clips = timeline.video_tracks()[0].find_clips()
    assert [clip.name for clip in clips] == [event.name for event in events]
    assert [clip.range_in_parent().start_time.value for clip in clips] == list(range(count))


@pytest.mark.parametrize("text, ascii", [
    ("Café — “noir” ß", 'Cafe - "noir" ss'),
    ("Ｆｕｌｌ ﬁn…", "Full fin..."),
    ("Øresund Łódź", "Oresund Lodz"),
    ("東京 night", "?? night"),
])
def test_ascii_rule(text, ascii):
    assert ascii_text(text) == ascii


def test_edl_is_ascii_only():
    events = plan_timeline([TimedShot("SH010", "Café — “noir” 東京", "VO: ‘hello’", 1.0)], 24, title="Séquence 1")
    text = edl_text(events, 24, "Séquence 1")
    text.encode("ascii")
    assert "* COMMENT: Cafe - \"noir\" ??\r\n* COMMENT: NOTES: VO: 'hello'" in text
    assert text.startswith("TITLE: Sequence 1\r\n")


def test_edl_record_timecode_is_capped():
    long = plan_timeline(shots([600.0] * 139), 24)  # 23 h 10 min: past 23:59:59:23 from 01:00:00:00
    with pytest.raises(ValueError, match=r"the animatic is 23:10:00:00 long: its record timecodes, from "
                                         r"01:00:00:00, would pass 23:59:59:23, the last an EDL can hold \(at most "
                                         r"22:59:59:23 in all\); cut the shot list into parts"):
        edl_text(long, 24)
    edl_text(plan_timeline(shots([600.0] * 137), 24), 24)  # 22 h 50 min fits


# --- timelines through OpenTimelineIO ----------------------------------------------------------

def local_path(url):
    return Path(unquote(urlparse(url).path))


def summary(timeline, with_transitions=True):
    """(clip name, record start, frames, source start) per clip, and (in, out) per transition."""
    track = timeline.video_tracks()[0]
    clips = [(clip.name, round(clip.range_in_parent().start_time.value), round(clip.source_range.duration.value),
              round(clip.source_range.start_time.value)) for clip in track.find_clips()]
    transitions = [(t.in_offset.value, t.out_offset.value) for t in track if isinstance(t, otio.schema.Transition)]
    return clips, transitions if with_transitions else []


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 24 fps animatic with a title card, dissolves, a clip shot and non-ASCII text, saved."""
    folder = tmp_path_factory.mktemp("timeline")
    config = AnimaticConfig(title="Noir — séquence 1", title_duration=1.0, dissolve=0.25, folder="seq")
    clip = [Image.new("RGB", (64, 36), (30, 20 + 40 * i, 30)) for i in range(5)]
    timed = [TimedShot("SH010", "a wide café", "dolly in", 1.0), TimedShot("SH020", "a clip", "", 0.5),
             TimedShot("SH030", "the pier", "", 0.5)]
    animatic = make_animatic(timed, [solid(RED), clip, solid(BLUE)], config)
    paths = save_animatic(animatic, animatic_paths(folder, config))
    return animatic, paths


def test_every_timeline_reads_back_as_built(saved):
    animatic, paths = saved
    built = build_timeline(animatic, paths["media"])
    expected = summary(built)
    assert expected == ([("TITLE", 0, 24, 0), ("SH010", 24, 24, 0), ("SH020", 48, 12, 0), ("SH030", 60, 12, 0)],
                        [(0.0, 6.0)] * 3)
    for kind in ("otio", "xml"):
        timeline = otio.adapters.read_from_file(str(paths[kind]))
        assert summary(timeline) == expected, kind
        assert timeline.global_start_time.to_timecode() == "01:00:00:00", kind
        assert timeline.name == "Noir — séquence 1"
    edl = otio.adapters.read_from_file(str(paths["edl"]), rate=24)
    assert summary(edl) == expected
    fcpx = otio.adapters.read_from_file(str(paths["fcpxml"]))
    assert summary(fcpx, with_transitions=False)[0] == expected[0]  # cuts only
    sequence = ElementTree.parse(paths["xml"]).getroot().find("project/children/sequence")
    size = sequence.find("media/video/format/samplecharacteristics")
    assert (size.findtext("width"), size.findtext("height")) == ("64", "36")  # Resolve sizes its timeline so
    assert ElementTree.parse(paths["fcpxml"]).getroot().find("resources/format").attrib == {
        "id": "r1", "frameDuration": "1/24s", "width": "64", "height": "36"}


def test_media_exist_and_hold_what_the_animatic_plays(saved):
    animatic, paths = saved
    for kind in ("otio", "xml", "fcpxml"):
        clips = otio.adapters.read_from_file(str(paths[kind])).video_tracks()[0].find_clips()
        files = [local_path(clip.media_reference.target_url) for clip in clips]
        assert [file.name for file in files] == ["_title.png", "SH010.png", "SH020.mp4", "SH030.png"], kind
        assert all(file.is_file() and file.parent == paths["media"] for file in files), kind
    still = Image.open(paths["media"] / "SH010.png")
    assert still.size == (64, 36) and np.abs(np.asarray(still, float) - RED).max() < 2
    with av.open(str(paths["media"] / "SH020.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 12 + 6  # the shot, then the held last frame the next dissolve blends from
    greens = [float(frame[..., 1].mean()) for frame in frames]  # the clip's 5 frames, its last held
    assert np.allclose(greens, [20 + 40 * min(index, 4) for index in range(18)], atol=3), greens
    otio_clip = otio.adapters.read_from_file(str(paths["otio"])).video_tracks()[0].find_clips()[1]
    assert otio_clip.metadata["lookdev"]["notes"] == "dolly in"
    assert otio_clip.media_reference.available_range.duration.value == 24 + 6
    xml_clip = otio.adapters.read_from_file(str(paths["xml"])).video_tracks()[0].find_clips()[1]
    assert xml_clip.metadata["fcp_xml"]["logginginfo"] == {"description": "a wide café", "lognote": "dolly in"}


@pytest.mark.parametrize("fps", ["23.976", "29.97", "25"])
def test_timelines_at_other_rates(tmp_path, fps):
    config = AnimaticConfig(fps=fps, dissolve=0.25, folder="r")
    animatic = make_animatic(shots([1.0, 0.5]), [solid(RED), solid(BLUE)], config)
    paths = save_animatic(animatic, animatic_paths(tmp_path, config))
    rate, base = FRAME_RATES[fps]
    expected = summary(build_timeline(animatic, paths["media"]))
    for kind in ("otio", "xml"):
        timeline = otio.adapters.read_from_file(str(paths[kind]))
        assert summary(timeline) == expected, kind
        start = timeline.global_start_time
        assert start.to_timecode(start.rate, False) == "01:00:00:00", kind
    assert "<displayformat>NDF</displayformat>" in paths["xml"].read_text()  # as the EDL: non-drop
    assert "<displayformat>DF</displayformat>" not in paths["xml"].read_text()
    assert summary(otio.adapters.read_from_file(str(paths["edl"]), rate=float(rate))) == expected
    # FCPXML durations are rational seconds: check them exactly (the adapter's reader truncates).
    root = ElementTree.parse(paths["fcpxml"]).getroot()
    assert root.find("resources/format").get("frameDuration") == f"{rate.denominator}/{rate.numerator}s"
    spine = list(root.iter("clip"))
    assert [clip.get("name") for clip in spine] == ["SH010", "SH020"]
    frames = [Fraction(clip.get(name).rstrip("s")) * rate for clip in spine for name in ("offset", "duration")]
    (_, _, first, _), (_, _, second, _) = expected[0]
    assert frames == [0, first, first, second]


# --- what a browser shows ---------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PIXEL = """async (src) => {
  const video = document.createElement('video');
  video.muted = true; video.src = src;
  await new Promise((ok, bad) => { video.onloadeddata = ok; video.onerror = () => bad(String(video.error?.message)); });
  video.currentTime = 0.2;
  await new Promise(ok => { video.onseeked = ok; });
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  return Array.from(context.getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data.slice(0, 3));
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_hd_animatic_shows_its_colour_in_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (scripts/bootstrap.sh --browser)")
    from playwright.sync_api import sync_playwright

    animatic = make_animatic(shots([0.5]), [solid(GREEN, (1280, 720))], AnimaticConfig())
    (tmp_path / "animatic.mp4").write_bytes(animatic.video)
    (tmp_path / "index.html").write_text("<!doctype html><title>animatic</title>")
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # same origin: the canvas is readable
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
            shown = page.evaluate(PIXEL, "animatic.mp4")
            browser.close()
    finally:
        server.shutdown()
    assert np.abs(np.array(shown) - GREEN).max() <= 6, shown  # BT.601 untagged showed (40, 177, 51)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
