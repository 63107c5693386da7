"""The animatic's timeline for editing systems, built once with OpenTimelineIO and written in the
formats editors exchange: `.otio` (OpenTimelineIO's own), `.xml` (Final Cut Pro 7 XML, which
Premiere Pro and DaVinci Resolve import) and `.fcpxml` (Final Cut Pro X). The CMX3600 `.edl` is
animatic.py's own writer (OTIO reads it back to the same cuts; see the tests).

The timeline: one video track whose record time starts at 01:00:00:00, one clip per event named
by its shot id (the title card's is TITLE), each linked to its media file (animatic.Media: a still
as a PNG, a clip as a short video of the frames the animatic plays, the title card as a PNG) by an
absolute file URL, so an editor relinks by pointing at the folder once. A dissolve is a
transition wholly after the cut (the outgoing picture is held while the next shot blends in, as
in the video and the EDL), so every medium holds the next dissolve's frames past its out point.
The description and notes travel as metadata (`lookdev`), as FCP7 logging info (description, log
note) and as the FCPXML clip's note.

The FCPXML adapter writes cuts only (no transitions) and no start timecode: Final Cut Pro gets
the same clips at the same places from 00:00:00:00, without the dissolves. The frame duration
and size of its format are set here (the adapter leaves the size out and knows only a few rates).
"""

import xml.etree.ElementTree as ElementTree
from fractions import Fraction
from pathlib import Path

from .animatic import RECORD_START

TIMELINE_FORMATS = {"otio": "otio_json", "xml": "fcp_xml", "fcpxml": "fcpx_xml"}  # extension -> adapter
TRACK_NAME = "V1"


def _otio():
    try:
        import opentimelineio
    except ImportError as exc:
        raise ValueError("cannot write the animatic's timelines: the package opentimelineio is missing; "
                         "install LookDev's requirements (pip install -r requirements.txt)") from exc
    return opentimelineio


def build_timeline(animatic, media_folder):
    """The OTIO Timeline of an animatic.Animatic whose media files are (to be) in `media_folder`."""
    otio = _otio()
    rate = float(animatic.rate)

    def time(frames):
        return otio.opentime.RationalTime(frames, rate)

    def span(frames):
        return otio.opentime.TimeRange(time(0), time(frames))

    width, height = animatic.size
    timeline = otio.schema.Timeline(name=animatic.name, global_start_time=time(RECORD_START * animatic.timecode_base))
    # Sequence size for FCP7 XML readers (Resolve sets the timeline's resolution from it).
    timeline.metadata["fcp_xml"] = {"media": {"video": {"format": {"samplecharacteristics": {
        "width": width, "height": height, "pixelaspectratio": "square", "anamorphic": "FALSE",
        "fielddominance": "none"}}}}}
    track = otio.schema.Track(name=TRACK_NAME, kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    folder = Path(media_folder).resolve()
    previous = None
    for event, media in zip(animatic.events, animatic.media):
        if event.dissolve and previous is not None:
            track.append(otio.schema.Transition(
                name=f"Dissolve {previous.name} to {event.name}",
                transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=time(0), out_offset=time(event.dissolve)))
        note = " / ".join(text for text in (event.description, event.notes) if text)
        reference = otio.schema.ExternalReference(target_url=(folder / media.name).as_uri(),
                                                  available_range=span(media.frames))
        if note:
            reference.metadata["fcpx"] = {"note": note}
        logging = {key: text for key, text in (("description", event.description), ("lognote", event.notes)) if text}
        clip = otio.schema.Clip(name=event.name, media_reference=reference, source_range=span(event.length))
        clip.metadata["lookdev"] = {"event": event.number, "description": event.description, "notes": event.notes,
                                    "duration_s": event.duration, "title_card": event.title}
        if logging:
            clip.metadata["fcp_xml"] = {"logginginfo": logging}
        track.append(clip)
        previous = event
    return timeline


def timeline_texts(animatic, media_folder):
    """{extension: file text} of the animatic's timeline in each of TIMELINE_FORMATS."""
    otio = _otio()
    timeline = build_timeline(animatic, media_folder)
    texts = {}
    for extension, adapter in TIMELINE_FORMATS.items():
        try:
            texts[extension] = otio.adapters.write_to_string(timeline, adapter)
        except (otio.exceptions.OTIOError, ValueError) as exc:
            raise ValueError(f"cannot write the animatic's .{extension} timeline (OpenTimelineIO adapter "
                             f"{adapter!r}): {exc}; install LookDev's requirements") from exc
    texts["fcpxml"] = _completed_fcpxml(texts["fcpxml"], animatic)
    return texts


def _completed_fcpxml(text, animatic):
    """The adapter's FCPXML with what it leaves out or guesses set: each format's frame duration
    (the adapter knows only a few float rates), width and height (its name, guessed with ffprobe
    when that is installed and the media already exist, is dropped, so the file does not depend
    on either)."""
    header, _, body = text.partition("<fcpxml")
    root = ElementTree.fromstring("<fcpxml" + body)
    frame = 1 / Fraction(animatic.rate)
    for element in root.iter("format"):
        element.attrib.pop("name", None)
        element.set("frameDuration", _seconds(frame))
        element.set("width", str(animatic.size[0]))
        element.set("height", str(animatic.size[1]))
    ElementTree.indent(root, space="    ")
    return header + ElementTree.tostring(root, encoding="unicode") + "\n"


def _seconds(value):
    """FCPXML's rational seconds: '1001/24000s', '3600s'."""
    value = Fraction(value)
    return f"{value.numerator}s" if value.denominator == 1 else f"{value.numerator}/{value.denominator}s"
