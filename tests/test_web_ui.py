"""The LookDev web extension in the real ComfyUI frontend: headless Chromium (Debian's package,
driven by Playwright) opens a ComfyUI server with the pack, loads the shipped workflow
workflows/train_and_storyboard.json, queues it from the page and watches the trainer node's loss
chart and validation previews fill in, then the contact sheet appear on its node.

Other tests hide and show inputs unused in the current mode and queue a prompt with them hidden,
and open every template from the template browser in a 1280x800 window to check its card and the
view it opens at.

The workflow's widgets are set by node type and widget name after loading (see overrides), so the
shipped filmmaker settings run tiny and fast on a CPU. Screenshots are kept in tests/artifacts/
for a human look.
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
WORKFLOW = ROOT / "workflows" / "train_and_storyboard.json"
SHIPPED = sorted((ROOT / "workflows").glob("*.json"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
EXTENSION_URL = "/extensions/LookDev/"
DATASET = "web_ui_set"
STEPS = 6
VALIDATE_EVERY = 3
PROMPTS = ["lkdv noir, a pier at night", "lkdv noir, a lighthouse"]
SHOTS = "A010 | a pier at night | 1\nA020 | a lighthouse in fog | 2"
RUN_TIMEOUT_S = 900  # a bound for a loaded CI machine, not a speed requirement


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
        "LookDevShotList": {"shots": SHOTS},
        "LookDevStoryboardRender": {"steps": 2, "aspect": "1:1", "base_resolution": 64, "folder": "web_ui_board"},
        "LookDevContactSheet": {"folder": "web_ui_board", "pdf": False, "cell_width": 128},
    }


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

# The trainer's widgets shown while advanced inputs are off, in order (the panel is not an input).
ESSENTIAL_WIDGETS = ("name", "steps", "learning_rate", "rank", "targets", "seed", "control_after_generate",
                     "recipe", "lookdev_progress")

VISIBLE_TRAINER_WIDGETS = f"""() => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevTrainStyleLoRA");
  return node.widgets.filter((w) => node.isWidgetVisible(w)).map((w) => w.name);
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


def open_app(page, server):
    page.goto(server.url)
    # window.app is set once setup is done; the start-up workflow loads after it and would
    # replace ours, so wait for its nodes too.
    page.wait_for_function("() => window.app?.graph?.nodes?.length > 0", timeout=120_000)
    assert page.evaluate(f"() => {APP}.extensions.some((e) => e.name === 'LookDev.Progress')")


def load_workflow(page, workflow):
    page.evaluate(f"async (workflow) => {{ await {APP}.loadGraphData(workflow); }}", workflow)
    # Schema problems only show as a toast.
    assert page.get_by_text("Invalid workflow").count() == 0, "the frontend rejected the workflow's JSON"


RUN_STATE = f"""() => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevTrainStyleLoRA");
  return {{ done: !!node.lookdevChart.done, error: window.lookdevTestError ?? null }};
}}"""

SHEET_STATE = f"""() => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevContactSheet");
  return (node.imgs ?? []).map((img) => ({{ src: img.src, loaded: img.complete && img.naturalWidth > 0 }}));
}}"""

SHEET_LOADED = f"""() => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevContactSheet");
  return (node.imgs ?? []).some((img) => img.complete && img.naturalWidth > 0);
}}"""

# The frontend loads a node's output images when it draws the node: bring the sheet into view.
SHOW_SHEET = f"""() => {{
  const app = {APP};
  const node = app.graph.nodes.find((n) => n.type === "LookDevContactSheet");
  app.canvas.ds.fitToBounds([node.pos[0], node.pos[1] - 30, node.size[0], node.size[1] + 30], {{ zoom: 0.9 }});
  app.canvas.setDirty(true, true);
}}"""


RENDER_STATUS = f"""() => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevStoryboardRender");
  return node.widgets?.find((w) => w.name === "lookdev_progress")?.element.textContent ?? null;
}}"""


