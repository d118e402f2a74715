"""What ``train.py`` does: fit one model under one config, evaluate it, write its run directory.

Run directory (``hydra.run.dir``)::

    results.json            the contract with evaluate.py (keys in README)
    metrics.csv             per-epoch train/val loss + accuracy, epoch wall time (networks)
    loss_curve.png  accuracy_curve.png
    model.ckpt              final weights, plain tensors + plain hyperparameters (networks)
    model.pt2               deployable torch.export program, raw 0..255 pixels in (networks)
    model.skops             KNN / SVM (classical)
    checkpoints/{best,last}.ckpt   Lightning checkpoints (resume from last)
    reports/<set>.md  reports/<set>_confusion.png  reports/<set>_errors.png
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_gen import paths
from mnist_gen.augment import is_identity
from mnist_gen.config_checks import check_train_config
from mnist_gen.data.datamodule import DigitDataModule
from mnist_gen.errors import UserError
from mnist_gen.evaluation import evaluate_sets, print_summary
from mnist_gen.report import write_atomic

log = logging.getLogger(__name__)

PROTOCOL_TEST_SET = {"mnist": "mnist_test", "seed_holdout": "seed_holdout_test"}
# seed_holdout trains on 56k of all 70k images (MNIST test included), and the mnist protocol's
# training images are most of seed_holdout's test part: scoring those would be leakage.
OVERLAPPING_SETS = {"mnist": {"seed_holdout_test"}, "seed_holdout": {"mnist_test"}}


def data_dir_from(cfg: DictConfig) -> Path:
    return Path(cfg.paths.data_dir) if cfg.paths.get("data_dir") else paths.data_dir()


def build_datamodule(cfg: DictConfig) -> DigitDataModule:
    augment = _plain(cfg.get("augment")) or None
    if cfg.model.kind != "network" and not is_identity(augment):
        raise UserError(f"augment={augment.get('name')} is for networks only; {cfg.model.name} is fitted on "
                        "the plain digits: use augment=none.")
    return DigitDataModule(
        protocol=cfg.data.protocol,
        data_dir=str(data_dir_from(cfg)),
        batch_size=cfg.data.batch_size,
        eval_batch_size=cfg.data.eval_batch_size,
        steps_per_call=cfg.data.steps_per_call,
        max_train_samples=cfg.data.max_train_samples,
        seed=cfg.seed,
        augment=augment,
    )


def run(cfg: DictConfig) -> dict | list[dict]:
    """One run, or with ``seeds=[...]`` one run directory per seed under the output dir."""
    check_train_config(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if not cfg.get("seeds"):
        return run_one(cfg)
    seeds = [int(s) for s in cfg.seeds]
    parent = Path(cfg.paths.output_dir)
    if cfg.model.kind == "classical" and len(seeds) > 1:
        # KNN and SVC(gamma='scale') have no randomness: more seeds would repeat the same fit.
        log.info("%s is deterministic; fitting once (seed %d) instead of %d times", cfg.model.name, seeds[0], len(seeds))
        seeds = seeds[:1]
    if cfg.model.kind == "network" and _vectorize(cfg):
        return run_vectorized(cfg, seeds, parent)
    return [run_one(_for_seed(cfg, s, parent)) for s in seeds]


def _for_seed(cfg: DictConfig, seed: int, parent: Path) -> DictConfig:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.seed = seed
        cfg.seeds = None
        cfg.paths.output_dir = str(parent / f"seed{seed}")
    return cfg


def _vectorize(cfg: DictConfig) -> bool:
    """auto: MLPs always, CNNs on a GPU. MLPs are overhead-bound, so N seeds in one batched step
    are nearly free; CNNs are arithmetic-bound on CPU, where stacking them is no faster than one
    seed after another (README, speed section), while a GPU has room for all of them at once."""
    mode = cfg.get("multiseed", {}).get("vectorize", "auto")
    if mode == "never":
        return False
    if not is_identity(_plain(cfg.get("augment"))):
        # The vectorized loop reads the plain tensors; augmented seeds train one after another.
        if mode == "always":
            raise UserError("multiseed.vectorize=always does not support augmentation; use augment=none or vectorize=auto.")
        return False
    if mode == "always" or cfg.model.arch == "mlp":
        return True
    return str(cfg.trainer.accelerator) in ("gpu", "cuda")


def run_one(cfg: DictConfig) -> dict:
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dm = build_datamodule(cfg)
    t0 = time.perf_counter()
    if cfg.model.kind == "network":
        predictor, fit_info = fit_network(cfg, dm, run_dir)
    elif cfg.model.kind == "classical":
        predictor, fit_info = fit_classical(cfg, dm, run_dir)
    else:
        raise UserError(f"model.kind must be 'network' or 'classical', got {cfg.model.kind!r}.")
    fit_info["wall_time_s"] = round(time.perf_counter() - t0, 3)
    return finish_run(cfg, dm, predictor, fit_info, run_dir)


def run_vectorized(cfg: DictConfig, seeds: list[int], parent: Path) -> list[dict]:
    from mnist_gen.models.predictors import NetworkPredictor
    from mnist_gen.multiseed import fit_multiseed

    parent.mkdir(parents=True, exist_ok=True)
    dm = build_datamodule(cfg)
    dm.prepare_arrays()
    device = "cuda" if str(cfg.trainer.accelerator) in ("gpu", "cuda") else "cpu"
    t0 = time.perf_counter()
    fitted = fit_multiseed(cfg, dm, seeds, parent, cfg.trainer.max_epochs, device)
    wall = round(time.perf_counter() - t0, 3)
    results = []
    for seed, (net, info) in fitted.items():
        cfg_s = _for_seed(cfg, seed, parent)
        run_dir = Path(cfg_s.paths.output_dir)
        hparams = _network_hparams(cfg_s, dm)
        save_plain_checkpoint(hparams, net, run_dir / "model.ckpt")
        _export_and_plot(cfg_s, net, dm, run_dir)
        info["wall_time_s"] = wall
        results.append(finish_run(cfg_s, dm, NetworkPredictor(net, dm.mean, dm.std, cfg.model.name), info, run_dir))
    return results


def finish_run(cfg: DictConfig, dm: DigitDataModule, predictor, fit_info: dict, run_dir: Path) -> dict:
    """Evaluate on the protocol's test set and every configured set; write results.json."""
    test_name = PROTOCOL_TEST_SET[cfg.data.protocol]
    leaky = OVERLAPPING_SETS[cfg.data.protocol]
    if leaky & set(cfg.eval_sets):
        log.info("not scoring %s: it overlaps the %s training data", ", ".join(sorted(leaky)), cfg.data.protocol)
    set_names = [test_name] + [s for s in cfg.eval_sets if s != test_name and s not in leaky]
    summaries = evaluate_sets(
        predictor, set_names, run_dir, set_options=_set_options(cfg), galleries=cfg.galleries, skip_galleries_for=(test_name,)
    )
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
    write_atomic(run_dir / "results.json", json.dumps(results, indent=2, default=_json_default))
    print_summary(results)
    log.info("run directory: %s", run_dir)
    return results


