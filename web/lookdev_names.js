// Node ids and websocket event names the LookDev web extension uses, in one place. EVENTS mirrors
// the EVENT_* constants of trainer/events.py (EVENT_TRAIN_PROGRESS -> trainProgress), which
// documents each payload; node ids are saved in workflows and never change.
// tests/test_web_extension.py keeps both sides in step.

export const NODE_IDS = {
  train: "LookDevTrainStyleLoRA",
};

// Inputs used only in one mode of another input: {node id: [[mode input, mode value, inputs]]}.
// The web extension hides them in the other modes; their values are still saved and queued.
export const MODE_INPUTS = {
  "LookDevStoryboardRender": [["aspect", "custom", ["width", "height"]]],
  "LookDevLoadDataset": [["resolution", "custom", ["custom_resolution"]]],
  "LookDevDatasetFromImages": [["resolution", "custom", ["custom_resolution"]]],
  "LookDevDatasetFromVideo": [["resolution", "custom", ["custom_resolution"]]],
};

// Dataset folder inputs that get "type a folder path" and "upload images" buttons: {node id: input}.
export const FOLDER_INPUTS = {
  "LookDevLoadDataset": "folder",
};

// The key in a workflow's extra that marks LookDev's templates (scripts/build_workflows.py writes
// it): lookdev_view.js opens them at their saved view (extra.ds).
export const TEMPLATE_MARK = "lookdev_template";

export const EVENTS = {
  trainProgress: "lookdev.train.progress",
  trainPreview: "lookdev.train.preview",
  trainDone: "lookdev.train.done",
  renderProgress: "lookdev.render.progress",
  renderEncoding: "lookdev.render.encoding",
  status: "lookdev.status",
};
