"""The LookDev web extension in the real ComfyUI frontend: headless Chromium (Debian's package,
driven by Playwright) opens a ComfyUI server with the pack, loads a training workflow, queues it
from the page and watches the trainer node's loss chart and validation previews fill in.

The workflow is a parameter (see WORKFLOWS): any UI-format workflow with a LookDev trainer works,
as its widgets are set by node type and widget name (see overrides) after loading.
A screenshot is kept in tests/artifacts/ for a human look.
"""

import json
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
EXTENSION_URL = "/extensions/LookDev/"
DATASET = "web_ui_set"
STEPS = 6
VALIDATE_EVERY = 3
PROMPTS = ["lkdv noir, a pier at night", "lkdv noir, a lighthouse"]
RUN_TIMEOUT_S = 300


def overrides(checkpoint):
    """Widget values set on every node of a type, by widget name: small and fast on CPU."""
    return {
        "CheckpointLoaderSimple": {"ckpt_name": checkpoint},
        "LookDevLoadDataset": {"folder": DATASET, "resolution": "custom", "custom_resolution": 128},
        "LookDevTrainStyleLoRA": {
            "name": "web_ui_chart", "steps": STEPS, "rank": 4, "alpha": 4.0, "batch_size": 1,
            "learning_rate": 2e-3, "targets": "attention", "resume": False, "save_every": 0,
            "validate_every": VALIDATE_EVERY, "validation_prompts": "\n".join(PROMPTS),
            "validation_steps": 2, "validation_size": 64},
    }


def _node(node_id, node_type, pos, size, inputs=(), outputs=()):
    """A node of a UI-format workflow. Widget values are left to the frontend's defaults;
    inputs are matched by name, so only the linked ones are listed."""
    return {"id": node_id, "type": node_type, "pos": list(pos), "size": list(size), "flags": {},
            "order": node_id - 1, "mode": 0,
            "inputs": [{"name": name, "type": kind, "link": link} for name, kind, link in inputs],
            "outputs": [{"name": name, "type": kind, "links": links} for name, kind, links in outputs],
            "properties": {"Node name for S&R": node_type}}


