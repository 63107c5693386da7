#!/usr/bin/env python3
"""Render each shipped workflow's template-browser card, workflows/<name>.jpg, with LookDev Mini.

    python scripts/render_thumbnails.py [--out DIR]   # build_workflows.py runs it after the JSON

Seeded and headless, the way the demo runs (scripts/demo.py): a ComfyUI server with the pack,
LookDev Mini and the demo's noir reference images; the shipped storyboard workflow renders the
shot list with the base model, and the shipped train-and-storyboard workflow trains the noir LoRA
and renders the same shots with it. Each card is the workflow's title and one line over what it
makes from those renders (reference images -> styled frames for the training workflows, a contact
strip or a film strip for the storyboard ones). Each JPEG's comment records its provenance (model,
workflow run, and for every frame its box on the card, shot, seed and prompt), which
tests/test_workflows.py checks.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import comfy_server
import demo
import demo_dataset
from _pack import alias_pack

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
SIZE = (640, 400)  # the card's size; the template browser scales it to the card
QUALITY = 80
MAX_BYTES = 60_000
REFERENCES = 8
REFERENCE_SEED = 0  # the demo's noir scenes
BACKGROUND = (24, 24, 28)
PROVENANCE_KEY = "lookdev.thumbnail"


def font(points):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=points)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def render(out):
    """Run the shipped workflows on LookDev Mini in a server based at `out`:
    {"references": [png], "base": {shot id: png}, "styled": {shot id: png}, "shots": {id: shot}}."""
    out = Path(out).resolve()
    comfy_server.prepare_base(out)
    checkpoint = demo.install_checkpoint(argparse.Namespace(checkpoint=None), out / "models")
    dataset = demo_dataset.write_dataset(out / "dataset" / "noir", count=REFERENCES, seed=REFERENCE_SEED)
    settings = demo.quick_settings(demo.MINI_STEPS, mini=True)
    styled_prompt = demo.build_prompt(json.loads(demo.WORKFLOW.read_text(encoding="utf-8")), checkpoint, dataset,
                                      settings)
    base_prompt = demo.build_prompt(json.loads(demo.BASE_WORKFLOW.read_text(encoding="utf-8")), checkpoint, None,
                                    demo.base_settings(styled_prompt), source=demo.BASE_WORKFLOW)
    server = comfy_server.start(out, cpu=True)
    try:
        print(f"ComfyUI at {server.url} (log: {server.log_path})", flush=True)
        base_history, _ = demo.run_until_done(demo.run_prompt(server, base_prompt, demo.Progress()))
        styled_history, _ = demo.run_until_done(demo.run_prompt(server, styled_prompt, demo.Progress()))
    finally:
        server.stop()
    for history in (base_history, styled_history):
        if (history.get("status") or {}).get("status_str") == "error":
            raise RuntimeError(f"a workflow run failed; see {server.log_path}")

    def frames(history, prompt):
        return {path.stem: path for path in demo.output_files(history, prompt, out, "LookDevStoryboardRender")}

    shot_text = next(n["inputs"]["shots"] for n in styled_prompt.values() if n["class_type"] == "LookDevShotList")
    shots = {shot.shot_id: shot for shot in demo.parse_shot_text(shot_text).shots}
    return {"references": sorted(dataset.glob("*.png")), "base": frames(base_history, base_prompt),
            "styled": frames(styled_history, styled_prompt), "shots": shots,
            "lora_steps": demo.MINI_STEPS, "checkpoint": str(checkpoint)}


# What each card shows: (label, images) rows of ("references" | "base" | "styled", shot ids or
# reference indices), laid out by `layout`.
CARDS = {
    "train_style_lora": ("pair", ("your reference images", "references", (0, 3, 5)),
                         ("rendered with the trained LoRA", "styled", ("SH020", "SH040", "SH010"))),
    "train_style_from_reel": ("pair", ("frames from the reel", "references", (1, 4, 6)),
                              ("rendered with the trained LoRA", "styled", ("SH040", "SH060", "SH020"))),
    "train_flux_style_lora": ("pair", ("your reference images", "references", (2, 7, 4)),
                              ("rendered with the trained LoRA", "styled", ("SH010", "SH030", "SH050"))),
    "train_and_storyboard": ("pair", ("base model", "base", ("SH010", "SH020", "SH040")),
                             ("after training, same seeds", "styled", ("SH010", "SH020", "SH040"))),
    "storyboard_in_style": ("grid", ("", "styled", ("SH010", "SH020", "SH030", "SH040", "SH050", "SH060"))),
    "storyboard_to_animatic": ("strip", ("", "styled", ("SH010", "SH020", "SH030", "SH040", "SH050", "SH060"))),
}


def _fit(image, box):
    """`image` scaled to fit inside `box` (w, h), centred on it: (scaled image, (dx, dy))."""
    from PIL import Image

    w, h = box
    scale = min(w / image.width, h / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC), ((w - size[0]) // 2, (h - size[1]) // 2)


def _paste(card, draw, path, box, caption, record, **provenance):
    """Paste the image at `path` into `box` (x, y, w, h) with a caption under it; record where."""
    from PIL import Image

    x, y, w, h = box
    with Image.open(path) as source:
        image, (dx, dy) = _fit(source.convert("RGB"), (w, h - 18))
    card.paste(image, (x + dx, y + dy))
    if caption:
        draw.text((x + w / 2, y + h - 8), caption, fill=(200, 200, 204), font=font(12), anchor="mm")
    record.append({"box": [x + dx, y + dy, image.width, image.height], **provenance})


def _frame_provenance(kind, key, renders):
    if kind == "references":
        path = renders["references"][key]
        # demo_dataset.draw_scene(scene, seed) draws it again (the test compares)
        return path, {"source": "reference image", "file": path.name, "scene": key, "seed": REFERENCE_SEED}
    shot = renders["shots"][key]
    return renders[kind][key], {"source": f"{kind} render", "shot": shot.shot_id, "seed": shot.seed,
                                "prompt": shot.description, "lora": "noir_style" if kind == "styled" else None}


def card(name, title, line, renders):
    """(the card image, its provenance) of workflow `name`."""
    from PIL import Image, ImageDraw

    width, height = SIZE
    image = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((24, 18), title, fill=(240, 240, 240), font=font(30))
    draw.text((24, 58), line, fill=(180, 180, 188), font=font(15))
    frames = []
    layout, *rows = CARDS[name]
    top, bottom = 92, height - 26
    if layout == "pair":  # two labelled rows: what goes in, what comes out
        row_h = (bottom - top) // 2
        for index, (label, kind, keys) in enumerate(rows):
            y = top + index * row_h
            draw.text((24, y + 2), label, fill=(150, 190, 230) if index else (200, 200, 200), font=font(14))
            cell = (width - 48 - 2 * 12) // 3
            for column, key in enumerate(keys):
                path, provenance = _frame_provenance(kind, key, renders)
                caption = provenance.get("shot", "")
                _paste(image, draw, path, (24 + column * (cell + 12), y + 22, cell, row_h - 26), caption, frames,
                       **provenance)
    elif layout == "grid":  # a contact sheet: three columns, shot ids under the frames
        (_, kind, keys), = rows
        cell_w, cell_h = (width - 48 - 2 * 10) // 3, (bottom - top) // 2
        for index, key in enumerate(keys):
            path, provenance = _frame_provenance(kind, key, renders)
            box = (24 + (index % 3) * (cell_w + 10), top + (index // 3) * cell_h, cell_w, cell_h - 4)
            _paste(image, draw, path, box, key, frames, **provenance)
    else:  # a film strip: frames in a row between sprocket holes, durations on a timeline
        (_, kind, keys), = rows
        strip_top, strip_h = top + 30, 150
        draw.rectangle([0, strip_top, width, strip_top + strip_h], fill=(8, 8, 8))
        for x in range(8, width, 22):
            for y in (strip_top + 6, strip_top + strip_h - 14):
                draw.rounded_rectangle([x, y, x + 11, y + 8], radius=2, fill=(70, 70, 74))
        cell = (width - 24) // len(keys)
        durations = [renders["shots"][key].duration or 0 for key in keys]
        for index, key in enumerate(keys):
            path, provenance = _frame_provenance(kind, key, renders)
            _paste(image, draw, path, (12 + index * cell + 3, strip_top + 20, cell - 6, strip_h - 22), "", frames,
                   **provenance)
        total, x = sum(durations), 24.0
        line_y = strip_top + strip_h + 40
        draw.text((24, line_y - 28), f"animatic.mp4 - {total:g} s at 24 fps, with .edl and .csv",
                  fill=(200, 200, 204), font=font(14))
        for key, seconds in zip(keys, durations):
            span = (width - 48) * seconds / total
            draw.rectangle([x, line_y, x + span - 3, line_y + 26], fill=(60, 90, 130))
            label = f"{key} {seconds:g}s"
            if draw.textlength(label, font=font(11)) > span - 10:
                label = f"{seconds:g}s"
            draw.text((x + 5, line_y + 6), label, fill=(235, 235, 235), font=font(11))
            x += span
    draw.text((24, height - 20), "rendered by LookDev Mini (the repository's teaching-size model), seeded",
              fill=(120, 120, 128), font=font(11))
    return image, frames


def provenance(name, renders, frames):
    import mini_model

    return {"workflow": name, "model": mini_model.VERSION, "checkpoint": renders["checkpoint"],
            "renderer": "scripts/render_thumbnails.py", "lora_steps": renders["lora_steps"], "frames": frames}


def write_card(path, image, record):
    """JPEG with its provenance as the comment, atomically; the quality drops until it is small."""
    alias_pack()
    from lookdev.trainer.fileio import write_image

    comment = json.dumps({PROVENANCE_KEY: record}, separators=(",", ":")).encode()
    for quality in range(QUALITY, 40, -5):
        written = write_image(path, image, "JPEG", quality=quality, optimize=True, comment=comment)
        if Path(written).stat().st_size <= MAX_BYTES:
            return written
    raise RuntimeError(f"{path}: over {MAX_BYTES} bytes even at quality 45")


def render_all(titles, out=None):
    """Write workflows/<name>.jpg for every workflow in `titles` ({name: (title, line)})."""
    with tempfile.TemporaryDirectory(prefix="lookdev-thumbnails-") as scratch:
        renders = render(Path(out) if out else Path(scratch))
        for name, (title, line) in titles.items():
            image, frames = card(name, title, line, renders)
            path = write_card(WORKFLOWS / f"{name}.jpg", image, provenance(name, renders, frames))
            print(f"wrote {Path(path).relative_to(ROOT)} ({Path(path).stat().st_size // 1000} KB)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="keep the server's base folder (renders, log) here; default: a temporary folder")
    args = parser.parse_args(argv)
    from build_workflows import TITLES

    render_all(TITLES, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
