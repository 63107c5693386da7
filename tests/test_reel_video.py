"""A dataset from a video file (trainer/dataset/reel.py) on synthetic clips encoded with PyAV:
known cuts, bars, fades, flashes, duplicated shots, blur, trims, bad files."""

import io
import os

import av
import numpy as np
import pytest
from PIL import Image

from lookdev.trainer.dataset.dataset import DatasetConfig
from lookdev.trainer.dataset.reel import ReelConfig, reel_dataset
from lookdev.trainer.dataset.scan import DatasetError
from video_files import (blurred, cut_positions, encode, faded, letterboxed, reel, scene,
                         solid)

SIZE = (256, 144)


def make(path, frames=6, reel_options=None, **dataset_options):
    config = DatasetConfig(resolution=128, trigger="lkdv", **dataset_options)
    return reel_dataset(str(path), path.name, ReelConfig(frames=frames, **(reel_options or {})),
                        config)


@pytest.mark.parametrize("lengths", [(20, 15, 30, 12, 25), (8, 40, 9), (50,)])
def test_cuts_found_within_one_frame(tmp_path, lengths):
    shots = [scene(seed, SIZE, n) for seed, n in enumerate(lengths, start=1)]
    result = make(encode(tmp_path / "cuts.mp4", reel(shots)))
    truth = cut_positions(shots)
    found = result.analysis.cuts
    assert len(found) == len(truth) and all(abs(a - b) <= 1 for a, b in zip(found, truth))
    assert f"Shots: {len(lengths)} ({len(truth)} cuts)" in result.report


@pytest.mark.parametrize("bars, text", [
    ((18, 18, 0, 0), "cropped 2.37:1 letterbox: 18 px top and bottom (picture 256x108 of 256x144)"),
    ((0, 0, 32, 30), "cropped 1.35:1 pillarbox: 32 px left, 30 px right (picture 194x144 of 256x144)"),
    ((10, 10, 20, 20), "cropped 1.74:1 letterbox and pillarbox: 10 px top and bottom; 20 px left and right"),
])
def test_bars_found_exactly_and_cropped(tmp_path, bars, text):
    shots = [scene(1, SIZE, 24), solid(0, SIZE, 6), scene(2, SIZE, 24)]
    result = make(encode(tmp_path / "boxed.mp4", letterboxed(reel(shots), *bars)))
    assert result.analysis.crop == bars
    assert text in result.report
    size = (SIZE[0] - bars[2] - bars[3], SIZE[1] - bars[0] - bars[1])
    written = reel_dataset(str(tmp_path / "boxed.mp4"), "boxed.mp4", ReelConfig(frames=3),
                           DatasetConfig(resolution=128), write_to=tmp_path / "out").written
    assert written and all(Image.open(path).size == size for path in written)


def test_bars_kept_when_remove_bars_is_off(tmp_path):
    frames = letterboxed(scene(1, SIZE, 24), 18, 18)
    result = make(encode(tmp_path / "boxed.mp4", frames), reel_options={"remove_bars": False})
    assert result.analysis.crop == (0, 0, 0, 0) and "Crop: off" in result.report


def test_fades_and_flashes_are_no_cuts(tmp_path):
    a, b = scene(1, SIZE, 42), scene(2, SIZE, 42)
    frames = (a[:20] + solid(255, SIZE, 1) + a[20:30] + faded(a[30:], 1, 0) + solid(0, SIZE, 6)
              + faded(b[:12], 0, 1) + b[12:30] + solid(250, SIZE, 2) + b[30:])
    result = make(encode(tmp_path / "fades.mp4", frames))
    assert result.analysis.cuts == []
    assert len(result.analysis.flashes) == 4  # both edges of both flashes
    assert "Shots: 1 (0 cuts; 4 flashes not taken as cuts)" in result.report
    skipped = result.report.split("Skipped frames: ")[1].splitlines()[0]
    assert "black" in skipped and "fade" in skipped and "white" in skipped
    names = [name for _, name in result.picks]
    black = {n for n, reason in enumerate(result.analysis.reasons) if reason}
    assert not black & {index for index, _ in result.picks}, names


