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
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.table import Table
from rich.text import Text
from scipy import stats

from mnist_gen.errors import UserError
from mnist_gen.evalsets.corruptions import SET_NAMES as CORRUPTION_SETS
from mnist_gen.evalsets.corruptions import mean_corruption_accuracy
from mnist_gen.io import to_json, write_atomic

log = logging.getLogger(__name__)

# Order of the study's table.
MODEL_ORDER = ["knn", "svm", "mlp_64_16", "mlp_64_32", "cnn_32", "cnn_32_16", "cnn_32_16x3"]
TEST_KEYS = ("mnist_test", "seed_holdout_test")
REQUIRED = ("model", "seed", "test_accuracy", "eval_sets")
CORRUPTION_MEAN = "mnistc_mean"
MAX_RESULTS_BYTES = 64 << 20  # train.py writes tens of KB; a file this large is not a results.json
_JSON_TYPE = {dict: "an object", list: "an array"}


def load_runs(root: str | Path) -> list[dict]:
    """Every usable ``results.json`` under ``root``; anything else is skipped with a warning naming it.

    Skipped: unreadable folders, ``results.json`` entries that are not regular files (a folder, a
    pipe, a dangling link), files that are not JSON (half-written, 100k-deep nesting), and JSON
    that is not what train.py writes (a string or list, ``test_accuracy`` as text, ``eval_sets``
    null, ``model`` an object, NaN, ...). Only the keys the table reads are checked (``check_run``).
    """
    runs = []
    for path in _results_files(Path(root)):
        if not path.is_file():  # a FIFO would block the read for ever
            log.warning("skipping %s: %s, not a file", path, _odd_kind(path))
            continue
        try:
            if path.stat().st_size > MAX_RESULTS_BYTES:
                raise ValueError(f"{path.stat().st_size / 1e6:.0f} MB, far larger than any results.json")
            res = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            log.warning("skipping %s: not a results.json (JSON nested too deeply to read)", path)
            continue
        except (OSError, ValueError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError, ours
            reason = e.strerror if isinstance(e, OSError) and e.strerror else _one_line(e)
            log.warning("skipping %s: not a complete results.json (%s)", path, reason)
            continue
        problem = check_run(res)
        if problem:
            log.warning("skipping %s: not a results.json written by train.py (%s)", path, problem)
            continue
        res["_dir"] = str(path.parent)
        runs.append(res)
    return runs


def _results_files(root: Path) -> list[Path]:
    """Every entry named results.json under ``root`` (links to folders are not followed); an
    unreadable folder is named in a warning instead of vanishing silently."""

    def unreadable(err: OSError) -> None:
        log.warning("skipping folder %s: it cannot be read (%s); runs inside it are not in the table",
                    err.filename or root, err.strerror or err)

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        if "results.json" in filenames or "results.json" in dirnames:
            found.append(Path(dirpath) / "results.json")
    return sorted(found)


def _odd_kind(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a link to nothing"
    return "a folder" if path.is_dir() else "a pipe, socket or device"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _is_num(v, lo: float | None = None, hi: float | None = None) -> bool:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (lo is None or v >= lo) and (hi is None or v <= hi)


def _is_int(v, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _what(v) -> str:
    """A value as the warning shows it: numbers and short strings as written, containers by kind."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return f"the string {shown(v[:40])!r}"
    return _JSON_TYPE.get(type(v), type(v).__name__)


def check_run(res) -> str | None:
    """Why ``res`` (a parsed results.json) cannot go into the table, or None when it can."""
    if not isinstance(res, dict):
        return f"it holds {_what(res)}, not an object"
    missing = [k for k in REQUIRED if k not in res]
    if missing:
        return f"missing keys {missing}"
    checks = [
        ("model", isinstance(res["model"], str) and res["model"].strip() != "", "a model name"),
        ("seed", _is_int(res["seed"]), "a non-negative integer"),
        ("test_accuracy", _is_num(res["test_accuracy"], 0, 1), "a number in 0..1"),
        ("test_loss", res.get("test_loss") is None or _is_num(res["test_loss"], 0), "null or a number ≥ 0"),
        ("eval_sets", isinstance(res["eval_sets"], dict), "an object of evaluation sets"),
        ("recipe", isinstance(res.get("recipe", "study"), str), "a string"),
        ("data", res.get("data") is None or (isinstance(res["data"], dict)
                                             and isinstance(res["data"].get("protocol", "mnist"), str)),
         "null or an object with a string protocol"),
        ("study", res.get("study") is None or (isinstance(res["study"], dict) and (
            res["study"].get("mnist_accuracy") is None or _is_num(res["study"]["mnist_accuracy"], 0, 1))),
         "null or an object with mnist_accuracy in 0..1"),
        ("num_params", res.get("num_params") is None or _is_int(res["num_params"]), "null or an integer"),
        ("epochs", res.get("epochs") is None or _is_int(res["epochs"]), "null or an integer"),
    ] + [(k, res.get(k) is None or _is_num(res[k], 0), "null or a number ≥ 0")
         for k in ("epoch_time_mean_s", "train_time_s")]
    for key, ok, expected in checks:
        if not ok:
            return f"{key} is {_what(res.get(key))}, expected {expected}"
    for name, s in res["eval_sets"].items():
        if not isinstance(s, dict):
            return f"eval_sets.{shown(name)} is {_what(s)}, expected an object"
        for key, ok in (("accuracy", s.get("accuracy") is None or _is_num(s["accuracy"], 0, 1)),
                        ("n", s.get("n") is None or _is_int(s["n"])),
                        ("correct", s.get("correct") is None or _is_int(s["correct"]))):
            if not ok:
                return f"eval_sets.{shown(name)}.{key} is {_what(s.get(key))}, expected null or a number in range"
    return None


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
        groups[(r["model"], r.get("recipe", "study"), (r.get("data") or {}).get("protocol", "mnist"))].append(r)
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
            # The to_mnist versions that read the sets' files (figures compare only within one).
            "pipeline_versions": sorted({v["pipeline_version"] for r in rs for v in r["eval_sets"].values()
                                         if isinstance(v, dict) and _is_int(v.get("pipeline_version"))}),
            "epoch_time_mean_s": _mean_or_none([r.get("epoch_time_mean_s") for r in rs]),
            "train_time_s": _mean_or_none([r.get("train_time_s") for r in rs]),
        }
        for s in sets:
            vals = [r["eval_sets"][s] for r in rs if s in r["eval_sets"] and r["eval_sets"][s].get("accuracy") is not None]
            if vals:
                correct = [v.get("correct") for v in vals]
                row["eval_sets"][s] = {**_mean_ci([v["accuracy"] for v in vals]), "n_items": vals[0].get("n"),
                                       "correct": None if None in correct else correct}
        # The robustness benchmark's figure: mean accuracy over all corruption sets, per seed
        # (a set present without an accuracy counts as not scored).
        mca = [mean_corruption_accuracy({k: v for k, v in r["eval_sets"].items() if v.get("accuracy") is not None})
               for r in rs]
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
    """Real-handwriting sets, then the corruption mean. The 12 corruption sets and the framing sets
    stay in the JSON (the framing table, ``reporting.tables``, shows those)."""
    from mnist_gen.evalsets.framing import FRAMING_SETS

    names = {s for r in rows for s in r["eval_sets"] if s not in CORRUPTION_SETS and s not in FRAMING_SETS}
    return sorted(names - {CORRUPTION_MEAN}) + ([CORRUPTION_MEAN] if CORRUPTION_MEAN in names else [])


def shown(text) -> str:
    """A name from a results.json as table text: control characters (ANSI escapes, newlines) are
    shown escaped, never sent to the terminal or allowed to break a table line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and body as plain text (names from the files are ``shown``; markup is not interpreted)."""
    sets = _set_columns(rows)
    header = ["model", "recipe", "data", "params", "seeds", "epochs", "test % (mean ± std)", "95 % CI", "test loss",
              "study %", "study vs our seeds"] + [f"{shown(s)} %" for s in sets]
    body = []
    for r in rows:
        acc = r["test_accuracy"]
        ci = "–" if acc["n"] < 2 else f"{100 * acc['ci95'][0]:.2f}–{100 * acc['ci95'][1]:.2f}"
        outside = {None: "", True: "✗ outside", False: "within"}[r["study_outside_seed_range"]]
        body.append([
            shown(r["model"]), shown(r["recipe"]), shown(r["protocol"]), "" if r["num_params"] is None else f"{r['num_params']:,}",
            str(len(r["seeds"])), ",".join("–" if e is None else str(e) for e in r["epochs"]),
            _pct(acc), ci, "–" if not r["test_loss"] else f"{r['test_loss']['mean']:.4f}",
            "–" if r["study_accuracy"] is None else f"{100 * r['study_accuracy']:.2f}", outside,
        ] + [_set_cell(r["eval_sets"].get(s)) for s in sets])
    return header, body


def to_markdown(rows) -> str:
    header, body = table_rows(rows)

    def line(cells: list[str]) -> str:  # a '|' inside a name must not open a new column
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line(header), "|" + "---|" * len(header)] + [line(b) for b in body]
    return "\n".join(lines) + "\n"


def to_csv(rows) -> str:
    header, body = table_rows(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(body)
    return buf.getvalue()


def to_rich(rows, title="mnist_gen vs the study") -> Table:
    """The table for the terminal. Cells are ``Text``, not markup: a model named ``[/x]`` or
    ``[bold]`` is printed as written instead of raising ``MarkupError`` or restyling the table."""
    header, body = table_rows(rows)
    t = Table(title=title)
    for h in header:
        t.add_column(Text(h), justify="left" if h in ("model", "recipe", "data") else "right")
    for b in body:
        t.add_row(*(Text(c) for c in b))
    return t


def write_outputs(rows, out_dir: str | Path) -> dict[str, Path]:
    """``study_table.{md,csv,json}`` in ``out_dir``; a folder that cannot be written is a ``UserError``."""
    out = Path(out_dir)
    files = {"md": out / "study_table.md", "csv": out / "study_table.csv", "json": out / "study_table.json"}
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(files["md"], to_markdown(rows))
        write_atomic(files["csv"], to_csv(rows))
        write_atomic(files["json"], to_json(rows) + "\n")  # never NaN (a 1-seed CI is null)
    except OSError as e:
        raise UserError(f"Cannot write the study table into {out} ({e.strerror or e}); give out_dir=<a folder "
                        "you can write to>.") from None
    return files