def train_workflow():
    """Checkpoint -> LookDev Load Dataset -> LookDev Train Style LoRA, in ComfyUI's UI format."""
    links = [[1, 1, 0, 3, 0, "MODEL"], [2, 1, 1, 3, 1, "CLIP"], [3, 1, 2, 3, 2, "VAE"],
             [4, 2, 0, 3, 3, "LOOKDEV_DATASET"]]
    nodes = [
        _node(1, "CheckpointLoaderSimple", (40, 60), (320, 100),
              outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [3])]),
        _node(2, "LookDevLoadDataset", (40, 220), (320, 330), outputs=[("dataset", "LOOKDEV_DATASET", [4])]),
        _node(3, "LookDevTrainStyleLoRA", (420, 60), (460, 1240),
              inputs=[("model", "MODEL", 1), ("clip", "CLIP", 2), ("vae", "VAE", 3),
                      ("dataset", "LOOKDEV_DATASET", 4)]),
    ]
    return {"last_node_id": 3, "last_link_id": 4, "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {}, "version": 0.4}


def built_in_workflow(folder):
    path = folder / "train_preview.json"
    path.write_text(json.dumps(train_workflow(), indent=1))
    return path


# A shipped workflow joins this list as `lambda _: ROOT / "workflows" / "<name>.json"`.
WORKFLOWS = {"built-in": built_in_workflow}


def write_dataset(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(4):
        img = Image.new("RGB", (96, 96), (12, 12, 16))
        draw = ImageDraw.Draw(img)
        x = 8 + index * 14
        draw.rectangle([x, 18, x + 26, 86], fill=(230, 225, 210))
        draw.polygon([(0, 96), (96, 48), (96, 96)], fill=(40, 40, 48))
        img.save(folder / f"frame_{index}.png")
        (folder / f"frame_{index}.txt").write_text(f"a figure in an alley, rain, lamp {index}")


# --- page helpers (JavaScript run in the page) -------------------------------------------------

APP = "window.comfyAPI.app.app"

APPLY_OVERRIDES = f"""(overrides) => {{
  const app = {APP};
  const missing = [];
  let trainers = 0;
  for (const node of app.graph.nodes) {{
    const values = overrides[node.type];
    if (!values) continue;
    trainers += node.type === "LookDevTrainStyleLoRA";
    for (const [name, value] of Object.entries(values)) {{
      const widget = node.widgets?.find((w) => w.name === name);
      if (widget) widget.value = value; else missing.push(`${{node.type}}.${{name}}`);
    }}
  }}
  return {{ missing, trainers }};
}}"""

TRAINER_STATE = f"""() => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevTrainStyleLoRA");
  const panel = node.widgets.find((w) => w.name === "lookdev_progress")?.element;
  const imgs = [...(panel?.querySelectorAll(".lookdev-previews img") ?? [])];
  return {{
    id: node.id,
    chart: node.lookdevChart,
    status: panel?.querySelector(".lookdev-status")?.textContent,
    panelHeight: (panel?.getBoundingClientRect().height ?? 0) / {APP}.canvas.ds.scale,
    images: imgs.map((img) => ({{ src: img.src, title: img.title, loaded: img.complete && img.naturalWidth > 0 }})),
    widgetsValues: node.serialize().widgets_values.length,
    widgetCount: node.widgets.length,
  }};
}}"""

PREVIEWS_LOADED = """() => {
  const imgs = [...document.querySelectorAll(".lookdev-previews img")];
  return imgs.length > 0 && imgs.every((img) => img.complete && img.naturalWidth > 0);
}"""

FIT_ALL = f"""() => {{
  const app = {APP};
  const nodes = app.graph.nodes;
  const left = Math.min(...nodes.map((n) => n.pos[0])), top = Math.min(...nodes.map((n) => n.pos[1] - 30));
  const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  app.canvas.ds.fitToBounds([left, top, right - left, bottom - top], {{ zoom: 0.85 }});
  app.canvas.setDirty(true, true);
}}"""

FIT_PANEL = f"""() => {{
  const app = {APP};
  const node = app.graph.nodes.find((n) => n.type === "LookDevTrainStyleLoRA");
  const panel = node.widgets.find((w) => w.name === "lookdev_progress");
  app.canvas.ds.fitToBounds([node.pos[0], node.pos[1] + panel.y, node.size[0], 320], {{ zoom: 0.6 }});
  app.canvas.setDirty(true, true);
}}"""


def keep_screenshots(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate(FIT_ALL)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"web_ui_{name}.png"))
    page.evaluate(FIT_PANEL)
    page.wait_for_timeout(500)
    page.locator(".lookdev-panel").first.screenshot(path=str(ARTIFACTS / f"web_ui_{name}_panel.png"))


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (scripts/bootstrap.sh --browser)")
    from playwright.sync_api import sync_playwright  # requirements-dev.txt; never `playwright install`

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class PageLog:
    """Console errors and uncaught exceptions of a page, with the script they came from."""

    def __init__(self, page):
        self.errors = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"{msg.location.get('url', '')}: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"{exc.stack or ''}: {exc}"))

    def from_lookdev(self):
        return [error for error in self.errors if EXTENSION_URL in error]


def open_workflow(page, server, workflow, checkpoint):
    page.goto(server.url)
    # window.app is set once setup is done; the start-up workflow loads after it and would
    # replace ours, so wait for its nodes too.
    page.wait_for_function("() => window.app?.graph?.nodes?.length > 0", timeout=120_000)
    assert page.evaluate(f"() => {APP}.extensions.some((e) => e.name === 'LookDev.Progress')")
    page.evaluate(f"async (workflow) => {{ await {APP}.loadGraphData(workflow); }}", workflow)
    # Schema problems only show as a toast.
    assert page.get_by_text("Invalid workflow").count() == 0, "the frontend rejected the workflow's JSON"
    applied = page.evaluate(APPLY_OVERRIDES, overrides(checkpoint))
    assert applied == {"missing": [], "trainers": 1}, applied


RUN_STATE = f"""() => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevTrainStyleLoRA");
  return {{ done: !!node.lookdevChart.done, error: window.lookdevTestError ?? null }};
}}"""


def queue_and_wait(page, log, server):
    """Queue the workflow as the Run button does and wait for the trainer's done event."""
    page.evaluate("""() => window.comfyAPI.api.api.addEventListener("execution_error",
                         ({ detail }) => { window.lookdevTestError = detail; })""")
    finished_before = len(server.get("/history").json())
    page.evaluate(f"async () => {{ await {APP}.queuePrompt(0, 1); }}")
    queue = server.get("/queue").json()
    finished = len(server.get("/history").json())
    if not (queue["queue_running"] or queue["queue_pending"] or finished > finished_before):
        raise AssertionError(f"the server refused the prompt; page errors: {log.errors[-3:]}")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_STATE)
        if state["done"]:
            return
        if state["error"]:
            raise AssertionError(f"the run failed in {state['error'].get('node_type')}: "
                                 f"{state['error'].get('exception_message')}")
        page.wait_for_timeout(500)
    raise AssertionError(f"no lookdev.train.done in {RUN_TIMEOUT_S}s; server log:\n{server.log()[-4000:]}")