def test_duplicated_shot_is_deduplicated(tmp_path):
    shots = [scene(1, SIZE, 30), scene(2, SIZE, 30), scene(1, SIZE, 30)]
    result = make(encode(tmp_path / "dup.mp4", reel(shots)), frames=3)
    assert len(result.analysis.shots) == 3
    assert [issue.kind for issue in result.dataset.skipped] == ["duplicate"]
    # The third shot's pick repeats the first's: it is dropped and replaced by the frame farthest
    # from the other picks that is no near-duplicate of them (the drift has moved that far).
    assert len(result.dataset) == 3
    [(dropped, reason)] = result.choice.skipped
    assert reason == "duplicate" and dropped >= 60 and dropped not in result.choice.picks


def test_sharp_frame_is_picked_beside_blurred_ones(tmp_path):
    sharp = scene(3, SIZE, 30)
    soft = [blurred(frame) for frame in sharp]
    soft[17] = sharp[17]
    result = make(encode(tmp_path / "blur.mp4", scene(1, SIZE, 30) + soft), frames=2)
    assert [index for index, _ in result.picks] == [result.picks[0][0], 47]


def test_timecode_names_written_frames_and_their_captions(tmp_path):
    frames = reel([scene(1, SIZE, 30), scene(2, SIZE, 30)])
    path = encode(tmp_path / "My Reel.mp4", frames)
    out = tmp_path / "frames"
    first = reel_dataset(str(path), "My Reel.mp4", ReelConfig(frames=2),
                         DatasetConfig(resolution=128, trigger="lkdv"), write_to=out)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{name}.png" for _, name in first.picks)
    assert all(name.startswith("My_Reel_00h00m0") and name.endswith("f.png") for name in names)
    assert [s.source for s in first.dataset.samples] == [out / name for name in names]
    # A caption the user wrote beside a frame is used next time, like a folder's sidecar.
    (out / names[0]).with_suffix(".txt").write_text("a red door", encoding="utf-8")
    again = reel_dataset(str(path), "My Reel.mp4", ReelConfig(frames=2),
                         DatasetConfig(resolution=128, trigger="lkdv"), write_to=out)
    assert again.dataset.samples[0].caption == "lkdv, a red door"
    assert again.dataset.samples[1].caption == "lkdv"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_start_and_end_trim(tmp_path):
    shots = [scene(1, SIZE, 24), scene(2, SIZE, 24), scene(3, SIZE, 24)]
    path = encode(tmp_path / "trim.mp4", reel(shots))
    result = make(path, frames=4, reel_options={"start": "1", "end": "00:00:02:00"})
    assert len(result.analysis.stats) == 24 and result.analysis.cuts == []
    assert all(24 <= result.analysis.numbers[index] < 48 for index, _ in result.picks)
    with pytest.raises(DatasetError, match="start '9' is at or after the end of the video"):
        make(path, reel_options={"start": "9"})
    with pytest.raises(DatasetError, match="end '0:01' is not after start '2'"):
        make(path, reel_options={"start": "2", "end": "0:01"})
    with pytest.raises(ValueError, match="start 'soon' is not a timecode"):
        make(path, reel_options={"start": "soon"})


def test_long_video_is_analysed_in_bounded_windows(tmp_path):
    shots = [scene(seed, (128, 72), 40) for seed in range(1, 9)]
    path = encode(tmp_path / "long.mp4", reel(shots))
    result = make(path, frames=8, reel_options={"max_analysed_frames": 90})
    analysis = result.analysis
    assert analysis.windows == 30 and len(analysis.stats) == 90
    assert analysis.numbers[-1] > 300  # the windows reach the end of the clip
    assert "Long video: analysed in 30 evenly spaced windows of 3 frames" in result.report


def test_video_from_a_file_object(tmp_path):
    data = encode(tmp_path / "clip.mp4", reel([scene(1, SIZE, 20), scene(2, SIZE, 20)])).read_bytes()
    result = reel_dataset(io.BytesIO(data), "video input", ReelConfig(frames=2),
                          DatasetConfig(resolution=128))
    assert len(result.dataset) == 2 and result.analysis.cuts == [20]


# --- bad input ----------------------------------------------------------------------------------

