// Live progress on LookDev nodes, from the pack's websocket events: on the trainer, a loss chart,
// the latest validation renders and a status line; on a node rendering shots, a status line.
// The chart state lives on the node as node.lookdevChart (see newChart), which tests read.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { drawLossChart, newChart, statusLine } from "./lookdev_chart.js";
import { EVENTS, NODE_IDS } from "./lookdev_names.js";

const TRAIN_PANEL_HEIGHT = 300;
const STATUS_PANEL_HEIGHT = 24;

const STYLE = `
.lookdev-panel { display: flex; flex-direction: column; gap: 4px; box-sizing: border-box; overflow: hidden;
  font: 11px sans-serif; color: var(--descrip-text, #aaa); }
.lookdev-chart { flex: 1 1 auto; min-height: 0; width: 100%; }
.lookdev-previews { flex: 0 0 96px; display: flex; gap: 4px; align-items: flex-start; overflow: hidden; }
.lookdev-previews:empty { display: none; }
.lookdev-previews img { height: 100%; min-width: 0; object-fit: contain; border-radius: 3px; }
.lookdev-status { flex: 0 0 auto; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
`;

function element(tag, className) {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

function addStyle() {
  const style = element("style", "");
  style.id = "lookdev-style";
  style.textContent = STYLE;
  document.head.append(style);
}

// Events name nodes by execution id: inside subgraphs the ids of the enclosing nodes come first ("5:12").
function nodeForExecutionId(id) {
  let graph = app.rootGraph ?? app.graph;
  let node = null;
  for (const part of String(id ?? "").split(":")) {
    node = graph?.getNodeById?.(part) ?? null;
    graph = node?.subgraph;
  }
  return node;
}

function viewUrl(ref) {
  const { filename, subfolder = "", type = "temp" } = ref;
  const query = new URLSearchParams({ filename, subfolder, type });
  return api.apiURL(`/view?${query}`);
}

class Panel {
  constructor(node, withChart) {
    this.node = node;
    this.root = element("div", "lookdev-panel");
    this.status = element("div", "lookdev-status");
    if (withChart) {
      this.canvas = element("canvas", "lookdev-chart");
      this.previews = element("div", "lookdev-previews");
      this.root.append(this.canvas, this.previews);
      this.observer = new ResizeObserver(() => this.draw());
      this.observer.observe(this.canvas);
    }
    this.root.append(this.status);
    const height = withChart ? TRAIN_PANEL_HEIGHT : STATUS_PANEL_HEIGHT;
    const widget = node.addDOMWidget("lookdev_progress", "lookdev.progress", this.root, {
      serialize: false, // keeps it out of the API prompt
      getMinHeight: () => height,
      onDraw: () => this.zoomed() && this.update(),
    });
    widget.serialize = false; // and out of the workflow's widgets_values
    const onRemove = widget.onRemove;
    widget.onRemove = (...args) => {
      this.observer?.disconnect();
      return onRemove?.apply(widget, args);
    };
    this.pending = false;
    this.scale = 1;
  }

  // Events can come faster than frames: repaint once per frame.
  update() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const chart = this.node.lookdevChart;
    if (!chart || !this.canvas) return;
    this.status.textContent = statusLine(chart);
    const { clientWidth: width, clientHeight: height } = this.canvas;
    if (!width || !height) return; // not laid out (hidden, zoomed out)
    this.scale = this.canvasScale();
    const ratio = (window.devicePixelRatio || 1) * this.scale;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    drawLossChart(ctx, chart, width, height, getComputedStyle(this.root).color);
  }

  // The frontend zooms DOM widgets with a CSS transform: draw at the zoomed size to stay sharp.
  canvasScale() {
    return Math.min(4, Math.max(1, app.canvas?.ds?.scale ?? 1));
  }

  zoomed() {
    return this.canvas && Math.abs(this.canvasScale() - this.scale) > 0.05;
  }

  showPreviews({ step, label: text, images }) {
    const label = element("span", "");
    label.textContent = text ?? `step ${step}`;
    const imgs = images.map(({ url, prompt }) => {
      const img = element("img", "");
      img.src = url;
      img.title = img.alt = prompt;
      return img;
    });
    this.previews.replaceChildren(label, ...imgs);
  }
}

function addTrainPanel(node) {
  node.lookdevChart = newChart();
  if (typeof node.addDOMWidget !== "function") return; // frontends without DOM widgets: state only
  node.lookdevPanel = new Panel(node, true);
  node.lookdevPanel.update();
}

