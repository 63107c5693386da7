"""Tiny image files for the dataset tests, generated on the fly."""

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def noise_image(size, seed=0, mode="RGB"):
    """A random image of `size` (width, height): detail everywhere, so crops are comparable."""
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels)


def write_image(path, size=(96, 80), seed=0, fmt=None, mode="RGB", **save_args):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(size, seed, mode).save(path, format=fmt, **save_args)
    return path


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_bytes(width, height, bit_depth, color_type, rows=None):
    """A PNG written by hand (PIL cannot write 16-bit RGB). `rows`: raw bytes per scanline;
    None writes no image data (only the header matters to the test)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = b"" if rows is None else zlib.compress(b"".join(b"\x00" + row for row in rows))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
            + _chunk(b"IEND", b""))


def rgb16_png(path, width, height, rgb16):
    """A 16-bit RGB PNG filled with one colour given as three 0..65535 values."""
    row = struct.pack(">HHH", *rgb16) * width
    Path(path).write_bytes(png_bytes(width, height, 16, 2, [row] * height))
    return Path(path)


def flat_png(path, width, height, bit_depth=8, color_type=2, level=1):
    """A large one-colour PNG written a row at a time, so making a 12000x8000 file costs neither
    memory nor much time (the image data compresses to almost nothing). color_type as in the PNG
    spec: 0 grey, 2 RGB, 6 RGBA."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\x00" + b"\x40" * (width * channels * bit_depth // 8)
    compressor = zlib.compressobj(level)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
                           + _chunk(b"IEND", b""))
    return Path(path)
