"""The loss-curve image the trainer outputs: raw loss, smoothed loss and learning rate."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..pixels import image_tensor

BACKGROUND = (24, 24, 28)
GRID = (60, 60, 68)
TEXT = (220, 220, 225)
RAW = (120, 150, 200)
SMOOTH = (255, 190, 60)
LR = (140, 210, 140)


def smoothed(values, beta=0.9):
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta ** i))
    return out


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def loss_curve_image(losses, lrs, title="", width=768, height=384):
    """A chart as a ComfyUI IMAGE tensor [1, height, width, 3]."""
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font, small = _font(16), _font(12)
    left, right, top, bottom = 64, width - 56, 36, height - 36
    draw.text((left, 8), title or "training loss", fill=TEXT, font=font)
    draw.rectangle([left, top, right, bottom], outline=GRID)
    if not losses:
        draw.text((left + 10, top + 10), "no steps yet", fill=TEXT, font=small)
        return _to_tensor(img)

    finite = [v for v in losses if np.isfinite(v)] or [0.0]
    lo, hi = min(finite), max(finite)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    steps = len(losses)

    def xy(i, value, vmin, vmax):
        x = left + (right - left) * (i / max(1, steps - 1))
        y = bottom - (bottom - top) * ((value - vmin) / (vmax - vmin))
        return x, y

    for k in range(5):
        value = lo + (hi - lo) * k / 4
        _, y = xy(0, value, lo, hi)
        draw.line([left, y, right, y], fill=GRID)
        draw.text((4, y - 7), f"{value:.3g}", fill=TEXT, font=small)
    draw.text((left, bottom + 6), "step 1", fill=TEXT, font=small)
    draw.text((right - 60, bottom + 6), f"step {steps}", fill=TEXT, font=small)

    def polyline(values, vmin, vmax, color, width_px):
        points = [xy(i, v, vmin, vmax) for i, v in enumerate(values) if np.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=color, width=width_px)
        elif points:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)

    polyline(losses, lo, hi, RAW, 1)
    polyline(smoothed(losses), lo, hi, SMOOTH, 3)
    if lrs and max(lrs) > 0:
        polyline(lrs, 0.0, max(lrs) * 1.05, LR, 1)
        draw.text((right + 4, top), f"lr\n{max(lrs):.1e}", fill=LR, font=small)
    legend_x = right - 250
    for offset, (label, color) in enumerate((("loss", RAW), ("smoothed", SMOOTH), ("learning rate", LR))):
        draw.line([legend_x + offset * 85, 16, legend_x + offset * 85 + 16, 16], fill=color, width=3)
        draw.text((legend_x + offset * 85 + 20, 9), label, fill=TEXT, font=small)
    return image_tensor(img)
