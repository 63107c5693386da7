"""How far a set of frames is from a style, on image statistics a person can read; and whether two
frames of one shot still share their layout. numpy only; images are RGB in 0..1, [H, W, 3] arrays
or tensors, or [B, H, W, 3] batches (ComfyUI's IMAGE layout).

`style_stats` describes one image by:

- colour: mean chroma (the brightest minus the darkest of R, G, B: HSV's saturation times its
  value), a chroma histogram, and a hue histogram weighted by chroma (a grey image has an empty
  hue histogram). Chroma rather than HSV saturation because saturation divides by the brightest
  channel: a near-black pixel with a faint tint, which looks black, would count as fully
  saturated, and a night scene would read as vivid colour;
- tone: mean luminance (Rec. 709), contrast (its standard deviation) and a luminance histogram;
- vignetting: mean luminance of the centre (radius < 0.4 of the half-diagonal) minus that of the
  rim (radius > 0.8): positive for darkened corners;
- grain: high-frequency energy, the mean absolute difference between the luminance and its
  3x3 box blur.

A set is described by the mean of its images' statistics. `style_distance` is the sum of seven
components, each scaled to about 0..1 (see COMPONENTS); 0 means the same statistics.

`layout_similarity` is the Pearson correlation of two frames' luminance after both are reduced to
16 px on the short side: 1 for the same picture under any brightness/contrast change, about 0
for unrelated pictures, -1 for a negative. Grain and colour do not enter; the shot's composition
(where the light and dark masses are) does.
"""

from dataclasses import dataclass

import numpy as np

HUE_BINS = 12
CHROMA_BINS = 8
LUM_BINS = 16
LAYOUT_SIDE = 16
# component -> (what it compares, scale); the distance is sum(scale * difference)
COMPONENTS = {
    "chroma": ("mean chroma, absolute difference", 1.0),
    "chroma_hist": ("chroma histogram, half L1", 0.5),
    "hue": ("chroma-weighted hue histogram, half L1", 0.5),
    "luminance": ("mean luminance, absolute difference", 1.0),
    "contrast": ("luminance standard deviation, absolute difference (max 0.5)", 2.0),
    "tone_hist": ("luminance histogram, half L1", 0.5),
    "vignette": ("centre minus rim luminance, absolute difference", 1.0),
    "grain": ("high-frequency energy, absolute difference", 4.0),
}


@dataclass(frozen=True)
class StyleStats:
    chroma: float
    chroma_hist: np.ndarray
    hue: np.ndarray
    luminance: float
    contrast: float
    tone_hist: np.ndarray
    vignette: float
    grain: float


