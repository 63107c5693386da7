"""The shipped example workflows (workflows/*.json for the editor, workflows/api/*.json for scripts):
ComfyUI's template browser lists them, every node, input and widget value exists in a real
server's /object_info, the API twins pass ComfyUI's own prompt validation, the twins agree, and
the batch renderer takes the storyboard workflow.

Model files the workflows name as placeholders (the stock SD1.5 checkpoint name, the style LoRA the
training workflow makes) are put into the model folders first, as a user would have them.
"""

import json
import shutil
from pathlib import Path

import pytest

from lookdev.trainer.render import batch
from dataset_files import write_image
from lora_files import write_lora

pytestmark = [pytest.mark.server]

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
NAMES = ["storyboard_in_style", "storyboard_to_animatic", "train_and_storyboard", "train_flux_style_lora",
         "train_style_from_reel", "train_style_lora"]
VIRTUAL = {"Note", "MarkdownNote"}  # editor-only nodes: not in /object_info, never queued
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}


def ui_workflow(name):
    return json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))


def api_workflow(name):
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text(encoding="utf-8"))


# Loader inputs that name a model file -> the model folder it is chosen from.
MODEL_FILE_INPUTS = {"ckpt_name": "checkpoints", "unet_name": "diffusion_models", "clip_name1": "text_encoders",
                     "clip_name2": "text_encoders", "vae_name": "vae"}


def model_file_names():
    """({model folder: file names}, LoRA names) the shipped workflows choose."""
    files, loras = {}, set()
    for name in NAMES:
        for node in api_workflow(name).values():
            for key, value in node["inputs"].items():
                if key in MODEL_FILE_INPUTS:
                    files.setdefault(MODEL_FILE_INPUTS[key], set()).add(value)
                elif key.startswith("lora_") and isinstance(value, str) and value != "None":
                    loras.add(value)
    return files, loras


def provide_model_files(models_dir, tiny_checkpoint_path, bundle):
    """The named files in the model folders, as a user would have them: the checkpoint is the tiny
    SD1.5 one; Flux's separate files only need to exist for prompt validation (the Flux workflow
    runs on the tiny Flux model built in memory: see test_flux_workflow_trains_a_flux_lora)."""
    files, loras = model_file_names()
    for kind, names in files.items():
        folder = models_dir(kind)
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (folder / name).exists():
                (folder / name).symlink_to(tiny_checkpoint_path)
    for name in loras:
        if not (models_dir("loras") / name).exists():
            write_lora(models_dir("loras"), name, bundle, "sd15", trigger_words=("lkdv_noir",))


@pytest.fixture(scope="module")
def object_info(server, comfy, tiny_checkpoint):
    provide_model_files(lambda kind: server.base / "models" / kind, comfy.models_dir("checkpoints") / tiny_checkpoint, comfy.tiny_bundle("sd15"))
    return server.get("/object_info").json()


@pytest.fixture(scope="module")
def host(comfy, tiny_checkpoint):
    """The in-process ComfyUI with the workflows' model files and reference images, for prompt
    validation."""
    provide_model_files(comfy.models_dir, comfy.models_dir("checkpoints") / tiny_checkpoint,
                        comfy.tiny_bundle("sd15"))
    for name in NAMES:
        for node in api_workflow(name).values():
            if node["class_type"] == "LookDevLoadDataset":
                write_image(comfy.input_dir / node["inputs"]["folder"] / "ref.png", (96, 96), seed=1)
    return comfy


def input_specs(info):
    """[(name, spec)] of a node type's inputs, in the order the editor builds widgets."""
    return [(name, info["input"][section][name])
            for section in ("required", "optional") for name in info["input_order"].get(section, [])]


def is_widget(spec):
    options = spec[1] if len(spec) > 1 else {}
    return (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES) and not options.get("forceInput")


def has_seed_control(name, spec):
    options = spec[1] if len(spec) > 1 else {}
    return spec[0] == "INT" and options.get("control_after_generate", name in ("seed", "noise_seed"))


