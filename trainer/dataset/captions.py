"""Caption processing for style training: pure functions, no files.

A caption is a comma-separated list of tags or phrases. For a style LoRA the trigger word(s) come
first and stay fixed; the rest may be shuffled or dropped per step so that the *style* gets
bound to the trigger instead of to the described content.

kohya's keep-tokens conventions are kept: `keep_tokens` leading tags stay in place, or, when the
caption holds `keep_separator` ("|||"), everything before it does. Randomness always comes from an
explicit `random.Random` or `torch.Generator`, so a training run can be replayed exactly.
"""

import random
import re
import string
from pathlib import Path

import torch

PLACEHOLDERS = ("trigger", "filename", "folder", "caption")
KEEP_SEPARATOR = "|||"

# Tokens that cameras, phones and screenshot tools put into file names.
_CAMERA_WORDS = {"img", "dsc", "dscf", "dscn", "dcim", "pxl", "mvimg", "gopr", "dji", "cimg",
                 "imag", "pict", "screenshot"}
_NUMBERED = re.compile(r"^(img|dsc[fn]?|pxl|mvimg|gopr|gh|gx|dji|pano|cimg|imag|pict|sam|vid|"
                       r"p|photo|image|scan|frame|screenshot)?\d+$", re.IGNORECASE)
_SHORT_NUMBER = re.compile(r"^[1-9]\d{0,2}$")
_HASH = re.compile(r"^(?=.*\d)[0-9a-f]{8,}$", re.IGNORECASE)


def filename_words(path):
    """The descriptive words in an image's file name: "IMG_0042-dark_alley.png" -> "dark alley".

    Camera/phone prefixes (IMG, DSC, PXL, ...), counters and dates (numbers with a leading zero,
    four or more digits, next to another number as in 10.22.13, or after a camera prefix) and
    hex hashes are dropped; a lone short number such as "400" in "portra_400" is kept.
    Lower case, single spaces.
    """
    tokens = [token for token in re.split(r"[\W_]+", Path(path).stem) if token]
    numeric = [token.isdigit() for token in tokens]
    kept = []
    for index, token in enumerate(tokens):
        beside_number = any(numeric[i] for i in (index - 1, index + 1) if 0 <= i < len(tokens))
        after_camera = index > 0 and tokens[index - 1].lower() in _CAMERA_WORDS
        if _SHORT_NUMBER.match(token) and not (beside_number or after_camera):
            kept.append(token)
        elif not (token.lower() in _CAMERA_WORDS or _NUMBERED.match(token) or _HASH.match(token)):
            kept.append(token)
    return " ".join(token.lower() for token in kept)


def tidy(caption):
    """Collapse whitespace, drop empty tags and doubled or dangling commas."""
    return join_tags(split_tags(caption))


def split_tags(caption, separator=","):
    """The non-empty, whitespace-collapsed tags of `caption`."""
    parts = (" ".join(part.split()) for part in caption.split(separator))
    return [part for part in parts if part]


def join_tags(tags, separator=","):
    return f"{separator} ".join(tag for tag in tags if tag)


def render_template(template, trigger="", filename="", folder="", caption=""):
    """Fill a caption template such as "{trigger}, {caption}" and tidy the result.

    Placeholders: {trigger}, {filename} (see filename_words), {folder} (the subfolder's name),
    {caption} (the sidecar caption). An empty value leaves no stray comma behind. Any other
    placeholder, or a malformed one, raises ValueError naming it.
    """
    values = {"trigger": trigger, "filename": filename, "folder": folder, "caption": caption}
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"caption template {template!r} is malformed ({exc}); use "
                         "placeholders like {trigger} and {caption}, or {{ }} for a brace") from exc
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise ValueError(f"unknown placeholder {{{name}}} in caption template "
                             f"{template!r}; use {', '.join('{%s}' % p for p in PLACEHOLDERS)}")
    return tidy(template.format(**values))


def with_trigger(caption, trigger):
    """Put the trigger tag(s) first. `trigger` may hold several comma-separated words
    ("lkdv, film noir"); a trigger tag already in the caption (same text, any case) is moved to
    the front instead of repeated. A trigger mentioned inside a longer phrase is not a tag and
    is left alone. An empty trigger returns the tidied caption."""
    trigger_tags = split_tags(trigger)
    wanted = {tag.casefold() for tag in trigger_tags}
    rest = [tag for tag in split_tags(caption) if tag.casefold() not in wanted]
    return join_tags(trigger_tags + rest)


