"""Atomic file writes: every file LookDev writes goes to a temp name beside its target and is
renamed into place, so a crash or a full disk never leaves a partial file at a final name and
never damages the file that was there before.

Everything is encoded in memory first and written here; no other module opens a file for
writing (tests/test_safety_static.py checks this). A temp file is named
`.<target name>.<writer's pid>.<random>.tmp`, so a later run can tell the leftovers of a killed
process from a write still in progress and remove them (`remove_stale_temps`).

mkstemp/mkdtemp make their temps private (0600/0700) and a rename keeps that mode, so each temp
is given the mode a plain `open(path, "w")` would give before it is renamed: the replaced file's
mode, else 0666 (0777 for folders) less the umask, as ComfyUI's own outputs get.
"""

import contextlib
import errno
import io
import json
import os
import re
import shutil
import stat
import tempfile
import threading
from pathlib import Path

_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


class SaveError(OSError):
    """A write failed; the message names the file and the cause in plain words."""

    def __str__(self):
        return self.strerror  # without OSError's "[Errno 28]" prefix


def _explain(path, exc):
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return SaveError(exc.errno, f"cannot save {path}: the disk is full (earlier files are kept)")
    if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SaveError(exc.errno, f"cannot save {path}: no permission to write there")
    return SaveError(getattr(exc, "errno", None) or errno.EIO, f"cannot save {path}: {exc}")


_UMASK_LOCK = threading.Lock()


def _umask():
    """The process umask. Linux tells it in /proc; elsewhere it can only be read by setting it,
    so it is set back at once under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _normal_mode(path, folder=False):
    """The mode a plain write of `path` gives: the mode of the file it replaces, else the default."""
    try:
        old = os.lstat(path)
    except OSError:
        old = None
    if old is not None and (stat.S_ISDIR(old.st_mode) if folder else stat.S_ISREG(old.st_mode)):
        return stat.S_IMODE(old.st_mode)
    return (0o777 if folder else 0o666) & ~_umask()


def _temp_name(path):
    return dict(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)


def _write_all(fh, data):
    """The one place file data is written (tests replace it to simulate a full disk or a kill)."""
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def write_bytes(path, data):
    """Write `data` to `path` atomically. On any failure the temp file is removed, the old `path`
    (if any) is untouched, and OSErrors become a SaveError naming `path`."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(**_temp_name(path))
        os.close(fd)
        with open(tmp, "wb") as fh:  # by name, so fh.name tells _write_all's stand-ins the target
            _write_all(fh, data)
        os.chmod(tmp, _normal_mode(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _explain(path, exc) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def write_text(path, text: str):
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def write_image(path, image, format, **options):
    """Save a PIL image (`image.save(..., format, **options)`, e.g. a multi-page PDF) atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return write_bytes(path, buffer.getbuffer())


def write_safetensors(path, tensors, metadata=None):
    import safetensors.torch

    return write_bytes(path, safetensors.torch.save(tensors, metadata=metadata))


@contextlib.contextmanager
def atomic_folder(path):
    """Yield a temp folder beside `path`; on success it is renamed to `path` (which must not exist,
    or be an empty folder). For tools that can only write a whole folder (save_pretrained)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(**_temp_name(path)))
    try:
        yield tmp
        os.chmod(tmp, _normal_mode(path, folder=True))
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        os.rename(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _explain(path, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temps(folder, name=None):
    """Remove the temp files and folders that killed processes left in `folder` (only those for
    target `name`, if given); returns their paths. A temp whose writer still runs is kept."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if match is None or (name and not entry.name.startswith(f".{name}.")) or not _writer_gone(int(match.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue  # in use (Windows refuses to delete open files) or already gone
        removed.append(entry)
    return removed


def _writer_gone(pid):
    if pid == os.getpid():
        return False  # another thread of this process may be writing it
    if os.name == "nt":
        return True  # os.kill would end the process there; deleting a file being written fails instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by another user
    return False


def _remove_quietly(tmp):
    if tmp is not None:
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


def keep_aside(path):
    """Rename `path` to the first free `<name>.bak`, `<name>.bak2`, ... beside it, so a file about
    to be replaced keeps its bytes; returns the new path."""
    path = Path(path)
    for number in range(1, 10000):
        backup = path.with_name(f"{path.name}.bak{number if number > 1 else ''}")
        if not os.path.lexists(backup):
            try:
                os.rename(path, backup)
                _fsync_dir(path.parent)
            except OSError as exc:
                raise _explain(backup, exc) from exc
            return backup
    raise SaveError(errno.EEXIST, f"cannot keep {path} aside: {path.name}.bak to .bak9999 all exist")
