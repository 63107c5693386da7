"""Find a file whatever the Unicode normalisation of its name.

A name typed on Windows or Linux is NFC ("é" is one code point); a folder unzipped on macOS is
often stored NFD ("e" + a combining accent). Linux file systems compare bytes, so the two
spellings are different names there; this finds the one on disk.
"""

import os
import unicodedata
from pathlib import Path


def on_disk(path):
    """`path` as spelled on disk when it exists only under another normalisation of some of its
    parts; `path` unchanged when it exists as given or cannot be found either way."""
    path = Path(path)
    if os.path.lexists(path):
        return path
    current = Path(path.parts[0])
    for part in path.parts[1:]:
        candidate = current / part
        if not os.path.lexists(candidate):
            wanted = unicodedata.normalize("NFC", part)
            try:
                with os.scandir(current) as entries:
                    match = next((e.name for e in entries if unicodedata.normalize("NFC", e.name) == wanted), None)
            except OSError:
                return path
            if match is None:
                return path
            candidate = current / match
        current = candidate
    return current
