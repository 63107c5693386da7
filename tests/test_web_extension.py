"""The web extension's names against the Python side, and how ComfyUI serves its scripts."""

import ast
import re
from pathlib import Path

import pytest

from lookdev.trainer import events

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"


def js_constants(text, prefix):
    """String literals of a JS file that start with `prefix`."""
    return set(re.findall(rf'"({re.escape(prefix)}[\w.]*)"', text))


def python_events():
    """{EVENT_* constant name: event name} of trainer/events.py."""
    return {name: value for name, value in vars(events).items() if name.startswith("EVENT_")}


def camel(constant):
    first, *rest = constant.removeprefix("EVENT_").lower().split("_")
    return first + "".join(word.title() for word in rest)


def test_js_event_names_are_the_python_ones():
    text = (WEB / "lookdev_names.js").read_text()
    events_block = re.search(r"EVENTS = \{(.*?)\}", text, re.S).group(1)
    js = dict(re.findall(r'(\w+): "([^"]+)"', events_block))
    assert js == {camel(name): value for name, value in python_events().items()}
    assert js_constants(text, "lookdev.") == set(python_events().values())


def test_js_node_ids_are_pack_nodes(comfy):
    js_ids = js_constants((WEB / "lookdev_names.js").read_text(), "LookDev")
    assert js_ids and js_ids <= set(comfy.nodes.NODE_CLASS_MAPPINGS)


def test_templates_carry_the_mark_the_view_script_reads():
    """web/lookdev_view.js opens a workflow at its extra.ds when extra carries TEMPLATE_MARK."""
    import json

    mark = re.search(r'TEMPLATE_MARK = "([^"]+)"', (WEB / "lookdev_names.js").read_text()).group(1)
    shipped = sorted((ROOT / "workflows").glob("*.json"))
    assert shipped
    for path in shipped:
        extra = json.loads(path.read_text(encoding="utf-8"))["extra"]
        assert extra[mark] == path.stem and extra["ds"]["scale"] >= 0.8, path.name


def sent_events():
    """The first argument of every send_event call in the pack's Python: events.EVENT_* or a literal."""
    sent = []
    for path in [*(ROOT / "trainer").rglob("*.py"), *(ROOT / "nodes").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "send_event":
                arg = node.args[0]
                if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "events":
                    sent.append(python_events().get(arg.attr, f"events.{arg.attr} (undefined)"))
                else:
                    sent.append(f"{path.name}:{node.lineno} sends {ast.unparse(arg)}, not an events.EVENT_* constant")
    return sent


def test_library_sends_every_event_through_the_events_module():
    sent = sent_events()
    assert set(sent) == set(python_events().values()), sent


@pytest.mark.server
def test_server_lists_each_script_once(server):
    scripts = [url for url in server.get("/extensions").json() if url.endswith(tuple(p.name for p in WEB.glob("*.js")))]
    assert sorted(scripts) == sorted(f"/extensions/LookDev/{p.name}" for p in WEB.glob("*.js"))


def js_mode_inputs():
    """MODE_INPUTS of lookdev_names.js as [(node id, mode input, mode value, [inputs])]."""
    text = (WEB / "lookdev_names.js").read_text()
    block = re.search(r"MODE_INPUTS = \{(.*?)\n\};", text, re.S).group(1)
    rules = []
    for node_id, body in re.findall(r'"(\w+)": \[(.*)\],', block):
        for mode, value, names in re.findall(r'\["(\w+)", "([^"]+)", \[([^\]]*)\]\]', body):
            rules.append((node_id, mode, value, re.findall(r'"(\w+)"', names)))
    return rules


def test_mode_inputs_name_real_inputs_and_choices(comfy):
    rules = js_mode_inputs()
    assert {rule[0] for rule in rules} == {"LookDevStoryboardRender", "LookDevLoadDataset",
                                           "LookDevDatasetFromImages", "LookDevDatasetFromVideo"}
    for node_id, mode, value, names in rules:
        required = comfy.nodes.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"]
        assert value in required[mode][0], (node_id, mode, value)
        assert names and all(name in required for name in names), (node_id, names)


def test_folder_inputs_name_real_folder_inputs(comfy):
    """FOLDER_INPUTS of lookdev_names.js: the inputs that get the type-a-path and upload buttons."""
    text = (WEB / "lookdev_names.js").read_text()
    block = re.search(r"FOLDER_INPUTS = \{(.*?)\n\};", text, re.S).group(1)
    pairs = re.findall(r'"(\w+)": "(\w+)"', block)
    assert pairs == [("LookDevLoadDataset", "folder")]
    for node_id, name in pairs:
        assert name in comfy.nodes.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"]