def _as_images(images):
    """A list of float [H, W, 3] arrays from an image, a batch, or a list of either."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().float().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = [images]
        elif images.ndim == 4:
            images = list(images)
        else:
            raise ValueError(f"expected an image [H, W, 3] or a batch [B, H, W, 3], got shape {images.shape}")
    out = []
    for image in images:
        if hasattr(image, "detach"):
            image = image.detach().cpu().float().numpy()
        image = np.asarray(image, dtype=np.float64)
        if image.ndim == 4 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"expected RGB images [H, W, 3] in 0..1, got shape {image.shape}")
        out.append(np.clip(image, 0.0, 1.0))
    if not out:
        raise ValueError("no images given")
    return out


def _single(image):
    images = _as_images(image)
    if len(images) != 1:
        raise ValueError(f"expected one image, got {len(images)}")
    return images[0]


def luminance(image):
    return image[..., 0] * 0.2126 + image[..., 1] * 0.7152 + image[..., 2] * 0.0722


def _hue_chroma(image):
    high = image.max(axis=-1)
    low = image.min(axis=-1)
    delta = high - low
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    safe = np.where(delta > 0, delta, 1)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.where(delta > 0, hue / 6.0, 0.0) % 1.0, delta


def _box_blur3(channel):
    padded = np.pad(channel, 1, mode="wrap")
    h, w = channel.shape
    return sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0


def style_stats(image):
    """StyleStats of one RGB image [H, W, 3] in 0..1."""
    image = _single(image)
    hue, chroma = _hue_chroma(image)
    lum = luminance(image)
    pixels = lum.size
    hue_hist = np.bincount(np.minimum((hue * HUE_BINS).astype(int), HUE_BINS - 1).ravel(),
                           weights=chroma.ravel(), minlength=HUE_BINS) / pixels
    chroma_hist = np.bincount(np.minimum((chroma * CHROMA_BINS).astype(int), CHROMA_BINS - 1).ravel(),
                              minlength=CHROMA_BINS) / pixels
    lum_hist = np.bincount(np.minimum((lum * LUM_BINS).astype(int), LUM_BINS - 1).ravel(),
                           minlength=LUM_BINS) / pixels
    h, w = lum.shape
    y, x = np.mgrid[0:h, 0:w]
    radius = np.hypot((y + 0.5) / h - 0.5, (x + 0.5) / w - 0.5) / np.hypot(0.5, 0.5)
    centre, rim = lum[radius < 0.4], lum[radius > 0.8]
    vignette = float(centre.mean() - rim.mean()) if centre.size and rim.size else 0.0
    grain = float(np.abs(lum - _box_blur3(lum)).mean())
    return StyleStats(float(chroma.mean()), chroma_hist, hue_hist, float(lum.mean()), float(lum.std()), lum_hist,
                      vignette, grain)


def set_stats(images):
    """The mean StyleStats of a set of images."""
    stats = [style_stats(image) for image in _as_images(images)]
    return StyleStats(*(np.mean([getattr(s, name) for s in stats], axis=0)
                        for name in StyleStats.__dataclass_fields__))


def _difference(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def style_components(frames, references):
    """{component: scaled difference} between two image sets (or StyleStats)."""
    a = frames if isinstance(frames, StyleStats) else set_stats(frames)
    b = references if isinstance(references, StyleStats) else set_stats(references)
    return {name: scale * _difference(getattr(a, name), getattr(b, name))
            for name, (_, scale) in COMPONENTS.items()}


def style_distance(frames, references):
    """How far `frames` are from `references` in style: the sum of style_components; 0 is equal."""
    return sum(style_components(frames, references).values())


def _reduce(lum, side):
    h, w = lum.shape
    scale = side / min(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum((np.arange(th + 1) * h / th).astype(int), h)
    cols = np.minimum((np.arange(tw + 1) * w / tw).astype(int), w)
    return np.array([[lum[rows[i]:max(rows[i + 1], rows[i] + 1), cols[j]:max(cols[j + 1], cols[j] + 1)].mean()
                      for j in range(tw)] for i in range(th)])


def layout_similarity(first, second):
    """Correlation (-1..1) of two frames' coarse luminance; frames of different sizes are both
    reduced to LAYOUT_SIDE px on the short side (their aspect ratios must match)."""
    a, b = _single(first), _single(second)
    ra, rb = _reduce(luminance(a), LAYOUT_SIDE), _reduce(luminance(b), LAYOUT_SIDE)
    if ra.shape != rb.shape:
        raise ValueError(f"frames of different shapes {a.shape[:2]} and {b.shape[:2]} are not two frames of one shot")
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    if norm < 1e-12:
        return 1.0 if np.allclose(ra, rb) else 0.0
    return float((ra * rb).sum() / norm)


def mean_layout_similarity(firsts, seconds):
    """Mean layout_similarity over pairs of frames (same shot, same order)."""
    firsts, seconds = _as_images(firsts), _as_images(seconds)
    if len(firsts) != len(seconds):
        raise ValueError(f"{len(firsts)} frames against {len(seconds)}: pair each shot's frames")
    return float(np.mean([layout_similarity(a, b) for a, b in zip(firsts, seconds)]))


def validation_style_distance(renders, samples):
    """Style distance of a training run's validation renders (IMAGE tensors) to its dataset's
    images (objects with an `.image` [H, W, 3]); None when nothing was rendered."""
    if not renders or not samples:
        return None
    return style_distance(list(renders), [sample.image for sample in samples])
