"""ComfyUI node adapters. Each module holds one node family and exports NODES: {node id: class}.

Node ids are part of saved workflows: once shipped they never change.
"""

from . import animatic, caption, common, dataset, lora, storyboard, train, video

_FAMILIES = [dataset, video, caption, train, lora, storyboard, animatic]  # node-family modules, in menu order


def _collect():
    classes, names = {}, {}
    for family in _FAMILIES:
        for node_id, cls in family.NODES.items():
            if node_id in classes:
                raise RuntimeError(f"LookDev node id {node_id} is defined twice")
            classes[node_id] = cls
            names[node_id] = cls.DISPLAY_NAME
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _collect()
