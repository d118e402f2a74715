"""Checks that turn a bad value into one clear sentence (a ``UserError``) instead of a traceback.

* ``check_train_config``: every value ``train.py`` reads, before any data is loaded or any
  work starts (types, ranges, finiteness, the Lightning trainer settings, output folders);
* ``check_writable_dir``: a folder that can be created and written (called by the Hydra
  callback before Hydra creates ``hydra.run.dir`` itself);
* ``check_resume_checkpoint`` / ``check_finite_training``: the resumed ``last.ckpt`` and the
  trained weights, inside ``training/fit.py``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import typing
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from mnist_gen.errors import UserError
from mnist_gen.paths import check_output_path


def _value(cfg: DictConfig, key: str):
    """The value at a dotted key; None when the key is absent (a check then says 'got None')."""
    return OmegaConf.select(cfg, key, default=None)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite int or float (Hydra parses ``nan``/``inf`` into floats and ``abc`` into a string)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = _value(cfg, key)
    if value is None and allow_none:
        return
    if not _is_int(value) or value < 1:
        raise UserError(f"{key} must be a positive integer, got {value!r}.")


def _number(cfg: DictConfig, key: str, low: float, high: float | None = None, low_open: bool = False,
            high_open: bool = False, what: str = "") -> float:
    value = _value(cfg, key)
    ok = _is_number(value) and (value > low if low_open else value >= low) and (
        high is None or (value < high if high_open else value <= high))
    if not ok:
        if not what:
            what = f"a number {'>' if low_open else '≥'} {low:g}" if high is None else (
                f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")
        raise UserError(f"{key} must be {what}, got {value!r}.")
    return float(value)


def _boolean(cfg: DictConfig, key: str) -> None:
    value = _value(cfg, key)
    if value is not None and not isinstance(value, bool):  # absent: the code's default applies
        raise UserError(f"{key} must be true or false, got {value!r}.")


def check_train_config(cfg: DictConfig) -> None:
    """Everything train.py reads from its config, before any work starts (see the module docstring)."""
    _positive_int(cfg, "trainer.max_epochs")
    _positive_int(cfg, "data.batch_size")
    _positive_int(cfg, "data.eval_batch_size")
    _positive_int(cfg, "data.steps_per_call")
    _positive_int(cfg, "data.max_train_samples", allow_none=True)
    if not _is_int(cfg.seed) or cfg.seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {cfg.seed!r}.")
    seeds = cfg.get("seeds")
    if seeds is not None and (not isinstance(seeds, ListConfig | list) or not seeds
                              or not all(_is_int(s) and s >= 0 for s in seeds)):
        raise UserError(f"seeds must be null or a list of non-negative integers, e.g. seeds=[0,1,2]; got {seeds!r}.")
    threads = cfg.get("threads")
    if threads is not None and (not _is_int(threads) or threads < 1):
        raise UserError(f"threads must be null (torch's default) or a positive integer, got {threads!r}.")
    for key in ("resume", "export", "galleries", "model.autocast_bf16", "trainer.enable_progress_bar"):
        _boolean(cfg, key)
    _check_protocol(cfg.data.protocol)
    if cfg.model.kind == "network":
        check_network_hparams(cfg)
        check_trainer(cfg)
    else:
        check_accelerator(str(cfg.trainer.accelerator))
    check_eval_sets(cfg.eval_sets)
    check_output_dirs(cfg)


def _check_protocol(protocol) -> None:
    from mnist_gen.data.datamodule import SPLITS

    if protocol not in SPLITS:
        raise UserError(f"data.protocol must be one of {', '.join(SPLITS)}, got {protocol!r}.")


def check_network_hparams(cfg: DictConfig) -> None:
    """Optimiser values and the architecture, so a typo never trains (nan lr) or fails after data loading."""
    from mnist_gen.models.lit import lr_at
    from mnist_gen.models.networks import BUILDERS, build_network

    _number(cfg, "model.optimizer.lr", 0, low_open=True, what="a positive number")
    _number(cfg, "model.optimizer.momentum", 0, 1, high_open=True)  # 1 and above never converge
    _number(cfg, "model.l2", 0)
    schedule = cfg.model.optimizer.get("schedule", "constant")
    try:
        lr_at(0, 1.0, 1, schedule)  # the schedules lit.py knows, from the one place that defines them
    except (ValueError, TypeError):
        raise UserError(f"model.optimizer.schedule must be constant or cosine, got {schedule!r}.") from None
    arch, kwargs = cfg.model.arch, cfg.model.get("arch_kwargs")
    if arch not in BUILDERS:
        raise UserError(f"model.arch must be one of {', '.join(BUILDERS)}, got {arch!r}.")
    if not isinstance(kwargs, DictConfig | dict):
        raise UserError(f"model.arch_kwargs must be a mapping (see configs/model/), got {kwargs!r}.")
    try:
        with torch.device("meta"):  # shapes only: no memory, however large the layers asked for
            build_network(arch, **OmegaConf.to_container(kwargs, resolve=True))
    except Exception as e:  # noqa: BLE001 - any failure to build the network is a bad arch_kwargs value
        raise UserError(f"model.arch_kwargs {OmegaConf.to_container(kwargs)} do not build a {arch} network "
                        f"({type(e).__name__}: {_first_sentence(e)}); see configs/model/ for the valid keys.") from None


# -- the Lightning trainer -----------------------------------------------------------------------------


def _precisions() -> list[str]:
    """Lightning's own list of precision values (its ``_PRECISION_INPUT`` type), as strings."""
    try:
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # moved in another Lightning version: the dry run in check_trainer still checks it
        return []

    def flat(t) -> list:
        args = typing.get_args(t)
        return [x for a in args for x in flat(a)] if args else [t]

    return list(dict.fromkeys(str(p) for p in flat(_PRECISION_INPUT)))


