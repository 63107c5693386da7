"""Find the reference images in a folder, with their sidecar captions and repeat counts.

kohya conventions: a subfolder named `N_name` (e.g. `10_noir`) repeats its images N times per
epoch; `image.txt` beside `image.png` is its caption. Hidden files and folders and LookDev's
cache folder are skipped silently, and so are caption backups (`image.txt.bak`, left by LookDev's
caption node when it overwrites a caption); anything else that is not used is listed with a reason.
Symlinks never lead out of the folder and symlinked folders are not entered, so loops cannot
hang a scan. Order is deterministic (sorted by path).

Only names are checked here; whether an image decodes is found out when it is loaded.
"""

import hashlib
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .captions import join_tags, split_tags
from ..fileio import write_text
from ..unicode_paths import on_disk

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "tiff", "tif", "gif")
CACHE_DIRNAME = "lookdev_cache"
# What ready_folder writes into a dataset folder it creates; scans and fingerprints skip it.
FOLDER_README = "LOOKDEV_README.txt"
FOLDER_README_TEXT = """Put 10-30 reference images that share one look into this folder (PNG, JPEG, WebP,
BMP, TIFF or GIF), then press Run again in ComfyUI.

- Vary the content (people, places, objects); keep the look the same (grade, light, grain).
- A caption file beside an image (shot1.png + shot1.txt) is its caption; images without one
  are captioned by LookDev Caption Dataset.
- A subfolder named like 3_night repeats its images 3 times.

LookDev made this folder because a workflow named it and it did not exist. This file is never
read as a caption or image; delete it if you like.
"""
"""A latent cache kept inside a dataset folder under this name is never scanned as images."""

BACKUP_SUFFIX = ".bak"
"""A caption file overwritten by LookDev is kept beside it with this suffix: photo.txt.bak."""

LONG_CAPTION_WORDS = 300
"""Captions longer than this get a note: a pasted script or prompt dump, not a description."""

_REPEAT_FOLDER = re.compile(r"^(\d+)_(.+)$")


class DatasetError(ValueError):
    """The dataset as a whole cannot be used; the message names the folder and says why."""


@dataclass(frozen=True)
class Issue:
    """A file that was skipped, or a remark about one. `kind` groups skips for summaries."""

    path: Path
    message: str
    kind: str = "note"


@dataclass(frozen=True)
class ScanItem:
    path: Path
    caption: str | None  # sidecar caption text, None when there is none (or it is empty)
    repeats: int
    subfolder: str  # relative to the scanned folder, "/"-separated; "" for the folder itself


@dataclass(frozen=True)
class ScanResult:
    root: Path
    items: tuple
    skipped: tuple  # Issue per file not used
    notes: tuple  # Issue per remark that did not stop a file being used
    files_seen: int  # visible files, used or not; a caption file beside its image not counted


def normalize_extension(extension, name="caption_extension"):
    """"txt", ".txt" or "TXT" -> "txt"; ValueError naming `name` for anything else."""
    if not isinstance(extension, str):
        raise ValueError(f"{name} must be text such as 'txt', got {extension!r}")
    clean = extension.strip().lstrip(".").lower()
    if not clean or not re.fullmatch(r"[a-z0-9_-]+", clean):
        raise ValueError(f"{name} must be a plain file extension such as 'txt' or '.caption', "
                         f"got {extension!r}")
    return clean


