// The trainer's loss chart: raw and smoothed loss on the left axis, learning rate on the right, and the
// style distance of each validation round's renders to the dataset (dots joined, its own scale).
// drawLossChart only paints a 2D context from a chart state (see newChart), so it works on any canvas.

const COLORS = {
  raw: "rgba(110, 170, 255, 0.45)",
  smooth: "#6ab0ff",
  lr: "#e0a040",
  style: "#d060c0",
  grid: "rgba(128, 128, 128, 0.25)",
};

export function newChart() {
  return {
    promptId: null,
    name: "",
    total: 0,
    resumedFrom: 0,
    points: [], // {step, loss, smooth, lr}, one per training step received
    eta: null,
    previews: [], // {step, images: [{url, prompt}], styleDistance}, oldest first
    done: null, // the lookdev.train.done payload once the run has finished
    phase: null, // the latest lookdev.status payload: caching, training, validation, saving, done
    final: null, // {step, label, images: [{url, prompt}]}: the final renders and the loss curve
    stopped: null, // "cancelled" or "failed" when the run ended early
  };
}

function formatSeconds(seconds) {
  if (seconds == null || !isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function statusLine(chart) {
  if (chart.done) {
    const file = String(chart.done.path ?? "").split(/[\\/]/).pop();
    const loss = chart.done.final_loss == null ? "" : ` · final loss ${chart.done.final_loss.toFixed(4)}`;
    const seconds = chart.done.node_seconds ?? chart.done.seconds;
    return `done: ${chart.done.steps} steps in ${formatSeconds(seconds)}${loss} · saved ${file}`;
  }
  const last = chart.points[chart.points.length - 1];
  if (chart.stopped) return `${chart.stopped} at step ${last?.step ?? chart.resumedFrom} / ${chart.total}`;
  // Caching latents, rendering validation images, saving: the phase's own line, not a frozen step line.
  if (chart.phase && chart.phase.phase !== "training") return chart.phase.text;
  if (!last) return chart.phase?.text ?? "waiting for the first training step";
  const resumed = chart.resumedFrom ? ` · resumed at ${chart.resumedFrom}` : "";
  return `step ${last.step} / ${chart.total} · loss ${last.loss.toFixed(4)} (smoothed ${last.smooth.toFixed(4)})` +
    ` · lr ${last.lr.toExponential(1)} · ETA ${formatSeconds(chart.eta)}${resumed}`;
}

function range(points, keys) {
  let lo = Infinity, hi = -Infinity;
  for (const p of points) for (const k of keys) { lo = Math.min(lo, p[k]); hi = Math.max(hi, p[k]); }
  if (hi - lo < 1e-12) { lo -= Math.abs(lo) * 0.05 + 1e-6; hi += Math.abs(hi) * 0.05 + 1e-6; }
  return [lo, hi];
}

function polyline(ctx, points, x, y, color, width, dash = []) {
  ctx.beginPath();
  ctx.setLineDash(dash);
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  points.forEach((p, i) => (i ? ctx.lineTo(x(p), y(p)) : ctx.moveTo(x(p), y(p))));
  ctx.stroke();
  ctx.setLineDash([]);
}

export function drawLossChart(ctx, chart, width, height, textColor) {
  ctx.clearRect(0, 0, width, height);
  ctx.font = "10px sans-serif";
  ctx.fillStyle = textColor;
  const pad = { left: 44, right: 44, top: 8, bottom: 16 };
  const w = width - pad.left - pad.right, h = height - pad.top - pad.bottom;
  if (w < 20 || h < 20) return;
  ctx.strokeStyle = COLORS.grid;
  ctx.strokeRect(pad.left, pad.top, w, h);
  if (!chart.points.length) return;
  // Long runs: at most about two points per pixel column, always keeping the latest one.
  const stride = Math.ceil(chart.points.length / (2 * w));
  const points = chart.points.filter((_, i) => i % stride === 0 || i === chart.points.length - 1);

  // A resumed run has no history before resumedFrom, so the x axis starts there.
  const x0 = chart.resumedFrom, x1 = Math.max(chart.total, points[points.length - 1].step, x0 + 1);
  const [lo, hi] = range(points, ["loss", "smooth"]);
  const lrMax = points.reduce((max, p) => Math.max(max, p.lr), 0) || 1;
  const x = (p) => pad.left + ((p.step - x0) / (x1 - x0)) * w;
  const yLoss = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * h;

  polyline(ctx, points, x, (p) => pad.top + (1 - p.lr / lrMax) * h, COLORS.lr, 1, [4, 3]);
  polyline(ctx, points, x, (p) => yLoss(p.loss), COLORS.raw, 1);
  polyline(ctx, points, x, (p) => yLoss(p.smooth), COLORS.smooth, 2);
  const styled = chart.previews.filter((p) => p.styleDistance != null);
  if (styled.length) {
    const styleMax = styled.reduce((max, p) => Math.max(max, p.styleDistance), 0) || 1;
    const yStyle = (p) => pad.top + (1 - p.styleDistance / styleMax) * h;
    polyline(ctx, styled, x, yStyle, COLORS.style, 1.5);
    ctx.fillStyle = COLORS.style;
    for (const p of styled) {
      ctx.beginPath();
      ctx.arc(x(p), yStyle(p), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  const last = points[points.length - 1];
  ctx.fillStyle = COLORS.smooth;
  ctx.beginPath();
  ctx.arc(x(last), yLoss(last.smooth), 2.5, 0, 2 * Math.PI); // the latest step, visible from the first one
  ctx.fill();
  ctx.fillStyle = textColor;

  ctx.textBaseline = "top";
  ctx.textAlign = "right";
  ctx.fillText(hi.toPrecision(3), pad.left - 4, pad.top);
  ctx.textBaseline = "bottom";
  ctx.fillText(lo.toPrecision(3), pad.left - 4, pad.top + h);
  ctx.textAlign = "left";
  ctx.fillStyle = COLORS.lr;
  ctx.textBaseline = "top";
  ctx.fillText(lrMax.toExponential(1), pad.left + w + 4, pad.top);
  ctx.fillStyle = textColor;
  ctx.fillText(String(x0), pad.left, pad.top + h + 3);
  ctx.textAlign = "right";
  ctx.fillText(String(x1), pad.left + w, pad.top + h + 3);
  legend(ctx, pad.left + w - 6, pad.top + 4, textColor, styled.length > 0);
}

// Top right: a falling loss and a decaying learning rate leave that corner free.
function legend(ctx, right, top, textColor, withStyle) {
  const entries = [["loss", COLORS.raw, []], ["smoothed", COLORS.smooth, []], ["lr", COLORS.lr, [4, 3]]];
  if (withStyle) entries.push(["style distance", COLORS.style, []]);
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let x = right;
  for (const [label, color, dash] of entries.reverse()) {
    x -= ctx.measureText(label).width + 22;
    ctx.beginPath();
    ctx.setLineDash(dash);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.moveTo(x, top + 5);
    ctx.lineTo(x + 14, top + 5);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = textColor;
    ctx.fillText(label, x + 17, top + 5);
  }
}
