"""LookDev teaches a style, measured: on LookDev Mini (the repository's small trained base model),
through ComfyUI's executor, a noir LoRA moves the storyboard frames towards the noir references
while each shot keeps its layout; a colourful style moves them the other way; strength 0 gives
the base frames. Figures from trainer/style_metric.py.
"""

import numpy as np
import pytest
from PIL import ImageOps

from lookdev.trainer import style_metric

import demo_dataset
import demo_report

# Two LoRAs trained through the executor: part of the whole suite, not of the quick loop.
pytestmark = pytest.mark.slow

# Measured on LookDev Mini v2 (training seeds 42 / 7 / 123): base vs noir-styled frames of one shot
# 0.81 / 0.75 / 0.71 (mean of 4); a base frame against another shot's styled frame at most 0.29 at
# seed 42 and 0.38 in any run of the earlier settings. The bound sits between the two.
LAYOUT_BOUND = 0.5
RESOLUTION = 96  # frames
DATASET_RESOLUTION = 128  # the smallest custom training size
STEPS = 180
# LookDev Mini's settings for a style (as the demo's): its random-weight text encoder reads a
# trigger word as noise that moves the whole picture, so these LoRAs train and render without one;
# every linear and conv layer, since the look is tone and light (attention + feed-forward kept the
# lamp pools warm and overshot the contrast: 0.97x); uniform timesteps, because an epsilon model
# learns global colour mostly at mid noise levels; multi-resolution noise, so the noisiest steps stop
# showing the picture's large light and dark masses and the LoRA learns the crushed blacks and the
# vignette; 180 steps at 2.5e-3. Chosen on another storyboard (six shots of its own) at training
# seeds 1-6, not on this test: there 2.37-3.36x closer against 1.15-2.50x for the earlier 90 steps at
# 5e-3 without it. On these four shots it measured 2.59x / 2.01x / 1.51x at seeds 42 / 7 / 123 and
# 1.38-2.13x at seeds 1-6 (mean of the nine 1.80x; the earlier settings 1.05-1.69x, mean 1.47x): the
# 2x below holds at this test's seed, not at every seed. README: the style test.
TARGETS = "all linear and conv"
LEARNING_RATE = 2.5e-3
MULTIRES_NOISE = {"multires_noise_iterations": 6, "multires_noise_discount": 0.3}
TRIGGER = ""
VALIDATION = "a person in a black coat on a street at night, medium shot"
SHOTS = """SH010 | a white car and a street lamp on a street at night, wide shot | 101 | 1.78
SH020 | a person in a black coat on a street at night, medium shot | 102 | 1:1
SH040 | a building with windows on a street at dusk, wide shot | 104 | 1.78
SH060 | a tree in a park under a blue sky, wide shot | 106 | 1.78"""


def technicolor(image):
    """The noir scene in a saturated three-strip palette: deep blue shadows, magenta mids, yellow highlights."""
    return ImageOps.colorize(image.convert("L"), black=(10, 0, 110), mid=(235, 20, 140), white=(255, 235, 30))


@pytest.fixture(scope="module")
def datasets(comfy):
    noir = demo_dataset.write_dataset(comfy.input_dir / "style_noir", count=12)
    colour = comfy.input_dir / "style_technicolor"
    colour.mkdir(exist_ok=True)
    for path in sorted(noir.glob("*.png")):
        from PIL import Image

        with Image.open(path) as image:
            technicolor(image).save(colour / path.name)
        (colour / path.with_suffix(".txt").name).write_text(path.with_suffix(".txt").read_text())
    return noir, colour


@pytest.fixture(scope="module")
def mini_checkpoint(comfy):
    import mini_model

    return mini_model.ensure_checkpoint(comfy.models_dir("checkpoints")).name


def _train(name, folder, trigger, **validation):
    return {
        f"d_{name}": {"class_type": "LookDevLoadDataset", "inputs": {
            "folder": str(folder), "trigger": trigger, "resolution": "custom", "custom_resolution": DATASET_RESOLUTION,
            "no_upscale": False, "repeats": 1, "recursive": True, "caption_extension": "txt"}},
        f"t_{name}": {"class_type": "LookDevTrainStyleLoRA", "inputs": {
            "model": ["ck", 0], "clip": ["ck", 1], "vae": ["ck", 2], "dataset": [f"d_{name}", 0], "name": name,
            "steps": STEPS, "learning_rate": LEARNING_RATE, "rank": 8, "alpha": 8.0, "batch_size": 2, "targets": TARGETS,
            "seed": 42, "timestep_sampling": "uniform", "noise_offset": 0.0, "min_snr_gamma": 0.0, **MULTIRES_NOISE,
            "validation_prompts": "", "save_every": 0, "resume": False, **validation}},
    }