def _set_options(cfg: DictConfig) -> dict:
    opts = {"data_dir": str(data_dir_from(cfg)), "preprocess": _plain(cfg.get("preprocess"))}
    per_set = _plain(cfg.get("eval_set_options"))
    return {"_common": opts, **per_set}


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# -- networks -----------------------------------------------------------------------------------


def fit_network(cfg: DictConfig, dm: DigitDataModule, run_dir: Path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, RichModelSummary, RichProgressBar
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from mnist_gen.callbacks import AtomicCheckpointIO, EpochCSV, read_epoch_csv
    from mnist_gen.models.lit import DigitClassifier
    from mnist_gen.models.predictors import NetworkPredictor

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm.prepare_arrays()
    model = DigitClassifier(**_network_hparams(cfg, dm))
    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_acc", mode="max", save_on_train_epoch_end=False),
        # A separate callback for last.ckpt: Lightning's save_last only writes when another
        # checkpoint was written in that step (here: only when val_acc improved), but resuming
        # needs the state of every epoch.
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=False,
                        enable_version_counter=False),
        EpochCSV(run_dir / "metrics.csv"),
    ]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks += [RichProgressBar(leave=True), RichModelSummary(max_depth=2)]
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        default_root_dir=str(run_dir),
        enable_model_summary=cfg.trainer.get("enable_progress_bar", True),
    )
    last = ckpt_dir / "last.ckpt"
    resume_from = str(last) if cfg.resume and last.is_file() else None
    if resume_from:
        log.info("resuming from %s", resume_from)
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=resume_from)
    except SIGTERMException:
        # Lightning stops at the next chunk but would exit 0; say so and exit 128+15 instead.
        msg = (f"training stopped by SIGTERM; rerun with hydra.run.dir={run_dir} to resume "
               f"from {last} (the interrupted epoch is replayed).")
        log.error("%s", msg)
        print(f"interrupted: {msg}", file=sys.stderr)
        raise SystemExit(143) from None

    rows = read_epoch_csv(run_dir / "metrics.csv")
    epoch_times = [float(r["epoch_time_s"]) for r in rows]
    net = model.net.cpu().eval()
    # model.ckpt: the final weights (Keras evaluates the model as it stands after the last epoch).
    save_plain_checkpoint(dict(model.hparams), net, run_dir / "model.ckpt")
    _export_and_plot(cfg, net, dm, run_dir)
    info = {
        "num_params": model.num_params,
        "epochs": trainer.current_epoch,  # completed epochs (resumed runs included)
        "train_time_s": round(sum(epoch_times), 3),
        "epoch_time_mean_s": round(float(np.mean(epoch_times)), 4) if epoch_times else None,
        "device": str(trainer.strategy.root_device),
    }
    return NetworkPredictor(net, dm.mean, dm.std, cfg.model.name), info


