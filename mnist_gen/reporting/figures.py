"""Figures: training curves, confusion matrices and misclassification galleries.

Every file is written through ``mnist_gen.io.write_atomic``.

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``)
rather than through ``pyplot``: no display is needed, no global figure state leaks between
calls, and nothing has to be closed by hand.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mnist_gen.errors import UserError
from mnist_gen.io import write_atomic

CURVE_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")


def new_figure(width: float, height: float) -> Figure:
    """A display-free figure on the Agg canvas."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Render ``fig`` as PNG in memory, then write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return write_atomic(path, buf.getvalue())


# --------------------------------------------------------------------------- curves


def _read_epoch_csv(csv_path: Path) -> dict[str, list[float]]:
    """Per-epoch columns from a CSV, one value per epoch.

    Loggers such as Lightning's CSVLogger write train and validation metrics of the same
    epoch on separate rows with blank cells; rows are merged by epoch, the last non-blank
    value of each column winning.
    """
    if not csv_path.is_file():
        raise UserError(
            f"Training log '{csv_path}' does not exist; train a model first or pass the run's metrics CSV."
        )
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CURVE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(
                f"Training log '{csv_path}' lacks column(s) {', '.join(missing)}; "
                f"it needs {', '.join(CURVE_COLUMNS)}."
            )
        by_epoch: dict[int, dict[str, float]] = {}
        for row in reader:
            if not (row.get("epoch") or "").strip():
                continue
            epoch = int(float(row["epoch"]))
            slot = by_epoch.setdefault(epoch, {})
            for col in CURVE_COLUMNS[1:]:
                cell = (row.get(col) or "").strip()
                if cell:
                    slot[col] = float(cell)
    epochs = sorted(by_epoch)
    out: dict[str, list[float]] = {"epoch": [float(e) for e in epochs]}
    for col in CURVE_COLUMNS[1:]:
        out[col] = [by_epoch[e].get(col, math.nan) for e in epochs]
    return out


def plot_curves(csv_path: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Loss and accuracy per epoch, train vs validation, as the study's Keras-history figures.

    Reads ``epoch,train_loss,train_acc,val_loss,val_acc`` (extra columns ignored) and writes
    ``loss_curve.png`` and ``accuracy_curve.png`` into ``out_dir``. Epochs are drawn
    1-based, as Keras prints them, whether the CSV counts from 0 or 1.
    """
    csv_path = Path(csv_path)
    out_dir = Path(out_dir)
    cols = _read_epoch_csv(csv_path)
    if not cols["epoch"]:
        raise UserError(f"Training log '{csv_path}' has no epoch rows; nothing to plot.")
    epochs = np.asarray(cols["epoch"])
    if epochs.min() == 0:
        epochs = epochs + 1

    written = []
    for metric, label, fname in (
        ("loss", "Loss", "loss_curve.png"),
        ("acc", "Accuracy", "accuracy_curve.png"),
    ):
        fig = new_figure(6.4, 4.4)
        ax = fig.add_subplot()
        ax.plot(epochs, cols[f"train_{metric}"], marker="o", label="train")
        ax.plot(epochs, cols[f"val_{metric}"], marker="s", label="validation")
        ax.set_title(f"Model {label.lower()} per epoch")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
        if len(epochs) <= 30:
            ax.set_xticks(epochs)
        written.append(save_figure(fig, out_dir / fname))
    return written


# --------------------------------------------------------------------------- gallery


def misclassification_gallery(
    evalset,
    proba: np.ndarray,
    path: str | os.PathLike,
    model_name: str,
    max_items: int = 200,
) -> Path | None:
    """One PNG showing every misclassified digit of ``evalset`` (up to ``max_items``).

    Each error shows the raw thumbnail (when the set carries thumbnails), the 28×28 the
    model actually saw, ``true 3 → pred 8`` and the top-3 probabilities. Errors appear in
    the set's order; the title says how many were left out when there are more than
    ``max_items``.

    Returns ``None`` and writes nothing when the model makes no errors (or the set is empty):
    an absent gallery means "no errors", so no placeholder image has to be recognised.
    """
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(evalset.labels)
    if proba.ndim != 2 or proba.shape[0] != len(labels):
        raise ValueError(f"proba must be (N, classes) with N={len(labels)}, got {proba.shape}")
    if len(labels) == 0:
        return None
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    if wrong.size == 0:
        return None
    shown = wrong[:max_items]

    thumbs = evalset.thumbnails
    has_thumbs = thumbs is not None and len(thumbs) == len(labels)
    panels = 2 if has_thumbs else 1
    per_row = min(5 if has_thumbs else 8, len(shown))  # few errors: no empty columns off-centre the title
    n_rows = math.ceil(len(shown) / per_row)
    n_cols = per_row * panels
    height = 2.3 * n_rows + 0.6
    fig = new_figure(1.45 * n_cols, height)
    extra = f" (first {len(shown)} shown)" if len(shown) < wrong.size else ""
    fig.suptitle(
        f"{model_name} on {evalset.name}: {wrong.size} of {len(labels)} misclassified{extra}",
        fontsize=12,
        y=1 - 0.25 / height,  # inches from the top, as the grid's margin: a tall gallery put it over the first row
    )
    # Margins in inches, not fractions: a tall gallery would otherwise open with a blank band.
    grid = fig.add_gridspec(n_rows, n_cols, hspace=0.9, wspace=0.15, top=1 - 1.0 / height, bottom=0.9 / height)

    for slot, idx in enumerate(shown):
        r, c = divmod(slot, per_row)
        c *= panels
        top = np.argsort(-proba[idx], kind="stable")[:3]
        top_text = "\n".join(f"{k}: {proba[idx, k]:.2f}" for k in top)
        ident = os.path.basename(str(evalset.ids[idx])) if idx < len(evalset.ids) else str(idx)
        if len(ident) > 16:
            ident = "…" + ident[-15:]

        if has_thumbs:
            ax = fig.add_subplot(grid[r, c])
            thumb = thumbs[idx]
            if thumb is not None:
                thumb = np.asarray(thumb)
                ax.imshow(thumb, cmap="gray" if thumb.ndim == 2 else None)
            ax.set_title("raw", fontsize=7)
            ax.set_xlabel(ident, fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            c += 1

        ax = fig.add_subplot(grid[r, c])
        ax.imshow(evalset.images[idx], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {labels[idx]} → pred {pred[idx]}", fontsize=8, color="firebrick")
        ax.set_xlabel(top_text if has_thumbs else f"{top_text}\n{ident}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])

    return save_figure(fig, path, dpi=80)
