"""Hydra callback of train.py: output folders checked before Hydra creates them, and every
``--multirun`` aggregated into the study's table."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def _check_dir(config: DictConfig, key: str) -> None:
    """Exit 2 with one sentence when ``key`` names a folder that cannot be created or written.

    Runs in ``on_run_start`` / ``on_multirun_start``, i.e. before Hydra makes the folder itself,
    which would otherwise fail with Hydra's own traceback. Hydra turns exceptions of callbacks
    into warnings, so the sentence is printed and the process exits here.
    """
    from mnist_gen.errors import UserError
    from mnist_gen.training.checks import check_writable_dir

    try:
        raw = OmegaConf.select(config, key)
    except Exception:  # noqa: BLE001 - an interpolation Hydra will report in its own words
        return
    if raw is None:
        return
    try:
        check_writable_dir(str(raw), key)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


class CheckOutputDirs(Callback):
    """Before a run (or a multirun): its output folder can be created and written, else exit 2."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check_dir(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check_dir(config, "hydra.sweep.dir")


class AggregateOnMultirunEnd(CheckOutputDirs):
    """train.py's callback: the output folder checks, and after the last job of a multirun,
    ``<sweep dir>/study_table.{md,csv,json}`` and the table printed; runs whose results.json is
    missing or malformed are skipped with a warning naming them (``aggregate.load_runs``)."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from mnist_gen.console import console
        from mnist_gen.errors import UserError
        from mnist_gen.evaluation import aggregate

        sweep_dir = Path(config.hydra.sweep.dir)
        runs = aggregate.load_runs(sweep_dir)
        if not runs:
            log.warning("no complete results.json under %s; nothing to aggregate", sweep_dir)
            return
        rows = aggregate.aggregate(runs)
        try:
            files = aggregate.write_outputs(rows, sweep_dir)
        except UserError as e:  # the jobs' results stay; only the summary table could not be written
            log.warning("%s The table is printed below only.", e)
            files = {}
        console.print(aggregate.to_rich(rows))
        if files:
            console.print("written: " + ", ".join(str(p) for p in files.values()), markup=False)
