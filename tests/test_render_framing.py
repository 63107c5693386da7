"""Aspect presets, frame sizes and seed policies."""

import math

import pytest

from lookdev.trainer.render.framing import (
    ASPECTS, MAX_SEED, SEED_POLICIES, frame_size, normalize_aspect, seed_for,
)
from lookdev.trainer.render.shots import Shot


@pytest.mark.parametrize("spelling, name", [
    ("1.33", "1.33"), ("4:3", "1.33"), ("1.33:1", "1.33"),
    ("1.66", "1.66"), ("5:3", "1.66"),
    ("1.78", "1.78"), ("16:9", "1.78"), ("1.77", "1.78"), ("1.78:1", "1.78"), (" 16 : 9 ", "1.78"),
    ("1.85", "1.85"), ("1.85:1", "1.85"),
    ("2.0", "2.0"), ("2", "2.0"), ("2:1", "2.0"),
    ("2.39", "2.39"), ("2.39:1", "2.39"), ("2.40", "2.39"),
    ("9:16", "9:16"), ("0.5625", "9:16"),
    ("1:1", "1:1"), ("1", "1:1"),
])
def test_aspect_spellings(spelling, name):
    assert normalize_aspect(spelling) == name


@pytest.mark.parametrize("spelling", ["3:2", "2.35", "21:9", "scope", "", "16:0", "0:9", "-1.78", "16/9", None, 1.78])
def test_unknown_aspects_name_the_input(spelling):
    with pytest.raises(ValueError, match="aspect") as caught:
        normalize_aspect(spelling)
    assert repr(spelling) in str(caught.value)


@pytest.mark.parametrize("aspect, base, size", [
    ("1:1", 1024, (1024, 1024)),
    ("1.33", 1024, (1216, 896)),
    ("1.66", 1024, (1280, 768)),
    ("16:9", 1024, (1344, 768)),
    ("1.85", 1024, (1408, 768)),
    ("2.0", 1024, (1408, 704)),
    ("2.39", 1024, (1536, 640)),
    ("9:16", 1024, (768, 1344)),
    ("1:1", 512, (512, 512)),
    ("2.39", 512, (768, 320)),
    ("16:9", 768, (1024, 576)),
    ("2.39", 64, (128, 64)),
])
def test_frame_sizes(aspect, base, size):
    assert frame_size(aspect, base) == size


@pytest.mark.parametrize("aspect", list(ASPECTS))
@pytest.mark.parametrize("base", [512, 768, 1024])
def test_frame_size_invariants(aspect, base):
    width, height = frame_size(aspect, base)
    assert width % 64 == 0 and height % 64 == 0
    assert abs(width * height / base**2 - 1) < 0.15
    assert abs(math.log(width / height / ASPECTS[aspect])) < 0.06


def test_frame_size_other_multiple():
    assert frame_size("16:9", 1024, multiple=8) == (1368, 768)


@pytest.mark.parametrize("aspect, base, multiple, error", [
    ("16:9", 0, 64, "base_resolution must be a positive whole number"),
    ("16:9", 1024.0, 64, "base_resolution must be a positive whole number"),
    ("16:9", True, 64, "base_resolution must be a positive whole number"),
    ("16:9", 32, 64, "base_resolution 32 is smaller than the multiple 64"),
    ("16:9", 1024, 0, "multiple must be a positive whole number"),
    ("3:2", 1024, 64, "unknown aspect '3:2'"),
])
def test_frame_size_rejects_bad_input(aspect, base, multiple, error):
    with pytest.raises(ValueError, match=error):
        frame_size(aspect, base, multiple)


@pytest.mark.parametrize("policy, base, index, shot_seed, expected", [
    ("same seed for all shots", 100, 0, None, 100),
    ("same seed for all shots", 100, 5, None, 100),
    ("same seed for all shots", 100, 5, 7, 100),
    ("per-shot seeds", 100, 5, 7, 7),
    ("per-shot seeds", 100, 5, 0, 0),
    ("per-shot seeds", 100, 5, None, 105),
    ("base + index", 100, 5, 7, 105),
    ("base + index", 100, 0, None, 100),
    ("base + index", MAX_SEED, 2, None, 1),
])
def test_seed_policies(policy, base, index, shot_seed, expected):
    assert seed_for(policy, base, index, Shot("A", "x", seed=shot_seed)) == expected


def test_seed_policy_names_are_the_registry():
    assert list(SEED_POLICIES) == ["same seed for all shots", "per-shot seeds", "base + index"]


@pytest.mark.parametrize("policy, base, index, error", [
    ("random", 0, 0, "unknown seed policy 'random'"),
    ("base + index", -1, 0, "base seed must be a whole number"),
    ("base + index", MAX_SEED + 1, 0, "base seed must be a whole number"),
    ("base + index", 1.5, 0, "base seed must be a whole number"),
    ("base + index", 0, -1, "shot index must be a whole number"),
])
def test_seed_for_rejects_bad_input(policy, base, index, error):
    with pytest.raises(ValueError, match=error):
        seed_for(policy, base, index, None)


def test_seed_for_without_a_shot():
    assert seed_for("per-shot seeds", 10, 3) == 13
