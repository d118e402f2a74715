"""EDA figures: mean digits, per-set statistics, UMAP embeddings and the domain gap (PNG)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mnist_gen.reporting.eda.constants import CLASS_COLORS, CLASSES, GROUP_COLORS, STAT_LABELS
from mnist_gen.reporting.eda.stats import class_agreement, mean_digits
from mnist_gen.reporting.figures import new_figure, save_figure


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