def named_widget_values(node, info):
    """{widget name: value} of an editor-format node, its seed-control values checked and dropped."""
    values = list(node.get("widgets_values", []))
    named = {}
    required = len(info["input_order"].get("required", []))
    for position, (name, spec) in enumerate(input_specs(info) + [(None, None)]):
        if position == required and has_upload(info):
            upload = values.pop(0) if values else None
            assert upload == "image", f"node {node['id']}: {upload!r} where the upload widget's value goes"
        if name is None or not is_widget(spec):
            continue
        assert values, f"node {node['id']} ({node['type']}) has too few widget values"
        named[name] = values.pop(0)
        if has_seed_control(name, spec):
            control = values.pop(0)
            assert control in SEED_CONTROLS, f"node {node['id']}: {control!r} after {name} is no seed control"
    assert values == [], f"node {node['id']} ({node['type']}) has widget values left over: {values}"
    return named


def has_upload(info):
    """The editor adds an upload button after the required inputs of a node with an upload combo
    (core Load Image / Load Video: widget values [file, "image"])."""
    return any(isinstance(spec[0], list) and len(spec) > 1
               and any(spec[1].get(key) for key in ("image_upload", "video_upload", "animated_image_upload"))
               for spec in info["input"].get("required", {}).values())


# Choices that also take a typed value (the node's VALIDATE_INPUTS checks it): any text is valid.
TYPED_CHOICES = {("LookDevLoadDataset", "folder")}


def check_value(node_type, name, spec, value):
    kind = spec[0]
    options = spec[1] if len(spec) > 1 else {}
    where = f"{node_type}.{name} = {value!r}"
    if (node_type, name) in TYPED_CHOICES:
        assert isinstance(value, str), where
    elif isinstance(kind, list):
        assert value in kind, f"{where} is not one of the choices"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    else:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        if kind == "INT":
            assert isinstance(value, int), f"{where} is not a whole number"
        assert options.get("min", value) <= value <= options.get("max", value), f"{where} is out of range"


def test_template_browser_lists_exactly_the_shipped_workflows(server):
    listed = server.get("/api/workflow_templates").json()
    assert {pack: sorted(names) for pack, names in listed.items()} == {"LookDev": NAMES}
    for name in NAMES:
        served = server.get(f"/api/workflow_templates/LookDev/{name}.json").json()
        assert served == ui_workflow(name)


@pytest.mark.parametrize("name", NAMES)
def test_editor_workflow_matches_object_info(object_info, name):
    workflow = ui_workflow(name)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    notes = [node for node in nodes.values() if node["type"] in VIRTUAL]
    assert len(notes) >= 3 and all(len(node["widgets_values"][0]) > 200 for node in notes), \
        "every workflow explains its steps in Note nodes"
    for node in nodes.values():
        if node["type"] in VIRTUAL:
            continue
        info = object_info.get(node["type"])
        assert info is not None, f"node type {node['type']} is not installed"
        specs = dict(input_specs(info))
        for name_, value in named_widget_values(node, info).items():
            check_value(node["type"], name_, specs[name_], value)
        for slot in node["inputs"]:
            assert slot["name"] in specs, f"{node['type']} has no input {slot['name']}"
        assert [(o["name"], o["type"]) for o in node["outputs"]] == list(zip(info["output_name"], info["output"]))
        required = [n for n in info["input_order"]["required"] if not is_widget(info["input"]["required"][n])]
        linked = {slot["name"] for slot in node["inputs"] if slot["link"] is not None}
        assert set(required) <= linked, f"node {node['id']} ({node['type']}): {set(required) - linked} unconnected"
    for link_id, source, slot, target, target_slot, kind in workflow["links"]:
        assert nodes[source]["outputs"][slot]["type"] == kind and link_id in nodes[source]["outputs"][slot]["links"]
        target_input = nodes[target]["inputs"][target_slot]
        assert target_input["link"] == link_id and target_input["type"] == kind


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_passes_comfyui_validation(host, name):
    valid, error, node_errors = host.validate(api_workflow(name))
    assert valid, (error, node_errors)


