"""Synthetic reference videos for the reel tests, encoded with PyAV (ComfyUI's own video
library). A clip is a list of "shots"; each shot is a list of RGB uint8 frames, so the test
knows exactly where every cut, fade, flash, blur and bar is."""

from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageFilter


def scene(seed, size, frames, drift=1):
    """A shot: a random picture with fine texture and big shapes of one seed-chosen tint,
    drifting `drift` px right per frame (a slow pan), `frames` long. size is (width, height)."""
    width, height = size
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 12 + 2, width // 12 + 2, 3), np.uint8)
    big = np.asarray(Image.fromarray(coarse).resize((width + 24 + frames * drift, height + 24),
                                                    Image.Resampling.BILINEAR), np.int16)
    fine = rng.integers(-40, 41, big.shape[:2] + (1,), np.int16)
    tint = rng.integers(-50, 51, 3, np.int16)
    picture = np.clip(big + fine + tint, 0, 255).astype(np.uint8)
    return [picture[:height, n * drift:n * drift + width].copy() for n in range(frames)]


def blurred(frame, radius=3):
    return np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(radius)))


def faded(frames, start, stop):
    """Frames scaled from brightness `start` to `stop` (0..1) over their length."""
    steps = np.linspace(start, stop, len(frames))
    return [(frame.astype(np.float32) * k).round().astype(np.uint8) for frame, k in zip(frames, steps)]


def solid(value, size, frames):
    width, height = size
    return [np.full((height, width, 3), value, np.uint8) for _ in range(frames)]


def letterboxed(frames, top, bottom, left=0, right=0):
    """The frames with black bars of those sizes painted over their edges."""
    boxed = []
    for frame in frames:
        frame = frame.copy()
        frame[:top] = 0
        frame[frame.shape[0] - bottom:] = 0
        frame[:, :left] = 0
        frame[:, frame.shape[1] - right:] = 0
        boxed.append(frame)
    return boxed


def encode(path, frames, fps=24, codec="libx264", crf=14):
    """Write the RGB frames as a video; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_positions(shots):
    """Index of the first frame of every shot after the first."""
    positions, at = [], 0
    for shot in shots[:-1]:
        at += len(shot)
        positions.append(at)
    return positions


def reel(shots):
    return [frame for shot in shots for frame in shot]


def grainy(frames, sigma=6, seed=0):
    """The frames with fresh film grain on each (a real camera's noise)."""
    rng = np.random.default_rng(seed)
    return [np.clip(frame + rng.normal(0, sigma, frame.shape[:2] + (1,)), 0, 255).astype(np.uint8)
            for frame in frames]


def dissolved(outgoing, incoming, length):
    """outgoing's frames, its last `length` blended into incoming's first `length`, then the rest
    of incoming: a cross-dissolve of that many frames."""
    blend = [(a.astype(np.float32) * (1 - k) + b.astype(np.float32) * k).round().astype(np.uint8)
             for a, b, k in zip(outgoing[-length:], incoming[:length],
                                np.arange(1, length + 1) / (length + 1))]
    return outgoing[:-length] + blend + incoming[length:]


def strobed(frames, start, phase, cycles, level=0.25):
    """The frames with a light going off and on in phases of `phase` frames from `start`."""
    out = list(frames)
    for k in range(start, min(len(out), start + 2 * phase * cycles)):
        if (k - start) // phase % 2 == 0:
            out[k] = (out[k].astype(np.float32) * level).round().astype(np.uint8)
    return out


def barred(frames, top, bottom, value=16, subtitles=False):
    """Letterbox bars of luma-ish `value` (32: a lifted, double-levels export), optionally with a
    subtitle line burnt into the bottom bar on two frames of every three."""
    from PIL import ImageDraw

    out = []
    for n, frame in enumerate(frames):
        frame = frame.copy()
        frame[:top] = value
        frame[frame.shape[0] - bottom:] = value
        if subtitles and n % 3 != 2:
            image = Image.fromarray(frame)
            ImageDraw.Draw(image).text((frame.shape[1] // 5, frame.shape[0] - bottom + 3),
                                       "Where were you that night?", fill=(235, 235, 235))
            frame = np.asarray(image).copy()
        out.append(frame)
    return out
