"""The demo's before/after: base and styled frames of each shot side by side, and the measured
figures (style distance of each set to the references, layout similarity of each pair), from
trainer/style_metric.py. Pillow and numpy only.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from _pack import alias_pack

alias_pack()
from lookdev.trainer import style_metric  # noqa: E402  (after the alias)

CELL_HEIGHT = 144
PAD = 8
LABEL = 18


def load_rgb(path, resolution=None):
    """An RGB image as float [H, W, 3] in 0..1; with `resolution`, resized to about
    resolution**2 pixels at its own aspect (how the trainer sizes reference images)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if resolution is not None:
            scale = (resolution * resolution / (image.width * image.height)) ** 0.5
            image = image.resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))),
                                 Image.LANCZOS)
        return np.asarray(image, dtype=np.float32) / 255.0


def figures(references, base_frames, styled_frames):
    """{'base': distance, 'styled': distance, 'closer': base/styled, 'layout': mean similarity}."""
    base = style_metric.style_distance(base_frames, references)
    styled = style_metric.style_distance(styled_frames, references)
    return {"base": base, "styled": styled, "closer": base / styled if styled > 0 else float("inf"),
            "layout": style_metric.mean_layout_similarity(base_frames, styled_frames)}


def _fit(path, height):
    with Image.open(path) as image:
        image = image.convert("RGB")
        return image.resize((round(image.width * height / image.height), height), Image.LANCZOS)


def before_after_sheet(rows, title, left="base model", right="styled (LoRA)", cell_height=CELL_HEIGHT):
    """A PIL image: one row per (label, base frame path, styled frame path), base left, styled right."""
    cells = [(label, _fit(base, cell_height), _fit(styled, cell_height)) for label, base, styled in rows]
    width = max(a.width for _, a, _ in cells)
    sheet = Image.new("RGB", (3 * PAD + 2 * width, LABEL * 2 + PAD + len(cells) * (cell_height + LABEL + PAD)),
                      (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 4), title, fill=(240, 240, 240))
    draw.text((PAD, LABEL + 2), left, fill=(200, 200, 200))
    draw.text((2 * PAD + width, LABEL + 2), right, fill=(200, 200, 200))
    y = 2 * LABEL + PAD
    for label, base, styled in cells:
        draw.text((PAD, y), label, fill=(220, 220, 220))
        sheet.paste(base, (PAD + (width - base.width) // 2, y + LABEL))
        sheet.paste(styled, (2 * PAD + width + (width - styled.width) // 2, y + LABEL))
        y += cell_height + LABEL + PAD
    return sheet


def write_report(folder, references, base_paths, styled_paths, title):
    """Figures, and the sheet saved as `folder`/_before_after.png; returns (figures, sheet path)."""
    from lookdev.trainer.fileio import write_image

    base_by_shot = {Path(p).stem: Path(p) for p in base_paths}
    styled_by_shot = {Path(p).stem: Path(p) for p in styled_paths}
    shots = [shot for shot in styled_by_shot if shot in base_by_shot]
    if not shots:
        raise ValueError("no shot has both a base and a styled frame")
    measured = figures(references, [load_rgb(base_by_shot[s]) for s in shots],
                       [load_rgb(styled_by_shot[s]) for s in shots])
    sheet = before_after_sheet([(s, base_by_shot[s], styled_by_shot[s]) for s in shots], title)
    path = Path(folder) / "_before_after.png"
    write_image(path, sheet, "PNG")
    return measured, path
