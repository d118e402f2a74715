"""Exploratory data analysis: why MNIST models fail on other handwriting.

    python -m mnist_gen.eda                         # fixed-seed subsample, about 2 min on 2 cores
    python -m mnist_gen.eda n_mnist=null n_per_set=null   # every digit (slow)

Writes into ``out_dir`` (default ``outputs/eda``):

    mean_digits.png            average image of each digit, MNIST and every set side by side
    set_stats.png|.md|.json    ink coverage, stroke width, bounding box, centre-of-mass offset, background
    umap_<features>_2d.png     MNIST embedding coloured by class
    umap_<features>_gap.png    the other sets projected into the MNIST embedding (rows: preprocessing)
    umap_<features>_3d.png     the same in 3D, and ``umap_<features>_3d.html`` to rotate and hover
    cache/umap_*.npz           embeddings, keyed by a hash of their inputs and the UMAP settings
    eda.json                   what was written, set sizes, sets that were missing, the model used

``<features>`` is ``pixels`` (raw 784 pixels / 255) or ``penultimate`` (a trained network's
activations before its Dense(10) layer). UMAP is fitted on MNIST only and the other sets are
``transform``-ed into it: a set that lands on top of MNIST's clusters looks like MNIST to
a model, one that lands elsewhere is out of distribution.

Every figure function takes plain arrays/dicts and tolerates missing or empty sets, so it
can be called alone (see tests/test_eda.py).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from mnist_gen import paths
from mnist_gen.errors import UserError
from mnist_gen.report import new_figure, save_figure, write_atomic

log = logging.getLogger(__name__)

SIZE = 28
CLASSES = 10
CLASS_COLORS = [  # matplotlib's tab10, fixed here so the HTML viewers match the PNGs
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]
GROUP_COLORS = {"mnist": "#444444", "mnist_like": "#1f77b4", "naive": "#d95f02"}
STAT_LABELS = {
    "ink_coverage": "ink coverage (% of pixels ≥ ink level)",
    "stroke_width": "stroke width (px, 2 × distance transform on the medial axis)",
    "bbox_height": "bounding-box height (px)",
    "bbox_width": "bounding-box width (px)",
    "com_offset": "centre-of-mass offset from centre (px)",
    "background": "background level (mean of 2-px border, 0–255)",
}


# --------------------------------------------------------------------------- statistics (pure)


def ink_mask(images: np.ndarray, level: int = 128) -> np.ndarray:
    """Boolean (N, 28, 28): pixels at least ``level`` bright (MNIST's cores are 250–255)."""
    return np.asarray(images) >= level


def ink_coverage(images: np.ndarray, level: int = 128) -> np.ndarray:
    """Fraction of each image's pixels that are ink, (N,) in [0, 1]."""
    m = ink_mask(images, level)
    return m.reshape(len(m), -1).mean(axis=1) if len(m) else np.zeros(0)


def stroke_width(images: np.ndarray, level: int = 128, upsample: int = 4) -> np.ndarray:
    """Stroke width in pixels per image, (N,); NaN for an image without ink.

    Distance transform (EDT) of the ink mask read on its medial axis: the pixels where the
    distance to the background is a local maximum, i.e. the stroke's centre line, where it
    equals half the stroke's width. At 28×28 that half-width is quantised to whole pixels,
    so the image is first enlarged ``upsample``× (bilinear, pixel-area aligned) and
    thresholded there: width = 2 · median(EDT on axis) / upsample. Exact for hard-edged
    strokes of whole-pixel width, within 1/upsample px for anti-aliased ones.
    """
    out = np.full(len(images), np.nan)
    for i, img in enumerate(np.asarray(images)):
        big = ndi.zoom(img.astype(np.float32), upsample, order=1, grid_mode=True, mode="grid-constant")
        m = big >= level
        if not m.any():
            continue
        edt = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
        axis = m & (edt >= ndi.maximum_filter(edt, size=3))
        out[i] = 2.0 * float(np.median(edt[axis])) / upsample
    return out


def bbox_size(images: np.ndarray, level: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(height, width) in pixels of each image's ink bounding box; 0 for an image without ink."""
    m = ink_mask(images, level)
    rows, cols = m.any(axis=2), m.any(axis=1)

    def extent(a: np.ndarray) -> np.ndarray:
        first = a.argmax(axis=1)
        last = a.shape[1] - 1 - a[:, ::-1].argmax(axis=1)
        return np.where(a.any(axis=1), last - first + 1, 0)

    return extent(rows), extent(cols)


def center_of_mass_offset(images: np.ndarray, level: int = 128) -> np.ndarray:
    """Distance (px) of the ink's intensity-weighted centre of mass from the field centre, (N,).

    Only ink pixels count, so a grey background (naive photos) does not pull it to the centre.
    MNIST is centred by mass by construction: its offsets are below a pixel.
    """
    imgs = np.asarray(images, dtype=np.float64)
    w = np.where(ink_mask(imgs, level), imgs, 0.0)
    total = w.sum(axis=(1, 2))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (w * yy).sum(axis=(1, 2)) / total
        cx = (w * xx).sum(axis=(1, 2)) / total
    c = (SIZE - 1) / 2
    return np.where(total > 0, np.hypot(cy - c, cx - c), np.nan)


def background_level(images: np.ndarray, border: int = 2) -> np.ndarray:
    """Mean brightness of the ``border``-pixel frame, (N,): 0 for MNIST, paper grey for naive photos."""
    imgs = np.asarray(images, dtype=np.float64)
    if not len(imgs):
        return np.zeros(0)
    frame = np.ones((SIZE, SIZE), bool)
    frame[border:-border, border:-border] = False
    return imgs[:, frame].mean(axis=1)


def set_statistics(images: np.ndarray, level: int = 128) -> dict[str, np.ndarray]:
    """Every per-image statistic of ``STAT_LABELS`` for one set, each (N,)."""
    h, w = bbox_size(images, level)
    return {
        "ink_coverage": 100.0 * ink_coverage(images, level),
        "stroke_width": stroke_width(images, level),
        "bbox_height": h.astype(float),
        "bbox_width": w.astype(float),
        "com_offset": center_of_mass_offset(images, level),
        "background": background_level(images),
    }


def summarize(stats: Mapping[str, np.ndarray]) -> dict[str, dict[str, float | None]]:
    """Median and quartiles of each statistic (NaNs ignored; None when nothing is left)."""
    out = {}
    for k, v in stats.items():
        v = np.asarray(v, dtype=float)
        v = v[~np.isnan(v)]
        if v.size == 0:
            out[k] = {"median": None, "q1": None, "q3": None, "n": 0}
        else:
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            out[k] = {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(v.size)}
    return out


def mean_digits(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean image per class, float (10, 28, 28) in 0..255 (NaN for an absent class), and counts (10,)."""
    images = np.asarray(images, dtype=np.float64)
    labels = np.asarray(labels)
    means = np.full((CLASSES, SIZE, SIZE), np.nan)
    counts = np.zeros(CLASSES, dtype=np.int64)
    for k in range(CLASSES):
        sel = labels == k
        counts[k] = int(sel.sum())
        if counts[k]:
            means[k] = images[sel].mean(axis=0)
    return means, counts


def class_agreement(mnist_emb: np.ndarray, mnist_labels: np.ndarray, emb: np.ndarray, labels: np.ndarray,
                    k: int = 10) -> float | None:
    """Share of projected points whose ``k`` nearest MNIST points in the embedding mostly carry
    their own label: "lands in its own class's cluster". None for an empty set."""
    emb, labels = np.asarray(emb), np.asarray(labels)
    if len(emb) == 0 or len(mnist_emb) == 0:
        return None
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(mnist_emb))).fit(np.asarray(mnist_emb), np.asarray(mnist_labels))
    return float((knn.predict(emb) == labels).mean())


# --------------------------------------------------------------------------- figures


def _set_rows(sets: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Sets that can be drawn: present and not empty, in the given order."""
    return [(name, np.asarray(x), np.asarray(y)) for name, (x, y) in sets.items() if x is not None and len(x)]


def plot_mean_digits(sets: Mapping[str, tuple[np.ndarray, np.ndarray]], path, title: str | None = None) -> Path | None:
    """One row per set (images, labels), one column per digit: the study's "average shape" figure.

    Empty or missing sets are left out; returns None (and writes nothing) when no set is left.
    """
    rows = _set_rows(sets)
    if not rows:
        return None
    fig = new_figure(1.0 * CLASSES + 2.2, 1.05 * len(rows) + 0.8)
    grid = fig.add_gridspec(len(rows), CLASSES, wspace=0.05, hspace=0.08)
    for r, (name, x, y) in enumerate(rows):
        means, counts = mean_digits(x, y)
        for k in range(CLASSES):
            ax = fig.add_subplot(grid[r, k])
            if counts[k]:
                ax.imshow(means[k], cmap="gray", vmin=0, vmax=255)
            else:
                ax.set_facecolor("#dddddd")
                ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(k), fontsize=12)
            if k == 0:
                ax.set_ylabel(f"{name}\nn={len(y)}", rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title or "Mean image of each digit (after preprocessing)", fontsize=13)
    return save_figure(fig, path, dpi=90)


def plot_set_stats(stats: Mapping[str, Mapping[str, np.ndarray]], groups: Mapping[str, str], path) -> Path | None:
    """Box plots of every statistic, one box per set, coloured by preprocessing group.

    ``groups`` maps a set name to ``mnist``/``mnist_like``/``naive``; the dashed line is MNIST's median.
    """
    names = [n for n, s in stats.items() if s and len(next(iter(s.values()))) > 0]
    if not names:
        return None
    keys = list(STAT_LABELS)
    ncols = 3
    nrows = math.ceil(len(keys) / ncols)
    fig = new_figure(5.2 * ncols, 3.9 * nrows + 0.6)
    reference = next((n for n in names if groups.get(n) == "mnist"), None)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        data = []
        for n in names:
            v = np.asarray(stats[n][key], dtype=float)
            v = v[~np.isnan(v)]
            data.append(v if v.size else np.array([np.nan]))
        bp = ax.boxplot(data, patch_artist=True, showfliers=False, widths=0.6)
        for patch, n in zip(bp["boxes"], names, strict=True):
            patch.set_facecolor(GROUP_COLORS.get(groups.get(n, ""), "#999999"))
            patch.set_alpha(0.55)
        if reference is not None:
            ref = np.nanmedian(np.asarray(stats[reference][key], dtype=float))
            if not np.isnan(ref):
                ax.axhline(ref, color="black", ls="--", lw=0.8)
        ax.set_title(STAT_LABELS[key], fontsize=10)
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    handles = [_patch(c, g) for g, c in GROUP_COLORS.items() if g in set(groups.get(n) for n in names)]
    fig.legend(handles=handles, loc="upper right", fontsize=9)
    fig.suptitle("What differs between MNIST and the other sets (dashed: MNIST median)", fontsize=13)
    fig.subplots_adjust(hspace=0.75, wspace=0.25)
    return save_figure(fig, path, dpi=90)


def _patch(color: str, label: str):
    from matplotlib.patches import Patch

    return Patch(facecolor=color, alpha=0.55, label=label)


def stats_markdown(summaries: Mapping[str, Mapping[str, dict]], sizes: Mapping[str, int]) -> str:
    """Median (quartiles) of each statistic per set, as a markdown table."""
    keys = list(STAT_LABELS)
    lines = ["| set | n | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for name, summ in summaries.items():
        cells = []
        for k in keys:
            s = summ.get(k) or {}
            cells.append("–" if s.get("median") is None else f"{s['median']:.2f} ({s['q1']:.2f}–{s['q3']:.2f})")
        lines.append(f"| {name} | {sizes.get(name, 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_umap_2d(emb: np.ndarray, labels: np.ndarray, path, title: str) -> Path:
    """MNIST's 2D embedding, coloured by class, each class labelled at its median."""
    emb, labels = np.asarray(emb), np.asarray(labels)
    if emb.ndim != 2 or emb.shape[1] != 2 or len(emb) != len(labels):
        raise ValueError(f"plot_umap_2d needs (N, 2) points and N labels, got {emb.shape} and {labels.shape}")
    fig = new_figure(7.5, 6.8)
    ax = fig.add_subplot()
    _scatter_classes(ax, emb, labels, size=4, alpha=0.6)
    for k in range(CLASSES):
        sel = labels == k
        if sel.any():
            cx, cy = np.median(emb[sel], axis=0)
            ax.text(cx, cy, str(k), fontsize=16, weight="bold", ha="center", va="center",
                    bbox={"boxstyle": "circle", "fc": "white", "ec": CLASS_COLORS[k], "alpha": 0.85})
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


def _scatter_classes(ax, emb, labels, size: float, alpha: float, **kw) -> None:
    for k in range(CLASSES):
        sel = labels == k
        if sel.any():
            ax.scatter(*emb[sel].T, s=size, c=CLASS_COLORS[k], alpha=alpha, lw=0, label=str(k), **kw)


def plot_domain_gap(mnist_emb: np.ndarray, mnist_labels: np.ndarray,
                    projected: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    layout: Mapping[str, Sequence[str]], path, title: str) -> Path:
    """Other sets projected into MNIST's 2D embedding: one row per preprocessing (``layout``:
    row name -> set names), one panel per set. MNIST is drawn faintly by class; the set's
    digits on top in their true class colour (as the digit itself when there are few).
    A set missing from ``projected`` (or empty) gets a panel saying so.
    """
    mnist_emb, mnist_labels = np.asarray(mnist_emb), np.asarray(mnist_labels)
    rows = [(r, list(names)) for r, names in layout.items() if names]
    ncols = max([len(n) for _, n in rows] + [1])
    fig = new_figure(4.6 * ncols, 4.4 * max(1, len(rows)) + 0.8)
    lo, hi = mnist_emb.min(axis=0), mnist_emb.max(axis=0)
    for r, (row, names) in enumerate(rows):
        for c, name in enumerate(names):
            ax = fig.add_subplot(len(rows), ncols, r * ncols + c + 1)
            _scatter_classes(ax, mnist_emb, mnist_labels, size=3, alpha=0.22)
            emb, labels = projected.get(name, (None, None))
            if emb is None or len(emb) == 0:
                ax.text(0.5, 0.5, f"{name}\nnot available", ha="center", va="center", transform=ax.transAxes,
                        fontsize=11, color="firebrick")
            elif len(emb) <= 60:
                for (x, y), k in zip(emb, labels, strict=True):
                    ax.text(x, y, str(k), color=CLASS_COLORS[int(k)], fontsize=11, weight="bold", ha="center",
                            va="center", bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "black", "lw": 0.6})
            else:
                colors = [CLASS_COLORS[int(k)] for k in labels]
                ax.scatter(*np.asarray(emb).T, s=9, c=colors, edgecolors="black", linewidths=0.3)
            if emb is not None and len(emb):
                # Projected points may leave MNIST's range: show them all.
                lo2 = np.minimum(lo, np.asarray(emb).min(axis=0))
                hi2 = np.maximum(hi, np.asarray(emb).max(axis=0))
                pad = 0.04 * (hi2 - lo2)
                ax.set_xlim(lo2[0] - pad[0], hi2[0] + pad[0])
                ax.set_ylim(lo2[1] - pad[1], hi2[1] + pad[1])
            n = 0 if emb is None else len(emb)
            agree = None if n == 0 else class_agreement(mnist_emb, mnist_labels, emb, labels)
            extra = "" if agree is None else f"\nin own MNIST class: {100 * agree:.0f} %"
            ax.set_title(f"{name} ({row}, n={n}){extra}", fontsize=10, color=GROUP_COLORS.get(row, "black"))
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=13)
    return save_figure(fig, path, dpi=90)


def plot_umap_3d(mnist_emb: np.ndarray, mnist_labels: np.ndarray,
                 projected: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 layout: Mapping[str, Sequence[str]], path, title: str) -> Path:
    """Static 3D views: MNIST by class, then one panel per preprocessing row with its sets on MNIST (grey)."""
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401 - registers the 3d projection

    mnist_emb = np.asarray(mnist_emb)
    if mnist_emb.ndim != 2 or mnist_emb.shape[1] != 3:
        raise ValueError(f"plot_umap_3d needs (N, 3) points, got {mnist_emb.shape}")
    rows = [(r, [n for n in names if n in projected and len(projected[n][0])]) for r, names in layout.items()]
    fig = new_figure(5.5 * (1 + len(rows)), 5.6)
    ax = fig.add_subplot(1, 1 + len(rows), 1, projection="3d")
    for k in range(CLASSES):
        sel = mnist_labels == k
        if sel.any():
            ax.scatter(*mnist_emb[sel].T, s=2, c=CLASS_COLORS[k], alpha=0.5, lw=0, label=str(k))
    ax.set_title("MNIST by class")
    ax.legend(markerscale=4, fontsize=7, loc="upper left", ncols=2)
    markers = "oD^sv<>P*X"
    for i, (row, names) in enumerate(rows):
        ax = fig.add_subplot(1, 1 + len(rows), i + 2, projection="3d")
        ax.scatter(*mnist_emb.T, s=2, c="#999999", alpha=0.35, lw=0)
        for j, name in enumerate(names):
            emb, labels = projected[name]
            ax.scatter(*np.asarray(emb).T, s=7, c=[CLASS_COLORS[int(k)] for k in labels], alpha=0.75,
                       marker=markers[j % len(markers)], edgecolors="black", linewidths=0.2, label=name)
        ax.set_title(f"{row} sets on MNIST (grey)", color=GROUP_COLORS.get(row, "black"))
        if names:
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text2D(0.5, 0.5, "no set available", ha="center", transform=ax.transAxes, color="firebrick")
    for a in fig.axes:
        a.set_xticklabels([])
        a.set_yticklabels([])
        if hasattr(a, "set_zticklabels"):
            a.set_zticklabels([])
    fig.suptitle(title, fontsize=13)
    return save_figure(fig, path, dpi=90)


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


# --------------------------------------------------------------------------- embeddings


def pixel_features(images: np.ndarray) -> np.ndarray:
    """(N, 784) float32 in [0, 1]."""
    return np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0


def penultimate_features(predictor, images: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Activations entering the network's last layer (its Dense(10)), flattened, (N, D) float32.

    Inputs are normalised exactly as the predictor does for classification.
    """
    import torch

    net = getattr(predictor, "net", None)
    if not isinstance(net, torch.nn.Sequential):
        raise UserError(f"Model {getattr(predictor, 'name', predictor)} has no layer stack to read penultimate "
                        "features from; give model_path a network run directory or model.ckpt.")
    body = net[:-1]
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(np.asarray(images[s : s + batch], dtype=np.float32).reshape(-1, 1, SIZE, SIZE))
            x = (x / 255.0 - predictor.mean) / predictor.std
            out.append(body(x.to(predictor.device)).flatten(1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def reduce_dims(train: np.ndarray, others: Mapping[str, np.ndarray], dims: int | None,
                seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """PCA fitted on ``train`` (MNIST) to ``dims`` components, applied to every set; unchanged
    when ``dims`` is None or not below the feature count. Neighbour search on a CNN's
    thousands of penultimate features costs far more than on 50 components, and UMAP's
    neighbourhoods barely change."""
    if dims is None or train.shape[1] <= int(dims):
        return train, dict(others)
    from sklearn.decomposition import PCA

    pca = PCA(n_components=int(dims), svd_solver="randomized", random_state=seed).fit(train)
    return (pca.transform(train).astype(np.float32),
            {n: pca.transform(x).astype(np.float32) if len(x) else np.zeros((0, int(dims)), np.float32)
             for n, x in others.items()})


def _knn_csr(nn, queries: np.ndarray, k: int, n_train: int, drop_self: bool = False):
    import scipy.sparse as sp

    dist, idx = nn.kneighbors(queries, k)
    n = len(queries)
    g = sp.csr_matrix((dist.ravel().astype(np.float32), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n_train))
    if drop_self:
        g = g.tolil()
        g.setdiag(0)
        g = g.tocsr()
        g.eliminate_zeros()
        g = g.maximum(g.T).tocsr()  # umap wants a symmetric matrix of training distances
    return g


def umap_embed(train: np.ndarray, others: Mapping[str, np.ndarray], n_components: int = 2, n_neighbors: int = 15,
               min_dist: float = 0.1, n_epochs: int | None = None, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit UMAP on ``train`` (MNIST) and ``transform`` every array of ``others`` into that embedding.

    Neighbours are found exactly (scikit-learn, brute force on BLAS) and handed to UMAP as a
    sparse precomputed distance graph. Same graph UMAP would build itself, but without
    pynndescent, whose just-in-time compilation alone takes over a minute on 2 cores.
    """
    import warnings

    import umap
    from sklearn.neighbors import NearestNeighbors

    train = np.asarray(train, dtype=np.float32)
    k = int(min(n_neighbors, len(train) - 1))
    if k < 2:
        raise UserError(f"UMAP needs more than {k + 1} MNIST points; raise n_mnist.")
    nn = NearestNeighbors(algorithm="brute").fit(train)
    graph = _knn_csr(nn, train, k + 1, len(train), drop_self=True)
    model = umap.UMAP(n_components=n_components, n_neighbors=k, min_dist=min_dist, n_epochs=n_epochs,
                      metric="precomputed", random_state=seed, transform_seed=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(precomputed|n_jobs|random_state|disconnected).*")
        emb = model.fit_transform(graph)
        out = {}
        for name, x in others.items():
            x = np.asarray(x, dtype=np.float32)
            out[name] = (model.transform(_knn_csr(nn, x, k, len(train))).astype(np.float32) if len(x)
                         else np.zeros((0, n_components), np.float32))
    return emb.astype(np.float32), out


def cache_key(train: np.ndarray, others: Mapping[str, np.ndarray], params: Mapping) -> str:
    """Hash of every input array and every setting that changes an embedding."""
    import umap

    h = hashlib.sha256()
    h.update(json.dumps({**params, "umap": getattr(umap, "__version__", "?")}, sort_keys=True, default=str).encode())
    for name, arr in [("__train__", train), *sorted(others.items())]:
        a = np.ascontiguousarray(arr, dtype=np.float32)
        h.update(name.encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


def cached_umap(cache_dir: Path | None, tag: str, train: np.ndarray, others: Mapping[str, np.ndarray],
                **params) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
    """``umap_embed`` through ``<cache_dir>/umap_<tag>_<hash>.npz``; returns (train, others, from_cache)."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"umap_{tag}_{cache_key(train, others, params)}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    return z["__train__"], {n: z[f"set__{n}"] for n in others}, True
            except (OSError, KeyError, ValueError) as e:
                log.warning("ignoring unreadable cache file %s (%s)", path, e)
    emb, out = umap_embed(train, others, **params)
    if path is not None:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, __train__=emb, **{f"set__{n}": v for n, v in out.items()})
        write_atomic(path, buf.getvalue())
    return emb, out, False


# --------------------------------------------------------------------------- data


def _naive_frame(ink: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The whole frame resized to 28×28, no crop / 20-px box / centring: the study's shortcut."""
    from PIL import Image

    im = Image.fromarray(np.asarray(ink, dtype=np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.round(np.clip(np.asarray(im), 0, 1) * 255).astype(np.uint8)


def usps_naive(path=None, **_):
    """USPS 16×16 scaled to 28×28 as a whole (EDA-only comparison set)."""
    from mnist_gen.data.external import default_usps_path, read_usps
    from mnist_gen.evalsets import EvalSet

    ink, labels = read_usps(path or default_usps_path())
    imgs = np.stack([_naive_frame(x) for x in ink]) if len(ink) else np.zeros((0, SIZE, SIZE), np.uint8)
    return EvalSet("usps_naive", imgs, labels, ids=[f"usps[{i}]" for i in range(len(labels))])


def uci_digits_naive(**_):
    """UCI 8×8 digits scaled to 28×28 as a whole (EDA-only comparison set)."""
    from sklearn.datasets import load_digits

    from mnist_gen.evalsets import EvalSet

    d = load_digits()
    imgs = np.stack([_naive_frame(x / 16.0) for x in d.images])
    return EvalSet("uci_digits_naive", imgs, d.target, ids=[f"uci[{i}]" for i in range(len(d.target))])


# Comparison sets that only the EDA needs: the same sources without MNIST's construction.
EDA_SETS = {"usps_naive": usps_naive, "uci_digits_naive": uci_digits_naive}


def load_set(name: str, options: Mapping):
    """A registered evaluation set or one of ``EDA_SETS``; raises UserError/FileNotFoundError when absent."""
    from mnist_gen.evalsets import available_sets, load_eval_set

    if name in EDA_SETS and name not in available_sets():
        return EDA_SETS[name](**options)
    return load_eval_set(name, **options)


def subsample(n_total: int, n: int | None, seed: int, name: str = "") -> np.ndarray:
    """Sorted fixed-seed indices of ``n`` of ``n_total`` items (all when n is None or ≥ n_total).

    The seed is mixed with the set's name so every set draws its own, reproducible sample.
    """
    if n is None or n >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return np.sort(rng.choice(n_total, size=int(n), replace=False))


# --------------------------------------------------------------------------- model for penultimate features

# Deepest network first: its penultimate layer is furthest from raw pixels.
NETWORK_PREFERENCE = ["cnn_32_16x3", "cnn_32_16", "cnn_32", "mlp_64_32", "mlp_64_16"]


def find_network_run(roots: Sequence[Path]) -> Path | None:
    """The finished network run (results.json + model.ckpt) to read features from, by ``NETWORK_PREFERENCE``."""
    found = []
    for root in roots:
        if not Path(root).is_dir():
            continue
        for ckpt in Path(root).rglob("model.ckpt"):
            res = ckpt.parent / "results.json"
            try:
                name = json.loads(res.read_text())["model"]
            except (OSError, ValueError, KeyError):
                continue  # a run still training, or broken: never read features from it
            rank = NETWORK_PREFERENCE.index(name) if name in NETWORK_PREFERENCE else len(NETWORK_PREFERENCE)
            found.append((rank, str(ckpt.parent)))
    return Path(min(found)[1]) if found else None


# --------------------------------------------------------------------------- pipeline


def _plain(node):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def run(cfg) -> dict:
    """The whole EDA under one config (see configs/eda.yaml); returns what eda.json records."""
    t_start = time.perf_counter()
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = out / "cache" if cfg.cache else None
    level = int(cfg.ink_level)
    timings: dict[str, float] = {}

    # --- data ------------------------------------------------------------------------------
    t = time.perf_counter()
    from mnist_gen.data.mnist import load_mnist

    data_dir = Path(cfg.paths.data_dir) if cfg.paths.get("data_dir") else paths.data_dir()
    m = load_mnist(data_dir)
    split = cfg.mnist_split
    if split not in ("train", "test"):
        raise UserError(f"mnist_split must be train or test, got '{split}'.")
    idx = subsample(len(m[f"y_{split}"]), cfg.n_mnist, cfg.seed, f"mnist_{split}")
    mnist_x, mnist_y = m[f"x_{split}"][idx], m[f"y_{split}"][idx]
    mnist_ids = [f"{split}[{i}]" for i in idx]

    layout: dict[str, list[str]] = {g: list(v or []) for g, v in _plain(cfg.sets).items()}
    set_options = _plain(cfg.eval_set_options) or {}
    preprocess = _plain(cfg.preprocess)
    sets, missing, group_of = {}, {}, {"mnist": "mnist"}
    for group, names in layout.items():
        for name in names:
            opts = {"data_dir": str(data_dir), **(set_options.get(name) or {})}
            # The naive variants carry their own conversion; handing them the MNIST-like
            # preprocessing would make them copies of the MNIST-like sets.
            if group != "naive" and preprocess is not None:
                opts.setdefault("preprocess", preprocess)
            try:
                s = load_set(name, opts)
            except (UserError, FileNotFoundError, OSError) as e:
                log.warning("set %s skipped: %s", name, e)
                missing[name] = str(e)
                continue
            if len(s) == 0:
                log.warning("set %s is empty; skipped", name)
                missing[name] = "empty"
                continue
            keep = subsample(len(s), cfg.n_per_set, cfg.seed, name)
            sets[name] = (s.images[keep], s.labels[keep], [s.ids[i] for i in keep])
            group_of[name] = group
    timings["load"] = time.perf_counter() - t
    log.info("data: %d MNIST %s digits; sets %s; missing %s", len(mnist_y), split,
             {n: len(v[1]) for n, v in sets.items()}, list(missing) or "none")

    files: dict[str, str] = {}

    def rel(p: Path | None) -> None:
        if p is not None:
            files[p.stem if p.suffix == ".png" else p.name] = str(Path(p).relative_to(out))

    # --- mean digits + statistics ----------------------------------------------------------
    t = time.perf_counter()
    mnist_name = f"mnist_{split}"
    with_mnist = {mnist_name: (mnist_x, mnist_y), **{n: (v[0], v[1]) for n, v in sets.items()}}
    group_of[mnist_name] = "mnist"
    rel(plot_mean_digits(with_mnist, out / "mean_digits.png"))
    stats = {n: set_statistics(x, level) for n, (x, _) in with_mnist.items()}
    summaries = {n: summarize(s) for n, s in stats.items()}
    sizes = {n: len(y) for n, (_, y) in with_mnist.items()}
    rel(plot_set_stats(stats, group_of, out / "set_stats.png"))
    rel(write_atomic(out / "set_stats.md", stats_markdown(summaries, sizes)))
    rel(write_atomic(out / "set_stats.json", json.dumps({"ink_level": level, "sizes": sizes, "groups": group_of,
                                                         "summary": summaries}, indent=2)))
    timings["stats_figures"] = time.perf_counter() - t

    # --- UMAP ------------------------------------------------------------------------------
    features = list(cfg.features or [])
    model_info = None
    if "penultimate" in features:
        model_info = _resolve_model(cfg)
        if model_info is None:
            log.warning("no trained network found (model_path=%s); penultimate-feature views skipped", cfg.model_path)
            features.remove("penultimate")
    u = cfg.umap
    params = {"n_neighbors": int(u.n_neighbors), "min_dist": float(u.min_dist),
              "n_epochs": None if u.n_epochs is None else int(u.n_epochs), "seed": int(cfg.seed)}
    layout_present = {g: [n for n in names if n in sets] + [n for n in names if n in missing] for g, names in layout.items()}
    cache_hits, agreement = {}, {}
    for feat in features:
        t = time.perf_counter()
        if feat == "pixels":
            fx = pixel_features
            desc = "raw pixels"
        elif feat == "penultimate":
            from mnist_gen.models.predictors import load_predictor

            predictor = load_predictor(model_info["path"])
            def fx(images, _p=predictor):
                return penultimate_features(_p, images)
            desc = f"{model_info['name']} penultimate features"
        else:
            raise UserError(f"Unknown feature kind '{feat}'; use pixels and/or penultimate.")
        train_f = fx(mnist_x)
        others_f = {n: fx(v[0]) for n, v in sets.items()}
        train_f, others_f = reduce_dims(train_f, others_f, u.get("pca_dims"), int(cfg.seed))
        for dim in list(u.components):
            dim = int(dim)
            emb, proj, hit = cached_umap(cache_dir, f"{feat}_{dim}d", train_f, others_f, n_components=dim, **params)
            cache_hits[f"{feat}_{dim}d"] = hit
            projected = {n: (proj[n], sets[n][1]) for n in sets}
            if dim == 2:
                agreement[feat] = {n: class_agreement(emb, mnist_y, *projected[n]) for n in projected}
                rel(plot_umap_2d(emb, mnist_y, out / f"umap_{feat}_2d.png", f"UMAP of {len(mnist_y)} MNIST digits ({desc})"))
                rel(plot_domain_gap(emb, mnist_y, projected, layout_present, out / f"umap_{feat}_gap.png",
                                    f"Other sets projected into the MNIST embedding ({desc})"))
            elif dim == 3:
                title = f"3D UMAP: sets projected into MNIST ({desc})"
                rel(plot_umap_3d(emb, mnist_y, projected, layout_present, out / f"umap_{feat}_3d.png", title))
                if cfg.interactive_3d:
                    with_ids = {n: (proj[n], sets[n][1], sets[n][2]) for n in sets}
                    p, engine = write_umap_3d_html(emb, mnist_y, mnist_ids, with_ids, out / f"umap_{feat}_3d.html",
                                                   title, engine=cfg.html_engine)
                    rel(p)
                    files[f"umap_{feat}_3d_engine"] = engine
        timings[f"umap_{feat}"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - t_start
    manifest = {
        "out_dir": str(out), "seed": int(cfg.seed), "mnist_split": split, "n_mnist": len(mnist_y),
        "sets": {n: {"n": len(v[1]), "group": group_of[n]} for n, v in sets.items()}, "missing": missing,
        "layout": layout, "features": features, "model": model_info, "files": files,
        "class_agreement_2d": agreement, "cache_hits": cache_hits, "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "umap": params, "pca_dims": u.get("pca_dims"), "ink_level": level,
    }
    write_atomic(out / "eda.json", json.dumps(manifest, indent=2))
    log.info("EDA written to %s in %.1f s", out, timings["total"])
    return manifest


def _resolve_model(cfg) -> dict | None:
    mp = cfg.get("model_path")
    if mp is None:
        return None
    if str(mp) == "auto":
        found = find_network_run([paths.PROJECT_ROOT / r for r in cfg.model_search])
        if found is None:
            return None
        mp = found
    p = Path(mp).expanduser()
    if not p.exists():
        raise UserError(f"model_path {p} does not exist; give a network run directory or model.ckpt (or null to skip).")
    from mnist_gen.models.predictors import load_predictor

    pred = load_predictor(p)
    if not hasattr(pred, "net"):
        raise UserError(f"model_path {p} is not a network (.ckpt); penultimate features need one.")
    return {"path": str(p), "name": pred.name}


def _main():
    import hydra
    from omegaconf import DictConfig

    @hydra.main(version_base="1.3", config_path="../configs", config_name="eda")
    def main(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except UserError as e:
            log.error("%s", e)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    main()


if __name__ == "__main__":
    _main()
