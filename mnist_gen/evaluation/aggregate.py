"""Aggregate run directories into the study's table (mean ± std over seeds, beside the study).

``results.json`` is the only input; a missing, half-written or corrupt file is skipped with
a warning naming it, and the table is still produced.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.table import Table
from scipy import stats

from mnist_gen.evalsets.corruptions import SET_NAMES as CORRUPTION_SETS
from mnist_gen.evalsets.corruptions import mean_corruption_accuracy
from mnist_gen.io import write_atomic

log = logging.getLogger(__name__)

# Order of the study's table.
MODEL_ORDER = ["knn", "svm", "mlp_64_16", "mlp_64_32", "cnn_32", "cnn_32_16", "cnn_32_16x3"]
TEST_KEYS = ("mnist_test", "seed_holdout_test")
REQUIRED = ("model", "seed", "test_accuracy", "eval_sets")
CORRUPTION_MEAN = "mnistc_mean"


def load_runs(root: str | Path) -> list[dict]:
    runs = []
    for path in sorted(Path(root).rglob("results.json")):
        try:
            res = json.loads(path.read_text())
            missing = [k for k in REQUIRED if k not in res]
            if missing:
                raise ValueError(f"missing keys {missing}")
        except (OSError, ValueError) as e:
            log.warning("skipping %s: not a complete results.json (%s)", path, str(e).splitlines()[0][:120])
            continue
        res["_dir"] = str(path.parent)
        runs.append(res)
    return runs


def _mean_ci(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    n = len(a)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    # t-interval of the mean over seeds (wide for 2-3 seeds, as it should be), clipped to [0, 1].
    ci = [max(0.0, mean - half), min(1.0, mean + half)] if n > 1 else [None, None]
    return {"mean": mean, "std": std, "n": n, "ci95": ci, "min": float(a.min()), "max": float(a.max())}


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per (model, recipe, protocol): seeds pooled."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["model"], r.get("recipe", "study"), r.get("data", {}).get("protocol", "mnist"))].append(r)
    rows = []
    for (model, recipe, protocol), rs in groups.items():
        acc = _mean_ci([r["test_accuracy"] for r in rs])
        study_acc = (rs[0].get("study") or {}).get("mnist_accuracy")
        sets = sorted({s for r in rs for s in r["eval_sets"] if s not in TEST_KEYS})
        row = {
            "model": model,
            "recipe": recipe,
            "protocol": protocol,
            "num_params": rs[0].get("num_params"),
            "seeds": sorted(r["seed"] for r in rs),
            "epochs": sorted({r.get("epochs") for r in rs}, key=lambda e: -1 if e is None else e),
            "test_accuracy": acc,
            "test_loss": _mean_ci([r["test_loss"] for r in rs if r.get("test_loss") is not None]) if any(r.get("test_loss") is not None for r in rs) else None,
            "study_accuracy": study_acc,
            # The study's figure lies outside the range our seeds span (rounding of the study's 4 digits allowed).
            "study_outside_seed_range": None if study_acc is None else not (acc["min"] - 5e-5 <= study_acc <= acc["max"] + 5e-5),
            "eval_sets": {},
            "epoch_time_mean_s": _mean_or_none([r.get("epoch_time_mean_s") for r in rs]),
            "train_time_s": _mean_or_none([r.get("train_time_s") for r in rs]),
        }
        for s in sets:
            vals = [r["eval_sets"][s] for r in rs if s in r["eval_sets"] and r["eval_sets"][s].get("accuracy") is not None]
            if vals:
                row["eval_sets"][s] = {**_mean_ci([v["accuracy"] for v in vals]), "n_items": vals[0]["n"],
                                       "correct": [v["correct"] for v in vals]}
        # The robustness benchmark's figure: mean accuracy over all corruption sets, per seed.
        mca = [mean_corruption_accuracy(r["eval_sets"]) for r in rs]
        complete = [m["mean"] for m in mca if m["mean"] is not None and not m["missing"]]
        if complete:
            row["eval_sets"][CORRUPTION_MEAN] = {**_mean_ci(complete), "n_items": None, "correct": None}
        rows.append(row)
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    rows.sort(key=lambda r: (r["recipe"] != "study", r["protocol"], rank.get(r["model"], 99), r["model"]))
    return rows


def _mean_or_none(values):
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _pct(stat: dict | None) -> str:
    if not stat:
        return "–"
    if stat["n"] > 1:
        return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"
    return f"{100 * stat['mean']:.2f}"


def _set_cell(stat: dict | None) -> str:
    """Small sets (the 29 photos) read better as counts: '28/29', or '27.3/29 ± 0.6' over seeds."""
    if stat and stat.get("n_items") and stat["n_items"] <= 100 and stat.get("correct"):
        c = np.asarray(stat["correct"], dtype=float)
        text = f"{c.mean():.3g}/{stat['n_items']}"
        return text + (f" ± {c.std(ddof=1):.2g}" if len(c) > 1 else "")
    return _pct(stat)


def _set_columns(rows) -> list[str]:
    """Real-handwriting sets, then the corruption mean (the 12 corruption sets stay in the JSON)."""
    names = {s for r in rows for s in r["eval_sets"] if s not in CORRUPTION_SETS}
    return sorted(names - {CORRUPTION_MEAN}) + ([CORRUPTION_MEAN] if CORRUPTION_MEAN in names else [])


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    sets = _set_columns(rows)
    header = ["model", "recipe", "data", "params", "seeds", "epochs", "test % (mean ± std)", "95 % CI", "test loss",
              "study %", "study vs our seeds"] + [f"{s} %" for s in sets]
    body = []
    for r in rows:
        acc = r["test_accuracy"]
        ci = "–" if acc["n"] < 2 else f"{100 * acc['ci95'][0]:.2f}–{100 * acc['ci95'][1]:.2f}"
        outside = {None: "", True: "✗ outside", False: "within"}[r["study_outside_seed_range"]]
        body.append([
            r["model"], r["recipe"], r["protocol"], "" if r["num_params"] is None else f"{r['num_params']:,}",
            str(len(r["seeds"])), ",".join("–" if e is None else str(e) for e in r["epochs"]),
            _pct(acc), ci, "–" if not r["test_loss"] else f"{r['test_loss']['mean']:.4f}",
            "–" if r["study_accuracy"] is None else f"{100 * r['study_accuracy']:.2f}", outside,
        ] + [_set_cell(r["eval_sets"].get(s)) for s in sets])
    return header, body


def to_markdown(rows) -> str:
    header, body = table_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(b) + " |" for b in body]
    return "\n".join(lines) + "\n"


def to_csv(rows) -> str:
    header, body = table_rows(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(body)
    return buf.getvalue()


def to_rich(rows, title="mnist_gen vs the study") -> Table:
    header, body = table_rows(rows)
    t = Table(title=title)
    for h in header:
        t.add_column(h, justify="left" if h in ("model", "recipe", "data") else "right")
    for b in body:
        t.add_row(*b)
    return t


def write_outputs(rows, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"md": out / "study_table.md", "csv": out / "study_table.csv", "json": out / "study_table.json"}
    write_atomic(files["md"], to_markdown(rows))
    write_atomic(files["csv"], to_csv(rows))
    write_atomic(files["json"], json.dumps(rows, indent=2))
    return files
