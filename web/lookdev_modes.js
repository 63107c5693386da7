// Hides inputs that do nothing in the current mode (e.g. width/height unless aspect is "custom"),
// so a node shows only what affects the result. Hidden widgets keep their values: they are still
// saved in the workflow and sent in the prompt. Frontends whose nodes skip `widget.hidden` when
// drawing (1.2x and newer) hide them; older ones grey them out (`disabled`).
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
function collapse(widget, hidden) {
  if (hidden) {
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
        if (canHide) collapse(widget, unused);
        changed = true;
      }
    }
  }
  if (changed) {
    node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
    node.setDirtyCanvas?.(true, true);
  }
}

app.registerExtension({
  name: "LookDev.ModeInputs",
  nodeCreated(node) {
    const rules = MODE_INPUTS[node.comfyClass];
    if (!rules) return;
    for (const [modeName] of rules) {
      const mode = widgetNamed(node, modeName);
      if (!mode) continue;
      const callback = mode.callback;
      mode.callback = function (...args) {
        const result = callback?.apply(this, args);
        applyModes(node);
        return result;
      };
    }
    const onConfigure = node.onConfigure;
    node.onConfigure = function (...args) {
      const result = onConfigure?.apply(this, args);
      applyModes(node);
      return result;
    };
    const onConnectionsChange = node.onConnectionsChange;
    node.onConnectionsChange = function (...args) {
      const result = onConnectionsChange?.apply(this, args);
      applyModes(node);
      return result;
    };
    applyModes(node);
  },
});
