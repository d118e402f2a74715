"""Score one Predictor on a list of registered evaluation sets; write per-set reports.

Shared by ``train.py`` (final evaluation) and ``evaluate.py``, so both write the same
``eval_sets`` structure into ``results.json``. A set that cannot be loaded (data missing,
folder empty) is skipped with a warning; it never sinks the others.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mnist_gen.console import console
from mnist_gen.errors import UserError
from mnist_gen.evalsets import load_eval_set
from mnist_gen.metrics import evaluate, plot_confusion, report_markdown, report_table
from mnist_gen.report import misclassification_gallery, write_atomic

log = logging.getLogger(__name__)


def evaluate_sets(predictor, set_names, out_dir: Path, set_options: dict | None = None,
                  galleries: bool = True, skip_galleries_for=()) -> dict:
    set_options = set_options or {}
    common = set_options.get("_common", {})
    reports = Path(out_dir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in set_names:
        try:
            evalset = _load_cached(name, {**common, **(set_options.get(name) or {})})
        except (UserError, FileNotFoundError) as e:
            log.warning("evaluation set %s skipped: %s", name, e)
            continue
        if len(evalset) == 0:
            log.warning("evaluation set %s is empty; skipped", name)
            continue
        summary, proba = evaluate(predictor, evalset)
        summary["skipped_files"] = [list(s) for s in evalset.skipped]
        out[name] = summary
        title = f"{predictor.name} on {name}"
        write_atomic(reports / f"{name}.md", report_markdown(summary["report"], title))
        plot_confusion(summary["report"]["confusion_matrix"], reports / f"{name}_confusion.png", title)
        if galleries and name not in skip_galleries_for:
            misclassification_gallery(evalset, proba, reports / f"{name}_errors.png", predictor.name)
    return out


_CACHE: dict[str, object] = {}


def _load_cached(name: str, options: dict):
    """Sets are loaded once per process: preprocessing photos costs more than scoring them,
    and evaluate.py scores many runs on the same sets."""
    key = name + json.dumps(options, sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE[key] = load_eval_set(name, **options)
    return _CACHE[key]


def print_summary(results: dict) -> None:
    test = results["eval_sets"].get(results["test_set"])
    if test:
        console.print(report_table(test["report"], f"{results['model']} (seed {results['seed']}) on {results['test_set']}"))
    for name, s in results["eval_sets"].items():
        lo, hi = s["ci95"]
        console.print(f"  {name:20s} {s['correct']:>5d}/{s['n']:<5d} = {100 * s['accuracy']:6.2f} %  (95 % CI {100 * lo:.1f}–{100 * hi:.1f})")
