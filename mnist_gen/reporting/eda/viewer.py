"""The interactive 3D view: plotly when installed, else a self-contained canvas viewer (HTML + JavaScript)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mnist_gen.errors import UserError
from mnist_gen.io import write_atomic
from mnist_gen.reporting.eda.constants import CLASS_COLORS, CLASSES


def write_umap_3d_html(mnist_emb: np.ndarray, mnist_labels: np.ndarray, mnist_ids: Sequence[str],
                       projected: Mapping[str, tuple[np.ndarray, np.ndarray, Sequence[str]]],
                       path, title: str, engine: str = "auto") -> tuple[Path, str]:
    """Interactive 3D scatter (rotate by dragging, hover for set/label/id) as one HTML file.

    ``engine``: ``plotly`` (needs the optional ``plotly`` extra; embeds plotly.js, ~4 MB),
    ``builtin`` (a small canvas viewer in plain JavaScript, no dependency), or ``auto``
    (plotly when importable). Returns (path, engine used). Either file works offline.
    """
    if engine not in ("auto", "plotly", "builtin"):
        raise UserError(f"Unknown 3D HTML engine '{engine}'; use auto, plotly or builtin.")
    if engine in ("auto", "plotly"):
        try:
            import plotly.graph_objects as go  # noqa: F401
        except ImportError:
            if engine == "plotly":
                raise UserError("plotly is not installed; `pip install -e \".[plotly]\"` or use engine builtin.") from None
            engine = "builtin"
        else:
            engine = "plotly"
    traces = _html_traces(mnist_emb, mnist_labels, mnist_ids, projected)
    html = _plotly_html(traces, title) if engine == "plotly" else _builtin_html(traces, title)
    return write_atomic(path, html), engine


def _html_traces(mnist_emb, mnist_labels, mnist_ids, projected) -> list[dict]:
    """One trace per MNIST class and one per other set: points, class colour, hover text."""
    traces = []
    mnist_emb, mnist_labels = np.asarray(mnist_emb, dtype=float), np.asarray(mnist_labels)
    for k in range(CLASSES):
        sel = np.flatnonzero(mnist_labels == k)
        if sel.size:
            traces.append({"name": f"MNIST {k}", "xyz": mnist_emb[sel], "labels": mnist_labels[sel],
                           "text": [f"MNIST · label {k} · {mnist_ids[i]}" for i in sel], "size": 2, "set": False})
    for name, item in projected.items():
        emb, labels = np.asarray(item[0], dtype=float), np.asarray(item[1])
        ids = item[2] if len(item) > 2 else [str(i) for i in range(len(labels))]
        if len(emb):
            traces.append({"name": name, "xyz": emb, "labels": labels,
                           "text": [f"{name} · label {int(k)} · {i}" for k, i in zip(labels, ids, strict=True)],
                           "size": 5, "set": True})
    return traces


def _plotly_html(traces: list[dict], title: str) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    symbols = ["diamond", "square", "cross", "x", "circle-open", "diamond-open", "square-open"]
    j = 0
    for t in traces:
        colors = [CLASS_COLORS[int(k)] for k in t["labels"]]
        marker = {"size": t["size"], "color": colors, "opacity": 0.5 if not t["set"] else 0.95}
        if t["set"]:
            marker.update(symbol=symbols[j % len(symbols)], line={"width": 1, "color": "black"})
            j += 1
        fig.add_trace(go.Scatter3d(x=t["xyz"][:, 0], y=t["xyz"][:, 1], z=t["xyz"][:, 2], mode="markers",
                                   name=t["name"], text=t["text"], hoverinfo="text", marker=marker))
    fig.update_layout(title=title, height=800, legend={"itemsizing": "constant"}, margin={"l": 0, "r": 0, "b": 0, "t": 40})
    return fig.to_html(include_plotlyjs=True, full_html=True)


_BUILTIN_VIEWER = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:sans-serif;margin:0;display:flex;height:100vh}
#c{flex:1 1 0;min-width:0;height:100vh;cursor:grab;background:#fff}
#side{width:230px;padding:8px;overflow:auto;border-left:1px solid #ccc;font-size:13px}
#tip{position:fixed;pointer-events:none;background:#ffffe0;border:1px solid #999;padding:2px 5px;font-size:12px;display:none}
</style></head><body>
<canvas id="c"></canvas>
<div id="side"><b>__TITLE__</b><p>Drag to rotate, wheel to zoom, hover a point to inspect it.</p><div id="legend"></div></div>
<div id="tip"></div>
<script>
const DATA = __DATA__;
const COLORS = __COLORS__;
const cv = document.getElementById('c'), ctx = cv.getContext('2d'), tip = document.getElementById('tip');
let yaw = 0.6, pitch = 0.4, zoom = 1, drag = null, shown = DATA.traces.map(() => true), proj = [];
const all = DATA.traces.flatMap(t => t.xyz);
const mid = [0, 1, 2].map(d => (Math.min(...all.map(p => p[d])) + Math.max(...all.map(p => p[d]))) / 2);
const span = Math.max(...[0, 1, 2].map(d => Math.max(...all.map(p => Math.abs(p[d] - mid[d]))))) || 1;
function draw() {
  cv.width = cv.clientWidth; cv.height = cv.clientHeight;
  const s = 0.45 * Math.min(cv.width, cv.height) * zoom / span;
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  proj = [];
  DATA.traces.forEach((t, ti) => { if (!shown[ti]) return; t.xyz.forEach((p, i) => {
    const x = p[0] - mid[0], y = p[1] - mid[1], z = p[2] - mid[2];
    const x1 = cy * x + sy * z, z1 = -sy * x + cy * z, y1 = cp * y - sp * z1, d = sp * y + cp * z1;
    proj.push([cv.width / 2 + s * x1, cv.height / 2 - s * y1, d, ti, i]); }); });
  proj.sort((a, b) => a[2] - b[2]);
  ctx.clearRect(0, 0, cv.width, cv.height);
  for (const [x, y, , ti, i] of proj) {
    const t = DATA.traces[ti];
    ctx.fillStyle = COLORS[t.labels[i]]; ctx.globalAlpha = t.set ? 0.95 : 0.45;
    ctx.beginPath(); ctx.arc(x, y, t.size, 0, 2 * Math.PI); ctx.fill();
    if (t.set) { ctx.strokeStyle = '#000'; ctx.lineWidth = 1; ctx.stroke(); }
  }
  ctx.globalAlpha = 1;
}
cv.onmousedown = e => { drag = [e.clientX, e.clientY]; cv.style.cursor = 'grabbing'; };
window.onmouseup = () => { drag = null; cv.style.cursor = 'grab'; };
cv.onmousemove = e => {
  if (drag) { yaw += (e.clientX - drag[0]) / 150; pitch += (e.clientY - drag[1]) / 150; drag = [e.clientX, e.clientY]; draw(); return; }
  const r = cv.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
  let best = null, bd = 49;
  for (const p of proj) { const dd = (p[0] - mx) ** 2 + (p[1] - my) ** 2; if (dd <= bd) { bd = dd; best = p; } }
  if (best) { tip.style.display = 'block'; tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
    tip.textContent = DATA.traces[best[3]].text[best[4]]; } else tip.style.display = 'none';
};
cv.onwheel = e => { e.preventDefault(); zoom *= e.deltaY < 0 ? 1.1 : 1 / 1.1; draw(); };
const legend = document.getElementById('legend');
DATA.traces.forEach((t, ti) => {
  const l = document.createElement('label'), cb = document.createElement('input');
  cb.type = 'checkbox'; cb.checked = true; cb.onchange = () => { shown[ti] = cb.checked; draw(); };
  l.appendChild(cb); l.appendChild(document.createTextNode(' ' + t.name + ' (' + t.xyz.length + ')'));
  l.style.display = 'block'; if (!t.set) l.style.color = COLORS[t.labels[0]]; legend.appendChild(l);
});
window.onresize = draw; draw();
</script></body></html>
"""


def _builtin_html(traces: list[dict], title: str) -> str:
    payload = {"traces": [{"name": t["name"], "xyz": np.round(t["xyz"], 3).tolist(), "labels": [int(k) for k in t["labels"]],
                           "text": t["text"], "size": 2 if not t["set"] else 3.5, "set": t["set"]} for t in traces]}
    safe = json.dumps(payload, ensure_ascii=False).replace("</", "<\\/")  # no "</script>" inside the script
    esc_title = html.escape(title)
    return (_BUILTIN_VIEWER.replace("__TITLE__", esc_title).replace("__COLORS__", json.dumps(CLASS_COLORS))
            .replace("__DATA__", safe))
