"""Load one reference image as plain 8-bit RGB, whatever the file holds, or say why it cannot.

Every odd case a filmmaker's folder contains is turned into an RGB picture that looks like what
an image viewer shows: EXIF rotation applied, transparency over white, 16-bit and float images
scaled (not clipped), CMYK and palettes converted, the first frame of an animation. Files that are
not usable raise `ImageSkip` with a reason a person can act on.

PIL's global settings (MAX_IMAGE_PIXELS, LOAD_TRUNCATED_IMAGES) are never changed: other nodes
in the same ComfyUI process rely on them.
"""

import codecs
import math
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 64
"""Images with a side shorter than this are skipped: too little detail to teach a style."""

MAX_PIXELS = 150_000_000
"""Images above this many pixels (e.g. 15000 x 10000) are refused before decoding, to bound
memory. PIL warns above ~89 MP; LookDev loads up to this cap anyway, reducing as it decodes."""

_BACKGROUND = (255, 255, 255)
_REDUCE_EARLY = ("RGB", "L", "CMYK", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_SIGNATURES = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"),
               (b"BM", "BMP"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"))
# Errors PIL raises for files it cannot parse or decode (it uses SyntaxError for broken chunks).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


class ImageSkip(Exception):
    """An image that cannot be used. `reason` is a plain sentence; `kind` a short category
    used to summarise many skips ("corrupt", "too small", "too large", "unsupported type", ...)."""

    def __init__(self, reason, kind="corrupt"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def load_image(path, notes=None, shrink_to=None):
    """Open `path` and return an 8-bit RGB PIL image, or raise ImageSkip.

    notes: optional list; plain remarks that are not failures (first frame of an animation
    used, unreadable EXIF, ...) are appended to it.
    shrink_to: optional short-side length in pixels; huge images may then be decoded at a
    reduced scale (JPEG draft, integer reduce) as long as their shorter side stays >= it, which
    keeps memory low. Pass the training resolution.
    """
    path = Path(path)
    notes = [] if notes is None else notes
    try:
        if path.stat().st_size == 0:
            raise ImageSkip("empty file (0 bytes)", "corrupt")
    except OSError as exc:
        raise ImageSkip(f"cannot read the file: {exc.strerror or exc}", "unreadable") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                return _decode(img, notes, shrink_to)
        except Image.DecompressionBombError as exc:
            raise ImageSkip(f"too large: PIL refuses it as a possible decompression bomb "
                            f"({exc}); downsize it first", "too large") from exc
        except UnidentifiedImageError as exc:
            raise _unidentified(path) from exc
        except (PermissionError, FileNotFoundError) as exc:
            raise ImageSkip(f"cannot read the file: {exc.strerror}", "unreadable") from exc
        except _DECODE_ERRORS as exc:
            raise ImageSkip(f"corrupt or truncated image data ({exc})", "corrupt") from exc


def _decode(img, notes, shrink_to):
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise _too_large(width, height)
    if min(width, height) < MIN_SIDE:
        raise ImageSkip(
            f"too small: {width}x{height} px; LookDev needs at least {MIN_SIDE} px on each "
            "side", "too small")
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        img.seek(0)
        notes.append(f"animated ({frames} frames): only the first frame is used")
    if shrink_to and img.format == "JPEG":
        img.draft(img.mode, _draft_size(img.size, shrink_to))
    img.load()
    _upright(img, notes)
    # Reduce before converting: a huge image then has one full-size copy (the decoded one), not
    # one per conversion step. PIL cannot reduce 16-bit grey, so it is widened to 32-bit first
    # (its scale remembered); alpha is reduced premultiplied, so transparent pixels' colours
    # cannot bleed in.
    sixteen_bit = img.mode.startswith("I;16")
    if sixteen_bit:
        img = img.convert("I")
    if _has_alpha(img) and _reduce_factor(img, shrink_to) >= 2:
        premultiplied = img.convert("RGBa") if img.mode == "RGBA" else img.convert("RGBA").convert("RGBa")
        img = _reduce(premultiplied, shrink_to).convert("RGBA")
    if img.mode in _REDUCE_EARLY:
        img = _reduce(img, shrink_to)
    return _reduce(_to_rgb(img, notes, sixteen_bit), shrink_to)


def _unidentified(path):
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        head = b""  # vanished or unreadable since opening: the generic reason still holds
    if _looks_like_text(head):
        return ImageSkip("a text file, not an image (whatever the extension says)",
                         "unsupported type")
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return ImageSkip(f"corrupt {name} file: its header is damaged", "corrupt")
    return ImageSkip("not a recognised image format (the contents are not PNG, JPEG, WebP, "
                     "BMP, TIFF or GIF, whatever the extension says)", "unsupported type")


def _looks_like_text(head):
    try:  # incremental: the 512-byte cut may split a character
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return bool(text) and all(char.isprintable() or char in "\r\n\t" for char in text)


def _too_large(width, height):
    return ImageSkip(f"too large ({width}x{height}): LookDev reads images up to "
                     f"{MAX_PIXELS // 1_000_000} megapixels; downsize it first", "too large")


def _draft_size(size, shrink_to):
    scale = shrink_to / min(size)
    return (math.ceil(size[0] * scale), math.ceil(size[1] * scale))


def _upright(img, notes):
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except (SyntaxError, ValueError, TypeError, struct.error, OSError) as exc:
        notes.append(f"EXIF orientation unreadable ({exc}); used the image as stored")


def _to_rgb(img, notes, sixteen_bit=False):
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        img = _high_depth_to_l(img, notes, sixteen_bit)
        mode = img.mode
    if _has_alpha(img):
        return _over_white(img.convert("RGBA"))
    if mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise ImageSkip(f"unsupported colour mode {mode}", "unsupported type") from exc


def _over_white(rgba):
    background = Image.new("RGB", rgba.size, _BACKGROUND)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _high_depth_to_l(img, notes, sixteen_bit=False):
    """16/32-bit integer and float grey images: scale to 0..255 instead of letting PIL clip.
    `sixteen_bit`: the image was 16-bit before being widened to mode I."""
    values = np.asarray(img).astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if sixteen_bit or img.mode.startswith("I;16"):
        scaled = values / 257.0
    elif img.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    elif low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0
    else:
        notes.append(f"{img.mode} image with values {low:g}..{high:g}: stretched to 0..255")
        scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _has_alpha(img):
    return img.mode in _ALPHA_MODES or "transparency" in img.info


def _reduce_factor(img, shrink_to):
    return min(img.size) // shrink_to if shrink_to else 1


def _reduce(img, shrink_to):
    factor = _reduce_factor(img, shrink_to)
    return img.reduce(factor) if factor >= 2 else img