@pytest.fixture(scope="module", params=list(WORKFLOWS), ids=list(WORKFLOWS))
def training_page(request, browser, server, tiny_checkpoint, tmp_path_factory):
    """A page that loaded the workflow, queued it and saw the trainer's done event."""
    write_dataset(server.base / "input" / DATASET)
    # Skips the first-run template browser, which would cover the canvas.
    server.post("/settings/Comfy.TutorialCompleted", True).raise_for_status()
    workflow = json.loads(WORKFLOWS[request.param](tmp_path_factory.mktemp("workflow")).read_text())

    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    log = PageLog(page)
    open_workflow(page, server, workflow, tiny_checkpoint)
    loaded = page.evaluate(TRAINER_STATE)
    queue_and_wait(page, log, server)
    page.wait_for_function(PREVIEWS_LOADED, timeout=30_000)
    state = page.evaluate(TRAINER_STATE)

    keep_screenshots(page, f"training_{request.param}")
    yield {"page": page, "log": log, "loaded": loaded, "state": state}
    page.close()


def test_trainer_node_gets_the_panel_without_changing_its_saved_widgets(training_page):
    loaded = training_page["loaded"]
    assert loaded["chart"]["points"] == [] and loaded["status"] == "waiting for the first training step"
    assert loaded["panelHeight"] >= 280
    # The panel is a widget, but not a value: widgets_values keep their length and order.
    assert loaded["widgetsValues"] == loaded["widgetCount"] - 1


def test_loss_chart_receives_every_step(training_page, server):
    chart = training_page["state"]["chart"]
    assert [p["step"] for p in chart["points"]] == list(range(1, STEPS + 1))
    assert all(p["loss"] > 0 and p["smooth"] > 0 and p["lr"] > 0 for p in chart["points"])
    assert chart["total"] == STEPS and chart["name"] == "web_ui_chart" and chart["resumedFrom"] == 0
    done = chart["done"]
    assert done["steps"] == STEPS and done["path"].endswith("web_ui_chart.safetensors")
    assert done["final_loss"] == pytest.approx(chart["points"][-1]["loss"])
    assert server.wait(chart["promptId"])["status"]["status_str"] == "success"
    assert training_page["state"]["status"].startswith(f"done: {STEPS} steps in ")


def test_validation_previews_appear(training_page):
    state = training_page["state"]
    assert [p["step"] for p in state["chart"]["previews"]] == list(range(VALIDATE_EVERY, STEPS, VALIDATE_EVERY))
    images = state["images"]
    assert [img["title"] for img in images] == PROMPTS
    assert all(img["loaded"] and "/view?" in img["src"] and "type=temp" in img["src"] for img in images)


def test_no_console_errors_from_lookdev_scripts(training_page):
    assert training_page["log"].from_lookdev() == []


def test_render_progress_shows_on_the_named_node(training_page):
    """lookdev.render.progress as the storyboard render node sends it (nodes/common.py), given to
    the page's api object: the named node gets a status line."""
    page = training_page["page"]
    status = page.evaluate(f"""() => {{
      const app = {APP};
      const node = app.graph.nodes.find((n) => n.type === "CheckpointLoaderSimple");
      const detail = {{ node: String(node.id), prompt_id: "p", shot: "wide: harbour at dawn", index: 2,
                        total: 5, step: 3, steps: 20 }};
      window.comfyAPI.api.api.dispatchEvent(new CustomEvent("lookdev.render.progress", {{ detail }}));
      return node.widgets.find((w) => w.name === "lookdev_progress")?.element.textContent;
    }}""")
    assert status == "shot 2 / 5 · step 3 / 20 · wide: harbour at dawn"
    assert training_page["log"].from_lookdev() == []


def test_cancel_shows_where_training_stopped(training_page, server):
    """ComfyUI's Cancel during training: the chart keeps its points and says it was cancelled."""
    page = training_page["page"]
    longer = {"LookDevTrainStyleLoRA": {"name": "web_ui_cancel", "steps": 500, "validate_every": 0,
                                        "validation_prompts": ""}}
    assert page.evaluate(APPLY_OVERRIDES, longer) == {"missing": [], "trainers": 1}
    first_run = training_page["state"]["chart"]["promptId"]
    page.evaluate(f"async () => {{ await {APP}.queuePrompt(0, 1); }}")
    page.wait_for_function(f"""(firstRun) => {{
      const chart = {APP}.graph.nodes.find((n) => n.type === "LookDevTrainStyleLoRA").lookdevChart;
      return chart.promptId !== firstRun && chart.points.length > 0;
    }}""", arg=first_run, timeout=RUN_TIMEOUT_S * 1000, polling=200)
    page.evaluate("async () => { await window.comfyAPI.api.api.interrupt(null); }")
    page.wait_for_function(f"""() => {APP}.graph.nodes.find((n) => n.type === "LookDevTrainStyleLoRA")
                                 .lookdevChart.stopped === "cancelled" """, timeout=60_000)
    state = page.evaluate(TRAINER_STATE)
    steps = len(state["chart"]["points"])
    assert 0 < steps < 500 and state["chart"]["done"] is None
    assert state["status"] == f"cancelled at step {steps} / 500"
    assert server.wait(state["chart"]["promptId"])["status"]["status_str"] == "error"
    assert training_page["log"].from_lookdev() == []
    keep_screenshots(page, "cancelled")
