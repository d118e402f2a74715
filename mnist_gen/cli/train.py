"""What ``train.py`` does: fit one config (one seed or several), export, evaluate, write each run directory.

Run directory (``hydra.run.dir``; with ``seeds=[...]`` one ``seed<k>/`` per seed under it)::

    results.json            the contract with evaluate.py (keys in README)
    metrics.csv             per-epoch train/val loss + accuracy, epoch wall time (networks)
    loss_curve.png  accuracy_curve.png
    model.ckpt              final weights, plain tensors + plain hyperparameters (networks)
    model.safetensors model.onnx  the network for deployment (mnist_gen/models/export.py)
    model.skops             KNN / SVM (classical)
    checkpoints/{best,last}.ckpt   Lightning checkpoints (resume from last; stacked seeds: in the parent)
    reports/<set>.md  reports/<set>_confusion.png  reports/<set>_errors.png  reports/<set>_errors.csv
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_gen.data.splits import PROTOCOL_TEST_SET, overlapping
from mnist_gen.errors import UserError
from mnist_gen.evaluation.score import evaluate_sets, set_options
from mnist_gen.io import write_json
from mnist_gen.reporting.figures import plot_curves
from mnist_gen.reporting.set_reports import print_summary, write_set_reports
from mnist_gen.training.checks import check_eval_sets, check_train_config
from mnist_gen.training.fit import (
    build_datamodule,
    fit_classical,
    fit_network,
    fit_stacked,
    network_hparams,
    save_plain_checkpoint,
    set_threads,
    vectorize,
)

log = logging.getLogger("train")



def seeds_to_train(cfg: DictConfig) -> list[int] | None:
    """The seeds this run trains, or None for the single ``seed``.

    Explicit beats implicit: ``seed=<k>`` given on the command line trains that seed alone,
    even under an experiment whose config lists ``seeds``; ``seeds=[...]`` on the command
    line wins over both.
    """
    seeds = cfg.get("seeds")
    if HydraConfig.initialized():
        given = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
        if "seed" in given and "seeds" not in given:
            seeds = None
    if not seeds:
        return None
    seeds = [int(s) for s in seeds]
    if cfg.model.kind == "classical" and len(seeds) > 1:
        # KNN and SVC(gamma='scale') have no randomness: more seeds would repeat the same fit.
        log.info("%s is deterministic; fitting once (seed %d) instead of %d times", cfg.model.name, seeds[0], len(seeds))
        seeds = seeds[:1]
    return seeds


def run(cfg: DictConfig) -> dict | list[dict]:
    """One run, or with ``seeds=[...]`` one run directory per seed under the output dir."""
    try:
        return _run(cfg)
    except OSError as e:  # the run folder became unwritable, the disk filled up, ...
        where = e.filename or cfg.paths.output_dir
        raise UserError(f"Cannot write {where} ({e.strerror or e}); free space or fix the folder's permissions, "
                        f"then rerun with hydra.run.dir={cfg.paths.output_dir} to resume.") from e


def _run(cfg: DictConfig) -> dict | list[dict]:
    check_train_config(cfg)
    set_threads(cfg)
    seeds = seeds_to_train(cfg)
    if seeds is None:
        log.info("training %s, seed %d, into %s", cfg.model.name, cfg.seed, cfg.paths.output_dir)
        return run_one(cfg)
    parent = Path(cfg.paths.output_dir)
    stacked = cfg.model.kind == "network" and len(seeds) > 1 and vectorize(cfg)
    log.info("training %s, seeds %s (%s), into %s/seed<k>", cfg.model.name, ", ".join(map(str, seeds)),
             "stacked in one step" if stacked else "one after another", parent)
    if stacked:
        return run_stacked(cfg, seeds, parent)
    return [run_one(for_seed(cfg, s, parent)) for s in seeds]


def for_seed(cfg: DictConfig, seed: int, parent: Path) -> DictConfig:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.seed = seed
        cfg.seeds = None
        cfg.paths.output_dir = str(parent / f"seed{seed}")
    return cfg


def run_one(cfg: DictConfig) -> dict:
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dm = build_datamodule(cfg)
    t0 = time.perf_counter()
    if cfg.model.kind == "network":
        net, info = fit_network(cfg, dm, run_dir)
        predictor = save_network(cfg, net, dm, run_dir)
    elif cfg.model.kind == "classical":
        predictor, info = fit_classical(cfg, dm, run_dir)
    else:
        raise UserError(f"model.kind must be 'network' or 'classical', got {cfg.model.kind!r}.")
    info["wall_time_s"] = round(time.perf_counter() - t0, 3)
    return finish_run(cfg, dm, predictor, info, run_dir)


def run_stacked(cfg: DictConfig, seeds: list[int], parent: Path) -> list[dict]:
    parent.mkdir(parents=True, exist_ok=True)
    dm = build_datamodule(cfg, seeds=seeds)
    t0 = time.perf_counter()
    fitted = fit_stacked(cfg, dm, seeds, parent)
    wall = round(time.perf_counter() - t0, 3)
    results = []
    for seed, (net, info) in fitted.items():
        cfg_s = for_seed(cfg, seed, parent)
        run_dir = Path(cfg_s.paths.output_dir)
        predictor = save_network(cfg_s, net, dm, run_dir)
        info["wall_time_s"] = wall
        results.append(finish_run(cfg_s, dm, predictor, info, run_dir))
    return results


def save_network(cfg: DictConfig, net, dm, run_dir: Path):
    """model.ckpt, the deployable exports and the curves; returns the network as a Predictor."""
    from mnist_gen.models.export import export_all
    from mnist_gen.models.predictors import NetworkPredictor

    hparams = network_hparams(cfg, dm.mean, dm.std)
    save_plain_checkpoint(hparams, net, run_dir / "model.ckpt")
    if cfg.export:
        export_all(net, hparams, run_dir)
    if (run_dir / "metrics.csv").is_file():
        plot_curves(run_dir / "metrics.csv", run_dir)
    return NetworkPredictor(net, dm.mean, dm.std, cfg.model.name)


def finish_run(cfg: DictConfig, dm, predictor, fit_info: dict, run_dir: Path) -> dict:
    """Evaluate on the protocol's test set and every configured set; write reports and results.json."""
    test_name = PROTOCOL_TEST_SET[cfg.data.protocol]
    wanted = check_eval_sets(cfg.eval_sets)
    leaky = set(overlapping(cfg.data.protocol, wanted))
    if leaky:
        log.info("not scoring %s: it overlaps the %s training data", ", ".join(sorted(leaky)), cfg.data.protocol)
    set_names = [test_name] + [s for s in wanted if s != test_name and s not in leaky]
    scores = evaluate_sets(predictor, set_names, set_options=set_options(cfg))
    write_set_reports(predictor.name, scores, run_dir, galleries=cfg.galleries, skip_galleries_for=(test_name,))
    summaries = {name: s.summary for name, s in scores.items()}
    split = dm.prepare_arrays()
    results = {
        "schema": 1,
        "model": cfg.model.name,
        "kind": cfg.model.kind,
        "recipe": cfg.get("recipe", "study"),
        "seed": cfg.seed,
        "num_params": fit_info.get("num_params"),
        "epochs": fit_info.get("epochs"),
        "data": {
            "protocol": cfg.data.protocol,
            "n_train": int(len(split.y_train)),
            "n_val": int(len(split.y_val)) if cfg.data.protocol == "mnist" else 0,
            "n_test": int(len(split.y_test)),
            "max_train_samples": cfg.data.max_train_samples,
            "batch_size": cfg.data.batch_size,
            "mean": dm.mean,
            "std": dm.std,
        },
        "test_set": test_name,
        "test_accuracy": summaries[test_name]["accuracy"],
        "test_loss": summaries[test_name]["loss"],
        "train_time_s": fit_info.get("train_time_s"),
        "epoch_time_mean_s": fit_info.get("epoch_time_mean_s"),
        "wall_time_s": fit_info.get("wall_time_s"),
        "vectorized_seeds": fit_info.get("vectorized_seeds", 1),
        "device": fit_info.get("device", "cpu"),
        "torch_threads": torch.get_num_threads(),
        "eval_sets": summaries,
        "study": OmegaConf.to_container(cfg.model.get("study", {}), resolve=True),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(run_dir / "results.json", results)
    print_summary(results)
    log.info("run directory: %s", run_dir)
    return results
