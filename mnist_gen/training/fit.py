"""Fit one config: networks through the one Lightning ``Trainer`` (one seed, or N seeds stacked),
KNN/SVM through scikit-learn. Writes what fitting produces into the run directory::

    metrics.csv                    per-epoch train/val loss + accuracy, epoch wall time (networks)
    checkpoints/{best,last}.ckpt   Lightning checkpoints (resume from last)
    model.skops                    KNN / SVM

Exports, evaluation and ``results.json`` come after (``mnist_gen/cli/train.py``).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mnist_gen import paths
from mnist_gen.data.augment import is_identity
from mnist_gen.data.datamodule import DigitDataModule
from mnist_gen.errors import UserError
from mnist_gen.io import remove_stale_temps, save_torch
from mnist_gen.training.callbacks import AtomicCheckpointIO, EpochCSV, EpochLog, read_epoch_csv
from mnist_gen.training.checks import check_finite_training, check_resume_checkpoint

log = logging.getLogger(__name__)


def plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def data_dir_from(cfg: DictConfig) -> Path:
    return Path(cfg.paths.data_dir) if cfg.paths.get("data_dir") else paths.data_dir()


def build_datamodule(cfg: DictConfig, seeds: list[int] | None = None) -> DigitDataModule:
    augment = plain(cfg.get("augment")) or None
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
        seeds=seeds,
        augment=augment,
    )


def network_hparams(cfg: DictConfig, mean: float, std: float) -> dict:
    """Plain values only, so checkpoints load with torch.load(weights_only=True)."""
    return dict(
        name=cfg.model.name,
        arch=cfg.model.arch,
        arch_kwargs=OmegaConf.to_container(cfg.model.arch_kwargs, resolve=True),
        lr=cfg.model.optimizer.lr,
        momentum=cfg.model.optimizer.momentum,
        l2=cfg.model.l2,
        batch_size=cfg.data.batch_size,
        mean=mean,
        std=std,
        autocast_bf16=cfg.model.get("autocast_bf16", False),
        lr_schedule=cfg.model.optimizer.get("schedule", "constant"),
    )


def save_plain_checkpoint(hparams: dict, net, path: Path) -> Path:
    """``model.ckpt``: weights + plain hyperparameters, loadable with torch.load(weights_only=True)."""
    state = {f"net.{k}": v.detach().cpu() for k, v in net.state_dict().items()}
    return save_torch({"hyper_parameters": hparams, "state_dict": state}, path)


def _fit(cfg: DictConfig, model, dm: DigitDataModule, ckpt_dir: Path, csv: EpochCSV):
    """Run ``trainer.fit`` with the project's callbacks; resume from ``ckpt_dir/last.ckpt``."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, RichModelSummary, RichProgressBar
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_acc", mode="max", save_on_train_epoch_end=False),
        # A separate callback for last.ckpt: Lightning's save_last only writes when another
        # checkpoint was written in that step (here: only when val_acc improved), but resuming
        # needs the state of every epoch.
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=False,
                        enable_version_counter=False),
        csv,
        EpochLog(),
    ]
    bar = cfg.trainer.get("enable_progress_bar", True)
    if bar:
        callbacks += [RichProgressBar(leave=True), RichModelSummary(max_depth=2)]
    trainer = L.Trainer(**plain(cfg.trainer), callbacks=callbacks, plugins=[AtomicCheckpointIO()], logger=False,
                        default_root_dir=str(ckpt_dir.parent), enable_model_summary=bar)
    last = ckpt_dir / "last.ckpt"
    for folder in (ckpt_dir, ckpt_dir.parent):  # temps of a run killed (SIGKILL) mid-write
        for tmp in remove_stale_temps(folder):
            log.info("removed %s, left by a killed run", tmp.name)
    resume_from = str(last) if cfg.resume and last.is_file() else None
    if resume_from:
        check_resume_checkpoint(last, model)  # a corrupt or foreign last.ckpt: one sentence, not a traceback
        log.info("resuming from %s", resume_from)
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=resume_from)
    except SIGTERMException:
        # Lightning stops at the next chunk but would exit 0; say so and exit 128+15 instead.
        msg = (f"training stopped by SIGTERM; rerun with hydra.run.dir={ckpt_dir.parent} to resume "
               f"from {last} (the interrupted epoch is replayed).")
        log.error("%s", msg)
        print(f"interrupted: {msg}", file=sys.stderr)
        raise SystemExit(143) from None
    except OSError as e:
        # The arrays are in memory: what fails here is writing a checkpoint or metrics.csv
        # (a read-only or replaced checkpoints folder, a full disk). Completed epochs are kept.
        raise UserError(f"Training stopped: writing {e.filename or ckpt_dir} failed ({e.strerror or e}); make "
                        f"{ckpt_dir} a writable folder with free space, then rerun with "
                        f"hydra.run.dir={ckpt_dir.parent} to resume from {last}.") from None
    check_finite_training(model, trainer, ckpt_dir.parent)  # a diverged (NaN) run writes no model
    return trainer


