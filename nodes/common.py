"""Names and small helpers shared by every LookDev node."""

from ..trainer import comfy_bridge

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
    """An input declared by a config field (trainer/options.py): its help is the tooltip, and its
    default, min, max, step and choices are the node's. `options` adds widget-only settings."""
    import dataclasses

    spec = config_cls.__dataclass_fields__[field_name]
    default = spec.default if spec.default is not dataclasses.MISSING else None
    limits = {key: spec.metadata[key] for key in ("min", "max", "step") if key in spec.metadata}
    choices = spec.metadata.get("choices")
    if choices:
        return (list(choices), {"tooltip": spec.metadata["help"], "default": default, **options})
    kind = kind or {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}[type(default)]
    return (kind, {"tooltip": spec.metadata["help"], "default": default, **limits, **options})


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
