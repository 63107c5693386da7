// Node ids and websocket event names the LookDev web extension uses, in one place. Events mirror
// the EVENT_* constants of nodes/common.py, which documents each payload; node ids are saved in
// workflows and never change. tests/test_web_names.py keeps both sides in step.

export const NODE_IDS = {
  train: "LookDevTrainStyleLoRA",
};

export const EVENTS = {
  trainProgress: "lookdev.train.progress",
  trainPreview: "lookdev.train.preview",
  trainDone: "lookdev.train.done",
  renderProgress: "lookdev.render.progress",
  renderEncoding: "lookdev.render.encoding",
};
