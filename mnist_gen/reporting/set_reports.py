"""What a score looks like on paper: classification reports (terminal and markdown), confusion
matrices, misclassification galleries and lists per evaluation set, and the run summary."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
from rich.table import Table

from mnist_gen.console import console
from mnist_gen.evalsets.photos import label_from_path
from mnist_gen.io import write_atomic
from mnist_gen.reporting.figures import misclassification_gallery, new_figure, save_figure


def _rows(report: dict, digits: int):
    """(label, precision, recall, f1, support) strings in sklearn's text-report order; None = blank row."""
    fmt = f"{{:.{digits}f}}".format
    classes = sorted((k for k in report if k.isdigit()), key=int)
    for c in classes:
        r = report[c]
        yield c, fmt(r["precision"]), fmt(r["recall"]), fmt(r["f1-score"]), str(r["support"])
    yield None
    acc = report.get("accuracy")
    total = report["macro avg"]["support"]
    yield "accuracy", "", "", ("–" if acc is None else fmt(acc)), str(total)
    for avg in ("macro avg", "weighted avg"):
        r = report[avg]
        yield avg, fmt(r["precision"]), fmt(r["recall"]), fmt(r["f1-score"]), str(r["support"])


def report_table(report: dict, title: str, digits: int = 2) -> Table:
    """A rich table laid out like sklearn's text ``classification_report``."""
    table = Table(title=title, show_edge=False, box=None, pad_edge=False)
    table.add_column("", justify="right", style="bold")
    for col in ("precision", "recall", "f1-score", "support"):
        table.add_column(col, justify="right")
    for row in _rows(report, digits):
        if row is None:
            table.add_row("", "", "", "", "")
        else:
            table.add_row(*row)
    return table


def report_markdown(report: dict, title: str, digits: int = 4) -> str:
    """A Markdown heading plus a table with the same rows as ``report_table`` (no blank row)."""
    lines = [
        f"### {title}",
        "",
        "| class | precision | recall | f1-score | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in _rows(report, digits):
        if row is not None:
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_confusion(cm, path: str | os.PathLike, title: str) -> Path:
    """Confusion-matrix heat map with every count written in its cell (rows = true, columns = predicted)."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    fig = new_figure(6.4, 5.6)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    threshold = cm.max() / 2 if cm.size and cm.max() > 0 else 0.5
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > threshold else "black",
            )
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(title)
    return save_figure(fig, path)


ERROR_COLUMNS = ("id", "true", "answer", "p_answer", "p_true", "why")


def error_list_csv(evalset, proba: np.ndarray) -> str:
    """Every item of ``evalset`` the model did not read right, as CSV text (``ERROR_COLUMNS``):
    each misread digit (its label, the answer, both probabilities), then each item left out of
    the scoring (``EvalSet.skipped``: no digit found, unreadable or unlabelled; the reason in
    ``why``, the label in ``true`` where the file's folder or name gives one). The gallery
    shows at most 200 and needs matplotlib; this names all of them, for ``predict.py FILE --out``
    or a script. Probabilities to 4 decimals, as the markdown report prints."""
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(evalset.labels)
    out = io.StringIO()
    rows = csv.writer(out, lineterminator="\n")
    rows.writerow(ERROR_COLUMNS)
    pred = proba.argmax(axis=1)
    for i in np.flatnonzero(pred != labels):
        t, a = int(labels[i]), int(pred[i])
        rows.writerow((evalset.ids[i], t, a, f"{proba[i, a]:.4f}", f"{proba[i, t]:.4f}", ""))
    for item_id, why in evalset.skipped:  # its label where its folder or name gives one, as scoring reads it
        label = label_from_path(item_id)
        rows.writerow((item_id, "" if label is None else label, "", "", "", why))
    return out.getvalue()


def write_set_reports(model_name: str, scores: dict, out_dir: str | os.PathLike, galleries: bool = True,
                      skip_galleries_for=()) -> None:
    """``reports/<set>.md``, ``<set>_confusion.png``, ``<set>_errors.csv`` and ``<set>_errors.png``
    for each scored set (the gallery only with ``galleries``: it is the slow part)."""
    reports = Path(out_dir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for name, score in scores.items():
        title = f"{model_name} on {name}"
        write_atomic(reports / f"{name}.md", report_markdown(score.summary["report"], title))
        write_atomic(reports / f"{name}_errors.csv", error_list_csv(score.evalset, score.proba))
        plot_confusion(score.summary["report"]["confusion_matrix"], reports / f"{name}_confusion.png", title)
        if galleries and name not in skip_galleries_for:
            misclassification_gallery(score.evalset, score.proba, reports / f"{name}_errors.png", model_name)


def print_summary(results: dict) -> None:
    test = results["eval_sets"].get(results["test_set"])
    if test:
        console.print(report_table(test["report"], f"{results['model']} (seed {results['seed']}) on {results['test_set']}"))
    print_set_lines(results["model"], results["eval_sets"])


def print_set_lines(model_name: str, summaries: dict) -> None:
    for name, s in summaries.items():
        lo, hi = s["ci95"]
        console.print(f"{model_name:12s} {name:24s} {s['correct']:>5d}/{s['n']:<5d} = {100 * s['accuracy']:6.2f} %  "
                      f"(95 % CI {100 * lo:.1f}–{100 * hi:.1f})", markup=False, highlight=False)
