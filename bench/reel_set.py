"""A seeded set of reference reels with known cuts, for measuring Dataset From Video's detector
(bench/reel_analysis.py --set) against PySceneDetect. No downloads: every frame is made here.

"Photographic" frames: a colour field with a 1/f amplitude spectrum (the statistics of natural
images), a sky-like vertical gradient, a few soft-edged shapes, a vignette, and fresh film grain
on every frame, seen through a moving camera (a slow Ken Burns push or pan over a larger plate,
hand-held shake). Each reel mixes what a real reel holds:

- hard cuts, and subtle cuts (the next shot is the same plate re-framed and re-exposed a little);
- dissolves (8-20 frames) and fades through black (the shot goes on after the fade);
- white flashes of 1-3 frames inside a shot (lightning, a muzzle flash), and white flashes of
  1-3 frames *between* two shots (the cut is hidden in the flash);
- strobes: a light switching on and off in phases of 4-6 frames inside a shot;
- whip pans (a fast blurred pan within a shot, no cut);
- letterbox bars: none, black, lifted (luma about 30-33, a double-levels export), or black with
  subtitles burnt into the bottom bar;
- 23.976 or 24 fps.

Ground truth per reel: `cuts` (first frame of each new shot; after a flash between shots, the
first frame of the next shot), `dissolves` ((first, last) frame of each), `unusable` frames
(inside dissolves, fades, flashes, strobe-dark phases), the bars, and the trap frames (flash,
strobe and whip-pan spans) where a found cut is a false cut of that kind.
"""

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = (384, 216)


@dataclass
class Reel:
    frames: list
    fps: str
    cuts: list = field(default_factory=list)
    subtle: list = field(default_factory=list)  # the cuts to the same place re-framed and re-exposed
    dissolves: list = field(default_factory=list)  # (first, last) frames
    unusable: set = field(default_factory=set)
    traps: dict = field(default_factory=dict)  # kind -> set of frames where a cut is a false one
    bars: tuple = (0, 0, 0, 0)
    bar_kind: str = "none"