def _network_hparams(cfg: DictConfig, dm: DigitDataModule) -> dict:
    """Plain values only, so checkpoints load with torch.load(weights_only=True)."""
    return dict(
        name=cfg.model.name,
        arch=cfg.model.arch,
        arch_kwargs=OmegaConf.to_container(cfg.model.arch_kwargs, resolve=True),
        lr=cfg.model.optimizer.lr,
        momentum=cfg.model.optimizer.momentum,
        l2=cfg.model.l2,
        batch_size=cfg.data.batch_size,
        mean=dm.mean,
        std=dm.std,
        autocast_bf16=cfg.model.get("autocast_bf16", False),
        lr_schedule=cfg.model.optimizer.get("schedule", "constant"),
    )


def _export_and_plot(cfg: DictConfig, net, dm: DigitDataModule, run_dir: Path) -> None:
    from mnist_gen.export import export_program
    from mnist_gen.report import plot_curves

    if cfg.export:
        export_program(net, dm.mean, dm.std, run_dir / "model.pt2")
    if (run_dir / "metrics.csv").is_file():
        plot_curves(run_dir / "metrics.csv", run_dir)


def save_plain_checkpoint(hparams: dict, net, path: Path) -> None:
    """Weights + plain hyperparameters: loadable with torch.load(weights_only=True)."""
    state = {f"net.{k}": v.detach().cpu() for k, v in net.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"hyper_parameters": hparams, "state_dict": state}, tmp)
    tmp.replace(path)


# -- classical ----------------------------------------------------------------------------------


def fit_classical(cfg: DictConfig, dm: DigitDataModule, run_dir: Path):
    from mnist_gen.models.classical import build_classical

    split = dm.prepare_arrays()
    model = build_classical(OmegaConf.to_container(cfg.model, resolve=True))
    t0 = time.perf_counter()
    model.fit(split.x_train, split.y_train)
    fit_s = time.perf_counter() - t0
    model.save(run_dir / "model.skops")
    return model, {"num_params": model.num_params, "epochs": None, "train_time_s": round(fit_s, 3)}
