"""What ``evaluate.py`` does: score saved models, or aggregate run directories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from mnist_gen import aggregate
from mnist_gen.config_checks import check_eval_sets, check_output_dirs
from mnist_gen.console import console
from mnist_gen.errors import UserError
from mnist_gen.evaluation import evaluate_sets
from mnist_gen.models.predictors import find_run_dirs, load_predictor, model_file
from mnist_gen.report import write_atomic
from mnist_gen.safe_paths import safe_child
from mnist_gen.training import _json_default, _set_options

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    check_eval_sets(cfg.eval_sets)
    check_output_dirs(cfg)
    if cfg.model_path is None and cfg.runs is None:
        raise UserError("Nothing to evaluate: give model_path=<model file or run dir> or runs=<directory of runs>.")
    out = {}
    if cfg.model_path is not None:
        paths = list(cfg.model_path) if isinstance(cfg.model_path, ListConfig) else [cfg.model_path]
        out["models"] = [score_model(Path(p), cfg) for p in paths]
    if cfg.runs is not None:
        out["table"] = aggregate_runs(Path(cfg.runs), cfg)
    return out


def score_model(path: Path, cfg: DictConfig) -> dict:
    predictor = load_predictor(path, trust_export=bool(cfg.get("trust_export", False)))
    # The name comes from the model file: it may only name one folder inside the output dir.
    out_dir = safe_child(cfg.out_dir or cfg.paths.output_dir, predictor.name, "model name")
    summaries = evaluate_sets(predictor, list(cfg.eval_sets), out_dir, set_options=_set_options(cfg), galleries=cfg.galleries)
    result = {"model": predictor.name, "model_path": str(path), "eval_sets": summaries}
    write_atomic(out_dir / "evaluation.json", json.dumps(result, indent=2, default=_json_default))
    for name, s in summaries.items():
        lo, hi = s["ci95"]
        console.print(f"{predictor.name:12s} {name:20s} {s['correct']:>5d}/{s['n']:<5d} = {100 * s['accuracy']:6.2f} %  (95 % CI {100 * lo:.1f}–{100 * hi:.1f})")
    log.info("reports in %s", out_dir)
    return result


def reevaluate_run(run_dir: Path, cfg: DictConfig) -> None:
    """Score a run's saved model on ``eval_sets`` and merge them into its results.json."""
    res_path = run_dir / "results.json"
    try:
        results = json.loads(res_path.read_text())
    except (OSError, ValueError) as e:
        log.warning("skipping %s: cannot read results.json (%s)", run_dir, e)
        return
    if model_file(run_dir) is None:
        log.warning("skipping %s: no saved model", run_dir)
        return
    predictor = load_predictor(run_dir)
    sets = [s for s in cfg.eval_sets if s != results.get("test_set")]
    summaries = evaluate_sets(predictor, sets, run_dir, set_options=_set_options(cfg), galleries=cfg.galleries)
    results["eval_sets"].update(summaries)
    write_atomic(res_path, json.dumps(results, indent=2, default=_json_default))


def aggregate_runs(root: Path, cfg: DictConfig) -> list[dict]:
    if not root.is_dir():
        raise UserError(f"runs={root} is not a directory.")
    if cfg.reevaluate:
        for run_dir in find_run_dirs(root):
            reevaluate_run(run_dir, cfg)
    runs = aggregate.load_runs(root)
    if not runs:
        raise UserError(f"No complete results.json under {root}; train first (python train.py ...).")
    rows = aggregate.aggregate(runs)
    files = aggregate.write_outputs(rows, cfg.out_dir or root)
    console.print(aggregate.to_rich(rows))
    console.print("written: " + ", ".join(str(p) for p in files.values()))
    return rows
