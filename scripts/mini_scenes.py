"""Everyday scenes in colour, with captions, for pretraining the LookDev Mini base model.

Procedurally drawn with Pillow and deterministic (the scene's seed decides everything): sky,
ground and horizon, buildings with windows, street lamps, cars, figures and trees, in daylight,
dusk and night palettes, at three framings (wide, medium, close-up). The caption names what is
drawn, e.g. "a red car on a street under a blue sky, wide shot". The style is plain on purpose
(flat colour, no grain, no vignette) so a style LoRA has something to change.

The light has structure, as in footage: hard sun shadows and a shaded side on buildings by day,
dark silhouettes against the sky at dusk, and at night near-black ground with pools of lamp
light, lit windows and headlight beams. (Recipe 1 lit every scene evenly; a model pretrained on
it rendered low-contrast frames that no style LoRA could push to a high-contrast look.)
"""

import random

from PIL import Image, ImageDraw

RECIPE_VERSION = 2

# (sky top, sky bottom, sun shadows, light on the scene, window, lamp on, caption phrase)
TIMES = {
    "day": ((60, 125, 225), (200, 225, 250), True, 1.0, (60, 80, 110), False, "under a blue sky"),
    "dusk": ((70, 40, 120), (255, 175, 80), False, 0.35, (255, 200, 110), True, "at dusk"),
    "night": ((3, 5, 18), (14, 20, 50), False, 0.2, (255, 225, 140), True, "at night"),
}
LAMP_LIGHT = (255, 215, 140)
PLACES = {
    "street": ((70, 70, 76), "on a street"),
    "park": ((62, 125, 52), "in a park"),
}
CAR_COLOURS = {"red": (200, 40, 40), "blue": (40, 80, 200), "yellow": (230, 200, 40), "white": (235, 235, 235),
               "green": (40, 150, 70)}
COAT_COLOURS = {"red": (190, 40, 50), "blue": (40, 70, 170), "brown": (120, 80, 40), "black": (25, 25, 25)}
BUILDING_COLOURS = ((170, 80, 60), (200, 180, 140), (140, 140, 150), (110, 90, 80))
SUBJECTS = ("car", "figure", "lamp", "tree", "building", "car and lamp", "figure and tree")
FRAMINGS = {"wide shot": 0.6, "medium shot": 1.0, "close-up": 1.7}
SIZES = ((128, 128), (168, 96), (192, 80), (96, 168), (152, 112))


def _shade(colour, factor):
    return tuple(max(0, min(255, int(c * factor))) for c in colour)


def _mix(colour, other, t):
    return tuple(int(a + (b - a) * t) for a, b in zip(colour, other))


