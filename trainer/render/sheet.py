"""Contact sheets: every frame of a storyboard on one page, named by shot, with its description.

`sheet_layout` is the pure geometry (cell rectangles); `contact_sheet` draws onto it. Frames keep
their aspect at a common cell width, so a 2.39 and a 9:16 shot sit in the same grid; in a row the
frames stand on a common baseline, right above their labels, which line up across the row.
"""

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from ..fileio import write_image

BACKGROUND = (28, 28, 30)
TITLE_COLOR = (240, 240, 240)
LABEL_COLOR = (235, 235, 235)
DESCRIPTION_COLOR = (165, 165, 170)
_ELLIPSIS = "..."  # the bitmap fallback font has no "…"


@dataclass(frozen=True)
class SheetCell:
    frame: tuple  # (left, top, right, bottom) of the scaled frame
    label: tuple  # the shot id line
    description: tuple  # the wrapped description lines


@dataclass(frozen=True)
class SheetLayout:
    size: tuple  # (width, height) of the whole sheet
    title: tuple  # box of the title line
    cells: tuple  # SheetCell per frame, in reading order
    columns: int
    font_size: int
    title_font_size: int
    line_height: int


def sheet_layout(frame_sizes, columns, cell_width=384, description_lines=3):
    """Geometry of a contact sheet for frames of `frame_sizes` [(w, h), ...]; no drawing.

    More columns than frames collapse to one row of the frames there are. Text sizes scale with
    `cell_width` (16 px text at the default 384 px cells).
    """
    _check_int("columns", columns, 1)
    _check_int("cell_width", cell_width, 64)
    _check_int("description_lines", description_lines, 0)
    if not frame_sizes:
        raise ValueError("a contact sheet needs at least one frame")
    columns = min(columns, len(frame_sizes))
    font_size = max(12, cell_width // 24)
    line_height = round(font_size * 1.35)
    title_font_size = round(font_size * 1.5)
    margin = max(8, cell_width // 16)
    text_gap = font_size // 2
    title_box = (margin, margin, margin + columns * cell_width + (columns - 1) * margin,
                 margin + round(title_font_size * 1.35))
    heights = [max(1, round(cell_width * h / w)) for w, h in frame_sizes]
    cells, top = [], title_box[3] + margin
    for row_start in range(0, len(heights), columns):
        row = heights[row_start:row_start + columns]
        band = max(row)
        label_top = top + band + text_gap
        description_top = label_top + line_height
        for column, height in enumerate(row):
            left = margin + column * (cell_width + margin)
            frame_top = top + band - height
            cells.append(SheetCell(
                frame=(left, frame_top, left + cell_width, frame_top + height),
                label=(left, label_top, left + cell_width, description_top),
                description=(left, description_top, left + cell_width, description_top + description_lines * line_height),
            ))
        top = description_top + description_lines * line_height + margin
    return SheetLayout(size=(title_box[2] + margin, top), title=title_box, cells=tuple(cells), columns=columns,
                       font_size=font_size, title_font_size=title_font_size, line_height=line_height)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def load_font(size):
    """Pillow's built-in FreeType font at `size` (Pillow >= 10.1), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow 10.0: load_default() takes no size
        return ImageFont.load_default()


def fit_lines(text, font, width, max_lines):
    """Word-wrap `text` to at most `max_lines` lines of `width` px; the last ends in '...' if cut."""
    words, lines = text.split(), []
    while words and len(lines) < max_lines:
        line = words.pop(0)
        if font.getlength(line) > width:  # one word wider than the cell: break it
            cut = len(line) - 1
            while cut > 1 and font.getlength(line[:cut]) > width:
                cut -= 1
            words.insert(0, line[cut:])
            line = line[:cut]
        while words and font.getlength(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words and lines:
        last = lines[-1]
        while last and font.getlength(last + _ELLIPSIS) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + _ELLIPSIS
    return lines


def contact_sheet(frames, labels, descriptions, columns, title, cell_width=384, description_lines=3):
    """Draw a contact sheet: a title line, then a grid of frames with shot id and description under each."""
    if not (len(frames) == len(labels) == len(descriptions)):
        raise ValueError(f"contact sheet got {len(frames)} frames, {len(labels)} labels and "
                         f"{len(descriptions)} descriptions; they must match one to one")
    if not all(isinstance(frame, Image.Image) for frame in frames):
        raise ValueError("contact sheet frames must be PIL images")
    layout = sheet_layout([frame.size for frame in frames], columns, cell_width, description_lines)
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font, title_font = load_font(layout.font_size), load_font(layout.title_font_size)
    title_width = layout.title[2] - layout.title[0]
    draw.text(layout.title[:2], (fit_lines(title, title_font, title_width, 1) or [""])[0], font=title_font, fill=TITLE_COLOR)
    for frame, label, description, cell in zip(frames, labels, descriptions, layout.cells):
        left, top, right, bottom = cell.frame
        sheet.paste(frame.convert("RGB").resize((right - left, bottom - top), Image.LANCZOS), (left, top))
        draw.text(cell.label[:2], (fit_lines(label, font, cell_width, 1) or [""])[0], font=font, fill=LABEL_COLOR)
        for number, line in enumerate(fit_lines(description, font, cell_width, description_lines)):
            draw.text((cell.description[0], cell.description[1] + number * layout.line_height), line,
                      font=font, fill=DESCRIPTION_COLOR)
    return sheet


def save_sheet_png(path, sheet):
    """Write the sheet as PNG atomically (a crash never leaves half a file at `path`)."""
    write_image(path, sheet, "PNG")


def save_sheet_pdf(path, sheet_or_pages, resolution=150):
    """Write one sheet or a list of pages as a PDF (one page each) atomically; `resolution` in dpi."""
    pages = [sheet_or_pages] if isinstance(sheet_or_pages, Image.Image) else list(sheet_or_pages)
    if not pages:
        raise ValueError(f"no pages to write to {path}")
    pages = [page.convert("RGB") for page in pages]
    write_image(path, pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=resolution)
