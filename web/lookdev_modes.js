// Hides inputs that do nothing in the current mode (e.g. width/height unless aspect is "custom"),
// so a node shows only what affects the result. Hidden widgets keep their values: they are still
// saved in the workflow and sent in the prompt. Frontends whose nodes skip `widget.hidden` when
// drawing (1.2x and newer) hide them; older ones grey them out (`disabled`).
// Also folds inputs marked `advanced` (INPUT_TYPES option) until the node's "Show Advanced"
// (right-click menu): frontend 1.32 keeps the option in `widget.options` only, while its drawing
// and menu read `widget.advanced`. Frontends without that menu show them all.
import { app } from "../../scripts/app.js";
import { MODE_INPUTS } from "./lookdev_names.js";

function widgetNamed(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

// A widget fed by a link is in use whatever the mode: keep it (and its input slot) visible.
function linked(node, name) {
  return !!node.inputs?.find((input) => input.widget?.name === name && input.link != null);
}

// The frontend still lays out hidden widgets (1.32 leaves a blank row): a hidden one takes no height.
// `reason`: "mode" or "advanced"; the widget takes no height while any reason holds.
function collapse(widget, reason, hidden) {
  widget.lookdevFolded = { ...widget.lookdevFolded, [reason]: hidden };
  if (Object.values(widget.lookdevFolded).some(Boolean)) {
    if (widget.lookdevComputeSize !== undefined) return;
    widget.lookdevComputeSize = Object.hasOwn(widget, "computeSize") ? widget.computeSize : null;
    widget.computeSize = () => [0, -4];
  } else if (widget.lookdevComputeSize !== undefined) {
    if (widget.lookdevComputeSize) widget.computeSize = widget.lookdevComputeSize;
    else delete widget.computeSize;
    delete widget.lookdevComputeSize;
  }
}

// Grows the node when inputs appear; never shrinks it (its size may be the user's layout).
function applyModes(node) {
  const rules = MODE_INPUTS[node.comfyClass];
  if (!rules) return;
  const canHide = typeof node.isWidgetVisible === "function";
  let changed = false;
  for (const [modeName, modeValue, names] of rules) {
    const mode = widgetNamed(node, modeName);
    if (!mode) continue;
    for (const name of names) {
      const widget = widgetNamed(node, name);
      if (!widget) continue;
      const unused = mode.value !== modeValue && !linked(node, name);
      const flag = canHide ? "hidden" : "disabled";
      if (!!widget[flag] !== unused) {
        widget[flag] = unused;
        if (canHide) collapse(widget, "mode", unused);
        changed = true;
      }
    }
  }
  if (changed) {
    node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
    node.setDirtyCanvas?.(true, true);
  }
}

function canFold(node) {
  return typeof node.isWidgetVisible === "function" && typeof node.toggleAdvanced === "function";
}

// Marks the advanced widgets (unless fed by a link) and collapses them while advanced inputs are off.
function foldAdvanced(node) {
  if (!canFold(node)) return false;
  let changed = false;
  for (const widget of node.widgets ?? []) {
    if (!widget.options?.advanced) continue;
    const advanced = !linked(node, widget.name);
    const folded = advanced && !node.showAdvanced;
    if (widget.advanced !== advanced || !!widget.lookdevFolded?.advanced !== folded) changed = true;
    widget.advanced = advanced;
    collapse(widget, "advanced", folded);
  }
  return changed;
}

function hasAdvanced(node) {
  return node.widgets?.some((w) => w.options?.advanced);
}

function watchAdvanced(node) {
  const toggle = node.toggleAdvanced;
  node.toggleAdvanced = function (...args) {
    const result = toggle.apply(this, args);
    foldAdvanced(node);
    // Showing grows the node to fit; hiding shrinks it to its essential inputs.
    const height = node.computeSize()[1];
    node.setSize([node.size[0], node.showAdvanced ? Math.max(node.size[1], height) : height]);
    node.setDirtyCanvas?.(true, true);
    return result;
  };
}

// Runs `after` after target[method] (a node's or widget's own handler, if any).
function chain(target, method, after) {
  const original = target[method];
  target[method] = function (...args) {
    const result = original?.apply(this, args);
    after();
    return result;
  };
}

app.registerExtension({
  name: "LookDev.ModeInputs",
  nodeCreated(node) {
    if (hasAdvanced(node) && canFold(node)) {
      foldAdvanced(node);
      watchAdvanced(node);
      chain(node, "onConfigure", () => {
        node.lookdevConfigured = true;
        foldAdvanced(node);
      });
      // A new node starts at its essential inputs, once every extension has added its widgets; a
      // loaded one (configured in the same task) keeps its saved size and showAdvanced.
      setTimeout(() => {
        if (!node.lookdevConfigured) node.setSize([node.size[0], node.computeSize()[1]]);
      }, 0);
      chain(node, "onConnectionsChange", () => {
        if (foldAdvanced(node)) node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
      });
    } else if (hasAdvanced(node)) {
      // No "Show Advanced" here: every input shows, so a saved short node grows to fit them.
      chain(node, "onConfigure", () => node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]));
    }
    const rules = MODE_INPUTS[node.comfyClass];
    if (!rules) return;
    for (const [modeName] of rules) {
      const mode = widgetNamed(node, modeName);
      if (mode) chain(mode, "callback", () => applyModes(node));
    }
    chain(node, "onConfigure", () => applyModes(node));
    chain(node, "onConnectionsChange", () => applyModes(node));
    applyModes(node);
  },
});
