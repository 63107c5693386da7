"""Contact sheet geometry, drawing and saving."""

import numpy as np
import pytest
from PIL import Image

from lookdev.trainer.render.sheet import (
    BACKGROUND, contact_sheet, fit_lines, load_font, save_sheet_pdf, save_sheet_png, sheet_layout,
)


def frame(size, color):
    return Image.new("RGB", size, color)


def ink(sheet, box):
    """Pixels in `box` that differ from the background."""
    region = np.asarray(sheet.crop(box)).astype(int)
    return int((np.abs(region - np.array(BACKGROUND)).sum(axis=2) > 60).sum())


@pytest.mark.parametrize("sizes, columns, grid", [
    ([(160, 90)] * 1, 4, [(0, 0)]),
    ([(160, 90)] * 3, 4, [(0, 0), (1, 0), (2, 0)]),
    ([(160, 90)] * 5, 2, [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]),
    ([(160, 90)] * 4, 1, [(0, 0), (0, 1), (0, 2), (0, 3)]),
])
def test_cells_form_a_grid(sizes, columns, grid):
    layout = sheet_layout(sizes, columns, cell_width=256)
    assert len(layout.cells) == len(sizes)
    lefts = sorted({cell.frame[0] for cell in layout.cells})
    tops = sorted({cell.frame[1] for cell in layout.cells})
    assert [(lefts.index(c.frame[0]), tops.index(c.frame[1])) for c in layout.cells] == grid
    assert layout.columns == min(columns, len(sizes))


def test_layout_geometry_at_default_size():
    layout = sheet_layout([(1920, 1080), (1536, 640), (768, 1344)], columns=2)
    assert (layout.font_size, layout.line_height, layout.title_font_size) == (16, 22, 24)
    first, second, third = layout.cells
    # Frames keep their aspect at the common cell width.
    assert first.frame == (24, 80, 408, 296) and second.frame == (432, 136, 816, 296)
    # In a row, frames stand on one baseline, so labels line up right under them.
    assert first.label[1] == second.label[1] == 296 + 8
    assert first.description == (24, 326, 408, 392)
    # The 9:16 frame starts the next row, one margin below the first row's text.
    assert third.frame == (24, 416, 408, 1088)
    assert layout.title == (24, 24, 816, 56)
    assert layout.size == (840, 1208)


