"""Aspect-ratio buckets (kohya-style): every image trains at a size close to the training area
with its own shape, instead of being squashed or cropped to a square.

Bucket sides are multiples of `step` (64), the area is at most resolution^2 and as close to it
as the step allows. Side limits follow kohya's defaults at 512 (min_bucket_reso 256,
max_bucket_reso 1024) scaled with the resolution: min side = resolution / 2, max side =
2 * resolution (kohya suggests 2048 at SDXL's 1024). Together with the area that bounds the
aspect ratio at 4:1 / 1:4; wider images are center-cropped to 4:1.
"""

import math
from dataclasses import dataclass

from PIL import Image

MIN_RESOLUTION = 128
MAX_RESOLUTION = 4096
DEFAULT_MAX_ASPECT = 4.0


@dataclass(frozen=True)
class Buckets:
    """The bucket sizes for one training resolution. `sizes` are (width, height), sorted."""

    resolution: int
    step: int
    sizes: tuple
    max_aspect: float

    @property
    def max_area(self):
        return self.resolution * self.resolution


def check_resolution(resolution, step=64, name="resolution"):
    """Return `resolution` if it is a usable training resolution, else raise a ValueError
    naming `name`: an integer multiple of `step` between MIN_RESOLUTION and MAX_RESOLUTION."""
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise ValueError(f"{name} must be a whole number of pixels such as 512, 768 or 1024, "
                         f"got {resolution!r}")
    if resolution % step or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"{name} must be a multiple of {step} between {MIN_RESOLUTION} and "
                         f"{MAX_RESOLUTION} (512, 768, 1024, ...), got {resolution}")
    return resolution


def make_buckets(resolution, step=64, min_side=None, max_side=None,
                 max_aspect=DEFAULT_MAX_ASPECT):
    """Buckets for `resolution` (kohya's make_bucket_resolutions, plus an aspect bound).

    min_side / max_side default to resolution/2 and 2*resolution (see the module docstring);
    max_aspect drops any bucket longer than that ratio.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0 or step % 8:
        raise ValueError(f"step must be a positive multiple of 8 pixels, got {step!r}")
    check_resolution(resolution, step)
    min_side = max(step, resolution // 2 // step * step) if min_side is None else min_side
    max_side = 2 * resolution if max_side is None else max_side
    for name, side in (("min_side", min_side), ("max_side", max_side)):
        if isinstance(side, bool) or not isinstance(side, int) or side <= 0 or side % step:
            raise ValueError(f"{name} must be a positive multiple of {step}, got {side!r}")
    if not min_side <= resolution <= max_side:
        raise ValueError(f"need min_side <= resolution <= max_side, got {min_side}, "
                         f"{resolution}, {max_side}")
    if not max_aspect >= 1.0:
        raise ValueError(f"max_aspect must be at least 1.0, got {max_aspect!r}")
    area = resolution * resolution
    sizes = {(resolution, resolution)}
    for width in range(min_side, max_side + 1, step):
        height = min(max_side, area // width // step * step)
        if height >= min_side and max(width, height) / min(width, height) <= max_aspect:
            sizes.update({(width, height), (height, width)})
    return Buckets(resolution, step, tuple(sorted(sizes)), float(max_aspect))


def choose_bucket(width, height, buckets, no_upscale=False):
    """The (width, height) bucket for an image of this size.

    Default: the bucket with the closest aspect ratio (compared as log ratios, so 2:1 and 1:2
    are equally far from 1:1), the larger one on a tie; the image is then scaled to cover it.
    no_upscale (kohya's bucket_no_upscale): a bucket from the image's own size, cropped to the
    aspect bound, scaled down to the training area if larger, and rounded down to the step,
    so the image is never enlarged.
    """
    for name, side in (("width", width), ("height", height)):
        if isinstance(side, bool) or not isinstance(side, int) or side <= 0:
            raise ValueError(f"image {name} must be a positive whole number, got {side!r}")
    if no_upscale:
        return _own_size_bucket(width, height, buckets)
    target = math.log(width / height)
    return min(buckets.sizes,
               key=lambda size: (abs(math.log(size[0] / size[1]) - target), -size[0] * size[1]))


def _own_size_bucket(width, height, buckets):
    step, limit = buckets.step, buckets.max_aspect
    if min(width, height) < step:
        raise ValueError(f"an image of {width}x{height} is smaller than one bucket step "
                         f"({step} px); no_upscale cannot fit it")
    eff_w, eff_h = float(min(width, height * limit)), float(min(height, width * limit))
    if eff_w * eff_h > buckets.max_area:
        shrink = math.sqrt(buckets.max_area / (eff_w * eff_h))
        eff_w, eff_h = eff_w * shrink, eff_h * shrink
    return (max(step, int(eff_w) // step * step), max(step, int(eff_h) // step * step))


def fit_to_bucket(img, bucket):
    """Resize `img` (PIL) to cover `bucket` keeping its aspect ratio (LANCZOS), then center-crop
    to exactly bucket = (width, height)."""
    bucket_w, bucket_h = bucket
    width, height = img.size
    scale = max(bucket_w / width, bucket_h / height)
    size = (max(bucket_w, round(width * scale)), max(bucket_h, round(height * scale)))
    if size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    left, top = (size[0] - bucket_w) // 2, (size[1] - bucket_h) // 2
    return img.crop((left, top, left + bucket_w, top + bucket_h))
