"""Config checks that turn a bad value into one clear sentence before any work starts."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from mnist_gen.errors import UserError
from mnist_gen.paths import check_output_path


def _positive_int(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    node, *rest = key.split(".")
    value = cfg[node]
    for part in rest:
        value = value[part]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key} must be a positive integer, got {value!r}.")


def check_train_config(cfg: DictConfig) -> None:
    _positive_int(cfg, "trainer.max_epochs")
    _positive_int(cfg, "data.batch_size")
    _positive_int(cfg, "data.eval_batch_size")
    _positive_int(cfg, "data.steps_per_call")
    _positive_int(cfg, "data.max_train_samples", allow_none=True)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {cfg.seed!r}.")
    if cfg.model.kind == "network":
        lr = cfg.model.optimizer.lr
        if not isinstance(lr, (int, float)) or lr <= 0:
            raise UserError(f"model.optimizer.lr must be a positive number, got {lr!r}.")
    check_accelerator(str(cfg.trainer.accelerator))
    check_eval_sets(cfg.eval_sets)
    check_output_dirs(cfg)


def check_eval_sets(names) -> list[str]:
    """The set names, patterns expanded; unknown ones fail before training, not as a warning after it."""
    from mnist_gen.evalsets import expand_set_names

    if names is None or isinstance(names, str) or not hasattr(names, "__iter__"):
        raise UserError(f"eval_sets must be a list of set names, e.g. eval_sets=[mnist_test,usps]; got {names!r}.")
    return expand_set_names(names)


def check_output_dirs(cfg: DictConfig, keys=("paths.output_dir", "out_dir")) -> None:
    """No output directory from config may climb out of its starting folder with '..' (see safe_paths)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if HydraConfig.initialized():
        hc = HydraConfig.get()
        check_output_path(hc.run.dir, "hydra.run.dir")
        if hc.mode is not None and hc.mode.name == "MULTIRUN":
            check_output_path(hc.sweep.dir, "hydra.sweep.dir")
            check_output_path(hc.sweep.subdir, "hydra.sweep.subdir")
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            check_output_path(str(value), key)


def check_accelerator(accelerator: str) -> None:
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} was requested but this machine has no usable CUDA GPU; "
            "run with trainer.accelerator=cpu (or auto)."
        )
