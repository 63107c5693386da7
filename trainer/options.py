"""One way to declare a config option: a dataclass field with its default, help (the node's
tooltip), and optional min, max, step and choices. Configs check themselves with check_options;
nodes read the same declaration (nodes/common.from_config), so a node's range is the library's."""

import dataclasses

LIMITS = ("min", "max", "step", "choices")
REQUIRED = dataclasses.MISSING  # the default of an option the caller must give


def option(default, help_text, factory=None, **limits):
    """A dataclass field: default, help and any of min, max, step (a value must be a multiple of
    an int step) and choices. `factory` (with default REQUIRED): makes each instance's own mutable
    default, e.g. dict."""
    unknown = set(limits) - set(LIMITS)
    if unknown:
        raise TypeError(f"unknown option limits {sorted(unknown)}; use {list(LIMITS)}")
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help_text, **limits})
    return dataclasses.field(default=default, metadata={"help": help_text, **limits})


def help_of(config_cls, name):
    return config_cls.__dataclass_fields__[name].metadata["help"]


def check_options(config):
    """ValueError naming the first field outside its declared min, max, step or choices."""
    for f in dataclasses.fields(config):
        value, meta = getattr(config, f.name), f.metadata
        low, high, step, choices = (meta.get(k) for k in LIMITS)
        if choices is not None and value not in choices:
            raise ValueError(f"{f.name} {value!r} is not one of {list(choices)}")
        if low is not None and high is not None and not low <= value <= high:
            multiple = f"a multiple of {step} " if isinstance(step, int) else ""
            raise ValueError(f"{f.name} must be {multiple}between {low} and {high}, got {value}")
        if low is not None and value < low:
            raise ValueError(f"{f.name} must be at least {low}, got {value}")
        if isinstance(step, int) and value % step:
            raise ValueError(f"{f.name} must be a multiple of {step} between {low} and {high}, got {value}")
    return config
