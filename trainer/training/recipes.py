"""Training recipes: named sets of advanced trainer values for one model family.

Rule (documented on the node and in the README): a recipe fills only the inputs still at
TrainConfig's default; a value you changed wins. The report lists what the recipe set and what it
left to you. Only resolution-independent values are here (no sizes, no batch size: those depend
on the machine and the dataset). A recipe for another family than the MODEL's is refused before
anything runs, since e.g. SD1.5's learning rate on a Flux model is a silent bad run.
"""

import dataclasses
from dataclasses import dataclass

CUSTOM = "custom"


@dataclass(frozen=True)
class Recipe:
    families: tuple  # LookDev architecture names (lora.keys.ARCHITECTURES) it is for; () = any
    values: dict  # TrainConfig field -> value
    help: str  # what it is for, shown in the node's tooltip


# What the flow-model trainers (ai-toolkit, musubi-tuner) share: AdamW (8-bit there) at a constant
# rate, no warmup, sigmoid (logit-normal) timesteps, no noise offset or min-SNR, gradient checkpointing.
FLOW_MODEL = {"optimizer": "AdamW", "schedule": "constant", "warmup_steps": 0, "timestep_sampling": "logit-normal",
              "noise_offset": 0.0, "min_snr_gamma": 0.0, "gradient_checkpointing": True}

RECIPES = {
    CUSTOM: Recipe((), {}, "the inputs exactly as set on the node"),
    # LookDev's own: checks the whole graph runs end to end in minutes; not for a finished look.
    "quick test": Recipe((), {
        "steps": 60, "learning_rate": 5e-4, "rank": 4, "alpha": 4.0, "optimizer": "AdamW",
        "schedule": "constant", "warmup_steps": 0, "validation_steps": 8,
    }, "a short run to check the graph works on any model (60 steps, rank 4); not for a finished look"),
    # kohya-ss sd-scripts community practice for SD1.5 style LoRAs: unet lr 1e-4, dim 16 / alpha 8,
    # AdamW, cosine with a short warmup, noise offset 0.05 (kohya's --noise_offset, 0.05-0.1 is
    # usual), min-SNR gamma 5 (kohya's --min_snr_gamma, 5 as in the paper). High-noise timesteps:
    # LookDev's choice for a look (registries.TIMESTEP_SAMPLERS); kohya samples uniformly.
    "SD1.5 style": Recipe(("sd1", "sd2"), {
        "steps": 1500, "learning_rate": 1e-4, "rank": 16, "alpha": 8.0, "optimizer": "AdamW",
        "schedule": "cosine", "warmup_steps": 100, "timestep_sampling": "style (high noise)",
        "noise_offset": 0.05, "min_snr_gamma": 5.0, "targets": "attention + feed-forward",
    }, "SD1.x / SD2.x style LoRA, kohya community values (rank 16, lr 1e-4, noise offset 0.05, min-SNR 5)"),
    # kohya-ss SDXL practice: lr 1e-4, dim 32 / alpha 16, noise offset 0.0357 (the value SDXL base
    # was trained with, as kohya's SDXL notes say), min-SNR 5. Targets in both kohya recipes:
    # networks.lora adapts every Linear of the transformer blocks, i.e. attention + feed-forward.
    "SDXL style": Recipe(("sdxl",), {
        "steps": 1500, "learning_rate": 1e-4, "rank": 32, "alpha": 16.0, "optimizer": "AdamW",
        "schedule": "cosine", "warmup_steps": 100, "timestep_sampling": "style (high noise)",
        "noise_offset": 0.0357, "min_snr_gamma": 5.0, "targets": "attention + feed-forward",
    }, "SDXL style LoRA, kohya community values (rank 32 / alpha 16, lr 1e-4, noise offset 0.0357, min-SNR 5)"),
    # ostris ai-toolkit's Flux LoRA example config: linear 16 / alpha 16, lr 1e-4, 2000 steps, and
    # the FLOW_MODEL values above.
    "Flux style": Recipe(("flux",), {
        "steps": 2000, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, **FLOW_MODEL,
    }, "Flux.1 style LoRA, ai-toolkit's values (rank 16 / alpha 16, lr 1e-4, constant, logit-normal timesteps)"),
    # ai-toolkit's flow-model values as for Flux, at 3000 steps as its Z-Image Turbo example
    # (community practice; Z-Image has no official trainer settings).
    "Z-Image style": Recipe(("zimage",), {
        "steps": 3000, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, **FLOW_MODEL,
    }, "Z-Image style LoRA, ai-toolkit's flow-model values (rank 16, lr 1e-4, constant, logit-normal timesteps)"),
    # kohya-ss musubi-tuner's Qwen-Image docs: lr 5e-5, network_dim 16, AdamW (8-bit there),
    # gradient checkpointing, its qwen_shift timesteps (logit-normal here, shifted by image size as
    # qwen_shift shifts them: comfy_bridge._RESOLUTION_SHIFT). Alpha = rank, as ai-toolkit.
    "Qwen-Image style": Recipe(("qwen_image",), {
        "steps": 2000, "learning_rate": 5e-5, "rank": 16, "alpha": 16.0, **FLOW_MODEL,
    }, "Qwen-Image style LoRA, musubi-tuner's values (rank 16, lr 5e-5, constant, logit-normal timesteps "
       "shifted by image size)"),
    # kohya-ss musubi-tuner's Flux.2 docs: lr 1e-4, network_dim 32, AdamW (8-bit there), gradient
    # checkpointing, its flux2_shift timesteps (logit-normal here, shifted by image size as
    # flux2_shift shifts them: comfy_bridge._RESOLUTION_SHIFT). Alpha = rank, as ai-toolkit; 2000
    # steps as the Flux.1 recipe (musubi counts epochs).
    "Flux.2 style": Recipe(("flux2",), {
        "steps": 2000, "learning_rate": 1e-4, "rank": 32, "alpha": 32.0, **FLOW_MODEL,
    }, "Flux.2 dev style LoRA, musubi-tuner's values (rank 32, lr 1e-4, constant, logit-normal timesteps "
       "shifted by image size)"),
    # kohya-ss musubi-tuner's Wan docs: lr 2e-4, network_dim 32, AdamW (8-bit there), constant lr,
    # gradient checkpointing. musubi's 'shift' timestep sampling is not offered here: logit-normal
    # also favours mid-to-high noise. Wan has no 'style blocks' preset: attention + feed-forward.
    "Wan style": Recipe(("wan",), {
        "steps": 1500, "learning_rate": 2e-4, "rank": 32, "alpha": 32.0, **FLOW_MODEL,
        "targets": "attention + feed-forward",
    }, "Wan 2.1 / 2.2 style LoRA, musubi-tuner's values (rank 32, lr 2e-4, constant)"),
}

