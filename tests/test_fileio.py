"""trainer/fileio.py: atomic writes, a full disk, leftovers of killed writers."""

import errno
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from lookdev.trainer import fileio


def full_disk_after(monkeypatch, nbytes):
    """Make the disk fill up after `nbytes` of the next file: what a real ENOSPC looks like."""
    def write_then_fail(fh, data):
        fh.write(bytes(data)[:nbytes])
        fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio, "_write_all", write_then_fail)


WRITERS = {
    "bytes": lambda path: fileio.write_bytes(path, b"new" * 1000),
    "text": lambda path: fileio.write_text(path, "new caption, " * 100),
    "json": lambda path: fileio.write_json(path, {"new": list(range(500))}),
    "image": lambda path: fileio.write_image(path, Image.new("RGB", (64, 64), (200, 10, 10)), "PNG"),
    "pdf": lambda path: fileio.write_image(path, Image.new("RGB", (64, 64)), "PDF", resolution=72),
    "safetensors": lambda path: fileio.write_safetensors(path, {"w": torch.ones(64, 64)}, {"k": "v"}),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_full_disk_keeps_the_old_file_and_names_the_new_one(tmp_path, monkeypatch, writer):
    path = tmp_path / "out" / "file.bin"
    path.parent.mkdir()
    path.write_bytes(b"the earlier file")
    full_disk_after(monkeypatch, 100)
    with pytest.raises(fileio.SaveError) as caught:
        WRITERS[writer](path)
    assert str(caught.value) == f"cannot save {path}: the disk is full (earlier files are kept)"
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"the earlier file"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]  # no temp left


def test_full_disk_on_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    full_disk_after(monkeypatch, 10)
    with pytest.raises(fileio.SaveError, match="the disk is full"):
        fileio.write_text(tmp_path / "caption.txt", "a caption")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    fileio.write_text(path, "old")

    def interrupted(fh, data):
        fh.write(data[:2])
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fileio.write_text(path, "new text")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_writes_replace_and_create_folders(tmp_path):
    path = tmp_path / "deep" / "er" / "a.json"
    fileio.write_json(path, {"a": 1})
    fileio.write_json(path, {"a": 2})
    assert path.read_text() == '{\n  "a": 2\n}'
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "a.txt"
    link.symlink_to(outside)
    fileio.write_text(link, "ours")
    assert outside.read_text() == "not ours"
    assert not link.is_symlink() and link.read_text() == "ours"


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            f".a.safetensors.{dead}.k2j_x9ab.tmp": False,  # killed writer: removed
            f".b.png.{sleeper.pid}.q8s7d6f5.tmp": True,  # a writer still at work: kept
            f".c.txt.{os.getpid()}.zz11yy22.tmp": True,  # this process's own write in progress: kept
            ".d.txt.tmp": True,  # not a LookDev temp name
            f"e.{dead}.abcdefgh.tmp": True,  # not hidden: not ours
            "f.safetensors": True,
        }
        for name in names:
            (tmp_path / name).write_bytes(b"x")
        (tmp_path / f".tiny-blip.{dead}.abcd1234.tmp").mkdir()  # a killed atomic_folder
        (tmp_path / f".tiny-blip.{dead}.abcd1234.tmp" / "config.json").write_text("{}")
        removed = fileio.remove_stale_temps(tmp_path)
        assert sorted(p.name for p in removed) == sorted([f".a.safetensors.{dead}.k2j_x9ab.tmp",
                                                          f".tiny-blip.{dead}.abcd1234.tmp"])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, kept in names.items() if kept)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert fileio.remove_stale_temps(tmp_path / "missing") == []


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with fileio.atomic_folder(target) as tmp:
            fileio.write_text(tmp / "config.json", "{}")
            raise RuntimeError("the save failed half-way")
    assert list(tmp_path.iterdir()) == []
    target.mkdir()  # an empty folder made beforehand is fine
    with fileio.atomic_folder(target) as tmp:
        fileio.write_text(tmp / "config.json", "{}")
    assert [p.name for p in target.iterdir()] == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_get_the_mode_a_plain_write_gives(tmp_path, writer, umask):
    old = os.umask(umask)
    try:
        WRITERS[writer](tmp_path / "out.bin")
        with open(tmp_path / "plain.bin", "wb"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "out.bin").stat().st_mode == (tmp_path / "plain.bin").stat().st_mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "caption.txt"
    target.write_text("old")
    target.chmod(0o640)
    fileio.write_text(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_atomic_folders_get_the_mode_mkdir_gives(tmp_path):
    old = os.umask(0o022)
    try:
        with fileio.atomic_folder(tmp_path / "model") as tmp:
            fileio.write_text(tmp / "config.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "model" / "config.json").stat().st_mode & 0o777 == 0o644
