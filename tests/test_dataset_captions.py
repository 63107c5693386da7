import random

import pytest
import torch

from lookdev.trainer.dataset.captions import (drop_caption, filename_words, plain_caption,
                                              render_template, shuffle_tags, split_keep,
                                              strip_style_words, tidy, with_trigger)


@pytest.mark.parametrize("name, words", [
    ("IMG_0042-dark_alley.png", "dark alley"),
    ("DSC01234.JPG", ""),
    ("DSCF0007_rain on glass.jpg", "rain on glass"),
    ("PXL_20230512_183012345.jpg", ""),
    ("P1010001.JPG", ""),
    ("dark_alley_01.png", "dark alley"),
    ("kodak-portra-400.jpg", "kodak portra 400"),
    ("Screenshot 2024-01-05 at 10.22.13.png", "at"),
    ("photo (2).jpg", "photo 2"),
    ("a1b2c3d4e5f6-neon.png", "neon"),
    ("Café_Noir.webp", "café noir"),
    ("/some/folder/IMG_7.tif", ""),
    ("frame0001.png", ""),
])
def test_filename_words(name, words):
    assert filename_words(name) == words


@pytest.mark.parametrize("text, expected", [
    ("a,  b ,, c,", "a, b, c"),
    (" , ,", ""),
    ("dark\n alley", "dark alley"),
])
def test_tidy(text, expected):
    assert tidy(text) == expected


@pytest.mark.parametrize("template, values, expected", [
    ("{trigger}, {caption}", {"trigger": "lkdv", "caption": "a street"}, "lkdv, a street"),
    ("{trigger}, {caption}", {"trigger": "lkdv"}, "lkdv"),
    ("{trigger}, {caption}", {"caption": "a street"}, "a street"),
    ("{trigger} style, {filename}, {folder}", {"trigger": "lkdv", "filename": "dark alley",
                                              "folder": "noir"},
     "lkdv style, dark alley, noir"),
    ("{caption},,  {trigger}", {"trigger": "x", "caption": "y"}, "y, x"),
    ("{trigger} ||| {caption}", {"trigger": "x", "caption": "y, z"}, "x ||| y, z"),
    ("{{literal}}, {trigger}", {"trigger": "x"}, "{literal}, x"),
    ("", {"trigger": "x"}, ""),
])
def test_render_template(template, values, expected):
    assert render_template(template, **values) == expected


@pytest.mark.parametrize("template, words", [
    ("{trigger}, {subject}", "{subject}"),
    ("{}", "{}"),
    ("{0}", "{0}"),
    ("{caption!r}", "{caption}"),
    ("{caption:>10}", "{caption}"),
    ("{trigger", "malformed"),
    ("trigger}", "malformed"),
])
def test_render_template_rejects_unknown_placeholders(template, words):
    with pytest.raises(ValueError) as caught:
        render_template(template, trigger="x")
    assert words in str(caught.value)


@pytest.mark.parametrize("caption, trigger, expected", [
    ("a street, night", "lkdv", "lkdv, a street, night"),
    ("a street, LKDV, night", "lkdv", "lkdv, a street, night"),
    ("lkdv, a street", "lkdv", "lkdv, a street"),
    ("a street", "lkdv, film noir", "lkdv, film noir, a street"),
    ("film noir, a street", "lkdv, film noir", "lkdv, film noir, a street"),
    ("a lkdv photo", "lkdv", "lkdv, a lkdv photo"),
    ("", "lkdv", "lkdv"),
    ("a street,, night", "", "a street, night"),
])
def test_with_trigger(caption, trigger, expected):
    assert with_trigger(caption, trigger) == expected