def _render(name, model_ref):
    return {
        f"r_{name}": {"class_type": "LookDevStoryboardRender", "inputs": {
            "model": model_ref, "clip": ["ck", 1], "vae": ["ck", 2], "shots": ["s", 0], "negative": "",
            "sampler": "euler", "scheduler": "normal", "steps": 8, "cfg": 5.0, "aspect": "1.78",
            "base_resolution": RESOLUTION, "width": 64, "height": 64, "folder": f"style_e2e/{name}"}},
    }


@pytest.fixture(scope="module")
def frames(comfy, datasets, mini_checkpoint):
    noir, colour = datasets
    prompt = {
        "ck": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": mini_checkpoint}},
        "s": {"class_type": "LookDevShotList", "inputs": {
            "shots": SHOTS, "style_prefix": "", "style_suffix": "", "trigger_words": TRIGGER,
            "seed_policy": "per-shot seeds", "base_seed": 0}},
        "zero": {"class_type": "LookDevApplyLoRA", "inputs": {
            "model": ["ck", 0], "lora_name": "None", "strength_model": 0.0, "strength_clip": 0.0,
            "block_preset": "all", "block_weights": "", "lora": ["t_noir", 1]}},
        **_train("noir", noir, TRIGGER, validation_prompts=VALIDATION, validate_every=STEPS // 3,
                 validation_steps=6, validation_size=64),
        **_train("technicolor", colour, TRIGGER),
        **_render("base", ["ck", 0]), **_render("noir", ["t_noir", 0]),
        **_render("technicolor", ["t_technicolor", 0]), **_render("zero", ["zero", 0]),
    }
    result = comfy.run(prompt, fresh=True)
    shots = [line.split("|")[0].strip() for line in SHOTS.splitlines()]
    as_arrays = {name: [demo_report.load_rgb(comfy.output_dir / "style_e2e" / name / f"{shot}.png") for shot in shots]
                 for name in ("base", "noir", "technicolor", "zero")}
    refs = {name: [demo_report.load_rgb(path, DATASET_RESOLUTION) for path in sorted(folder.glob("*.png"))]
            for name, folder in (("noir", noir), ("technicolor", colour))}
    return as_arrays, refs, result


def _noir_figures(rendered, refs):
    base = style_metric.style_distance(rendered["base"], refs["noir"])
    styled = style_metric.style_distance(rendered["noir"], refs["noir"])
    layout = style_metric.mean_layout_similarity(rendered["base"], rendered["noir"])
    wide = [0, 2, 3]  # the 1.78 shots: a base frame against another shot's styled frame
    unrelated = max(style_metric.layout_similarity(rendered["base"][i], rendered["noir"][j])
                    for i in wide for j in wide if i != j)
    print(f"noir: base {base:.3f} styled {styled:.3f} ({base / styled:.2f}x closer), "
          f"layout {layout:.3f}, unrelated shots at most {unrelated:.3f}")
    return base, styled, layout, unrelated


def test_noir_lora_moves_frames_towards_the_references_and_keeps_the_shots(frames):
    rendered, refs, _ = frames
    base, styled, layout, unrelated = _noir_figures(rendered, refs)
    assert styled < base, (base, styled)
    assert layout > LAYOUT_BOUND > unrelated, (layout, unrelated)
    # The look itself: the noir frames lost much of their colour.
    assert style_metric.set_stats(rendered["noir"]).chroma < 0.6 * style_metric.set_stats(rendered["base"]).chroma


def test_noir_lora_brings_frames_twice_as_close(frames):
    rendered, refs, _ = frames
    base, styled, _, _ = _noir_figures(rendered, refs)
    assert styled * 2 <= base, (base, styled)


def test_a_colourful_style_moves_frames_the_other_way(frames):
    rendered, refs, _ = frames
    base, colour = style_metric.set_stats(rendered["base"]), style_metric.set_stats(rendered["technicolor"])
    assert colour.chroma > base.chroma
    assert style_metric.style_distance(rendered["technicolor"], refs["noir"]) > \
        style_metric.style_distance(rendered["base"], refs["noir"])
    assert style_metric.style_distance(rendered["technicolor"], refs["technicolor"]) < \
        style_metric.style_distance(rendered["base"], refs["technicolor"])


def test_strength_zero_gives_the_base_frames(frames):
    rendered, _, _ = frames
    for base, zero in zip(rendered["base"], rendered["zero"], strict=True):
        assert np.array_equal(base, zero)


def test_validation_rounds_report_the_style_distance(frames):
    _, _, result = frames
    rounds = [(event["step"], event["style_distance"]) for event in result.events_named("lookdev.train.preview")
              if event["prompts"] == [VALIDATION]]
    assert [step for step, _ in rounds] == [STEPS // 3, 2 * STEPS // 3]  # rounds before the last step
    assert all(isinstance(distance, float) and distance > 0 for _, distance in rounds)
    [report] = result.ui["t_noir"]["text"]
    assert "validation style distance to the dataset (lower is closer): " + ", ".join(
        f"step {step}: {distance:.3f}" for step, distance in rounds) in report
