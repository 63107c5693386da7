"""A small style dataset for the demo: procedurally drawn scenes in a high-contrast noir look
(black and white, hard light, deep shadows, film grain, vignette), each with a caption of its
content: noir night scenes, and everyday street and park scenes by day, at dusk and at night.

Pillow only, and deterministic: the same seed gives the same bytes, so the trainer's latent cache
hits on a second run.
"""

import math
import random
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

SIZES = ((256, 160), (256, 160), (160, 256), (224, 224))  # widescreen, portrait, square: several buckets


def _sky(draw, size, rng, level):
    width, height = size
    for y in range(height):
        shade = int(level * (1 - y / height) ** 1.5)
        draw.line([(0, y), (width, y)], fill=shade)


def _street(draw, size, rng):
    width, height = size
    horizon = int(height * rng.uniform(0.45, 0.6))
    draw.polygon([(0, height), (width, height), (width // 2 + 8, horizon), (width // 2 - 8, horizon)], fill=80)
    for offset in range(3):  # wet reflections
        x = width // 2 + rng.randint(-30, 30)
        draw.line([(x, horizon + 10 + offset * 14), (x + rng.randint(-8, 8), height)], fill=150, width=2)
    return horizon


def _lamp(draw, size, rng, x):
    height = size[1]
    top = int(height * rng.uniform(0.15, 0.3))
    draw.line([(x, top), (x, height)], fill=8, width=4)
    radius = int(height * 0.45)
    for r in range(radius, 0, -3):
        glow = int(235 * (1 - r / radius) ** 2)
        draw.ellipse([x - r, top - r // 3, x + r, top + r], outline=glow)
    draw.ellipse([x - 6, top - 4, x + 6, top + 8], fill=255)


def _figure(draw, size, rng, x, scale=1.0):
    height = size[1]
    feet = int(height * rng.uniform(0.85, 0.95))
    body = int(height * 0.42 * scale)
    draw.polygon([(x - body // 6, feet), (x + body // 6, feet), (x + body // 8, feet - body),
                  (x - body // 8, feet - body)], fill=0)  # trench coat
    head = max(4, body // 9)
    draw.ellipse([x - head, feet - body - 2 * head, x + head, feet - body], fill=0)
    draw.line([(x - 2 * head, feet - body - int(1.6 * head)), (x + 2 * head, feet - body - int(1.6 * head))],
              fill=0, width=max(2, head // 2))  # hat brim
    draw.line([(x + head, feet + 2), (x + body // 2, feet + 6)], fill=6, width=max(3, body // 10))  # shadow


def _blinds(draw, size, rng):
    width, height = size
    angle = rng.uniform(-0.35, 0.35)
    for y in range(-height, 2 * height, 14):
        draw.polygon([(0, y), (width, y + int(width * math.tan(angle))),
                      (width, y + 7 + int(width * math.tan(angle))), (0, y + 7)], fill=215)


def _building(draw, size, rng):
    width, height = size
    x = rng.randint(0, width // 3)
    w = rng.randint(width // 4, width // 2)
    top = rng.randint(height // 6, height // 3)
    draw.rectangle([x, top, x + w, height], fill=12)
    for wy in range(top + 10, height - 20, 18):
        for wx in range(x + 6, x + w - 10, 16):
            if rng.random() < 0.3:
                draw.rectangle([wx, wy, wx + 7, wy + 10], fill=rng.choice((180, 220, 250)))


def _car(draw, size, rng):
    width, height = size
    y = int(height * 0.8)
    x = rng.randint(width // 8, width // 2)
    draw.rounded_rectangle([x, y - 26, x + 90, y], radius=8, fill=4)
    draw.rounded_rectangle([x + 18, y - 44, x + 66, y - 22], radius=10, fill=4)
    draw.ellipse([x + 84, y - 20, x + 94, y - 10], fill=255)  # headlight
    draw.polygon([(x + 94, y - 18), (width, y - 40), (width, y + 12)], fill=120)


def _stairs(draw, size, rng):
    width, height = size
    step = rng.randint(12, 18)
    for i in range(0, height // step + 1):
        y = height - i * step
        x = i * step
        draw.rectangle([x, y - step, width, y], fill=30 + (i % 2) * 150)


SCENES = (
    ("a lone streetlamp on an empty street at night", lambda d, s, r: (_street(d, s, r), _lamp(d, s, r, s[0] // 3))),
    ("a man in a trench coat and hat under a streetlamp",
     lambda d, s, r: (_street(d, s, r), _lamp(d, s, r, s[0] // 4), _figure(d, s, r, s[0] // 4 + 20))),
    ("an office seen through window blinds, a silhouette at the desk",
     lambda d, s, r: (_blinds(d, s, r), _figure(d, s, r, s[0] // 2, 1.3))),
    ("a city block at night with a few lit windows", lambda d, s, r: (_building(d, s, r), _building(d, s, r))),
    ("a car with its headlights on in a dark alley", lambda d, s, r: (_street(d, s, r), _car(d, s, r))),
    ("a staircase with a figure at the top", lambda d, s, r: (_stairs(d, s, r), _figure(d, s, r, s[0] * 3 // 4, 0.6))),
    ("two figures on a wet street between buildings",
     lambda d, s, r: (_building(d, s, r), _street(d, s, r), _figure(d, s, r, s[0] // 3, 0.8),
                      _figure(d, s, r, s[0] * 2 // 3, 0.7))),
    ("a lamp post and a parked car on a quiet street",
     lambda d, s, r: (_street(d, s, r), _car(d, s, r), _lamp(d, s, r, s[0] * 4 // 5))),
)
STYLE_TAGS = ("film noir", "black and white", "high contrast", "grainy")


def _grain(size, rng, strength):
    noise = Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))
    return noise.filter(ImageFilter.GaussianBlur(0.6)), strength


def _vignette(size):
    gradient = Image.radial_gradient("L").resize(size)  # 0 in the middle, 255 at the corners
    return gradient.point(lambda v: 255 - int(200 * (v / 255) ** 2))


def _noir_scene(index, rng):
    """A night scene drawn in grey: streets, lamps, figures, blinds, stairs."""
    caption, painter = SCENES[(index // 4) % len(SCENES)]
    size = SIZES[(index // 4) % len(SIZES)]  # the painters are laid out for these pairings
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    _sky(draw, size, rng, rng.randint(90, 140))
    painter(draw, size, rng)
    return image, caption


def _everyday_scene(index, rng):
    """An everyday street or park scene by day, at dusk or at night (the world LookDev Mini was
    pretrained on, from seeds it never saw), shot in black and white."""
    import mini_scenes

    spec = {**mini_scenes.scene_spec(5_000_000 + rng.randrange(1_000_000)),
            "time": ("day", "dusk", "night")[index % 3]}
    image = mini_scenes.draw(spec, SIZES[index % len(SIZES)]).convert("L")
    return image, mini_scenes.caption(spec).rsplit(",", 1)[0]  # the content, without the framing


def draw_scene(index, seed=0):
    """(image, content caption) of scene `index`: every fourth a noir night scene, the others
    everyday scenes, all in the same look (a style is consistent whatever the content)."""
    rng = random.Random(seed * 1000 + index)
    image, caption = (_noir_scene if index % 4 == 0 else _everyday_scene)(index, rng)
    size = image.size
    image = image.point(lambda v: max(0, min(255, int((v - 60) * 1.8 + 60))))  # crush blacks, push highlights
    noise, strength = _grain(size, rng, 0.18)
    image = Image.blend(image, ImageChops.overlay(image, noise), strength)
    image = ImageChops.multiply(image, _vignette(size))
    # A tag or two of the style in some captions, as real reference captions have; the caption
    # node strips them so the trigger word carries the look.
    tags = [tag for tag in STYLE_TAGS if rng.random() < 0.3]
    return image.convert("RGB"), ", ".join([caption, *tags])


def write_dataset(folder, count=16, seed=0):
    """Write `count` scenes as noir_NN.png with noir_NN.txt captions into `folder`; return it."""
    from _pack import alias_pack

    alias_pack()
    from lookdev.trainer.fileio import write_image, write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, caption = draw_scene(index, seed)
        stem = folder / f"noir_{index:02d}"
        write_image(stem.with_suffix(".png"), image, "PNG", optimize=False)
        write_text(stem.with_suffix(".txt"), caption + "\n")
    return folder