def _fit_info(csv_path: Path, num_params: int, trainer, vectorized: int = 1) -> dict:
    times = [float(r["epoch_time_s"]) for r in read_epoch_csv(csv_path)]
    return {
        "num_params": num_params,
        "epochs": trainer.current_epoch,  # completed epochs (resumed runs included)
        "train_time_s": round(sum(times), 3),
        "epoch_time_mean_s": round(float(np.mean(times)), 4) if times else None,
        "device": str(trainer.strategy.root_device),
        "vectorized_seeds": vectorized,
    }


def fit_network(cfg: DictConfig, dm: DigitDataModule, run_dir: Path):
    """One seed -> (trained network on CPU, fit info)."""
    import lightning as L

    from mnist_gen.models.lit import DigitClassifier

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm.prepare_arrays()
    model = DigitClassifier(**network_hparams(cfg, dm.mean, dm.std))
    trainer = _fit(cfg, model, dm, run_dir / "checkpoints", EpochCSV({None: run_dir / "metrics.csv"}))
    return model.net.cpu().eval(), _fit_info(run_dir / "metrics.csv", model.num_params, trainer)


def check_stackable(cfg: DictConfig) -> None:
    """Stacked seeds run in one process, in float32; anything else is refused in one sentence."""
    t = cfg.trainer
    if str(t.get("strategy", "auto")) not in ("auto", "single_device") or (
            isinstance(t.get("devices"), int) and t.devices > 1):
        raise UserError(f"Stacked seeds train in one process; trainer.strategy={t.get('strategy')} with "
                        f"devices={t.get('devices')} cannot stack them. Use multiseed.vectorize=never "
                        "(each seed then trains with that strategy) or one device.")
    if str(t.get("precision", "32-true")) not in ("32", "32-true") or cfg.model.get("autocast_bf16", False):
        raise UserError("Stacked seeds train in float32 only; use multiseed.vectorize=never for "
                        "trainer.precision / model.autocast_bf16 other than float32.")


def fit_stacked(cfg: DictConfig, dm: DigitDataModule, seeds: list[int], parent: Path) -> dict[int, tuple]:
    """N seeds in one ``StackedClassifier`` -> {seed: (member network on CPU, fit info)}.

    One Lightning run for all members: its checkpoints are ``<parent>/checkpoints/``, each
    member's metrics go to ``<parent>/seed<k>/metrics.csv``.
    """
    from mnist_gen.models.lit import StackedClassifier

    check_stackable(cfg)
    dm.prepare_arrays()
    model = StackedClassifier(**network_hparams(cfg, dm.mean, dm.std), seeds=seeds)
    csv_paths = {s: parent / f"seed{s}" / "metrics.csv" for s in seeds}
    trainer = _fit(cfg, model, dm, parent / "checkpoints", EpochCSV(csv_paths))
    return {s: (model.member(k).cpu(), _fit_info(csv_paths[s], model.num_params, trainer, len(seeds)))
            for k, s in enumerate(seeds)}


def fit_classical(cfg: DictConfig, dm: DigitDataModule, run_dir: Path):
    from mnist_gen.models.classical import build_classical

    split = dm.prepare_arrays()
    model = build_classical(OmegaConf.to_container(cfg.model, resolve=True))
    t0 = time.perf_counter()
    model.fit(split.x_train, split.y_train)
    fit_s = time.perf_counter() - t0
    model.save(run_dir / "model.skops")
    return model, {"num_params": model.num_params, "epochs": None, "train_time_s": round(fit_s, 3)}


def vectorize(cfg: DictConfig) -> bool:
    """Whether ``seeds=[...]`` stack into one module. auto: MLPs always, CNNs on a GPU, and never
    across processes. MLPs are overhead-bound, so N seeds in one batched step are nearly free;
    CNNs are arithmetic-bound on CPU, where stacking them is no faster than one seed after
    another (README, speed section), while a GPU has room for all of them at once."""
    mode = cfg.get("multiseed", {}).get("vectorize", "auto")
    if mode not in ("auto", "always", "never"):
        raise UserError(f"multiseed.vectorize must be auto, always or never, got {mode!r}.")
    if mode == "never":
        return False
    if mode == "always":
        return True
    t = cfg.trainer
    multi = str(t.get("strategy", "auto")) not in ("auto", "single_device") or (
        isinstance(t.get("devices"), int) and t.devices > 1)
    if multi or str(t.get("precision", "32-true")) not in ("32", "32-true") or cfg.model.get("autocast_bf16", False):
        return False
    return cfg.model.arch == "mlp" or str(t.accelerator) in ("gpu", "cuda")


def set_threads(cfg: DictConfig) -> None:
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