def check_trainer(cfg: DictConfig) -> None:
    """The trainer settings Lightning would refuse only once training starts, each in one sentence;
    then a dry ``Trainer(**cfg.trainer)`` catches any combination Lightning refuses."""
    from lightning.pytorch.strategies import StrategyRegistry

    t = cfg.trainer
    check_accelerator(str(t.accelerator))
    devices = t.get("devices", "auto")
    if not (devices == "auto" or (_is_int(devices) and (devices >= 1 or devices == -1))
            or (isinstance(devices, str) and re.fullmatch(r"-1|\d+|\d+(,\d+)*,?", devices.strip()) and devices.strip() != "0")
            or (isinstance(devices, ListConfig | list) and devices and all(_is_int(d) and d >= 0 for d in devices))):
        raise UserError(f"trainer.devices must be a positive number of devices, -1 (all), auto or a list of "
                        f"device ids, got {devices!r}.")
    strategy = t.get("strategy", "auto")
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if strategy not in strategies:
        common = [s for s in strategies if "find_unused" not in s and "stage" not in s and "xla" not in s]
        raise UserError(f"trainer.strategy must be one of {', '.join(common)}, got {strategy!r}.")
    precision, valid = str(t.get("precision", "32-true")), _precisions()
    if valid and precision not in valid:
        common = [v for v in valid if not v.isdigit() and not v.startswith("transformer-engine")]
        raise UserError(f"trainer.precision must be one of {', '.join(common)}, got {precision!r}.")
    _dry_trainer(cfg)


def _dry_trainer(cfg: DictConfig) -> None:
    """Construct (never fit) the Trainer ``_fit`` will build: Lightning validates the combination."""
    import warnings

    import lightning as L

    kwargs = {**OmegaConf.to_container(cfg.trainer, resolve=True), "logger": False, "enable_checkpointing": False,
              "enable_progress_bar": False, "enable_model_summary": False}
    quiet = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:  # the real Trainer prints the device lines; this one stays silent
            q.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            L.Trainer(**kwargs)
    except Exception as e:  # noqa: BLE001 - Lightning's refusal of a setting, said in one sentence
        shown = ", ".join(f"{k}={cfg.trainer.get(k)}" for k in ("accelerator", "devices", "strategy", "precision"))
        raise UserError(f"Lightning refuses the trainer settings ({shown}): {_first_sentence(e)}; "
                        "see configs/trainer/ for working ones.") from None
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def check_accelerator(accelerator: str) -> None:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    names = sorted({"auto", "gpu", *AcceleratorRegistry.available_accelerators()})
    if accelerator not in names:
        raise UserError(f"trainer.accelerator must be one of {', '.join(names)}, got {accelerator!r}.")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} was requested but this machine has no usable CUDA GPU; "
            "run with trainer.accelerator=cpu (or auto)."
        )
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        try:
            available = AcceleratorRegistry[accelerator]["accelerator"].is_available()
        except Exception:  # noqa: BLE001 - e.g. tpu without torch_xla: not available
            available = False
        if not available:
            raise UserError(f"trainer.accelerator={accelerator} is not available on this machine; "
                            "run with trainer.accelerator=cpu (or auto).")