def scan_folder(folder, recursive=True, extensions=IMAGE_EXTENSIONS, caption_extension="txt",
                default_repeats=1):
    """List the candidate images under `folder`; raise DatasetError if there are none.

    Images outside `N_name` subfolders get `default_repeats`. Non-UTF-8 or empty caption files
    and caption files without an image produce notes, not skips.
    """
    extensions = tuple(normalize_extension(ext, "extensions") for ext in extensions)
    caption_extension = normalize_extension(caption_extension)
    if isinstance(default_repeats, bool) or not isinstance(default_repeats, int) \
            or default_repeats < 1:
        raise ValueError(f"default_repeats must be a whole number >= 1, got {default_repeats!r}")
    if caption_extension in extensions:
        raise ValueError(f"caption_extension {caption_extension!r} is also an image extension")
    root = _checked_root(folder)
    walk = _Walk(root, extensions, caption_extension, default_repeats)
    for here, dirnames, filenames in os.walk(root, followlinks=False, onerror=walk.unreadable):
        dirnames[:] = walk.subfolders_to_enter(Path(here), dirnames, recursive)
        walk.add_files(Path(here), filenames)
    items = tuple(sorted(walk.items, key=lambda item: str(item.path)))
    result = ScanResult(root, items, tuple(walk.skipped), tuple(walk.notes), walk.files_seen)
    if not items:
        raise no_usable_images(result)
    return result


def resolve_folder(folder, base, name="folder"):
    """The dataset folder a person typed: absolute (or ~/...) as given, or relative to `base`
    (ComfyUI's input folder), found whatever its Unicode normalisation. Surrounding spaces and quotes (as "copy as path" adds) are ignored.
    A relative path may not climb out of `base` with "..": DatasetError naming `name`. The check
    is on the path as written, as ComfyUI checks its own paths; symlinks are the scan's business.
    """
    text = str(folder).strip() if isinstance(folder, (str, os.PathLike)) else ""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if not text:
        raise DatasetError(f"{name} is empty: give the folder that holds the reference images, "
                           f"as an absolute path or relative to {base}")
    path = Path(text).expanduser()
    if path.is_absolute():
        return on_disk(path)
    base = Path(os.path.abspath(base))
    joined = Path(os.path.normpath(base / path))
    if not joined.is_relative_to(base):
        raise DatasetError(f"{name} {text!r} leads out of ComfyUI's input folder {base} (with "
                           "'..'); use a folder inside it, or give the absolute path")
    return on_disk(joined)


def ready_folder(folder, base, name="folder"):
    """The dataset folder typed as `folder`, checked before a run: DatasetError if it cannot be
    used as typed, does not exist, or holds no files yet. A missing folder typed relative to
    `base` (ComfyUI's input folder), as the shipped workflows name theirs, is created with a
    README saying what to put there, so following the workflow's note finds it in place."""
    root = resolve_folder(folder, base, name)
    if not root.exists() and not root.is_symlink() and not Path(str(folder).strip()).expanduser().is_absolute():
        write_text(root / FOLDER_README, FOLDER_README_TEXT)
        raise DatasetError(f"dataset folder {root} did not exist: LookDev created it (with {FOLDER_README}); "
                           f"put 10-30 reference images ({', '.join(IMAGE_EXTENSIONS)}) into it and run again")
    _checked_root(root)
    for here, dirnames, filenames in os.walk(root):
        if any(not _hidden(file) for file in filenames):
            return root
        dirnames[:] = [d for d in dirnames if not _hidden(d) and d != CACHE_DIRNAME]
    raise DatasetError(f"dataset folder {root} holds no files; add 10-30 reference images "
                       f"({', '.join(IMAGE_EXTENSIONS)})")


def folder_fingerprint(folder, recursive=True, caption_extension="txt"):
    """A short digest of the name and content of every file a scan of `folder` looks at: it
    changes when a file is added, removed, replaced or edited (even when the edit kept the old
    modification time), and only then. Hidden files, the latent cache and caption backups do not
    count. A missing or unreadable folder gives the digest of what could be read; loading it then
    says what is wrong. Contents are hashed once per file version (see file_digest)."""
    root = Path(folder)
    backup = f".{normalize_extension(caption_extension)}{BACKUP_SUFFIX}"
    digest = hashlib.sha256()
    for here, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if recursive and not _hidden(name)
                             and name != CACHE_DIRNAME)
        for name in sorted(filenames):
            if _hidden(name) or name.lower().endswith(backup):
                continue
            path = Path(here) / name
            try:
                state = file_digest(path)  # follows links inside the folder: editing their target counts
            except OSError as exc:
                state = f"unreadable:{exc.errno}"
            digest.update(f"{path.relative_to(root).as_posix()}\0{state}\n".encode())
    return digest.hexdigest()[:32]