def queue_and_wait(page, log, server):
    """Queue the workflow as the Run button does; wait for the trainer's done event and the end of
    the prompt (the storyboard renders after training). Returns the prompt's /history entry."""
    page.evaluate("""() => {
      const api = window.comfyAPI.api.api;
      api.addEventListener("execution_error", ({ detail }) => { window.lookdevTestError = detail; });
      window.lookdevStatuses = [];
      api.addEventListener("lookdev.status", ({ detail }) => { window.lookdevStatuses.push(detail); });
    }""")
    finished_before = len(server.get("/history").json())
    page.evaluate(f"async () => {{ await {APP}.queuePrompt(0, 1); }}")
    queue = server.get("/queue").json()
    finished = len(server.get("/history").json())
    if not (queue["queue_running"] or queue["queue_pending"] or finished > finished_before):
        raise AssertionError(f"the server refused the prompt; page errors: {log.errors[-3:]}")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_STATE)
        if state["error"]:
            raise AssertionError(f"the run failed in {state['error'].get('node_type')}: "
                                 f"{state['error'].get('exception_message')}")
        if state["done"]:
            prompt_id = page.evaluate(f"""() => {APP}.graph.nodes
                .find((n) => n.type === "LookDevTrainStyleLoRA").lookdevChart.promptId""")
            return server.wait(prompt_id, timeout=RUN_TIMEOUT_S)
        page.wait_for_timeout(500)
    raise AssertionError(f"no lookdev.train.done in {RUN_TIMEOUT_S}s; server log:\n{server.log()[-4000:]}")


def _frontend(browser, server, width, height):
    """(page, log) of the ComfyUI frontend in a width x height window; closes it when done."""
    # Skips the first-run template browser, which would cover the canvas.
    server.post("/settings/Comfy.TutorialCompleted", True).raise_for_status()
    page = browser.new_page(viewport={"width": width, "height": height})
    log = PageLog(page)
    open_app(page, server)
    yield page, log
    page.close()


@pytest.fixture(scope="module")
def app_page(browser, server):
    """The ComfyUI frontend, loaded once for the module."""
    yield from _frontend(browser, server, 1600, 1100)


@pytest.fixture(scope="module")
def training_page(app_page, server, tiny_checkpoint):
    """The page after loading the shipped train-and-storyboard workflow, made tiny, and running it."""
    page, log = app_page
    write_dataset(server.base / "input" / DATASET)
    load_workflow(page, json.loads(WORKFLOW.read_text()))
    applied = page.evaluate(APPLY_OVERRIDES, overrides(tiny_checkpoint))
    assert applied == {"missing": [], "trainers": 1}, applied
    loaded = page.evaluate(TRAINER_STATE)
    visible = page.evaluate(VISIBLE_TRAINER_WIDGETS)
    entry = queue_and_wait(page, log, server)
    page.wait_for_function(PREVIEWS_LOADED, timeout=60_000)
    page.evaluate(SHOW_SHEET)
    page.wait_for_function(SHEET_LOADED, timeout=60_000)
    state = page.evaluate(TRAINER_STATE)
    sheet = page.evaluate(SHEET_STATE)
    statuses = page.evaluate("() => window.lookdevStatuses")
    render_status = page.evaluate(RENDER_STATUS)
    keep_screenshots(page, "train_and_storyboard")
    return {"page": page, "log": log, "loaded": loaded, "state": state, "sheet": sheet, "history": entry,
            "statuses": statuses, "render_status": render_status, "visible": visible}


def test_trainer_node_gets_the_panel_without_changing_its_saved_widgets(training_page):
    loaded = training_page["loaded"]
    assert loaded["chart"]["points"] == [] and loaded["status"] == "waiting for the first training step"
    assert loaded["panelHeight"] >= 280
    # The panel is a widget, but not a value: widgets_values keep their length and order.
    assert loaded["widgetsValues"] == loaded["widgetCount"] - 1