@pytest.mark.parametrize("name", NAMES)
def test_editor_and_api_twins_agree(object_info, name):
    workflow, api = ui_workflow(name), api_workflow(name)
    nodes = [node for node in workflow["nodes"] if node["type"] not in VIRTUAL]
    assert sorted(api) == sorted(str(node["id"]) for node in nodes)
    links = {link[0]: link for link in workflow["links"]}
    for node in nodes:
        expected = named_widget_values(node, object_info[node["type"]])
        for slot in node["inputs"]:
            if slot["link"] is not None:
                _, source, source_slot, *_ = links[slot["link"]]
                expected[slot["name"]] = [str(source), source_slot]
        twin = api[str(node["id"])]
        assert twin["class_type"] == node["type"]
        assert twin["inputs"] == expected, f"node {node['id']} ({node['type']})"


def test_batch_renderer_takes_the_storyboard_workflow():
    path = WORKFLOWS / "api" / "storyboard_in_style.json"
    workflow = batch.load_workflow(path)
    node_id = batch.find_shot_node(workflow)
    assert workflow[node_id]["class_type"] == "LookDevShotList"
    with pytest.raises(ValueError, match="editor format"):
        batch.load_workflow(WORKFLOWS / "storyboard_in_style.json")


def test_the_combined_workflow_renders_with_the_model_it_trains():
    api = api_workflow("train_and_storyboard")
    render = next(node for node in api.values() if node["class_type"] == "LookDevStoryboardRender")
    source = api[render["inputs"]["model"][0]]
    assert source["class_type"] == "LookDevTrainStyleLoRA" and render["inputs"]["model"][1] == 0


def test_storyboard_to_animatic_runs_from_timed_shots_to_an_edl(host):
    """The shipped graph as is, shrunk to tiny sizes: shot list with durations -> render -> animatic."""
    api = api_workflow("storyboard_to_animatic")
    by_type = {node["class_type"]: node for node in api.values()}
    by_type["LookDevStoryboardRender"]["inputs"].update(steps=2, base_resolution=64, folder="wf_animatic")
    by_type["LookDevAnimatic"]["inputs"].update(folder="wf_animatic")
    animatic = by_type["LookDevAnimatic"]["inputs"]
    assert [animatic["images"], animatic["labels"]] == [[node_id, index] for node_id in
                                                        [k for k, v in api.items() if v is by_type["LookDevStoryboardRender"]]
                                                        for index in (0, 1)]
    host.run(api)
    folder = host.output_dir / "wf_animatic"
    edl = (folder / "animatic.edl").read_text()
    events = [line.split() for line in edl.splitlines() if line[:3].isdigit()]
    assert [event[0] for event in events] == [f"{n:03d}" for n in range(1, 8)]  # title card + 6 shots
    assert events[-1][-1] == "01:00:22:00"  # 3 s title + 4 + 3 + 2.5 + 3 + 1.5 + 5 s of shots
    assert (folder / "animatic.mp4").stat().st_size > 0 and (folder / "animatic.csv").exists()


@pytest.mark.parametrize("name", NAMES)
def test_no_workflow_hard_codes_a_loss_curve_name(name):
    """The trainer saves its loss curve as lookdev/<LoRA name>_loss.png itself; a Save Image with a
    fixed prefix would name every LoRA's curve after the example's."""
    api = api_workflow(name)
    assert not [node for node in api.values() if node["class_type"] == "SaveImage"]