_DIGESTS = {}  # absolute path -> (stat key, sha256 of the bytes)
_DIGESTS_MAX = 20_000
_CHUNK = 1 << 20


def file_digest(path):
    """sha256 of a file's bytes, remembered per (inode, size, mtime_ns, ctime_ns): a file is read
    again only when one of these changes. ctime cannot be set back by tools that restore mtime,
    so an edit that keeps the old mtime is still seen. Non-regular files (pipes) are not read."""
    path = Path(path)
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        return f"not a file:{stat.S_IFMT(st.st_mode)}"
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    name = os.path.abspath(path)
    known = _DIGESTS.get(name)
    if known is not None and known[0] == key:
        return known[1]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    if len(_DIGESTS) >= _DIGESTS_MAX:
        _DIGESTS.clear()  # a crude bound: files are hashed again, nothing is wrong
    _DIGESTS[name] = (key, digest.hexdigest())
    return _DIGESTS[name][1]


def folder_label(subfolder):
    """The words of a subfolder's own name for captions: "styles/10_film_noir" -> "film noir"."""
    name = subfolder.rsplit("/", 1)[-1]
    match = _REPEAT_FOLDER.match(name)
    return " ".join((match.group(2) if match else name).replace("_", " ").split())


def summarise_kinds(kinds):
    """Counter of issue kinds -> "9 unsupported type, 3 corrupt" (most common first)."""
    return ", ".join(f"{count} {kind}" for kind, count in
                     sorted(kinds.items(), key=lambda pair: (-pair[1], pair[0])))


def no_usable_images(result, extra_skipped=()):
    """The DatasetError for a folder where nothing could be used, summarising why."""
    kinds = Counter(issue.kind for issue in (*result.skipped, *extra_skipped))
    kinds.update(note.kind for note in result.notes if note.kind == "caption without image")
    if result.files_seen == 0:
        return DatasetError(f"dataset folder {result.root} holds no files; add 10-30 reference "
                            f"images ({', '.join(IMAGE_EXTENSIONS)})")
    return DatasetError(f"dataset folder {result.root}: {result.files_seen} files, none usable: "
                        f"{summarise_kinds(kinds)}. See the dataset report for each file.")


def _checked_root(folder):
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise DatasetError(f"no dataset folder given (got {folder!r}); give the folder that "
                           "holds the reference images")
    root = Path(folder).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; check the path")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder; give the folder that holds the "
                           "reference images")
    try:
        with os.scandir(root) as entries:
            next(entries, None)
    except OSError as exc:
        raise DatasetError(f"cannot read dataset folder {root}: {exc.strerror or exc}; check "
                           "its permissions") from exc
    return root


def _hidden(name):
    """Hidden files, and the README ready_folder writes: never part of a dataset."""
    return name.startswith(".") or name == FOLDER_README