def strip_style_words(caption, words):
    """Remove style words/phrases (e.g. "film noir", "cinematic") from a caption, case-
    insensitively and only as whole words, so that the style is learned by the trigger instead
    of being attributed to them. `words` is a list or a comma-separated string; a tag that
    becomes empty disappears with its comma."""
    if isinstance(words, str):
        words = split_tags(words)
    for phrase in sorted((w for w in words if w.strip()), key=len, reverse=True):
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)"
        caption = re.sub(pattern, " ", caption, flags=re.IGNORECASE)
    return tidy(re.sub(r"\s+([.;:!?])", r"\1", caption))


def style_caption(content, trigger, style_words="", keep_marker=False):
    """A caption for style training: the trigger tag(s) first, then `content` with any keep
    marker, trigger tags and style words (see strip_style_words) removed; with `keep_marker`,
    kohya's "|||" after the trigger (see with_keep_marker)."""
    trigger_tags = split_tags(trigger)
    wanted = {tag.casefold() for tag in trigger_tags}
    content = strip_style_words(plain_caption(content), style_words)
    caption = join_tags(trigger_tags + [tag for tag in split_tags(content)
                                        if tag.casefold() not in wanted])
    return with_keep_marker(caption, trigger) if keep_marker else caption


def with_keep_marker(caption, trigger):
    """`caption` with kohya's keep marker "|||" after the tag that holds the trigger (the last
    one, for several trigger words), so shuffling and caption dropout never move or drop it.
    Unchanged when no tag holds the trigger as whole words, or nothing follows it."""
    fixed, free = split_keep(caption)
    tags = fixed + free
    last = -1
    for trigger_tag in split_tags(trigger):
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, trigger_tag.split())) + r"(?!\w)"
        holders = [i for i, tag in enumerate(tags) if re.search(pattern, tag, re.IGNORECASE)]
        if holders:
            last = max(last, holders[0])
    if last < 0 or last == len(tags) - 1:
        return caption
    return f"{join_tags(tags[:last + 1])} {KEEP_SEPARATOR} {join_tags(tags[last + 1:])}"


def split_keep(caption, keep_tokens=0, keep_separator=KEEP_SEPARATOR, separator=","):
    """Split a caption into (fixed tags, free tags).

    If `keep_separator` occurs, the tags before its first occurrence are fixed; otherwise the
    first `keep_tokens` tags are. The separator itself never appears in the output.
    """
    if isinstance(keep_tokens, bool) or not isinstance(keep_tokens, int) or keep_tokens < 0:
        raise ValueError(f"keep_tokens must be a whole number >= 0, got {keep_tokens!r}")
    if keep_separator and keep_separator in caption:
        head, tail = caption.split(keep_separator, 1)
        return split_tags(head, separator), split_tags(tail.replace(keep_separator, separator),
                                                       separator)
    tags = split_tags(caption, separator)
    return tags[:keep_tokens], tags[keep_tokens:]


def plain_caption(caption, keep_separator=KEEP_SEPARATOR):
    """The caption as the text encoder should see it: keep marker removed, tidied."""
    fixed, free = split_keep(caption, 0, keep_separator)
    return join_tags(fixed + free)


def shuffle_tags(caption, rng, keep_tokens=0, separator=",", keep_separator=KEEP_SEPARATOR):
    """Shuffle the free tags (see split_keep) with `rng`; the fixed ones stay first, in order."""
    fixed, free = split_keep(caption, keep_tokens, keep_separator, separator)
    order = _permutation(len(free), rng)
    return join_tags(fixed + [free[i] for i in order], separator)


def drop_caption(caption, rng, dropout_rate, keep_tokens=0, keep_separator=KEEP_SEPARATOR):
    """Caption dropout: with probability `dropout_rate` return only the fixed part (usually the
    trigger; "" when nothing is fixed), else the whole caption without the keep marker.

    Unlike kohya (which drops to ""), keeping the trigger on dropped steps teaches the trigger
    alone to carry the whole style, which is what a style LoRA is prompted with.
    """
    if not 0.0 <= dropout_rate <= 1.0:
        raise ValueError(f"dropout_rate must be between 0 and 1, got {dropout_rate!r}")
    fixed, free = split_keep(caption, keep_tokens, keep_separator)
    dropped = _uniform(rng) < dropout_rate
    return join_tags(fixed if dropped else fixed + free)


def _permutation(n, rng):
    if isinstance(rng, torch.Generator):
        return torch.randperm(n, generator=rng).tolist()
    if isinstance(rng, random.Random):
        order = list(range(n))
        rng.shuffle(order)
        return order
    raise ValueError(f"rng must be a random.Random or torch.Generator, got {type(rng).__name__}")


def _uniform(rng):
    if isinstance(rng, torch.Generator):
        return float(torch.rand((), generator=rng))
    if isinstance(rng, random.Random):
        return rng.random()
    raise ValueError(f"rng must be a random.Random or torch.Generator, got {type(rng).__name__}")
