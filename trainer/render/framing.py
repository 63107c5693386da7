"""Frame shapes and seed choices for a storyboard: aspect presets, frame sizes, seed policies.

Plain registries (name -> value) so a node can offer them as a list of options.
"""

import math
import re

# Preset name -> width / height. Names are how filmmakers say them; "1:1" and "9:16" are ratios
# because nobody says "0.56".
ASPECTS = {
    "1:1": 1.0,
    "1.33": 4 / 3,
    "1.66": 5 / 3,
    "1.78": 16 / 9,
    "1.85": 1.85,
    "2.0": 2.0,
    "2.39": 2.39,
    "9:16": 9 / 16,
}

# A spelling matches a preset when its ratio is within this fraction of it: "16:9", "1.77",
# "1.78:1" are one shape; "2.40" is "2.39" (the same scope format); "2.35" is not accepted.
_ASPECT_TOLERANCE = 0.005

_RATIO_SPELLING = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?::\s*(\d+(?:\.\d+)?)\s*)?$")

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF  # ComfyUI's KSampler seed range is 0..2**64-1


def _aspect_help():
    return f"use one of {', '.join(ASPECTS)} (16:9, 4:3, 2.39:1 style spellings work too)"


def normalize_aspect(aspect):
    """Map any accepted spelling ("16:9", "1.78", "2.39:1", "4:3") to its preset name.

    Raises ValueError naming the spelling when it matches no preset.
    """
    if not isinstance(aspect, str):
        raise ValueError(f"aspect {aspect!r} is not text; {_aspect_help()}")
    if aspect.strip() in ASPECTS:
        return aspect.strip()
    match = _RATIO_SPELLING.match(aspect)
    ratio = None
    if match:
        first, second = float(match.group(1)), float(match.group(2) or 1)
        ratio = first / second if first > 0 and second > 0 else None
    if ratio is not None:
        for name, preset in ASPECTS.items():
            if abs(ratio / preset - 1) <= _ASPECT_TOLERANCE:
                return name
    raise ValueError(f"unknown aspect {aspect!r}; {_aspect_help()}")


def frame_size(aspect, base_resolution, multiple=64):
    """(width, height) for `aspect` with about base_resolution**2 pixels, sides multiples of `multiple`.

    Rounding: the exact sides are base*sqrt(r) and base/sqrt(r); each is rounded down and up to a
    multiple, and of those four pairs the one whose ratio is closest to the preset wins (ties: the
    area closest to base**2). So 2.39 at 1024 is 1536x640 (ratio 2.40, area -6%) rather than the
    nearest-side 1600x640 (ratio 2.50). A side never drops below one `multiple`.
    """
    name = normalize_aspect(aspect)
    _check_positive_int("multiple", multiple)
    _check_positive_int("base_resolution", base_resolution)
    if base_resolution < multiple:
        raise ValueError(f"base_resolution {base_resolution} is smaller than the multiple {multiple}")
    ratio = ASPECTS[name]
    exact_w = base_resolution * math.sqrt(ratio)
    exact_h = base_resolution / math.sqrt(ratio)
    target_area = base_resolution**2

    def around(exact):
        low = max(multiple, math.floor(exact / multiple) * multiple)
        return {low, max(multiple, math.ceil(exact / multiple) * multiple)}

    candidates = [(w, h) for w in around(exact_w) for h in around(exact_h)]
    return min(candidates, key=lambda wh: (abs(wh[0] / wh[1] / ratio - 1), abs(wh[0] * wh[1] - target_area)))


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")


def _same_seed(base_seed, index, shot):
    return base_seed


def _shot_seed_or_index(base_seed, index, shot):
    if shot is not None and shot.seed is not None:
        return shot.seed
    return (base_seed + index) % (MAX_SEED + 1)


def _base_plus_index(base_seed, index, shot):
    return (base_seed + index) % (MAX_SEED + 1)


# Policy name -> fn(base_seed, index, shot) -> seed. "same seed for all shots" ignores the shots'
# own seeds on purpose: it is the "only the description changes" comparison.
SEED_POLICIES = {
    "same seed for all shots": _same_seed,
    "per-shot seeds": _shot_seed_or_index,
    "base + index": _base_plus_index,
}


def seed_for(policy, base_seed, index, shot=None):
    """The seed for the shot at 0-based `index` under `policy` (a SEED_POLICIES name).

    base + index wraps around at 2**64 like ComfyUI's seed widget range.
    """
    if policy not in SEED_POLICIES:
        raise ValueError(f"unknown seed policy {policy!r}; use one of: {', '.join(SEED_POLICIES)}")
    if isinstance(base_seed, bool) or not isinstance(base_seed, int) or not 0 <= base_seed <= MAX_SEED:
        raise ValueError(f"base seed must be a whole number from 0 to {MAX_SEED}, got {base_seed!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"shot index must be a whole number >= 0, got {index!r}")
    return SEED_POLICIES[policy](base_seed, index, shot)