@pytest.mark.parametrize("sizes, columns, cell_width, lines", [
    ([(300, 200), (200, 300)], 2, 200, 2),
    ([(640, 360)] * 7, 3, 384, 3),
    ([(100, 1000)], 5, 64, 0),
])
def test_boxes_are_inside_the_sheet_and_do_not_overlap(sizes, columns, cell_width, lines):
    layout = sheet_layout(sizes, columns, cell_width, lines)
    boxes = [layout.title] + [box for cell in layout.cells for box in (cell.frame, cell.label, cell.description)]
    width, height = layout.size
    for left, top, right, bottom in boxes:
        assert 0 <= left <= right <= width and 0 <= top <= bottom <= height
    solid = [box for box in boxes if box[2] > box[0] and box[3] > box[1]]
    for i, a in enumerate(solid):
        for b in solid[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


@pytest.mark.parametrize("sizes, columns, cell_width, lines, error", [
    ([], 2, 384, 3, "at least one frame"),
    ([(10, 10)], 0, 384, 3, "columns must be a whole number >= 1"),
    ([(10, 10)], 2, 32, 3, "cell_width must be a whole number >= 64"),
    ([(10, 10)], 2, 384, -1, "description_lines must be a whole number >= 0"),
])
def test_layout_rejects_bad_input(sizes, columns, cell_width, lines, error):
    with pytest.raises(ValueError, match=error):
        sheet_layout(sizes, columns, cell_width, lines)


def test_sheet_draws_frames_labels_and_descriptions():
    colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 220, 40), (200, 40, 200)]
    sizes = [(192, 108), (240, 100), (108, 192), (160, 120), (100, 100)]
    frames = [frame(size, color) for size, color in zip(sizes, colors)]
    labels = [f"SH{n:02d}" for n in range(1, 6)]
    descriptions = ["a harbor at dawn, gulls", "", "close-up of hands mending a net", "x", "long " * 40]
    sheet = contact_sheet(frames, labels, descriptions, columns=3, title="Seq 01 - harbor", cell_width=192)
    layout = sheet_layout(sizes, 3, 192)
    assert sheet.size == layout.size and sheet.mode == "RGB"
    assert sheet.getpixel((1, 1)) == BACKGROUND
    assert ink(sheet, layout.title) > 50
    for cell, color, description in zip(layout.cells, colors, descriptions):
        left, top, right, bottom = cell.frame
        assert sheet.getpixel(((left + right) // 2, (top + bottom) // 2)) == color
        assert ink(sheet, cell.label) > 30
        assert (ink(sheet, cell.description) > 5) == bool(description)


def test_sheet_text_stays_inside_its_cell():
    frames = [frame((100, 100), BACKGROUND)] * 2
    sheet = contact_sheet(frames, ["A" * 64, "B"], ["word " * 200, "y"], columns=2, title="T", cell_width=128)
    layout = sheet_layout([(100, 100)] * 2, 2, 128)
    gap = (layout.cells[0].label[2], layout.cells[0].label[1], layout.cells[1].label[0], layout.size[1])
    assert ink(sheet, gap) == 0


@pytest.mark.parametrize("frames, labels, descriptions, error", [
    ([frame((8, 8), (0, 0, 0))], ["a", "b"], ["x"], "1 frames, 2 labels and 1 descriptions"),
    (["not an image"], ["a"], ["x"], "must be PIL images"),
])
def test_sheet_rejects_mismatched_input(frames, labels, descriptions, error):
    with pytest.raises(ValueError, match=error):
        contact_sheet(frames, labels, descriptions, 2, "t")


def test_frames_of_any_mode_are_drawn():
    frames = [Image.new("L", (64, 64), 255), Image.new("RGBA", (64, 64), (0, 255, 0, 255))]
    sheet = contact_sheet(frames, ["a", "b"], ["", ""], 2, "t", cell_width=64)
    cells = sheet_layout([(64, 64)] * 2, 2, 64, 3).cells
    assert sheet.getpixel(cells[0].frame[:2]) == (255, 255, 255)
    assert sheet.getpixel(cells[1].frame[:2]) == (0, 255, 0)


@pytest.mark.parametrize("text, width, max_lines, expected", [
    ("", 100, 3, []),
    ("one two", 1000, 3, ["one two"]),
    ("one two three four", 1000, 0, []),
])
def test_fit_lines_simple(text, width, max_lines, expected):
    assert fit_lines(text, load_font(16), width, max_lines) == expected


@pytest.mark.parametrize("text, max_lines", [
    ("the quick brown fox jumps over the lazy dog " * 6, 3),
    ("supercalifragilisticexpialidocious" * 4, 2),
    ("a b c d e f g h i j k l m n o p", 1),
])
def test_fit_lines_wraps_within_width_and_marks_cuts(text, max_lines):
    font = load_font(16)
    lines = fit_lines(text, font, 120, max_lines)
    assert 1 <= len(lines) <= max_lines
    assert all(font.getlength(line) <= 120 for line in lines)
    assert lines[-1].endswith("...")


def test_save_png_and_pdf(tmp_path):
    sheet = contact_sheet([frame((64, 36), (10, 120, 200))], ["A"], ["d"], 1, "t", cell_width=64)
    save_sheet_png(tmp_path / "sheet.png", sheet)
    with Image.open(tmp_path / "sheet.png") as saved:
        assert saved.size == sheet.size and saved.format == "PNG"
    save_sheet_pdf(tmp_path / "one.pdf", sheet)
    save_sheet_pdf(tmp_path / "two.pdf", [sheet, sheet])
    assert (tmp_path / "one.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "two.pdf").read_bytes().count(b"/Type /Page\n") == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["one.pdf", "sheet.png", "two.pdf"]


def test_save_pdf_needs_pages(tmp_path):
    with pytest.raises(ValueError, match="no pages"):
        save_sheet_pdf(tmp_path / "x.pdf", [])
