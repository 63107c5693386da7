"""Turn a captioning model's raw output into a plain content description.

Only model artefacts are removed here; the trigger word and style words are the caption
processing module's business (trainer/dataset/captions.py)."""

import re

# Openings that carry no content ("there is a dog" -> "a dog"), matched as whole words at the start,
# case-insensitively, repeatedly ("in this image we can see" -> "we can see" -> "").
LEADING_FILLERS = (
    "there is", "there are", "this is", "these are", "here is", "here are",
    "the image shows", "the image depicts", "the image features", "the image is",
    "this image shows", "this image depicts", "this image features", "this image is",
    "in this image", "in the image", "in this picture", "in the picture",
    "we can see", "you can see",
)

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# BLIP's made-up words ("arafed", "araffe", "arrafed", ...), with the article before them.
_NONSENSE_WORD = re.compile(r"\b(?:(?P<article>an?)\s+)?ar{1,2}af+\w*\b\s*", re.IGNORECASE)
_LEADING_FILLER = re.compile(
    r"^(?:" + "|".join(re.escape(f) for f in LEADING_FILLERS) + r")\b[\s,:;]*", re.IGNORECASE)
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?])")
_LEADING_PUNCTUATION = re.compile(r"^[\s,.;:!?]+")


def clean_model_caption(text: str) -> str:
    """Whitespace collapsed, control characters and BLIP's nonsense words removed, content-free
    openings ("there is", "the image shows") trimmed."""
    text = " ".join(_CONTROL_CHARS.sub(" ", text).split())
    text = _NONSENSE_WORD.sub(lambda match: _article_for_next_word(match, text), text)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    return _trim_leading_fillers(_LEADING_PUNCTUATION.sub("", text).strip())


def _article_for_next_word(match, text):
    """Keep the article a nonsense word had, fitted to the word that now follows it."""
    article = match.group("article")
    next_char = text[match.end():match.end() + 1].lower()
    if not article or not next_char:
        return article or ""
    fitted = "an" if next_char in "aeiou" else "a"
    return (fitted.capitalize() if article[0].isupper() else fitted) + " "


def _trim_leading_fillers(text):
    while True:
        rest = _LEADING_FILLER.sub("", text, count=1)
        if rest == text or not rest:
            return text
        text = rest
