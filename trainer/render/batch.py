"""Headless batch rendering, the library part: the workflow one shot is rendered with (a copy whose
LookDev Shot List node holds just that shot) and the checks on what comes back. The batch client
itself, with its command line and scheduling, is scripts/batch_render.py."""

import copy
import io
import json
from dataclasses import replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .comfy_http import ShotError
from .framing import SEED_POLICIES, seed_for
from .shots import format_shot_line

SHOT_NODE_CLASS = "LookDevShotList"
SHOTS_INPUT = "shots"
SHOTS_FILE_INPUT = "shots_file"
SHEET_NAME = "_contact_sheet.png"
SUMMARY_NAME = "_batch_summary.json"
EXTRAS_FOLDER = "_extras"


def load_workflow(path):
    """An API-format workflow {node_id: {"class_type", "inputs"}} from a JSON file."""
    path = Path(path)
    try:
        workflow = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ValueError(f"workflow {path} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"workflow {path} is not a JSON file: {exc}") from exc
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        raise ValueError(f"workflow {path} is in ComfyUI's editor format; open it in ComfyUI and use "
                         "Workflow > Export (API), then pass that file")
    if not isinstance(workflow, dict) or not workflow or not all(
            isinstance(node, dict) and "class_type" in node and isinstance(node.get("inputs"), dict)
            for node in workflow.values()):
        raise ValueError(f"workflow {path} is not in ComfyUI API format ({{node id: {{class_type, inputs}}}}); "
                         "export it with Workflow > Export (API)")
    return workflow


def find_shot_node(workflow, node_id=None):
    """The id of the node whose `shots` input receives each shot; ValueError if ambiguous or missing."""
    if node_id is not None:
        node = workflow.get(str(node_id))
        if node is None:
            raise ValueError(f"the workflow has no node {node_id!r}; its nodes are {', '.join(workflow)}")
        candidates = [str(node_id)]
    else:
        candidates = [key for key, node in workflow.items() if node["class_type"] == SHOT_NODE_CLASS]
        if not candidates:
            raise ValueError(f"the workflow has no LookDev Shot List node ({SHOT_NODE_CLASS}); add one, "
                             "or name the node to fill with --shot-node")
        if len(candidates) > 1:
            raise ValueError(f"the workflow has {len(candidates)} Shot List nodes ({', '.join(candidates)}); "
                             "choose one with --shot-node")
    value = workflow[candidates[0]]["inputs"].get(SHOTS_INPUT)
    if not isinstance(value, str):
        raise ValueError(f"node {candidates[0]} needs a '{SHOTS_INPUT}' text input typed into the node "
                         f"(found {'a link from another node' if isinstance(value, list) else 'none'})")
    return candidates[0]


def shot_workflow(workflow, node_id, shot, index):
    """A copy of `workflow` rendering only `shot` (the `index`-th of the full list).

    If the node has literal `seed_policy` and `base_seed` inputs, the seed the shot would get in
    the full list is written into its line and the policy set to "per-shot seeds", so a batch
    renders the same frames as the whole list rendered at once. A `shots_file` the node names is
    cleared: the shot now comes as text, and the node takes one or the other.
    """
    job = copy.deepcopy(workflow)
    inputs = job[node_id]["inputs"]
    if SHOTS_FILE_INPUT in inputs:
        inputs[SHOTS_FILE_INPUT] = ""
    policy, base_seed = inputs.get("seed_policy"), inputs.get("base_seed")
    if policy in SEED_POLICIES and isinstance(base_seed, int):
        shot = replace(shot, seed=seed_for(policy, base_seed, index, shot))
        inputs["seed_policy"] = "per-shot seeds"
    inputs[SHOTS_INPUT] = format_shot_line(shot)
    return job


def readable_image(path):
    """True if `path` is a complete image file."""
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except (OSError, UnidentifiedImageError, SyntaxError):
        return False


def check_png(data, name):
    """Raise ShotError unless `data` is a complete PNG image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            kind = image.format
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise ShotError(f"the image {name} arrived damaged or incomplete ({exc})") from exc
    if kind != "PNG":
        raise ShotError(f"the image {name} is {kind}, not PNG; save frames with a PNG-writing node", retry=False)