// The trainer's chart for an event, cleared when a new run (prompt) starts.
function chartFor(detail) {
  const node = nodeForExecutionId(detail.node);
  const chart = node?.lookdevChart;
  if (!chart) return null; // not a trainer of the workflow on screen
  if (chart.promptId !== detail.prompt_id) {
    Object.assign(chart, newChart(), { promptId: detail.prompt_id });
    node.lookdevPanel?.previews.replaceChildren();
  }
  return { node, chart };
}

function onTrainProgress({ detail }) {
  const found = chartFor(detail);
  if (!found) return;
  const { node, chart } = found;
  Object.assign(chart, { name: detail.name, total: detail.total, resumedFrom: detail.resumed_from ?? 0,
    eta: detail.eta_s });
  chart.points.push({ step: detail.step, loss: detail.loss, smooth: detail.loss_smooth, lr: detail.lr });
  node.lookdevPanel?.update();
}

function onTrainPreview({ detail }) {
  const found = chartFor(detail);
  if (!found) return;
  const { node, chart } = found;
  const preview = {
    step: detail.step,
    images: detail.images.map((ref, i) => ({ url: viewUrl(ref), prompt: detail.prompts?.[i] ?? "" })),
    styleDistance: detail.style_distance ?? null,
  };
  chart.previews.push(preview);
  node.lookdevPanel?.showPreviews(preview);
  node.lookdevPanel?.update();
}

// The final LoRA's validation renders and the loss curve replace the mid-run previews.
function onTrainDone({ detail }) {
  const found = chartFor(detail);
  if (!found) return;
  const { node, chart } = found;
  chart.done = detail;
  const images = (detail.images ?? []).map((ref, i) => ({ url: viewUrl(ref), prompt: detail.prompts?.[i] ?? "" }));
  if (detail.loss_image) images.push({ url: viewUrl(detail.loss_image), prompt: "loss curve" });
  chart.final = { step: detail.steps, label: "final", images };
  node.lookdevPanel?.showPreviews(chart.final);
  node.lookdevPanel?.update();
}

// A phase's status line: on the trainer it joins the chart; on other nodes it is their status line.
function onStatus({ detail }) {
  const node = nodeForExecutionId(detail.node);
  if (node?.lookdevChart) {
    const found = chartFor(detail);
    found.chart.phase = detail;
    found.node.lookdevPanel?.update();
  } else {
    setRenderStatus(detail.node, detail.text);
  }
}

// ComfyUI's own execution_interrupted / execution_error: the trainer sends no done event then.
function onRunStopped({ type, detail }) {
  const node = nodeForExecutionId(detail.node_id);
  const chart = node?.lookdevChart;
  if (!chart || chart.done || chart.promptId !== detail.prompt_id) return;
  chart.stopped = type === "execution_interrupted" ? "cancelled" : "failed";
  node.lookdevPanel?.update();
}

function setRenderStatus(executionId, text) {
  const node = nodeForExecutionId(executionId);
  if (!node || typeof node.addDOMWidget !== "function") return;
  if (!node.lookdevPanel) {
    node.lookdevPanel = new Panel(node, false);
    node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  }
  node.lookdevPanel.status.textContent = text;
}

function onRenderProgress({ detail }) {
  setRenderStatus(detail.node,
    `shot ${detail.index} / ${detail.total} · step ${detail.step} / ${detail.steps} · ${detail.shot}`);
}

function onRenderEncoding({ detail }) {
  setRenderStatus(detail.node, `encoding prompts ${detail.done} / ${detail.total}`);
}

app.registerExtension({
  name: "LookDev.Progress",
  setup() {
    addStyle();
    api.addEventListener(EVENTS.trainProgress, onTrainProgress);
    api.addEventListener(EVENTS.trainPreview, onTrainPreview);
    api.addEventListener(EVENTS.trainDone, onTrainDone);
    api.addEventListener(EVENTS.renderProgress, onRenderProgress);
    api.addEventListener(EVENTS.renderEncoding, onRenderEncoding);
    api.addEventListener(EVENTS.status, onStatus);
    api.addEventListener("execution_interrupted", onRunStopped);
    api.addEventListener("execution_error", onRunStopped);
  },
  nodeCreated(node) {
    if (node.comfyClass === NODE_IDS.train) addTrainPanel(node);
  },
});
