"""Names and small helpers shared by every LookDev node."""

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
