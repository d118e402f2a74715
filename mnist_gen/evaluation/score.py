"""Score one Predictor on a list of registered evaluation sets.

Shared by ``train.py`` (final evaluation) and ``evaluate.py``, so both write the same
``eval_sets`` structure into ``results.json``. A set that cannot be loaded (data missing,
folder empty) is skipped with a warning; it never sinks the others. The reports drawn from
the scores (markdown, confusion matrices, galleries) are ``mnist_gen.reporting.set_reports``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from mnist_gen.errors import UserError
from mnist_gen.evalsets import EvalSet, load_eval_set
from mnist_gen.evaluation.metrics import evaluate

log = logging.getLogger(__name__)


@dataclass
class SetScore:
    summary: dict  # what results.json stores for the set (metrics.evaluate_predictions + skipped files)
    proba: np.ndarray  # (n, 10) the model's probabilities, for galleries
    evalset: EvalSet


def evaluate_sets(predictor, set_names, set_options: dict | None = None) -> dict[str, SetScore]:
    """``{set name: SetScore}`` for every set that loads and is not empty."""
    set_options = set_options or {}
    common = set_options.get("_common", {})
    out = {}
    for name in set_names:
        try:
            evalset = load_cached(name, {**common, **(set_options.get(name) or {})})
        except (UserError, FileNotFoundError) as e:
            log.warning("evaluation set %s skipped: %s", name, e)
            continue
        if len(evalset) == 0:
            log.warning("evaluation set %s is empty; skipped", name)
            continue
        summary, proba = evaluate(predictor, evalset)
        summary["skipped_files"] = [list(s) for s in evalset.skipped]
        if evalset.pipeline_version is not None:
            summary["pipeline_version"] = evalset.pipeline_version
        out[name] = SetScore(summary, proba, evalset)
    return out


def set_options(cfg) -> dict:
    """Options for every evaluation set from a run's config: data folder and preprocessing, then per set."""
    from mnist_gen.training.fit import data_dir_from, plain

    opts = {"data_dir": str(data_dir_from(cfg)), "preprocess": plain(cfg.get("preprocess"))}
    return {"_common": opts, **plain(cfg.get("eval_set_options"))}


_CACHE: dict[str, EvalSet] = {}


def load_cached(name: str, options: dict) -> EvalSet:
    """Sets are loaded once per process: preprocessing photos costs more than scoring them,
    and evaluate.py scores many runs on the same sets."""
    key = name + json.dumps(options, sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE[key] = load_eval_set(name, **options)
    return _CACHE[key]