def _first_sentence(e: BaseException) -> str:
    """The first sentence of an exception's message, on one line and without its full stop (library
    messages run to paragraphs; ours go inside a sentence)."""
    text = " ".join(str(e).split()) or type(e).__name__
    m = re.match(r"(.+?)[.!?](\s|$)", text)
    return (m.group(1) if m else text).rstrip(".")


# -- paths ---------------------------------------------------------------------------------------------


def check_eval_sets(names) -> list[str]:
    """The set names, patterns expanded; unknown ones fail before training, not as a warning after it."""
    from mnist_gen.evalsets import expand_set_names

    if names is None or isinstance(names, str) or not hasattr(names, "__iter__"):
        raise UserError(f"eval_sets must be a list of set names, e.g. eval_sets=[mnist_test,usps]; got {names!r}.")
    return expand_set_names(names)


def check_output_dirs(cfg: DictConfig, keys=("paths.output_dir", "out_dir")) -> None:
    """No output directory from config may climb out of its starting folder with '..' (see safe_paths)."""
    from hydra.core.hydra_config import HydraConfig

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


def check_writable_dir(raw: str | os.PathLike, key: str) -> Path:
    """``raw`` as a folder that exists or can be created, and can be written; else one sentence.

    Nothing is created: the nearest existing ancestor must be a folder this process may write in
    (a path under a regular file fails for root too; read-only folders only for other users).
    """
    path = check_output_path(raw, key)
    probe = Path(path).expanduser().absolute()
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        what = "a link to nothing" if probe.is_symlink() and not probe.exists() else "a file"
        raise UserError(f"{key}={raw} cannot be created: {probe} is {what}, not a folder; "
                        "give a folder you can write to.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{key}={raw} cannot be written: {probe} is read-only for this user; "
                        "give a folder you can write to.")
    return path


# -- inside the fit ------------------------------------------------------------------------------------


def _move_aside(path: Path) -> str:
    return f"move it aside (mv {path} {path}.bad) or rerun with resume=false to train from the start"


def check_resume_checkpoint(path: Path, model) -> None:
    """``last.ckpt`` can be resumed into ``model``; else one sentence naming the file and the way out.

    Read like Lightning will read it (``AtomicCheckpointIO``: weights only), before ``trainer.fit``,
    so a truncated, foreign or malicious file is told apart from a failure of training itself.
    """
    import pickle

    from mnist_gen.training.callbacks import AtomicCheckpointIO

    try:
        ckpt = AtomicCheckpointIO().load_checkpoint(path, map_location="cpu")
    except pickle.UnpicklingError:
        raise UserError(f"Cannot resume from {path}: it holds objects other than tensors and plain values, which "
                        "are refused because loading them could allow arbitrary code execution; "
                        f"{_move_aside(path)}.") from None
    except Exception as e:  # noqa: BLE001 - truncated or not a checkpoint at all: the user's file
        raise UserError(f"Cannot resume from {path}: it is not a readable checkpoint ({type(e).__name__}: "
                        f"{_first_sentence(e)}); {_move_aside(path)}.") from None
    needed = ("state_dict", "optimizer_states", "loops", "epoch")
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in needed) or not isinstance(ckpt["state_dict"], dict):
        raise UserError(f"Cannot resume from {path}: it is not a Lightning training checkpoint (it lacks "
                        f"{', '.join(needed)}); {_move_aside(path)}.")
    expected, got = model.state_dict(), ckpt["state_dict"]
    if set(got) != set(expected) or any(getattr(got[k], "shape", None) != v.shape for k, v in expected.items()):
        raise UserError(f"Cannot resume from {path}: it holds the weights of a different network than "
                        f"model={model.hparams.name} {dict(model.hparams.arch_kwargs)}; use another hydra.run.dir, "
                        f"or {_move_aside(path)}.")


def check_finite_training(model, trainer, run_dir: Path) -> None:
    """A run whose loss or weights became NaN/inf ends with one sentence, and no model is written from it.

    Read after ``trainer.fit`` from what the LightningModules log per epoch (``train_loss``,
    ``val_loss``, per member ``.../<seed>``) and from the weights themselves.
    """
    losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k.split("/")[0] in ("train_loss", "val_loss")}
    bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
    if bad or not all(torch.isfinite(p).all() for p in model.parameters()):
        what = f"{', '.join(bad)} became NaN or infinite" if bad else "the weights became NaN or infinite"
        raise UserError(f"Training diverged ({what} after {trainer.current_epoch} epoch(s), with "
                        f"model.optimizer.lr={model.hparams.lr}), so no model was written; lower model.optimizer.lr "
                        f"and rerun with resume=false (checkpoints in {run_dir / 'checkpoints'} hold the diverged "
                        "weights).")
