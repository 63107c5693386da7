"""Atomic file writes: every file LookDev writes goes to a temp name beside its target and is
renamed into place, so a crash or a full disk never leaves a partial file at a final name and
never damages the file that was there before."""

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path


class SaveError(OSError):
    """A write failed; the message names the file and the cause in plain words."""


def _explain(path, exc):
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return SaveError(exc.errno, f"cannot save {path}: the disk is full (earlier files are kept)")
    if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SaveError(exc.errno, f"cannot save {path}: no permission to write there")
    return SaveError(getattr(exc, "errno", None) or errno.EIO, f"cannot save {path}: {exc}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path in the target's folder; on success fsync and rename it over `path`.

    On any failure the temp file is removed and the old `path` (if any) is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _explain(path, exc) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def write_bytes(path, data: bytes):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text(path, text: str):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def _remove_quietly(tmp):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _fsync_dir(folder):
    # Makes the rename itself durable; some filesystems refuse to open folders, which is fine.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
