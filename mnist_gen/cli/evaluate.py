"""What ``evaluate.py`` does: score saved models, or aggregate run directories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, ListConfig, open_dict

from mnist_gen.console import console
from mnist_gen.data.splits import overlapping
from mnist_gen.errors import UserError
from mnist_gen.evaluation import aggregate
from mnist_gen.evaluation.score import evaluate_sets, set_options
from mnist_gen.io import write_atomic, write_json
from mnist_gen.models.bundled import resolve
from mnist_gen.models.predictors import find_run_dirs, load_predictor, model_file
from mnist_gen.paths import safe_child
from mnist_gen.reporting.set_reports import print_set_lines, write_set_reports
from mnist_gen.reporting.tables import REAL_SETS, framing_summary, framing_table, style_groups, style_table
from mnist_gen.training.checks import check_eval_sets, check_output_dirs

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    with open_dict(cfg):
        cfg.eval_sets = check_eval_sets(cfg.eval_sets)  # patterns expanded once
    check_output_dirs(cfg)
    if cfg.model_path is None and cfg.runs is None:
        raise UserError("Nothing to evaluate: give model_path=<model file or run dir> or runs=<directory of runs>.")
    out = {}
    if cfg.model_path is not None:
        paths = list(cfg.model_path) if isinstance(cfg.model_path, ListConfig) else [cfg.model_path]
        taken: set[str] = set()
        out["models"] = [score_model(model_location(str(p)), cfg, taken) for p in paths]
    if cfg.runs is not None:
        out["table"] = aggregate_runs(Path(cfg.runs), cfg)
    return out


def model_location(spec: str) -> Path:
    """A model file or run directory as given, or the file of a bundled model named ``spec``
    (``default``, ``study/cnn_32``) when no such path exists."""
    path = Path(spec)
    return path if path.exists() else (resolve(spec, "model.onnx") or path)


def score_model(path: Path, cfg: DictConfig, taken: set[str] | None = None) -> dict:
    predictor = load_predictor(path)
    # The name comes from the model file: it may only name one folder inside the output dir, and
    # two models of one name (study/cnn_32 and robust/cnn_32) each get their own.
    taken = set() if taken is None else taken
    folder, k = predictor.name, 1
    while folder in taken:
        k += 1
        folder = f"{predictor.name}-{k}"
    taken.add(folder)
    out_dir = safe_child(cfg.out_dir or cfg.paths.output_dir, folder, "model name")
    scores = evaluate_sets(predictor, list(cfg.eval_sets), set_options=set_options(cfg))
    write_set_reports(predictor.name, scores, out_dir, galleries=cfg.galleries)
    summaries = {name: s.summary for name, s in scores.items()}
    result = {"model": predictor.name, "model_path": str(path), "eval_sets": summaries}
    write_json(out_dir / "evaluation.json", result)
    print_set_lines(predictor.name, summaries)
    log.info("reports in %s", out_dir)
    return result


def reevaluate_run(run_dir: Path, cfg: DictConfig) -> None:
    """Score a run's saved model on ``eval_sets`` and merge them into its results.json.

    A run that cannot be read or loaded is skipped with a warning naming it; the others go on.
    """
    res_path = run_dir / "results.json"
    try:
        results = json.loads(res_path.read_text())
        if not isinstance(results, dict) or not isinstance(results.get("eval_sets"), dict):
            raise ValueError("not a results.json written by train.py")
    except (OSError, ValueError, RecursionError) as e:
        log.warning("skipping %s: cannot read results.json (%s)", run_dir, e)
        return
    if model_file(run_dir) is None:
        log.warning("skipping %s: no saved model", run_dir)
        return
    try:
        predictor = load_predictor(run_dir)
    except UserError as e:
        log.warning("skipping %s: %s", run_dir, e)
        return
    leaky = overlapping((results.get("data") or {}).get("protocol", "mnist"), cfg.eval_sets)
    sets = [s for s in cfg.eval_sets if s != results.get("test_set") and s not in leaky]
    scores = evaluate_sets(predictor, sets, set_options=set_options(cfg))
    write_set_reports(predictor.name, scores, run_dir, galleries=cfg.galleries)
    results["eval_sets"].update({name: s.summary for name, s in scores.items()})
    write_json(res_path, results)


def aggregate_runs(root: Path, cfg: DictConfig) -> list[dict]:
    if not root.is_dir():
        raise UserError(f"runs={root} is not a directory.")
    if cfg.reevaluate:
        run_dirs = find_run_dirs(root)
        for i, run_dir in enumerate(run_dirs, 1):
            log.info("re-scoring run %d/%d: %s", i, len(run_dirs), run_dir)  # minutes per run with many sets
            reevaluate_run(run_dir, cfg)
    runs = aggregate.load_runs(root)
    if not runs:
        raise UserError(f"No complete results.json under {root}; train first (python train.py ...).")
    rows = aggregate.aggregate(runs)
    out = Path(cfg.out_dir or root)
    files = aggregate.write_outputs(rows, out)
    console.print(aggregate.to_rich(rows))
    framing = framing_table(rows)
    if framing:  # some runs were scored on the framing sets: their table beside the study's
        # The summary first (files vs arrays, worst-best framing per source), then every set.
        files["framing"] = write_atomic(out / "framing_table.md", framing_summary(rows) + "\n" + framing)
        # Recall of 1, 4, 7, 9 and the confusions continental styles cause, per model and recipe.
        files["styles"] = write_atomic(out / "style_table.md", style_table(style_groups(runs), REAL_SETS))
    console.print("written: " + ", ".join(str(p) for p in files.values()), markup=False)
    return rows
