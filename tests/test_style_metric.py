"""The style metric (trainer/style_metric.py) on images whose statistics are known exactly."""

import numpy as np
import pytest
import torch

from lookdev.trainer import style_metric as sm


def flat(rgb, h=32, w=48):
    return np.broadcast_to(np.asarray(rgb, dtype=np.float64), (h, w, 3)).copy()


def checker(h=32, w=32):
    y, x = np.mgrid[0:h, 0:w]
    return np.repeat(((x + y) % 2).astype(np.float64)[..., None], 3, axis=-1)


def halves(h=32, w=32):
    image = np.zeros((h, w, 3))
    image[:, w // 2:] = 1.0
    return image


@pytest.mark.parametrize("image, field, expected", [
    (flat([0.5, 0.5, 0.5]), "chroma", 0.0),
    (flat([1.0, 0.0, 0.0]), "chroma", 1.0),
    (flat([1.0, 0.5, 0.5]), "chroma", 0.5),
    # near-black with a blue tint looks black: chroma 0.1 (its HSV saturation would be 0.5)
    (flat([0.1, 0.1, 0.2]), "chroma", 0.1),
    (flat([0.2, 0.2, 0.2]), "luminance", 0.2),
    (flat([1.0, 0.0, 0.0]), "luminance", 0.2126),
    (flat([0.3, 0.3, 0.3]), "contrast", 0.0),
    (halves(), "contrast", 0.5),
    (halves(), "luminance", 0.5),
    (flat([0.7, 0.7, 0.7]), "grain", 0.0),
    (checker(), "grain", 4 / 9),  # each pixel differs from its 3x3 mean by 4/9
    (flat([0.7, 0.7, 0.7]), "vignette", 0.0),
])
def test_scalar_statistics(image, field, expected):
    assert getattr(sm.style_stats(image), field) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("rgb, hue_bin", [([1, 0, 0], 0), ([0, 1, 0], 4), ([0, 0, 1], 8), ([1, 1, 0], 2)])
def test_hue_histogram_bins(rgb, hue_bin):
    hist = sm.style_stats(flat(rgb)).hue
    assert hist[hue_bin] == pytest.approx(1.0) and hist.sum() == pytest.approx(1.0)


def test_grey_image_has_no_hue_and_one_chroma_bin():
    stats = sm.style_stats(flat([0.4, 0.4, 0.4]))
    assert stats.hue.sum() == 0.0
    assert stats.chroma_hist[0] == 1.0 and stats.tone_hist.sum() == pytest.approx(1.0)


def test_vignette_is_positive_for_dark_corners_and_negative_for_bright_ones():
    h, w = 64, 64
    y, x = np.mgrid[0:h, 0:w]
    radius = np.hypot((y + 0.5) / h - 0.5, (x + 0.5) / w - 0.5) / np.hypot(0.5, 0.5)
    dark_corners = np.repeat((1 - radius)[..., None], 3, axis=-1)
    assert sm.style_stats(dark_corners).vignette > 0.5
    assert sm.style_stats(1 - dark_corners).vignette < -0.5


@pytest.mark.parametrize("frames, refs, expected", [
    ([flat([0.5, 0.5, 0.5])], [flat([0.5, 0.5, 0.5])], 0.0),
    # grey 0.5 vs pure red: chroma 1, its histogram 1 (half L1 of two one-bin histograms in
    # different bins), hue 0.5 (grey has none), luminance |0.5 - 0.2126|, tone histogram 1
    ([flat([0.5, 0.5, 0.5])], [flat([1.0, 0.0, 0.0])], 1.0 + 1.0 + 0.5 + (0.5 - 0.2126) + 1.0),
    # flat mid-grey vs half black / half white: luminance equal, contrast 2*0.5, tone histogram 1,
    # grain 4 * (4 of 32 columns at an edge, the blur wrapping round, each 1/3 from its blur)
    ([flat([0.5, 0.5, 0.5], 32, 32)], [halves()], 1.0 + 1.0 + 4 * (4 / 32) / 3),
])
def test_distance_on_known_sets(frames, refs, expected):
    assert sm.style_distance(frames, refs) == pytest.approx(expected, abs=1e-6)


def test_distance_is_symmetric_and_a_set_is_its_mean():
    red, grey = flat([1.0, 0.0, 0.0]), flat([0.5, 0.5, 0.5])
    assert sm.style_distance([red], [grey]) == pytest.approx(sm.style_distance([grey], [red]))
    mixed = sm.set_stats([red, grey])
    assert mixed.chroma == pytest.approx(0.5) and mixed.hue[0] == pytest.approx(0.5)


def test_accepts_comfy_image_batches_and_mixed_sizes():
    batch = torch.rand(3, 24, 40, 3, generator=torch.Generator().manual_seed(0))
    other = [np.random.default_rng(1).random((30, 20, 3))]
    assert sm.style_distance(batch, batch) == 0.0
    assert sm.style_distance(batch, other) > 0.0


@pytest.mark.parametrize("make_second, expected", [
    (lambda a: a, 1.0),
    (lambda a: 0.2 + 0.5 * a, 1.0),  # brightness and contrast change: same layout
    (lambda a: 1 - a, -1.0),  # negative
    (lambda a: a[:, ::-1].copy(), None),  # mirrored: checked below, lower
])
def test_layout_similarity_known_pairs(make_second, expected):
    rng = np.random.default_rng(3)
    coarse = rng.random((4, 6))
    first = np.repeat(np.kron(coarse, np.ones((16, 16)))[..., None], 3, axis=-1)
    value = sm.layout_similarity(first, make_second(first))
    if expected is None:
        assert value < 0.9
    else:
        assert value == pytest.approx(expected, abs=1e-9)


def test_layout_similarity_ignores_grain_and_colour_but_not_composition():
    rng = np.random.default_rng(4)
    sky_ground = np.zeros((64, 96, 3))
    sky_ground[:32] = [0.3, 0.5, 0.9]
    sky_ground[32:] = [0.4, 0.4, 0.4]
    grey_grainy = np.repeat(sm.luminance(sky_ground)[..., None], 3, axis=-1) + rng.normal(0, 0.05, (64, 96, 1))
    assert sm.layout_similarity(sky_ground, np.clip(grey_grainy, 0, 1)) > 0.95
    flipped = sky_ground[::-1].copy()
    assert sm.layout_similarity(sky_ground, flipped) < -0.9


@pytest.mark.parametrize("bad, message", [
    (np.zeros((8, 8)), "expected an image"),
    ([np.zeros((8, 8, 4))], "RGB images"),
    (np.zeros((2, 3, 8, 8, 3)), "batch"),
    ([], "no images"),
])
def test_bad_inputs_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        sm.set_stats(bad)


def test_layout_needs_frames_of_one_shape():
    with pytest.raises(ValueError, match="different shapes"):
        sm.layout_similarity(np.zeros((32, 64, 3)), np.zeros((64, 32, 3)))
    with pytest.raises(ValueError, match="pair each shot"):
        sm.mean_layout_similarity([np.zeros((8, 8, 3))] * 2, [np.zeros((8, 8, 3))])