def _pool(draw, time, x, y, radius, ground):
    """A pool of lamp light on the ground around (x, y): the ground lit towards LAMP_LIGHT."""
    if not TIMES[time][5]:
        return
    for r in range(radius, 0, -max(1, radius // 8)):
        t = (1 - r / radius) ** 0.7
        draw.ellipse([x - r, y - r // 2, x + r, y + r // 2], fill=_mix(ground, LAMP_LIGHT, 0.2 + 0.75 * t))


def _sun_shadow(draw, time, x, base, width, length, ground):
    """A hard shadow cast along the ground by the sun, low on the left."""
    if TIMES[time][2]:
        draw.polygon([(x, base), (x + width, base), (x + width + length, base + length // 4),
                      (x + length, base + length // 4)], fill=_shade(ground, 0.45))


def _sky_and_ground(draw, size, time, place, horizon):
    width, height = size
    top, bottom, _, light, *_ = TIMES[time]
    for y in range(horizon):
        t = y / max(1, horizon - 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    ground = _shade(PLACES[place][0], light)
    draw.rectangle([0, horizon, width, height], fill=ground)
    if place == "street":  # kerb line
        draw.line([(0, horizon + (height - horizon) // 3), (width, horizon + (height - horizon) // 3)],
                  fill=_shade((180, 180, 180), light), width=max(1, height // 60))
    return ground


def _building(draw, size, rng, time, x, w, top, horizon):
    light, window = TIMES[time][3], TIMES[time][4]
    facade = _shade(rng.choice(BUILDING_COLOURS), light)
    draw.rectangle([x, top, x + w, horizon], fill=facade)
    if TIMES[time][2]:  # the side away from the sun in shade
        draw.rectangle([x + int(w * 0.7), top, x + w, horizon], fill=_shade(facade, 0.5))
    step = max(6, w // 5)
    for wy in range(top + step // 2, horizon - step // 2, step):
        for wx in range(x + step // 3, x + w - step // 2, step):
            lit = time == "day" or rng.random() < 0.45
            draw.rectangle([wx, wy, wx + step // 2, wy + step // 2],
                           fill=window if lit else _shade((40, 40, 50), light))


def _lamp(draw, size, time, x, base, scale, ground):
    height = size[1]
    pole = int(height * 0.55 * scale)
    top = base - pole
    _pool(draw, time, x, base, int(height * 0.9 * scale), ground)
    _sun_shadow(draw, time, x, base, max(2, int(3 * scale)), pole // 2, ground)
    draw.line([(x, top), (x, base)], fill=(40, 40, 45), width=max(2, int(3 * scale)))
    r = max(3, int(5 * scale))
    if TIMES[time][5]:
        for glow in range(r * 4, r, -max(1, r // 2)):
            f = 1 - glow / (r * 4)
            draw.ellipse([x - glow, top - glow, x + glow, top + glow], fill=_shade((255, 210, 120), 0.35 + 0.5 * f))
    draw.ellipse([x - r, top - r, x + r, top + r], fill=(255, 240, 170) if TIMES[time][5] else (200, 200, 190))


def _car(draw, size, time, x, base, scale, colour, ground):
    w, h = int(60 * scale), int(18 * scale)
    body = _shade(CAR_COLOURS[colour], max(0.3, TIMES[time][3]))
    _sun_shadow(draw, time, x, base, w, int(1.8 * h), ground)
    if time != "day":  # headlight beam along the road
        draw.polygon([(x + w, base - h + 5), (x + w + int(90 * scale), base - 2 * h),
                      (x + w + int(90 * scale), base + h // 2)], fill=_mix(ground, LAMP_LIGHT, 0.6))
    draw.rounded_rectangle([x, base - h, x + w, base], radius=max(1, h // 3), fill=body)
    draw.rounded_rectangle([x + w // 5, base - int(1.8 * h), x + int(0.75 * w), base - h + 1], radius=max(1, h // 3),
                           fill=body)
    draw.rectangle([x + w // 4, base - int(1.6 * h), x + int(0.7 * w), base - h - 1], fill=(150, 190, 220))
    wheel = max(2, h // 2)
    for wx in (x + w // 5, x + 4 * w // 5):
        draw.ellipse([wx - wheel, base - wheel, wx + wheel, base + wheel], fill=(20, 20, 20))
    if time != "day":
        draw.ellipse([x + w - 4, base - h + 2, x + w + 2, base - h + 8], fill=(255, 250, 200))


def _figure(draw, size, time, x, base, scale, colour, ground):
    body = int(size[1] * 0.3 * scale)
    coat = _shade(COAT_COLOURS[colour], max(0.35, TIMES[time][3]))
    _sun_shadow(draw, time, x - body // 5, base, 2 * body // 5, body, ground)
    draw.polygon([(x - body // 5, base), (x + body // 5, base), (x + body // 8, base - body),
                  (x - body // 8, base - body)], fill=coat)
    head = max(2, body // 7)
    draw.ellipse([x - head, base - body - 2 * head, x + head, base - body], fill=_shade((225, 180, 140), 0.9))


def _tree(draw, size, time, x, base, scale, ground):
    height = int(size[1] * 0.45 * scale)
    light = max(0.2, TIMES[time][3])
    _sun_shadow(draw, time, x - height // 3, base, 2 * height // 3, height // 2, ground)
    draw.rectangle([x - max(1, height // 14), base - height // 2, x + max(1, height // 14), base],
                   fill=_shade((100, 70, 40), light))
    r = height // 3
    draw.ellipse([x - r, base - height, x + r, base - height + 2 * r], fill=_shade((50, 140, 60), light))


def scene_spec(seed):
    """The random choices of scene `seed`: time, place, subject, colours, framing, size."""
    rng = random.Random(f"lookdev-mini-{RECIPE_VERSION}-{seed}")
    return {"time": rng.choice(tuple(TIMES)), "place": rng.choice(tuple(PLACES)),
            "subject": rng.choice(SUBJECTS), "car": rng.choice(tuple(CAR_COLOURS)),
            "coat": rng.choice(tuple(COAT_COLOURS)), "framing": rng.choice(tuple(FRAMINGS)),
            "size": rng.choice(SIZES), "layout": rng.random(), "seed": seed}


def caption(spec):
    """What the scene shows, in words: subject, place, time of day, framing."""
    subject = {"car": f"a {spec['car']} car", "figure": f"a person in a {spec['coat']} coat",
               "lamp": "a street lamp", "tree": "a tree", "building": "a building with windows",
               "car and lamp": f"a {spec['car']} car and a street lamp",
               "figure and tree": f"a person in a {spec['coat']} coat and a tree"}[spec["subject"]]
    return f"{subject} {PLACES[spec['place']][1]} {TIMES[spec['time']][6]}, {spec['framing']}"


def draw(spec, size=None):
    """The scene as an RGB image (at `size`, default the spec's own)."""
    size = tuple(size or spec["size"])
    width, height = size
    rng = random.Random(f"draw-{spec['seed']}")
    scale = FRAMINGS[spec["framing"]] * height / 128
    horizon = int(height * {"wide shot": 0.55, "medium shot": 0.62, "close-up": 0.72}[spec["framing"]])
    horizon += int((spec["layout"] - 0.5) * height * 0.12)
    image = Image.new("RGB", size)
    d = ImageDraw.Draw(image)
    ground = _sky_and_ground(d, size, spec["time"], spec["place"], horizon)
    time, subject = spec["time"], spec["subject"]
    if spec["place"] == "street" or subject == "building":  # a skyline behind street scenes
        count = 3 if subject == "building" else 2
        for i in range(count):
            w = int(width * rng.uniform(0.18, 0.3) * (1.4 if subject == "building" else 1))
            x = int((i + rng.uniform(0, 0.4)) * width / count)
            top = int(horizon * rng.uniform(0.15, 0.5) / (1.3 if subject == "building" else 1))
            _building(d, size, rng, time, x, w, top, horizon)
    base = horizon + int((height - horizon) * 0.6)
    x = int(width * (0.25 + 0.5 * spec["layout"]))
    if spec["place"] == "street" and "lamp" not in subject:  # light from a lamp out of frame
        _pool(d, time, int(width * (1 - spec["layout"])), base, int(height * 0.8 * scale), ground)
    if "lamp" in subject:
        _lamp(d, size, time, int(width * 0.8) if "car" in subject else x, base, scale, ground)
    if "tree" in subject:
        _tree(d, size, time, int(width * 0.75) if "figure" in subject else x, base, scale * 1.2, ground)
    if "car" in subject:
        _car(d, size, time, max(0, x - int(30 * scale)) if "lamp" not in subject else int(width * 0.15), base, scale,
             spec["car"], ground)
    if "figure" in subject:
        _figure(d, size, time, int(width * 0.3) if "tree" in subject else x, base, scale, spec["coat"], ground)
    return image


def scene(seed, size=None):
    """(RGB image, caption) of scene `seed`."""
    spec = scene_spec(seed)
    return draw(spec, size), caption(spec)