def test_queued_prompt_carries_the_folded_advanced_inputs(training_page, server):
    """The shipped workflow opens with the trainer's advanced inputs folded away; the prompt it
    queued still carries every trainer input, with the values set on the folded widgets."""
    assert training_page["visible"] == list(ESSENTIAL_WIDGETS)
    info = server.get("/object_info/LookDevTrainStyleLoRA").json()["LookDevTrainStyleLoRA"]["input"]
    widgets = [name for group in ("required", "optional") for name, (kind, _) in info[group].items()
               if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN")]
    prompt = training_page["history"]["prompt"][2]
    [inputs] = [node["inputs"] for node in prompt.values() if node["class_type"] == "LookDevTrainStyleLoRA"]
    assert set(widgets) <= set(inputs)
    trainer = overrides("x")["LookDevTrainStyleLoRA"]
    assert {name: inputs[name] for name in trainer} == trainer  # alpha, validation_size, … were folded


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
    previews = state["chart"]["previews"]
    assert [p["step"] for p in previews] == list(range(VALIDATE_EVERY, STEPS, VALIDATE_EVERY))
    assert all([img["prompt"] for img in p["images"]] == PROMPTS for p in previews)
    # Each round's style distance to the dataset, drawn as its own line on the chart.
    assert all(p["styleDistance"] > 0 for p in previews)


def test_final_renders_and_loss_curve_replace_the_mid_run_previews(training_page):
    images = training_page["state"]["images"]
    assert [img["title"] for img in images] == [*PROMPTS, "loss curve"]
    assert all(img["loaded"] and "/view?" in img["src"] for img in images)
    assert all("type=temp" in img["src"] and "_final_" in img["src"] for img in images[:-1])
    assert "filename=web_ui_chart_loss.png" in images[-1]["src"] and "type=output" in images[-1]["src"]
    assert training_page["state"]["chart"]["final"]["label"] == "final"


def test_every_phase_has_a_status_line(training_page):
    statuses = training_page["statuses"]
    trainer = [s for s in statuses if s["phase"] in ("caching", "training", "validation", "saving")
               or s["text"].startswith("done: ") and "steps" in s["text"]]
    phases = [s["phase"] for s in trainer]
    order = [phase for i, phase in enumerate(phases) if i == 0 or phase != phases[i - 1]]
    assert order == ["caching", "training", "validation", "training", "saving", "validation", "done"]
    assert {"rendering validation images 2 / 2 (step 3)", "rendering final validation images 2 / 2",
            "saving web_ui_chart.safetensors"} <= {s["text"] for s in trainer}
    assert training_page["render_status"] == "done: 2 frames in output/web_ui_board"
    assert training_page["log"].from_lookdev() == []


def test_contact_sheet_shows_on_its_node(training_page):
    """The storyboard renders with the freshly trained model in the same run; the sheet shows."""
    outputs = training_page["history"]["outputs"]
    frames = [image["filename"] for node in outputs.values() for image in node.get("images", [])
              if image.get("subfolder") == "web_ui_board"]
    assert sorted(frames) == ["A010.png", "A020.png", "_contact_sheet.png"]
    sheet = training_page["sheet"]
    assert len(sheet) == 1 and sheet[0]["loaded"], sheet
    assert "filename=_contact_sheet.png" in sheet[0]["src"] and "type=output" in sheet[0]["src"]


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


def test_prompt_encoding_progress_shows_on_the_named_node(training_page):
    """lookdev.render.encoding, sent while a storyboard render encodes its prompts."""
    status = training_page["page"].evaluate(f"""() => {{
      const app = {APP};
      const node = app.graph.nodes.find((n) => n.type === "CheckpointLoaderSimple");
      const detail = {{ node: String(node.id), prompt_id: "p", done: 12, total: 300 }};
      window.comfyAPI.api.api.dispatchEvent(new CustomEvent("lookdev.render.encoding", {{ detail }}));
      return node.widgets.find((w) => w.name === "lookdev_progress")?.element.textContent;
    }}""")
    assert status == "encoding prompts 12 / 300"
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


GRAPH_STATE = f"""async () => {{
  const app = {APP};
  const {{ output }} = await app.graphToPrompt();
  const widgets = Object.fromEntries(app.graph.nodes.map((n) => [n.id, n.serialize().widgets_values ?? []]));
  const links = app.graph.serialize().links.map((l) => [l[1], l[2], l[3], l[5]]);
  return {{ output, widgets, links }};
}}"""


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_shipped_workflow_loads_as_saved_and_queues_as_its_api_twin(app_page, path):
    """The editor keeps every widget value of the file in place, and what it would queue is
    exactly the API-format twin in workflows/api/."""
    page, log = app_page
    workflow = json.loads(path.read_text())
    load_workflow(page, workflow)
    state = page.evaluate(GRAPH_STATE)
    assert state["widgets"] == {str(node["id"]): node.get("widgets_values", []) for node in workflow["nodes"]}
    assert sorted(state["links"]) == sorted([link[1], link[2], link[3], link[5]] for link in workflow["links"])
    assert state["output"] == json.loads((path.parent / "api" / path.name).read_text())
    assert log.from_lookdev() == []


MODE_STATE = f"""() => {{
  const app = {APP};
  const state = {{}};
  for (const node of app.graph.nodes) {{
    for (const name of ["width", "height", "base_resolution", "custom_resolution", "aspect", "resolution"]) {{
      const widget = node.widgets?.find((w) => w.name === name);
      if (widget) state[`${{node.type}}.${{name}}`] = node.isWidgetVisible(widget);
    }}
    if (node.type === "LookDevLoadDataset") {{
      const y = (name) => node.widgets.find((w) => w.name === name).y;
      state.datasetRowGap = y("no_upscale") - y("resolution");  // one row, or two with custom_resolution
    }}
    if (node.type === "LookDevStoryboardRender") state.renderFits = node.size[1] >= node.computeSize()[1];
  }}
  return state;
}}"""

# What the frontend does when the user picks a value: set it and call the widget's callback.
PICK = f"""([type, name, value]) => {{
  const node = {APP}.graph.nodes.find((n) => n.type === type);
  const widget = node.widgets.find((w) => w.name === name);
  widget.value = value;
  widget.callback?.(value, {APP}.canvas, node);
}}"""


def test_inputs_unused_in_the_current_mode_are_hidden_but_still_queued(app_page, server, tiny_checkpoint):
    """Storyboard Render's width/height show only for aspect "custom", Load Dataset's
    custom_resolution only for resolution "custom"; hidden widgets still reach the prompt, and a
    prompt queued from the page with them hidden validates and runs."""
    page, log = app_page
    load_workflow(page, json.loads(WORKFLOW.read_text()))
    page.wait_for_timeout(500)
    shown = page.evaluate(MODE_STATE)
    assert shown["LookDevStoryboardRender.width"] is False and shown["LookDevStoryboardRender.height"] is False
    assert shown["LookDevStoryboardRender.aspect"] and shown["LookDevStoryboardRender.base_resolution"]
    assert shown["LookDevLoadDataset.custom_resolution"] is False and shown["LookDevLoadDataset.resolution"]
    assert shown["datasetRowGap"] < 40, shown  # no blank row where the hidden input was

    page.evaluate(PICK, ["LookDevStoryboardRender", "aspect", "custom"])
    page.evaluate(PICK, ["LookDevLoadDataset", "resolution", "custom"])
    page.wait_for_timeout(500)  # a frame lays the widgets out
    custom = page.evaluate(MODE_STATE)
    assert custom["LookDevStoryboardRender.width"] and custom["LookDevStoryboardRender.height"]
    assert custom["LookDevLoadDataset.custom_resolution"] and custom["datasetRowGap"] > 40, custom
    assert custom["renderFits"]  # the node is tall enough for them

    workflow = json.loads((ROOT / "workflows" / "storyboard_in_style.json").read_text())
    load_workflow(page, workflow)
    tiny = {"CheckpointLoaderSimple": {"ckpt_name": tiny_checkpoint},
            "LookDevLoRAStack": {"on_1": False, "lora_1": "None"},
            "LookDevShotList": {"shots": "M010 | a pier at night | 1"},
            "LookDevStoryboardRender": {"steps": 2, "base_resolution": 64, "width": 80, "height": 64,
                                        "folder": "web_ui_modes"},
            "LookDevContactSheet": {"folder": "web_ui_modes", "pdf": False, "cell_width": 64}}
    assert page.evaluate(APPLY_OVERRIDES, tiny)["missing"] == []
    page.evaluate(PICK, ["LookDevStoryboardRender", "aspect", "1:1"])
    assert page.evaluate(MODE_STATE)["LookDevStoryboardRender.width"] is False
    output = page.evaluate(GRAPH_STATE)["output"]
    render = next(node for node in output.values() if node["class_type"] == "LookDevStoryboardRender")
    assert (render["inputs"]["width"], render["inputs"]["height"]) == (80, 64)

    # Queued as the Run button does (graphToPrompt, then /prompt); the server's refusal names the input.
    queued = page.evaluate(f"""async () => {{
      const {{ output, workflow }} = await {APP}.graphToPrompt();
      try {{ return await window.comfyAPI.api.api.queuePrompt(0, {{ output, workflow }}); }}
      catch (error) {{ return {{ refused: JSON.stringify(error.response ?? String(error)) }}; }}
    }}""")
    assert "prompt_id" in queued, queued
    entry = server.wait(queued["prompt_id"], timeout=RUN_TIMEOUT_S)
    assert entry["status"]["status_str"] == "success", entry["status"]
    frames = [image["filename"] for node in entry["outputs"].values() for image in node.get("images", [])
              if image.get("subfolder") == "web_ui_modes"]
    assert "M010.png" in frames
    assert log.from_lookdev() == []


# A trainer added from the node menu, then "Show Advanced" and "Hide Advanced" as its menu does.
FRESH_TRAINER = f"""async () => {{
  const app = {APP};
  const node = LiteGraph.createNode("LookDevTrainStyleLoRA");
  app.graph.add(node);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const visible = () => node.widgets.filter((w) => node.isWidgetVisible(w)).map((w) => w.name);
  const menu = () => app.canvas.getNodeMenuOptions(node).filter(Boolean).map((o) => o.content);
  const state = {{ visible: visible(), height: node.size[1], fits: node.computeSize()[1], menu: menu() }};
  node.toggleAdvanced();
  Object.assign(state, {{ allVisible: visible(), shownHeight: node.size[1], shownMenu: menu() }});
  const values = node.serialize().widgets_values;
  node.toggleAdvanced();
  Object.assign(state, {{ hiddenAgain: visible(), hiddenHeight: node.size[1],
                          sameValues: JSON.stringify(values) === JSON.stringify(node.serialize().widgets_values) }});
  app.graph.remove(node);
  return state;
}}"""


def test_trainer_shows_its_essential_inputs_until_show_advanced(app_page):
    """A new trainer shows name, steps, learning rate, rank, targets, seed and recipe, and is short;
    the node menu's "Show Advanced" shows every input and grows it; "Hide Advanced" folds them again."""
    page, log = app_page
    state = page.evaluate(FRESH_TRAINER)
    assert state["visible"] == list(ESSENTIAL_WIDGETS), state
    assert "Show Advanced" in state["menu"] and "Hide Advanced" in state["shownMenu"]
    assert len(state["allVisible"]) > 30 and set(ESSENTIAL_WIDGETS) < set(state["allVisible"])
    assert state["shownHeight"] > 2 * state["height"], state
    assert state["hiddenAgain"] == list(ESSENTIAL_WIDGETS) and state["hiddenHeight"] == state["height"]
    assert state["height"] <= state["fits"] + 1 and state["sameValues"]
    print("trainer height, advanced off / on:", state["height"], state["shownHeight"])
    assert log.from_lookdev() == []


OPENING_VIEW = f"""() => {{
  const app = {APP};
  const {{ scale, offset }} = app.canvas.ds;
  const rect = app.canvas.canvas.getBoundingClientRect();
  const toScreen = ([x, y]) => [rect.left + (x + offset[0]) * scale, rect.top + (y + offset[1]) * scale];
  const onCanvas = ([x, y]) => x >= 0 && y >= 0 && x < innerWidth && y < innerHeight
    && document.elementFromPoint(x, y) === app.canvas.canvas;
  const group = app.graph.groups[0];
  const [gx, gy] = group.pos;
  const note = app.graph.nodes.filter((n) => n.type === "Note").sort((a, b) => a.pos[1] - b.pos[1])[0];
  return {{
    scale, group: group.title,
    // Where the group's title text starts and ends, and the read-me note's title bar.
    groupTitleShown: [toScreen([gx + 10, gy + 15]), toScreen([gx + 180, gy + 15])].every(onCanvas),
    noteTitleShown: [toScreen([note.pos[0] + 10, note.pos[1] - 15]), toScreen([note.pos[0] + 300, note.pos[1] - 15])]
      .every(onCanvas),
  }};
}}"""


@pytest.fixture(scope="module")
def laptop_page(browser, server):
    """The frontend in a 1280x800 window, as on a laptop."""
    yield from _frontend(browser, server, 1280, 800)


def open_template_browser(page):
    """The paths the README names: frontend 1.32's ComfyUI logo menu (top left) › Browse Templates,
    or newer frontends' Templates button in the left side bar; then LookDev."""
    sidebar = page.locator("[data-testid='side-toolbar'] button[aria-label='Templates']")
    if sidebar.count():
        sidebar.first.click()
    else:
        page.locator(".comfy-menu-button-wrapper").first.click()
        page.get_by_role("menuitem", name="Browse Templates").click()
    page.get_by_text("LookDev", exact=True).first.click()
    page.locator("[data-testid^='template-workflow-']").first.wait_for(timeout=30_000)


CARDS = """() => [...document.querySelectorAll("[data-testid^='template-workflow-']")].map((card) => ({
  name: card.dataset.testid.replace("template-workflow-", ""),
  text: card.innerText.split("\\n").map((line) => line.trim()).filter(Boolean),
  thumbnails: [...card.querySelectorAll("img")].filter((img) => img.complete && img.naturalWidth > 0)
    .map((img) => [img.naturalWidth, img.naturalHeight]),
}))"""


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_template_opens_at_a_readable_zoom_on_its_first_step(laptop_page, path):
    """Opened from the template browser in a 1280x800 window: text at 85 % (not the 60 % at which
    it is unreadable), the read-me note's and the first group's titles on the canvas, not under the
    tab bar or the floating toolbars. The card shows the thumbnail; frontends title a custom node's
    template with its file name (README)."""
    page, log = laptop_page
    open_template_browser(page)
    page.wait_for_function(f"""() => {{ const card = document.querySelector("[data-testid='template-workflow-{path.stem}']");
      return card && [...card.querySelectorAll("img")].some((img) => img.complete && img.naturalWidth > 0); }}""",
                           timeout=30_000)
    card = next(card for card in page.evaluate(CARDS) if card["name"] == path.stem)
    assert [640, 400] in card["thumbnails"], card  # workflows/<name>.jpg, not the placeholder
    # 1.32: file name, then the name spelled out; 1.58: a "Node graph" badge, then the file name.
    assert card["text"][:2] in ([path.stem, path.stem.replace("_", " ")], ["Node graph", path.stem]), card
    page.locator(f"[data-testid='template-workflow-{path.stem}']").click()
    page.wait_for_function(f"() => {APP}.graph.groups?.[0]?.title === {json.dumps(json.loads(path.read_text())['groups'][0]['title'])}",
                           timeout=30_000)
    page.wait_for_timeout(500)
    view = page.evaluate(OPENING_VIEW)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web_ui_opening_{path.stem}.png"))
    assert view["scale"] == pytest.approx(0.85), view
    assert view["groupTitleShown"] and view["noteTitleShown"], view
    assert log.from_lookdev() == []


# Clicks a button widget of a node as a person does: a real mouse click on the canvas.
# The button's centre on screen, once the canvas has drawn the node at the new view and the
# widget's position has stopped moving (a loaded node lays its widgets out when first drawn; on a
# loaded machine that can take several frames).
BUTTON_POINT = f"""async ([type, label]) => {{
  const app = {APP};
  const node = app.graph.nodes.find((n) => n.type === type);
  const widget = node.widgets.find((w) => w.name === label);
  app.canvas.ds.fitToBounds([node.pos[0], node.pos[1] - 30, node.size[0], node.size[1] + 30], {{ zoom: 0.9 }});
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  let previous = null;
  for (let i = 0; i < 50; i++) {{
    app.canvas.setDirty(true, true);
    await frame();
    await frame();
    const {{ scale, offset }} = app.canvas.ds;
    const rect = app.canvas.canvas.getBoundingClientRect();
    const y = node.pos[1] + (widget.last_y ?? widget.y) + LiteGraph.NODE_WIDGET_HEIGHT / 2;
    const point = [rect.left + (node.pos[0] + node.size[0] / 2 + offset[0]) * scale, rect.top + (y + offset[1]) * scale];
    if (widget.last_y !== undefined && previous && point[0] === previous[0] && point[1] === previous[1]) return point;
    previous = point;
  }}
  throw new Error(`the ${{label}} button of ${{type}} did not settle on the canvas`);
}}"""

UPLOAD_RESULT = f"""async () => {{
  const node = {APP}.graph.nodes.find((n) => n.type === "LookDevLoadDataset");
  const result = await node.lookdevUpload;
  const folder = node.widgets.find((w) => w.name === "folder");
  return {{ result, value: folder.value, choices: folder.options.values, status: node.lookdevUploadStatus,
            saved: node.serialize().widgets_values }};
}}"""


def open_file_chooser(page, node_type, label, attempts=3):
    """Click a node's button as a user does and return the file chooser it opens. A click can land
    while the canvas is still settling after a busy moment (seen in whole-suite runs: no chooser);
    a user clicks again, and so does this, at the button's position measured afresh."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        x, y = page.evaluate(BUTTON_POINT, [node_type, label])
        try:
            with page.expect_file_chooser(timeout=15_000) as chooser:
                page.mouse.click(x, y)
            return chooser.value
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


def test_dataset_folder_upload_then_pick_then_load(app_page, server, tmp_path):
    """"upload images" on Load Dataset sends the chosen images and captions into an input
    subfolder through ComfyUI's /upload/image; the folder becomes a choice of the refreshed list
    and the node's value; a prompt with it loads the dataset. The buttons save no value."""
    page, log = app_page
    workflow = json.loads((ROOT / "workflows" / "train_style_lora.json").read_text())
    load_workflow(page, workflow)
    [saved] = [node["widgets_values"] for node in workflow["nodes"] if node["type"] == "LookDevLoadDataset"]
    folder = "web_upload_set"
    page.evaluate(PICK, ["LookDevLoadDataset", "folder", folder])  # a new name, typed
    write_dataset(tmp_path / "local")
    files = sorted(str(p) for p in (tmp_path / "local").iterdir())
    open_file_chooser(page, "LookDevLoadDataset", "upload images").set_files(files)
    state = page.evaluate(UPLOAD_RESULT)
    assert state["result"] == {"uploaded": len(files), "folder": folder}, state
    assert state["status"] == f"uploaded {len(files)} / {len(files)} into input/{folder}"
    assert sorted(p.name for p in (server.base / "input" / folder).iterdir()) == sorted(Path(f).name for f in files)
    assert state["value"] == folder and folder in state["choices"]
    assert len(state["saved"]) == len(saved), "the buttons added a saved value"

    # "type a folder path": the canvas's text prompt sets any path, e.g. one outside the input folder.
    x, y = page.evaluate(BUTTON_POINT, ["LookDevLoadDataset", "type a folder path"])
    page.mouse.click(x, y)
    page.locator(".graphdialog input").fill(str(tmp_path / "local"))
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert page.evaluate(UPLOAD_RESULT)["value"] == str(tmp_path / "local")
    page.evaluate(PICK, ["LookDevLoadDataset", "folder", folder])  # picked from the list again

    prompt = {"1": {"class_type": "LookDevLoadDataset", "inputs": {
                  "folder": state["value"], "trigger": "lkdv", "resolution": "custom", "custom_resolution": 128,
                  "no_upscale": False, "repeats": 1, "recursive": True, "caption_extension": "txt"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 1]}}}
    entry = server.wait(server.queue(prompt), timeout=RUN_TIMEOUT_S)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["2"]["images"] and entry["outputs"]["1"]["images"]
    assert log.from_lookdev() == []