def test_run_with_defaults_reports_every_missing_input_at_once(host):
    """The shipped training workflow as a new user queues it: no checkpoint of that name and no
    dataset folder yet. Validation refuses it naming both, nothing runs, and the folder the
    workflow's note points at now exists, with a README saying what to put there."""
    api = api_workflow("train_style_lora")
    by_type = {node["class_type"]: node_id for node_id, node in api.items()}
    api[by_type["CheckpointLoaderSimple"]]["inputs"]["ckpt_name"] = "not_downloaded_yet.safetensors"
    # The shipped folder name with a suffix: `host` holds the shipped one, with an image.
    typed = api[by_type["LookDevLoadDataset"]]["inputs"]["folder"] + "_new_user"
    api[by_type["LookDevLoadDataset"]]["inputs"]["folder"] = typed
    folder = host.input_dir / typed
    assert not folder.exists()
    try:
        result = host.run(api, expect_error=True)
        [(event, data)] = result.messages
        assert event == "validation_error"
        errors = data["node_errors"]
        assert set(errors) == {by_type["CheckpointLoaderSimple"], by_type["LookDevLoadDataset"]}
        [folder_error] = errors[by_type["LookDevLoadDataset"]]["errors"]
        assert f"dataset folder {folder} did not exist: LookDev created it" in folder_error["details"]
        assert "put 10-30 reference images" in folder_error["details"]
        assert "Put 10-30 reference images" in (folder / "LOOKDEV_README.txt").read_text()
        refusal = host.run(api, expect_error=True).refusal  # still no images: said again, before running
        assert f"dataset folder {folder} holds no files" in refusal
        write_image(folder / "first.png", (96, 96), seed=2)  # the user follows the README
        loader = dict(api[by_type["LookDevLoadDataset"]], inputs={
            **api[by_type["LookDevLoadDataset"]]["inputs"], "resolution": "custom", "custom_resolution": 128})
        host.run({"1": loader, "2": {"class_type": "LookDevTest_Capture",
                                     "inputs": {"value": ["1", 3], "label": "defaults_report"}}})
        assert "LOOKDEV_README" not in host.captured["defaults_report"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_every_shot_list_aspect_is_a_render_aspect(host):
    from lookdev.trainer.render.framing import ASPECTS

    choices = host.node_class("LookDevStoryboardRender").INPUT_TYPES()["required"]["aspect"][0]
    assert set(ASPECTS) <= set(choices) and "9:16" in choices


def test_every_template_has_a_thumbnail(server):
    """The template browser asks for <workflow>.jpg beside each workflow; a 404 is a blank card."""
    from io import BytesIO

    from PIL import Image

    for name in NAMES:
        response = server.get(f"/api/workflow_templates/LookDev/{name}.jpg")
        assert response.status_code == 200, name
        with Image.open(BytesIO(response.content)) as image:
            assert image.format == "JPEG" and image.size == (640, 400)


def significant_colours(pixels):
    """How many colours (16 levels per channel) cover at least 1% of `pixels` (h, w, 3)."""
    import numpy as np

    _, counts = np.unique((pixels // 16).reshape(-1, 3), axis=0, return_counts=True)
    return int((counts >= 0.01 * counts.sum()).sum())


# A drawn diagram (the cards before LookDev Mini: flat boxes and text) shows at most 8 such colours
# in any region, 6 on the whole card. The rendered frames of a shipped card show 17 or more, but
# one noir frame alone can show fewer (the day street with its blacks crushed: 7), so the card's
# median frame is what must pass.
RENDER_COLOURS = 10


@pytest.mark.parametrize("name", NAMES)
def test_thumbnail_is_a_lookdev_mini_render(name):
    """Each card is rendered by scripts/render_thumbnails.py with LookDev Mini: its JPEG comment
    records the model and, per frame, its box, source, shot and seed; the rendered frames have
    colour statistics a drawn diagram cannot have, and the reference images on it are the demo's
    noir scenes, drawn again here."""
    import numpy as np
    from PIL import Image

    import demo_dataset
    import mini_model
    import render_thumbnails

    path = WORKFLOWS / f"{name}.jpg"
    assert path.stat().st_size < render_thumbnails.MAX_BYTES
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == render_thumbnails.SIZE
        record = json.loads(image.info.get("comment", b"{}")).get(render_thumbnails.PROVENANCE_KEY)
        assert record, f"{path.name} carries no provenance: not written by scripts/render_thumbnails.py"
        card = np.asarray(image.convert("RGB")).astype(int)
    assert record["workflow"] == name and record["model"] == mini_model.VERSION
    renders = [frame for frame in record["frames"] if frame["source"].endswith(" render")]
    assert len(renders) >= 3, record["frames"]
    colours = []
    for frame in record["frames"]:
        x, y, w, h = frame["box"]
        assert 0 <= x and x + w <= card.shape[1] and 88 <= y and y + h <= card.shape[0] and w * h >= 40 * 30, frame
        crop = card[y:y + h, x:x + w]
        if frame in renders:
            assert isinstance(frame["seed"], int) and frame["prompt"], frame
            colours.append(significant_colours(crop))
        else:
            assert frame["source"] == "reference image", frame
            scene, _ = demo_dataset.draw_scene(frame["scene"], frame["seed"])
            drawn = np.asarray(scene.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)).astype(int)
            assert np.abs(crop - drawn).mean() < 12, frame
    assert sorted(colours)[len(colours) // 2] >= RENDER_COLOURS, colours


@pytest.mark.parametrize("name", NAMES)
def test_graph_opens_readable_with_no_node_over_a_group_title(name):
    """extra.ds is the view the editor opens at: readable zoom, the graph's top-left corner below
    the frontend's tab bar and toolbars (about 130 px in a 1280x800 window) and right of its
    sidebar; no node covers a group's title (the browser test checks the same on screen)."""
    workflow = ui_workflow(name)
    scale, (dx, dy) = workflow["extra"]["ds"]["scale"], workflow["extra"]["ds"]["offset"]
    assert scale >= 0.8
    left = min([n["pos"][0] for n in workflow["nodes"]] + [g["bounding"][0] for g in workflow["groups"]])
    top = min([n["pos"][1] - 30 for n in workflow["nodes"]] + [g["bounding"][1] for g in workflow["groups"]])
    assert 70 <= (left + dx) * scale <= 200 and 140 <= (top + dy) * scale <= 260
    for group in workflow["groups"]:
        gx, gy, gw, _ = group["bounding"]
        for node in workflow["nodes"]:
            (x, y), (w, h) = node["pos"], node["size"]
            overlaps = x < gx + gw and gx < x + w and y - 30 < gy + 40 and gy < y + h
            assert not overlaps, f"node {node['id']} ({node['type']}) covers the title of group {group['title']!r}"


def test_flux_workflow_trains_a_flux_lora(host):
    """The shipped Flux graph as is, on the tiny Flux.1 dev model in place of its three loaders
    (the real files are 12B and 5B parameters), shrunk to tiny sizes: it trains with the
    workflow's own settings (targets, optimizer, schedule, timestep sampling, guidance,
    validation renders) and saves a kohya-format Flux.1 dev LoRA in bf16."""
    import safetensors

    api = api_workflow("train_flux_style_lora")
    by_type = {node["class_type"]: node_id for node_id, node in api.items()}
    loaders = {by_type[kind]: output for kind, output in
               (("UNETLoader", 0), ("DualCLIPLoader", 1), ("VAELoader", 2))}
    assert api[by_type["DualCLIPLoader"]]["inputs"]["type"] == "flux"
    trainer = api[by_type["LookDevTrainStyleLoRA"]]["inputs"]
    assert (trainer["rank"], trainer["learning_rate"], trainer["targets"], trainer["save_dtype"]) == \
        (16, 1e-4, "attention + feed-forward", "bf16")
    for node_id in loaders:
        del api[node_id]
    api["tiny"] = {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "flux_dev"}}
    for input_name, link in trainer.items():
        if isinstance(link, list) and link[0] in loaders:
            trainer[input_name] = ["tiny", loaders[link[0]]]
    name = "wf_flux_style"
    assert trainer["gradient_checkpointing"]  # as a 24 GB GPU needs; run as shipped
    trainer.update(name=name, steps=4, save_every=2, validate_every=2, validation_steps=2, validation_size=64,
                   resume=False)
    api[by_type["LookDevLoadDataset"]]["inputs"].update(resolution="custom", custom_resolution=128)
    api["path"] = {"class_type": "LookDevTest_Capture",
                   "inputs": {"value": [by_type["LookDevTrainStyleLoRA"], 2], "label": "wf_flux_path"}}
    result = host.run(api, fresh=True)
    assert [p["step"] for p in result.events_named("lookdev.train.preview")] == [2]
    with safetensors.safe_open(host.captured["wf_flux_path"], framework="pt") as handle:
        keys, meta = list(handle.keys()), handle.metadata()
        dtypes = {handle.get_slice(key).get_dtype() for key in keys if not key.endswith(".alpha")}
    assert meta["modelspec.architecture"] == "flux-1-dev/lora" and dtypes == {"BF16"}
    assert any(k.startswith("lora_unet_double_blocks_0_img_mlp_0") for k in keys)
    assert any(k.startswith("lora_unet_single_blocks_1_linear2") for k in keys)
