import os
from pathlib import Path

import pytest

from dataset_files import write_image
from lookdev.trainer.dataset.scan import (CACHE_DIRNAME, LONG_CAPTION_WORDS, DatasetError, file_digest,
                                          folder_fingerprint, folder_label, normalize_extension, scan_folder)


def names(result):
    return [item.path.relative_to(result.root).as_posix() for item in result.items]


def skipped(result):
    return {issue.path.relative_to(result.root).as_posix(): issue for issue in result.skipped}


def notes(result):
    return {issue.path.relative_to(result.root).as_posix(): issue.message
            for issue in result.notes}


def test_images_are_found_sorted_with_sidecar_captions(tmp_path):
    for name in ("b.png", "a.jpg", "c.webp"):
        write_image(tmp_path / name)
    (tmp_path / "a.txt").write_text("a dark alley, rain", encoding="utf-8")
    result = scan_folder(tmp_path)
    assert names(result) == ["a.jpg", "b.png", "c.webp"]
    assert [item.caption for item in result.items] == ["a dark alley, rain", None, None]
    assert {(item.repeats, item.subfolder) for item in result.items} == {(1, "")}
    assert result.skipped == () and result.notes == ()


def test_scan_order_is_deterministic(tmp_path):
    for index, name in enumerate(["z.png", "B.png", "a.png", "sub/m.png", "sub/a.png"]):
        write_image(tmp_path / name, seed=index)
    first = scan_folder(tmp_path)
    assert names(first) == ["B.png", "a.png", "sub/a.png", "sub/m.png", "z.png"]
    assert scan_folder(tmp_path) == first


def test_kohya_repeat_folders(tmp_path):
    write_image(tmp_path / "10_noir" / "a.png")
    write_image(tmp_path / "10_noir" / "close" / "b.png")
    write_image(tmp_path / "misc" / "c.png")
    write_image(tmp_path / "d.png")
    write_image(tmp_path / "0_unused" / "e.png")
    result = scan_folder(tmp_path, default_repeats=2)
    got = {name: (item.repeats, item.subfolder) for name, item in zip(names(result), result.items)}
    assert got == {"10_noir/a.png": (10, "10_noir"), "10_noir/close/b.png": (10, "10_noir/close"),
                   "misc/c.png": (2, "misc"), "d.png": (2, "")}
    assert skipped(result)["0_unused/e.png"].kind == "0 repeats"


@pytest.mark.parametrize("subfolder, label", [("", ""), ("10_film_noir", "film noir"),
                                              ("styles/3_oil", "oil"), ("misc", "misc"),
                                              ("2024", "2024")])
def test_folder_label(subfolder, label):
    assert folder_label(subfolder) == label


@pytest.mark.parametrize("extension", ["caption", ".caption", "CAPTION"])
def test_caption_extension_with_or_without_dot(tmp_path, extension):
    write_image(tmp_path / "Shot.PNG")
    (tmp_path / "Shot.caption").write_text("neon", encoding="utf-8")
    (tmp_path / "Shot.txt").write_text("ignored", encoding="utf-8")
    result = scan_folder(tmp_path, caption_extension=extension)
    assert result.items[0].caption == "neon"
    assert skipped(result)["Shot.txt"].kind == "unsupported type"


@pytest.mark.parametrize("bad", ["", ".", "a/b", "t.x.t", None])
def test_bad_caption_extension_is_named(bad):
    with pytest.raises(ValueError, match="caption_extension"):
        normalize_extension(bad)


def test_caption_extension_may_not_be_an_image_extension(tmp_path):
    write_image(tmp_path / "a.png")
    with pytest.raises(ValueError, match="caption_extension"):
        scan_folder(tmp_path, caption_extension="png")