def plate(rng, size):
    """A larger-than-frame 'photograph' (float32 RGB 0..255) to move a camera over."""
    width, height = size
    spectrum_h, spectrum_w = height, width
    fy = np.fft.fftfreq(spectrum_h)[:, None]
    fx = np.fft.rfftfreq(spectrum_w)[None, :]
    radius = np.sqrt(fx ** 2 + fy ** 2)
    radius[0, 0] = 1.0
    channels = []
    base = rng.normal(size=(spectrum_h, fx.shape[1])) + 1j * rng.normal(size=(spectrum_h, fx.shape[1]))
    for c in range(3):
        tint = base * (0.85 + 0.3 * rng.random()) + 0.3 * (rng.normal(size=base.shape) + 1j * rng.normal(size=base.shape))
        field_ = np.fft.irfft2(tint / radius ** 1.05, s=(spectrum_h, spectrum_w))
        channels.append((field_ - field_.mean()) / (field_.std() + 1e-6))
    picture = np.stack(channels, -1) * rng.uniform(30, 55)
    picture += rng.uniform(70, 170, 3)
    sky = np.linspace(rng.uniform(-40, 40), rng.uniform(-40, 40), height)[:, None, None]
    picture += sky
    canvas = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 7))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.25) * height
        color = tuple(int(v) for v in rng.integers(20, 235, 3))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r * rng.uniform(0.5, 1.5)], fill=color)
        else:
            draw.rectangle([x - r, y - r * 2, x + r * 0.6, y + r], fill=color)
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.6)))
    picture = np.asarray(canvas, np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    vignette = 1 - 0.35 * (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2) * 2
    return picture * vignette[..., None]


class Camera:
    """Frames of a shot: a view of `plate` moving by a push or pan, with shake and grain."""

    def __init__(self, rng, plate_, size, exposure=1.0, offset=(0.0, 0.0), zoom=1.0):
        self.rng, self.plate, self.size = rng, plate_, size
        self.exposure = exposure
        self.start = np.array(offset) + rng.uniform(-0.05, 0.05, 2)
        self.move = rng.uniform(-0.004, 0.004, 2)
        self.zoom, self.zoom_step = zoom, rng.uniform(-0.002, 0.003)
        self.shake = rng.uniform(0, 1.5)
        self.grain = rng.uniform(2, 6)

    def frame(self, n, extra_shift=(0.0, 0.0), blur=0.0):
        width, height = self.size
        plate_h, plate_w = self.plate.shape[:2]
        zoom = max(1.0, self.zoom + self.zoom_step * n)
        crop_w, crop_h = plate_w / 1.35 / zoom, plate_h / 1.35 / zoom
        centre = np.array([0.5, 0.5]) + self.start + self.move * n + np.array(extra_shift)
        jitter = self.rng.normal(0, self.shake, 2)
        cx = np.clip(centre[0] * plate_w + jitter[0], crop_w / 2, plate_w - crop_w / 2)
        cy = np.clip(centre[1] * plate_h + jitter[1], crop_h / 2, plate_h - crop_h / 2)
        box = (cx - crop_w / 2, cy - crop_h / 2, cx + crop_w / 2, cy + crop_h / 2)
        image = Image.fromarray(np.clip(self.plate, 0, 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BILINEAR, box=box)
        if blur:
            image = image.filter(ImageFilter.BoxBlur(blur))
        picture = np.asarray(image, np.float32) * self.exposure
        picture += self.rng.normal(0, self.grain, picture.shape[:2])[..., None]
        return np.clip(picture, 0, 255).astype(np.uint8)


def _white(size, value=250):
    return np.full((size[1], size[0], 3), value, np.uint8)


def build_reel(seed, size=SIZE, shots=(8, 14)):
    """One reel of the set (see the module doc)."""
    rng = np.random.default_rng(seed)
    fps = "23.976" if rng.random() < 0.4 else "24"
    reel = Reel([], fps, traps={"flash": set(), "strobe": set(), "whip": set()})
    frames = reel.frames
    previous_plate, camera = None, None
    count = int(rng.integers(*shots))
    for number in range(count):
        length = int(rng.integers(30, 90))
        subtle = previous_plate is not None and rng.random() < 0.2
        if subtle:  # same place, re-framed and re-exposed a little: a subtle cut
            camera = Camera(rng, previous_plate, size, exposure=rng.uniform(0.8, 1.2),
                            offset=tuple(rng.uniform(-0.12, 0.12, 2)), zoom=rng.uniform(1.0, 1.3))
        else:
            previous_plate = plate(rng, (int(size[0] * 1.6), int(size[1] * 1.6)))
            camera = Camera(rng, previous_plate, size)
        shot = [camera.frame(n) for n in range(length)]
        event = rng.random() if number else 1.0
        start = len(frames)
        if frames:
            if event < 0.15:  # dissolve from the last frames of the reel into this shot
                span = int(rng.integers(8, 21))
                outgoing = frames[-span:]
                for k in range(span):
                    weight = (k + 1) / (span + 1)
                    outgoing[k] = (outgoing[k].astype(np.float32) * (1 - weight)
                                   + shot[k].astype(np.float32) * weight).astype(np.uint8)
                frames[-span:] = outgoing
                shot = shot[span:]
                reel.dissolves.append((start - span, start - 1))
                reel.unusable.update(range(start - span, start))
            elif event < 0.27:  # flash between the shots: the cut is hidden in it
                width = int(rng.integers(1, 4))
                frames.extend(_white(size) for _ in range(width))
                reel.unusable.update(range(start, start + width))
                reel.traps["flash"].update(range(start, start + width + 1))
                start += width
                reel.cuts.append(start)
            else:
                reel.cuts.append(start)
                if subtle:
                    reel.subtle.append(start)
        inside = rng.random()
        if inside < 0.2 and len(shot) > 30:  # flash inside the shot
            at, width = int(rng.integers(8, len(shot) - 10)), int(rng.integers(1, 4))
            for k in range(width):
                shot[at + k] = _white(size, int(rng.integers(230, 256)))
            reel.unusable.update(range(start + at, start + at + width))
            reel.traps["flash"].update(range(start + at, start + at + width + 1))
        elif inside < 0.32 and len(shot) > 40:  # strobe: phases of 4-6 frames, lit and dark
            at, phase = int(rng.integers(4, 10)), int(rng.integers(4, 7))
            end = min(len(shot) - 4, at + phase * int(rng.integers(4, 7)))
            for k in range(at, end):
                if (k - at) // phase % 2 == 0:
                    shot[k] = (shot[k].astype(np.float32) * 0.25).astype(np.uint8)
                    reel.unusable.add(start + k)
            reel.traps["strobe"].update(range(start + at, start + end + 1))
        elif inside < 0.44 and len(shot) > 30:  # whip pan inside the shot
            at, span = int(rng.integers(6, len(shot) - 12)), int(rng.integers(4, 8))
            direction = rng.choice([-1, 1])
            for k in range(span):
                shift = direction * 0.06 * (k + 1)
                shot[at + k] = camera.frame(at + k, (shift, 0.0), blur=6)
            for k in range(at + span, len(shot)):
                shot[k] = camera.frame(k, (direction * 0.06 * span, 0.0))
            reel.unusable.update(range(start + at, start + at + span))
            reel.traps["whip"].update(range(start + at, start + at + span + 1))
        elif inside < 0.52 and len(shot) > 40:  # fade through black, the shot goes on
            at = int(rng.integers(10, len(shot) - 24))
            for k in range(10):
                level = 1 - (k + 1) / 10 if k < 5 else (k - 4) / 6
                shot[at + k] = (shot[at + k].astype(np.float32) * max(0.0, level)).astype(np.uint8)
                if level < 0.6:
                    reel.unusable.add(start + at + k)
        frames.extend(shot)
    bars = rng.random()
    if bars < 0.3:
        top = int(rng.integers(10, 30)) // 2 * 2
        kind = rng.choice(["black", "lifted", "subtitles"])
        value = int(rng.integers(16, 21)) if kind == "lifted" else 0  # RGB 16-20: luma 30-33
        reel.bars, reel.bar_kind = (top, top, 0, 0), str(kind)
        font_rows = max(8, top // 2)
        for n, frame in enumerate(frames):
            frame[:top] = value
            frame[frame.shape[0] - top:] = value
            if kind == "subtitles" and (n // 48) % 3 != 2:  # subtitles two thirds of the time
                image = Image.fromarray(frame)
                draw = ImageDraw.Draw(image)
                y = frame.shape[0] - top + (top - font_rows) // 2
                draw.text((size[0] // 4, y), "I never said she stole my money", fill=(235, 235, 235))
                frames[n] = np.asarray(image).copy()
    return reel


def encode(path, reel, crf=18):
    import av
    from fractions import Fraction

    rate = Fraction(24000, 1001) if reel.fps == "23.976" else Fraction(24)
    height, width = reel.frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf)}
        for frame in reel.frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
