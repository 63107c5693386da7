"""Names and small helpers shared by every LookDev node."""

from ..trainer import comfy_bridge

NODE_PREFIX = "LookDev"
CATEGORY = "LookDev"

# Custom socket types. Namespaced so they never collide with another pack's; LORA_STACK is the
# de-facto shared type of Comfyroll, Efficiency and LoRA-Manager stacks and keeps its name.
DATASET = "LOOKDEV_DATASET"
LORA = "LOOKDEV_LORA"
SHOTS = "LOOKDEV_SHOTS"
LORA_STACK = "LORA_STACK"


def tip(kind, tooltip, **options):
    """One INPUT_TYPES entry; every LookDev input carries a tooltip."""
    if not tooltip:
        raise ValueError("every LookDev input needs a tooltip")
    return (kind, {"tooltip": tooltip, **options})


def from_config(config_cls, field_name, kind=None, **options):
    """An input whose tooltip and default come from a config dataclass field's help/default."""
    import dataclasses

    spec = config_cls.__dataclass_fields__[field_name]
    default = spec.default if spec.default is not dataclasses.MISSING else None
    choices = spec.metadata.get("choices")
    if choices:
        return (list(choices), {"tooltip": spec.metadata["help"], "default": default, **options})
    kind = kind or {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}[type(default)]
    return (kind, {"tooltip": spec.metadata["help"], "default": default, **options})


def progress_reporter():
    """A callable(done, total) driving a ComfyUI progress bar on the running node; the bar is made
    on the first call, when the total is known."""
    bar = None

    def report(done, total):
        nonlocal bar
        if bar is None:
            bar = comfy_bridge.progress_bar(total)
        bar.update_absolute(done, total)

    return report


# Websocket events the pack sends to the browser that queued the prompt. web/lookdev_names.js
# mirrors these names and web/lookdev_progress.js draws them; tests/test_web_extension.py keeps
# the names in step. Every payload has:
#   node       the sending node's execution id (its UNIQUE_ID, a string; "5:12" inside subgraph 5)
#   prompt_id  the prompt being executed
#
# lookdev.train.progress, after every training step (trainer/training/run.py):
#   name          the LoRA's name
#   step, total   steps done and steps of the whole LoRA (1..total; a resumed run starts above 1)
#   loss          this step's training loss (mean over gradient-accumulation micro-batches)
#   loss_smooth   bias-corrected exponential moving average of the losses (beta 0.9, resumed
#                 history included)
#   lr            learning rate used for this step
#   elapsed_s     seconds since this run's first step (renders and checkpoints included;
#                 latent caching and model loading not)
#   eta_s         estimated seconds to the last step: this run's mean step time x steps left
#   resumed_from  the step this run resumed at (0 for a fresh run); earlier steps are not re-sent
# lookdev.train.preview, every validate_every steps before the last (the final renders are the
# node's own preview images):
#   step          the step the renders were made after
#   images        [{filename, subfolder, type: "temp"}], one per validation prompt, for /view
#   prompts       [str], the validation prompts, in the order of images
# lookdev.train.done, once the LoRA file is saved:
#   name, path    the LoRA's name and the absolute path of its .safetensors file
#   steps         steps of the whole LoRA (resumed steps included)
#   final_loss    the loss of the LoRA's last step (resumed history included; null if none)
#   seconds       seconds this run's training loop took
# lookdev.render.progress, after every sampling step of a storyboard render:
#   shot          the shot's text as the shot list gives it
#   index, total  which shot (1..total) and how many shots this render has
#   step, steps   sampling steps done in this shot (1..steps) and per shot
# lookdev.render.encoding, after each distinct prompt a storyboard render encodes, before sampling:
#   done, total   prompts encoded (1..total) and distinct prompts (positive and negative) to encode
EVENT_TRAIN_PROGRESS = "lookdev.train.progress"
EVENT_TRAIN_PREVIEW = "lookdev.train.preview"
EVENT_TRAIN_DONE = "lookdev.train.done"
EVENT_RENDER_PROGRESS = "lookdev.render.progress"
EVENT_RENDER_ENCODING = "lookdev.render.encoding"