def test_non_utf8_caption_is_replaced_and_noted(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_bytes("café noir".encode("cp1252"))
    result = scan_folder(tmp_path)
    assert result.items[0].caption == "caf\ufffd noir"
    assert "not UTF-8" in notes(result)["a.txt"]
    assert result.skipped == ()


def test_very_long_caption_is_used_with_a_note(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    (tmp_path / "a.txt").write_text("rain " * 10_000, encoding="utf-8")
    (tmp_path / "b.txt").write_text("rain " * LONG_CAPTION_WORDS, encoding="utf-8")
    result = scan_folder(tmp_path)
    assert len(result.items[0].caption.split()) == 10_000
    assert notes(result)["a.txt"].startswith("caption is 10000 words long")
    assert "b.txt" not in notes(result)


def test_utf8_bom_is_not_part_of_the_caption(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_bytes("\ufeffnoir".encode("utf-8"))
    assert scan_folder(tmp_path).items[0].caption == "noir"


@pytest.mark.parametrize("content", ["", "  \n\n "])
def test_empty_caption_is_none_with_a_note(tmp_path, content):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text(content, encoding="utf-8")
    result = scan_folder(tmp_path)
    assert result.items[0].caption is None
    assert "empty" in notes(result)["a.txt"]


@pytest.mark.parametrize("content, caption", [
    ("rain\nneon\n", "rain, neon"),
    ("A dark alley.\nNeon lights.", "A dark alley. Neon lights."),
    ("rain,\n\nneon", "rain, neon"),
])
def test_multi_line_captions_are_joined(tmp_path, content, caption):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text(content, encoding="utf-8")
    assert scan_folder(tmp_path).items[0].caption == caption


def test_two_images_may_share_a_caption(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("rain", encoding="utf-8")
    result = scan_folder(tmp_path)
    assert [item.caption for item in result.items] == ["rain", "rain"]
    assert result.notes == ()


def test_caption_without_image_is_noted(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "b.txt").write_text("orphan", encoding="utf-8")
    assert "without a matching image" in notes(scan_folder(tmp_path))["b.txt"]


def test_hidden_files_and_cache_folder_are_skipped_silently(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / ".hidden.png")
    write_image(tmp_path / ".git" / "b.png")
    write_image(tmp_path / CACHE_DIRNAME / "c.png")
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    result = scan_folder(tmp_path)
    assert names(result) == ["a.png"]
    assert result.skipped == () and result.notes == () and result.files_seen == 1


def test_unsupported_types_are_skipped_with_reason(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "layers.psd").write_bytes(b"8BPS")
    (tmp_path / "README").write_text("hi", encoding="utf-8")
    result = scan_folder(tmp_path)
    assert skipped(result)["layers.psd"].message.startswith("unsupported type .psd")
    assert "(none)" in skipped(result)["README"].message


def test_gifs_are_scanned_like_the_loader_reads_them(tmp_path):
    write_image(tmp_path / "loop.gif", fmt="GIF")
    assert names(scan_folder(tmp_path)) == ["loop.gif"]


def test_named_pipes_are_skipped_unread(tmp_path):
    write_image(tmp_path / "a.png")
    os.mkfifo(tmp_path / "a.txt")  # reading it would wait for a writer forever
    os.mkfifo(tmp_path / "b.png")
    result = scan_folder(tmp_path)
    assert names(result) == ["a.png"] and result.items[0].caption is None
    assert skipped(result)["a.txt"].message.startswith("not a regular file (a named pipe")
    assert skipped(result)["b.png"].kind == "unsupported type"


def test_not_recursive_leaves_subfolders_out_with_a_note(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "sub" / "b.png")
    result = scan_folder(tmp_path, recursive=False)
    assert names(result) == ["a.png"]
    assert "recursive is off" in notes(result)["sub"]


def test_symlinks_leading_outside_are_skipped(tmp_path):
    root, outside = tmp_path / "refs", tmp_path / "elsewhere"
    write_image(root / "a.png")
    write_image(outside / "secret.png")
    (root / "link.png").symlink_to(outside / "secret.png")
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    (root / "inside.png").symlink_to(root / "a.png")
    (root / "dangling.png").symlink_to(root / "gone.png")
    result = scan_folder(root)
    assert names(result) == ["a.png", "inside.png"]
    reasons = {name: issue.message for name, issue in skipped(result).items()}
    assert "outside the dataset folder" in reasons["link.png"]
    assert "outside" in reasons["linked_dir"]
    assert "broken or looping" in reasons["dangling.png"]


def test_symlink_loops_do_not_hang(tmp_path):
    write_image(tmp_path / "sub" / "a.png")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "x.png").symlink_to(tmp_path / "y.png")
    (tmp_path / "y.png").symlink_to(tmp_path / "x.png")
    result = scan_folder(tmp_path)
    assert names(result) == ["sub/a.png"]
    reasons = {name: issue.message for name, issue in skipped(result).items()}
    assert "not followed" in reasons["sub/loop"]
    assert "broken or looping" in reasons["x.png"] and "broken or looping" in reasons["y.png"]


def test_caption_symlink_outside_is_not_read(tmp_path):
    root = tmp_path / "refs"
    write_image(root / "a.png")
    (tmp_path / "secret.txt").write_text("private words", encoding="utf-8")
    (root / "a.txt").symlink_to(tmp_path / "secret.txt")
    result = scan_folder(root)
    assert result.items[0].caption is None
    assert "outside the dataset folder" in skipped(result)["a.txt"].message


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "missing", "does not exist"),
    (lambda tmp: write_image(tmp / "one.png"), "is a file, not a folder"),
])
def test_bad_folder_is_a_dataset_error_naming_it(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(DatasetError) as caught:
        scan_folder(path)
    assert str(path) in str(caught.value) and words in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("folder", ["", "   ", None])
def test_no_folder_given(folder):
    with pytest.raises(DatasetError, match="no dataset folder given"):
        scan_folder(folder)


def refuse(path_to_refuse):
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == path_to_refuse:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    return scandir


def test_unreadable_folder_is_a_dataset_error(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png")
    monkeypatch.setattr(os, "scandir", refuse(tmp_path))
    with pytest.raises(DatasetError) as caught:
        scan_folder(tmp_path)
    assert str(tmp_path) in str(caught.value) and "Permission denied" in str(caught.value)


def test_unreadable_subfolder_is_skipped_with_reason(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "locked" / "b.png")
    monkeypatch.setattr(os, "scandir", refuse(tmp_path / "locked"))
    result = scan_folder(tmp_path)
    assert names(result) == ["a.png"]
    assert skipped(result)["locked"].kind == "unreadable"


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="holds no files"):
        scan_folder(tmp_path)


def test_folder_without_images_summarises_why(tmp_path):
    for name in ("a.psd", "b.mov", "c.mov"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d.txt").write_text("caption", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        scan_folder(tmp_path)
    assert str(caught.value).startswith(
        f"dataset folder {tmp_path}: 4 files, none usable: 3 unsupported type, "
        "1 caption without image")


def test_fingerprint_sees_an_edit_that_keeps_the_old_mtime(tmp_path):
    (tmp_path / "a.png").write_bytes(b"pixels one")
    before = folder_fingerprint(tmp_path)
    st = (tmp_path / "a.png").stat()
    (tmp_path / "a.png").write_bytes(b"pixels two")  # same size ...
    os.utime(tmp_path / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and mtime, as `touch -r` leaves it
    assert folder_fingerprint(tmp_path) != before
    (tmp_path / "a.png").write_bytes(b"pixels one")
    assert folder_fingerprint(tmp_path) == before  # the content is what counts


def test_file_digests_are_read_once_per_file_version(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("one")
    reads = []
    real_open = open

    def counting_open(path, mode="r", *args, **kwargs):
        reads.append(Path(path).name)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    first = file_digest(tmp_path / "a.txt")
    assert file_digest(tmp_path / "a.txt") == first and reads == ["a.txt"]
    (tmp_path / "a.txt").write_text("two")
    assert file_digest(tmp_path / "a.txt") != first and reads == ["a.txt", "a.txt"]