def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    # Fixed bytes: some random draws parse as a subtitle stream (a different, also clear, error).
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(DatasetError, match=r"notes.mp4: not a video file FFmpeg can read"):
        make(path)


def test_zero_length_and_empty(tmp_path):
    with av.open(str(tmp_path / "zero.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height = SIZE
    with pytest.raises(DatasetError, match="zero.mp4: .*(no video frames|not a video file)"):
        make(tmp_path / "zero.mp4")
    from lookdev.trainer.dataset.reel import check_video_file
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DatasetError, match="is an empty file"):
        check_video_file(tmp_path / "empty.mp4")


def test_audio_only(tmp_path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 16000
        for _ in range(10):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(DatasetError, match=r"voice.m4a: has no video stream \(audio only\)"):
        make(path)


@pytest.mark.parametrize("container", ["mp4", "mkv", "ts"])
@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_corrupt_stream_in_the_middle(tmp_path, container, damage):
    frames = reel([scene(1, SIZE, 40), scene(2, SIZE, 40), scene(3, SIZE, 40)])
    data = bytearray(encode(tmp_path / f"whole.{container}", frames).read_bytes())
    half = len(data) // 2
    broken = tmp_path / f"broken.{container}"
    broken.write_bytes(data[:half] if damage == "truncated" else
                       data[:half] + bytes(3000) + data[half + 3000:])
    if container == "mp4" and damage == "truncated":  # the index is at the end: nothing to read
        with pytest.raises(DatasetError, match="broken.mp4: not a video file FFmpeg can read"):
            make(broken)
        return
    result = make(broken, frames=6)
    analysed = len(result.analysis.stats)
    assert 20 < analysed <= 120 and len(result.dataset) >= 2
    problems = [issue.message for issue in result.dataset.notes]
    # MPEG-TS has no index or length to compare with: a cut-off TS file just ends early, and a
    # damaged packet may be concealed by the decoder.
    if container != "ts":
        assert any("skipped" in p for p in problems), problems
        assert "Problem: the video stream " in result.report


@pytest.mark.parametrize("width", [1, 2, 3])
def test_a_flash_during_a_pan_is_no_cut(tmp_path, width):
    pan = scene(5, SIZE, 40, drift=3)
    frames = pan[:20] + solid(255, SIZE, width) + pan[20 + width:]
    result = make(encode(tmp_path / "pan.mp4", frames))
    assert result.analysis.cuts == [] and result.analysis.flashes == [20, 20 + width]


def test_all_black_video_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"dark.mp4: no usable frame in the 30 analysed "
                                           r"\(30 black\); check the video"):
        make(encode(tmp_path / "dark.mp4", solid(16, SIZE, 30)))


def test_disk_full_while_writing_frames_leaves_whole_files_only(tmp_path, monkeypatch):
    import errno

    from lookdev.trainer import fileio

    path = encode(tmp_path / "clip.mp4", reel([scene(1, SIZE, 20), scene(2, SIZE, 20),
                                               scene(3, SIZE, 20)]))
    original, calls = fileio._write_all, []

    def write(fh, data):  # the disk fills up half-way through the second frame
        calls.append(fh.name)
        if len(calls) < 2:
            return original(fh, data)
        fh.write(bytes(data)[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio, "_write_all", write)
    out = tmp_path / "frames"
    with pytest.raises(fileio.SaveError, match="the disk is full"):
        reel_dataset(str(path), "clip.mp4", ReelConfig(frames=3), DatasetConfig(resolution=128),
                     write_to=out)
    files = list(out.iterdir())
    assert len(files) == 1 and Image.open(files[0]).size == SIZE  # the first frame, whole


def test_undecodable_stream(tmp_path):
    """A video stream whose data the decoder cannot read from the first packet (what an
    unsupported or broken codec gives): a clear error naming the codec."""
    from fractions import Fraction

    path = tmp_path / "garbage.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width = stream.height = 64
        rng = np.random.default_rng(0)
        for n in range(10):
            packet = av.Packet(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, n, n, Fraction(1, 24)
            container.mux(packet)
    with pytest.raises(DatasetError, match=r"garbage.mkv: cannot decode its video stream \(mpeg4\): "
                                           r"Invalid data found when processing input; convert it"):
        make(path)