@pytest.mark.parametrize("caption, words, expected", [
    ("a street, film noir, night", ["film noir"], "a street, night"),
    ("a Film  Noir street", "film noir", "a street"),
    ("cinematic shot, cinematics", ["cinematic"], "shot, cinematics"),
    ("noir, noirish, neo-noir", ["noir"], "noirish, neo-"),
    ("a street in film noir style.", ["film noir style"], "a street in."),
    ("a street", [], "a street"),
    ("a street", "", "a street"),
    ("(1.5) c++ look", ["c++"], "(1.5) look"),
])
def test_strip_style_words(caption, words, expected):
    assert strip_style_words(caption, words) == expected


@pytest.mark.parametrize("caption, keep_tokens, expected", [
    ("a, b, c, d", 0, ([], ["a", "b", "c", "d"])),
    ("a, b, c, d", 2, (["a", "b"], ["c", "d"])),
    ("a, b", 5, (["a", "b"], [])),
    ("lkdv, noir ||| c, d", 0, (["lkdv", "noir"], ["c", "d"])),
    ("lkdv ||| c, d", 3, (["lkdv"], ["c", "d"])),       # the marker wins over the count
    ("lkdv ||| c ||| d", 0, (["lkdv"], ["c", "d"])),
])
def test_split_keep(caption, keep_tokens, expected):
    assert split_keep(caption, keep_tokens) == expected


def test_split_keep_rejects_negative_keep_tokens():
    with pytest.raises(ValueError, match="keep_tokens"):
        split_keep("a, b", -1)


def test_plain_caption_removes_the_marker():
    assert plain_caption("lkdv ||| a, b") == "lkdv, a, b"


TAGS = "lkdv, t1, t2, t3, t4, t5, t6, t7"


@pytest.mark.parametrize("make_rng", [lambda: random.Random(7),
                                      lambda: torch.Generator().manual_seed(7)])
def test_shuffle_tags_is_reproducible_and_keeps_the_fixed_part(make_rng):
    first = shuffle_tags(TAGS, make_rng(), keep_tokens=1)
    assert first == shuffle_tags(TAGS, make_rng(), keep_tokens=1)
    assert first.startswith("lkdv, ")
    assert sorted(first.split(", ")) == sorted(TAGS.split(", "))
    rng = make_rng()
    orders = {shuffle_tags(TAGS, rng, keep_tokens=1) for _ in range(10)}
    assert len(orders) > 1


def test_shuffle_tags_with_marker():
    out = shuffle_tags("lkdv, noir ||| a, b, c", random.Random(1))
    assert out.startswith("lkdv, noir, ") and "|||" not in out


@pytest.mark.parametrize("rate, keep_tokens, expected", [
    (0.0, 1, "lkdv, a street, night"),
    (1.0, 1, "lkdv"),
    (1.0, 0, ""),
])
def test_drop_caption_extremes(rate, keep_tokens, expected):
    assert drop_caption("lkdv, a street, night", random.Random(0), rate,
                        keep_tokens=keep_tokens) == expected


def test_drop_caption_keeps_the_marked_part():
    assert drop_caption("lkdv, noir ||| a street", random.Random(0), 1.0) == "lkdv, noir"
    assert drop_caption("lkdv, noir ||| a street", random.Random(0), 0.0) == \
        "lkdv, noir, a street"


@pytest.mark.parametrize("make_rng", [lambda: random.Random(3),
                                      lambda: torch.Generator().manual_seed(3)])
def test_drop_caption_rate_is_reproducible(make_rng):
    def run():
        rng = make_rng()
        return [drop_caption("lkdv, a, b", rng, 0.3, keep_tokens=1) for _ in range(400)]

    outcomes = run()
    assert outcomes == run()
    assert 60 <= outcomes.count("lkdv") <= 180


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_drop_caption_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="dropout_rate"):
        drop_caption("a", random.Random(0), rate)


@pytest.mark.parametrize("call", [lambda: shuffle_tags("a, b", 42),
                                  lambda: drop_caption("a, b", None, 0.5)])
def test_rng_must_be_explicit(call):
    with pytest.raises(ValueError, match="random.Random or torch.Generator"):
        call()
