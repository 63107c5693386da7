"""Training recipes (trainer/training/recipes.py): every recipe gives a valid config, fills only the
inputs left at their defaults, and is refused on another model family."""

import dataclasses
import re

import pytest

from lookdev.trainer.lora.keys import ARCHITECTURES, TRAINABLE
from lookdev.trainer.training.config import TrainConfig
from lookdev.trainer.training.recipes import CUSTOM, RECIPES, apply_recipe

FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# Sizes and batch depend on the machine and the dataset: no recipe sets them.
RESOLUTION_DEPENDENT = {"validation_size", "batch_size", "grad_accum", "name", "trigger", "seed", "recipe"}


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_gives_a_valid_config_on_its_families(name):
    recipe = RECIPES[name]
    assert set(recipe.values) <= FIELDS - RESOLUTION_DEPENDENT
    for arch in recipe.families or TRAINABLE:
        config, lines = apply_recipe(TrainConfig(recipe=name).validate(), arch, ARCHITECTURES)
        config.validate()
        assert {key: getattr(config, key) for key in recipe.values} == recipe.values
        assert bool(lines) == bool(recipe.values) or name == CUSTOM


@pytest.mark.parametrize("name", [n for n, r in RECIPES.items() if r.families])
def test_a_recipe_for_another_family_is_refused(name):
    other = next(arch for arch in TRAINABLE if arch not in RECIPES[name].families)
    with pytest.raises(ValueError, match=re.escape(f"but this model is {ARCHITECTURES[other]}. Nothing")):
        apply_recipe(TrainConfig(recipe=name), other, ARCHITECTURES)
    with pytest.raises(ValueError, match=f"^recipe '{name}' is for "):
        apply_recipe(TrainConfig(recipe=name), other, ARCHITECTURES)


def test_values_changed_on_the_node_win_and_are_listed():
    config = TrainConfig(recipe="SDXL style", rank=8, learning_rate=3e-4)
    config, lines = apply_recipe(config, "sdxl", ARCHITECTURES)
    assert (config.rank, config.learning_rate, config.alpha, config.noise_offset) == (8, 3e-4, 16.0, 0.0357)
    assert lines[1] == "recipe left your values: learning_rate 0.0003, rank 8"
    assert lines[0] == ("recipe SDXL style: set steps 1500, warmup_steps 100, noise_offset 0.0357, min_snr_gamma 5.0, "
                        "targets attention + feed-forward")  # alpha 16 is already the default: not listed


def test_custom_changes_nothing():
    config = TrainConfig()
    assert apply_recipe(config, "sd1", ARCHITECTURES) == (config, [])


def test_unknown_recipe_is_a_clear_error():
    with pytest.raises(ValueError, match=r"recipe 'SD9 style' is not one of \['custom', 'quick test'"):
        TrainConfig(recipe="SD9 style").validate()
