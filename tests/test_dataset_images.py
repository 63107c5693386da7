import io
import warnings

import numpy as np
import pytest
from PIL import Image

from dataset_files import png_bytes, rgb16_png, write_image
from lookdev.trainer.dataset.images import MAX_PIXELS, MIN_SIDE, ImageSkip, load_image


def pixel(img, xy=(0, 0)):
    return img.convert("RGB").getpixel(xy)


def test_plain_rgb_png_loads_as_rgb(tmp_path):
    img = load_image(write_image(tmp_path / "a.png", (96, 80)))
    assert (img.mode, img.size) == ("RGB", (96, 80))


def test_png_named_jpg_loads(tmp_path):
    path = write_image(tmp_path / "really_a_png.jpg", (70, 90), fmt="PNG")
    assert load_image(path).size == (70, 90)


@pytest.mark.parametrize("orientation, expected_size", [(1, (100, 64)), (3, (100, 64)),
                                                        (6, (64, 100)), (8, (64, 100))])
def test_exif_orientation_is_applied(tmp_path, orientation, expected_size):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (100, 64), (200, 30, 30)).save(path, exif=exif.tobytes())
    assert load_image(path).size == expected_size


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    rgba.save(tmp_path / "cut.png")
    img = load_image(tmp_path / "cut.png")
    assert pixel(img, (0, 0)) == (255, 255, 255)
    assert pixel(img, (1, 0)) == (0, 0, 255)
    assert all(120 <= value <= 135 for value in pixel(img, (2, 0)))


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    Image.new("LA", (64, 64), (0, 0)).save(tmp_path / "la.png")
    assert pixel(load_image(tmp_path / "la.png")) == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    img = Image.new("P", (64, 64), 0)
    img.putpalette([0, 255, 0, 10, 20, 30] + [0] * 762)
    img.putpixel((5, 5), 1)
    img.save(tmp_path / "pal.png", transparency=0)
    out = load_image(tmp_path / "pal.png")
    assert pixel(out, (0, 0)) == (255, 255, 255)
    assert pixel(out, (5, 5)) == (10, 20, 30)


def test_palette_without_transparency_keeps_colours(tmp_path):
    img = Image.new("P", (64, 64), 1)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    img.save(tmp_path / "pal.gif")
    assert pixel(load_image(tmp_path / "pal.gif")) == (10, 200, 30)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    Image.new("L", (64, 64), 77).save(tmp_path / "grey.png")
    assert pixel(load_image(tmp_path / "grey.png")) == (77, 77, 77)


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    row = np.asarray(load_image(tmp_path / "deep.png"))[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert 120 <= row[128] <= 135
    assert len(set(row.tolist())) > 200


def test_16bit_rgb_png_keeps_its_colour(tmp_path):
    path = rgb16_png(tmp_path / "deep_rgb.png", 64, 64, (65535, 32896, 0))
    r, g, b = pixel(load_image(path))
    assert (r, b) == (255, 0) and 126 <= g <= 130


@pytest.mark.parametrize("mode, values, expected", [
    ("I", (0, 65535), (0, 255)),        # 32-bit int holding 16-bit data
    ("I", (0, 200), (0, 200)),          # 8-bit data in an int image stays as is
    ("F", (0.0, 1.0), (0, 255)),        # float 0..1
    ("F", (-5.0, 5.0), (0, 255)),       # other ranges are stretched
])
def test_high_depth_tiffs_are_scaled(tmp_path, mode, values, expected):
    dtype = np.int32 if mode == "I" else np.float32
    data = np.full((64, 64), values[0], dtype)
    data[:, 32:] = values[1]
    Image.fromarray(data, mode).save(tmp_path / "deep.tif")
    row = np.asarray(load_image(tmp_path / "deep.tif"))[0, :, 0]
    assert (row[0], row[-1]) == expected


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "print.jpg", quality=95)
    r, g, b = pixel(load_image(tmp_path / "print.jpg"))
    assert r > 230 and g < 30 and b < 30


