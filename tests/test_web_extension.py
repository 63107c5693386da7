"""The web extension's names against the Python side, and how ComfyUI serves its scripts."""

import re
from pathlib import Path

import pytest

from lookdev.nodes import common

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"


def js_constants(text, prefix):
    """String literals of a JS file that start with `prefix`."""
    return set(re.findall(rf'"({re.escape(prefix)}[\w.]*)"', text))


def python_events():
    return {value for name, value in vars(common).items() if name.startswith("EVENT_")}


def test_js_event_names_are_the_python_ones():
    assert js_constants((WEB / "lookdev_names.js").read_text(), "lookdev.") == python_events()


def test_js_node_ids_are_pack_nodes(comfy):
    js_ids = js_constants((WEB / "lookdev_names.js").read_text(), "LookDev")
    assert js_ids and js_ids <= set(comfy.nodes.NODE_CLASS_MAPPINGS)


def test_events_sent_by_the_library_are_documented():
    sent = set()
    for path in (ROOT / "trainer").rglob("*.py"):
        sent |= set(re.findall(r'send_event\(\s*"([^"]+)"', path.read_text()))
    assert sent and sent <= python_events()


@pytest.mark.server
def test_server_lists_each_script_once(server):
    scripts = [url for url in server.get("/extensions").json() if url.endswith(tuple(p.name for p in WEB.glob("*.js")))]
    assert sorted(scripts) == sorted(f"/extensions/LookDev/{p.name}" for p in WEB.glob("*.js"))