RECIPE_HELP = ("Sensible advanced values for a model family. It fills only the inputs still at their "
               "default; any input you changed wins. The report lists what it set. "
               + " ".join(f"'{name}': {recipe.help}." for name, recipe in RECIPES.items()))


def apply_recipe(config, arch, family_names):
    """(config with the recipe's values filled in, report lines). ValueError when the recipe is for
    another model family. `family_names`: arch -> human name (lora.keys.ARCHITECTURES)."""
    recipe = RECIPES[config.recipe]
    if recipe.families and arch not in recipe.families:
        fitting = [name for name, other in RECIPES.items() if not other.families or arch in other.families]
        raise ValueError(
            f"recipe {config.recipe!r} is for {' / '.join(family_names[f] for f in recipe.families)} models, "
            f"but this model is {family_names.get(arch, arch)}. Nothing was written. For this model pick "
            + ", ".join(repr(name) for name in fitting) + ".")
    if not recipe.values:
        return config, []
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    chosen = {name: value for name, value in recipe.values.items()
              if getattr(config, name) == defaults[name] != value}
    kept = [name for name in recipe.values if name not in chosen and getattr(config, name) != recipe.values[name]]
    lines = [f"recipe {config.recipe}: set " + (", ".join(f"{name} {value}" for name, value in chosen.items())
                                                 or "nothing (every value it sets was changed on the node)")]
    if kept:
        lines.append("recipe left your values: " + ", ".join(f"{name} {getattr(config, name)}" for name in kept))
    return dataclasses.replace(config, **chosen), lines