class _Walk:
    """Accumulates items, skips and notes while os.walk goes through the tree."""

    def __init__(self, root, extensions, caption_extension, default_repeats):
        self.root, self.real_root = root, root.resolve()
        self.extensions, self.caption_extension = extensions, caption_extension
        self.default_repeats = default_repeats
        self.items, self.skipped, self.notes = [], [], []
        self.files_seen = 0

    def unreadable(self, exc):
        self.skipped.append(Issue(Path(exc.filename), f"cannot read this folder "
                                  f"({exc.strerror or exc}); its images are left out",
                                  "unreadable"))

    def subfolders_to_enter(self, here, dirnames, recursive):
        enter = []
        for name in sorted(dirnames):
            path = here / name
            if _hidden(name) or name == CACHE_DIRNAME:
                continue
            if path.is_symlink():
                where = "outside" if not self._inside(path) else "inside"
                self.skipped.append(Issue(path, f"symlinked folder (pointing {where} the dataset "
                                          "folder) is not followed", "symlink"))
            elif not recursive:
                self.notes.append(Issue(path, "subfolder not scanned (recursive is off)"))
            else:
                enter.append(name)
        return enter

    def add_files(self, here, filenames):
        images, captions = [], {}
        backup = f".{self.caption_extension}{BACKUP_SUFFIX}"
        visible = (n for n in filenames if not _hidden(n) and not n.lower().endswith(backup))
        for name in sorted(visible):
            self.files_seen += 1
            path = here / name
            reason = self._link_problem(path)
            ext = path.suffix.lower().lstrip(".")
            if reason:
                self.skipped.append(Issue(path, reason, "symlink"))
            elif not path.is_file():  # reading a named pipe would wait forever
                self.skipped.append(Issue(path, "not a regular file (a named pipe, socket or device); "
                                          "left out", "unsupported type"))
            elif ext == self.caption_extension:
                captions[path.stem] = path
            elif ext in self.extensions:
                images.append(path)
            else:
                self.skipped.append(Issue(path, f"unsupported type {path.suffix or '(none)'}; "
                                          f"LookDev reads {', '.join(self.extensions)}",
                                          "unsupported type"))
        for path in images:
            self._add_image(path, captions.get(path.stem))
        matched = {path.stem for path in images}
        self.files_seen -= len(matched & set(captions))  # a caption is part of its image
        for path in (p for stem, p in captions.items() if stem not in matched):
            self.notes.append(Issue(path, "caption file without a matching image (check its "
                                    "name)", "caption without image"))

    def _add_image(self, path, caption_path):
        subfolder = path.parent.relative_to(self.root).as_posix()
        subfolder = "" if subfolder == "." else subfolder
        repeats = self._repeats(subfolder)
        if repeats == 0:
            self.skipped.append(Issue(path, f"folder {subfolder} asks for 0 repeats, which "
                                      "leaves its images out", "0 repeats"))
            return
        caption = self._read_caption(caption_path) if caption_path else None
        self.items.append(ScanItem(path, caption, repeats, subfolder))

    def _repeats(self, subfolder):
        for name in reversed(subfolder.split("/") if subfolder else []):
            match = _REPEAT_FOLDER.match(name)
            if match:
                return int(match.group(1))
        return self.default_repeats

    def _inside(self, path):
        try:
            return path.resolve(strict=True).is_relative_to(self.real_root)
        except (OSError, RuntimeError):
            return False

    def _link_problem(self, path):
        if not path.is_symlink():
            return None
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return "broken or looping symlink"
        if not target.is_relative_to(self.real_root):
            return f"symlink points outside the dataset folder (to {target}); not followed"
        return None if target.is_file() else "symlink does not point to a file"

    def _read_caption(self, path):
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.notes.append(Issue(path, f"caption file unreadable ({exc.strerror or exc}); "
                                    "image used without it"))
            return None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            self.notes.append(Issue(path, "caption is not UTF-8 text: unreadable characters "
                                    "were replaced with \ufffd; re-save the file as UTF-8"))
        caption = _join_lines(text)
        if not caption:
            self.notes.append(Issue(path, "caption file is empty; the image is captioned by the "
                                    "template alone"))
            return None
        words = len(caption.split())
        if words > LONG_CAPTION_WORDS:
            self.notes.append(Issue(path, f"caption is {words} words long; text encoders read about 75 "
                                    "tokens at a time, so every training step carries all of it: keep "
                                    "it to what describes the image"))
        return caption


def _join_lines(text):
    # Tag lists continue with a comma; sentences already end in punctuation and continue with
    # a space.
    joined = ""
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        glue = "" if not joined else (" " if joined[-1] in ".,;:!?" else ", ")
        joined += glue + line
    return join_tags(split_tags(joined))