@pytest.mark.parametrize("fmt, suffix", [("GIF", "gif"), ("WEBP", "webp")])
def test_animation_uses_first_frame_with_a_note(tmp_path, fmt, suffix):
    frames = [Image.new("RGB", (64, 64), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / f"anim.{suffix}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100,
                   lossless=True)
    notes = []
    r, g, b = pixel(load_image(path, notes))
    assert r > 240 and b < 20
    assert notes == ["animated (2 frames): only the first frame is used"]


def jpeg_bytes(size=(128, 128)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, content, kind, words", [
    ("empty.png", b"", "corrupt", "empty file (0 bytes)"),
    ("notes.png", b"shot list: alley, rain, neon\n", "unsupported type",
     "a text file, not an image"),
    ("script.jpg", "INT. CAFÉ – NIGHT\r\n\tRain.".encode("utf-8"), "unsupported type",
     "a text file, not an image"),
    ("head.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt", "corrupt PNG file"),
    ("head.jpg", b"\xff\xd8\xff\x00" + b"\x00" * 40, "corrupt", "corrupt JPEG file"),
    ("head.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "corrupt",
     "corrupt or truncated"),
    ("sound.webp", b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 20, "unsupported type",
     "not a recognised image format"),
    ("noise.jpg", bytes(range(256)) * 8, "unsupported type", "not a recognised image format"),
    ("cut.jpg", jpeg_bytes()[:400], "corrupt", "corrupt or truncated"),
    ("bad.png", png_bytes(64, 64, 8, 2, [b"\x00" * 10] * 64), "corrupt",
     "corrupt or truncated"),
])
def test_unusable_files_raise_image_skip(tmp_path, name, content, kind, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageSkip) as caught:
        load_image(path)
    assert caught.value.kind == kind
    assert words in caught.value.reason


@pytest.mark.parametrize("size", [(1, 1), (63, 500), (500, 63)])
def test_tiny_images_are_too_small(tmp_path, size):
    Image.new("RGB", size).save(tmp_path / "dot.png")
    with pytest.raises(ImageSkip) as caught:
        load_image(tmp_path / "dot.png")
    assert caught.value.kind == "too small"
    assert f"{size[0]}x{size[1]}" in caught.value.reason and f"{MIN_SIDE} px" in caught.value.reason


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(ImageSkip) as caught:
        load_image(tmp_path / "gone.png")
    assert caught.value.kind == "unreadable"


def test_huge_jpeg_loads_reduced_without_bomb_warning(tmp_path):
    path = tmp_path / "scan.jpg"
    Image.new("L", (12000, 8000), 128).save(path, quality=50)
    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = load_image(path, shrink_to=1024)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == limit
    assert img.mode == "RGB" and min(img.size) >= 1024 and img.size[0] * 2 == img.size[1] * 3
    assert img.size[0] < 12000


def test_large_png_is_reduced_by_whole_factors(tmp_path):
    path = write_image(tmp_path / "big.png", (1024, 512))
    assert load_image(path, shrink_to=128).size == (256, 128)
    assert load_image(path, shrink_to=300).size == (1024, 512)
    assert load_image(path).size == (1024, 512)


def test_reduced_16bit_grey_keeps_its_scale(tmp_path):
    # Dark 16-bit data (all values under 256 * 257) must not be taken for 8-bit once widened.
    data = np.full((512, 1024), 100 * 257, np.uint16)
    data[:, 512:] = 200 * 257
    Image.fromarray(data).save(tmp_path / "dark.png")
    img = load_image(tmp_path / "dark.png", shrink_to=128)
    assert img.size == (256, 128)
    assert pixel(img) == (100, 100, 100) and pixel(img, (255, 0)) == (200, 200, 200)


def test_reduced_alpha_is_composited_without_colour_bleed(tmp_path):
    rgba = np.zeros((512, 1024, 4), np.uint8)
    rgba[:, :, 0] = 255  # red everywhere, but fully transparent on the left
    rgba[:, 512:, 3] = 255
    rgba[:, 510:514, :] = (0, 0, 255, 128)  # a half-transparent blue seam
    Image.fromarray(rgba, "RGBA").save(tmp_path / "matte.png")
    img = load_image(tmp_path / "matte.png", shrink_to=128)
    assert img.size == (256, 128)
    assert pixel(img) == (255, 255, 255) and pixel(img, (255, 0)) == (255, 0, 0)
    r, g, b = pixel(img, (127, 0))  # the seam: blue at half opacity over white, and white
    assert r == g and 180 < r < 255 and b == 255


@pytest.mark.parametrize("side, words", [
    (13000, "too large (13000x13000): LookDev reads images up to 150 megapixels"),
    (20000, "too large: PIL refuses it as a possible decompression bomb"),  # PIL's own limit
])
def test_beyond_the_pixel_cap_is_refused_before_decoding(tmp_path, side, words):
    assert side * side > MAX_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(side, side, 8, 2))
    with pytest.raises(ImageSkip) as caught:
        load_image(path)
    assert caught.value.kind == "too large"
    assert caught.value.reason.startswith(words)


def test_unreadable_file_is_not_called_corrupt(tmp_path, monkeypatch):
    path = write_image(tmp_path / "locked.png")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(ImageSkip) as caught:
        load_image(path)
    assert (caught.value.kind, caught.value.reason) == (
        "unreadable", "cannot read the file: Permission denied")
