// Opens LookDev's templates at the view they were saved with (extra.ds: readable zoom, the read-me
// note and the first step on screen). Frontend 1.58 fits the whole graph into the window for any
// workflow opened from the template browser, ignoring extra.ds (37-40 % on a laptop: unreadable);
// 1.32 restores extra.ds itself, so there this sets the same view again. Only for workflows that
// carry TEMPLATE_MARK in extra (the shipped templates and copies saved from them, whose extra.ds is
// then the view they were saved at, which the frontend restores for a saved file anyway), and only
// while the frontend's "restore the workflow's view" setting is on.
import { app } from "../../scripts/app.js";
import { TEMPLATE_MARK } from "./lookdev_names.js";

const MAX_FRAMES = 120; // about 2 s: how long to wait for the frontend's own camera placement
let opening = null;

function savedView(graphData) {
  const extra = graphData?.extra;
  const ds = extra?.ds;
  if (!extra?.[TEMPLATE_MARK] || !ds) return null;
  const { scale, offset } = ds;
  if (!(scale > 0) || !Array.isArray(offset) || offset.length !== 2 || !offset.every(Number.isFinite)) return null;
  return { scale, offset: [...offset] };
}

function restoreEnabled() {
  const value = app.extensionManager?.setting?.get?.("Comfy.EnableWorkflowViewRestore");
  return value !== false;
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));

app.registerExtension({
  name: "LookDev.TemplateView",
  async beforeConfigureGraph(graphData) {
    opening = savedView(graphData);
  },
  async afterConfigureGraph() {
    const view = opening;
    opening = null;
    if (!view || !restoreEnabled()) return;
    // 1.58 places the camera a frame or more after the graph is configured (app.pendingCamera
    // is set until then); set the saved view once it has.
    if (app.pendingCamera) {
      for (let frame = 0; frame < MAX_FRAMES && app.pendingCamera; frame++) await nextFrame();
      await nextFrame();
    }
    const ds = app.canvas?.ds;
    if (!ds || (ds.scale === view.scale && ds.offset[0] === view.offset[0] && ds.offset[1] === view.offset[1])) return;
    ds.scale = view.scale;
    ds.offset = view.offset;
    app.canvas.setDirty(true, true);
  },
});
