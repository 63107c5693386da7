"""One trigger word, set once: on the dataset, carried by the dataset and the trained LoRA's
metadata to the captioner, trainer and Shot List. A value given on one of those nodes overrides
the carried one for that node, and its report says which one it used and why."""


def pick_trigger(given, carried, carried_from):
    """(trigger, report line). `given`: the node's own input; `carried`: the trigger that came with
    the data, from `carried_from` (e.g. "the dataset", "LoRA noir.safetensors")."""
    given, carried = (given or "").strip(), (carried or "").strip()
    if given and carried and given != carried:
        return given, f"Trigger: {given!r} (set on this node; overrides {carried!r} from {carried_from})"
    if given:
        return given, f"Trigger: {given!r} (set on this node)"
    if carried:
        return carried, f"Trigger: {carried!r} (from {carried_from})"
    return "", "Trigger: (none)"
