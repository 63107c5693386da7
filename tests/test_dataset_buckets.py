import pytest
from PIL import Image

from lookdev.trainer.dataset.buckets import (check_resolution, choose_bucket, fit_to_bucket,
                                             make_buckets)


@pytest.mark.parametrize("resolution", [128, 256, 512, 640, 768, 1024, 1536])
def test_buckets_are_step_multiples_filling_the_area_within_4_to_1(resolution):
    buckets = make_buckets(resolution)
    area = resolution * resolution
    assert (resolution, resolution) in buckets.sizes
    assert list(buckets.sizes) == sorted(set(buckets.sizes))
    for width, height in buckets.sizes:
        assert width % 64 == 0 and height % 64 == 0
        assert width * height <= area
        # one more step on either side would exceed the area (or the side limit)
        assert width * (height + 64) > area or (width + 64) * height > area \
            or max(width, height) == 2 * resolution
        assert max(width, height) / min(width, height) <= 4.0
        assert (height, width) in buckets.sizes


@pytest.mark.parametrize("resolution", [512, 768, 1024, 1536])
def test_buckets_cover_at_least_80_percent_of_the_area(resolution):
    assert all(w * h >= 0.8 * resolution ** 2 for w, h in make_buckets(resolution).sizes)


@pytest.mark.parametrize("resolution, expected", [
    (512, {(512, 512), (448, 576), (384, 640), (320, 768), (256, 1024), (1024, 256)}),
    (1024, {(1024, 1024), (896, 1152), (832, 1216), (768, 1344), (640, 1536), (1536, 640),
            (512, 2048), (2048, 512)}),
])
def test_familiar_buckets_are_present(resolution, expected):
    assert expected <= set(make_buckets(resolution).sizes)


def test_side_limits_follow_kohya_defaults_scaled():
    sizes = make_buckets(512).sizes  # kohya's defaults at 512: min 256, max 1024
    assert min(min(size) for size in sizes) == 256
    assert max(max(size) for size in sizes) == 1024
    assert max(max(size) for size in make_buckets(1024).sizes) == 2048


@pytest.mark.parametrize("bad", [500, 0, -512, 64, 8192, 1000, "1024", 1024.0, True, None])
def test_bad_resolution_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match="resolution"):
        make_buckets(bad)
    with pytest.raises(ValueError, match="train_size"):
        check_resolution(bad, name="train_size")


@pytest.mark.parametrize("kwargs, words", [
    ({"step": 60}, "step"), ({"min_side": 100}, "min_side"), ({"max_side": 0}, "max_side"),
    ({"min_side": 1088}, "min_side <= resolution"), ({"max_aspect": 0.5}, "max_aspect"),
])
def test_bad_bucket_options_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        make_buckets(1024, **kwargs)


@pytest.mark.parametrize("size, expected", [
    ((1000, 1000), (1024, 1024)),
    ((1500, 1000), (1216, 832)),
    ((1000, 1500), (832, 1216)),
    ((12000, 8000), (1216, 832)),
    ((1920, 1080), (1344, 768)),
    ((4000, 500), (2048, 512)),     # beyond 4:1: the widest bucket, then cropped
    ((1216, 832), (1216, 832)),
    ((100, 100), (1024, 1024)),     # small images are enlarged unless no_upscale
])
def test_choose_bucket_by_closest_aspect(size, expected):
    assert choose_bucket(*size, make_buckets(1024)) == expected


@pytest.mark.parametrize("size, expected", [
    ((300, 200), (256, 192)),
    ((640, 640), (640, 640)),
    ((700, 100), (384, 64)),        # cropped to 4:1 first
    ((2000, 2000), (1024, 1024)),   # larger than the area: scaled down, like the default
    ((3000, 2000), (1216, 832)),
    ((5000, 500), (1984, 448)),
])
def test_no_upscale_uses_the_image_own_size(size, expected):
    assert choose_bucket(*size, make_buckets(1024), no_upscale=True) == expected


@pytest.mark.parametrize("size", [(64, 64), (65, 999), (777, 333), (1023, 1025), (4000, 3000)])
def test_no_upscale_never_enlarges(size):
    width, height = choose_bucket(*size, make_buckets(1024), no_upscale=True)
    assert width <= size[0] and height <= size[1] and width * height <= 1024 * 1024
    assert width % 64 == 0 and height % 64 == 0


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (1.5, 10)])
def test_choose_bucket_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="width|height"):
        choose_bucket(*size, make_buckets(512))


def test_no_upscale_rejects_images_below_one_step():
    with pytest.raises(ValueError, match="40x500"):
        choose_bucket(40, 500, make_buckets(512), no_upscale=True)


@pytest.mark.parametrize("size, bucket", [((300, 100), (64, 64)), ((100, 300), (64, 128)),
                                          ((50, 70), (128, 192)), ((128, 64), (128, 64))])
def test_fit_to_bucket_gives_exactly_the_bucket(size, bucket):
    assert fit_to_bucket(Image.new("RGB", size), bucket).size == bucket


def test_fit_to_bucket_crops_the_center_without_squashing():
    stripes = Image.new("RGB", (300, 100), (255, 0, 0))
    stripes.paste((0, 255, 0), (100, 0, 200, 100))
    stripes.paste((0, 0, 255), (200, 0, 300, 100))
    out = fit_to_bucket(stripes, (64, 64))
    for xy in ((0, 0), (63, 63), (32, 32)):
        r, g, b = out.getpixel(xy)
        assert g > 200 and r < 60 and b < 60
