"""Hydra callback: aggregate a finished multirun into the study's table."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class AggregateOnMultirunEnd(Callback):
    """After the last job, write ``<sweep dir>/study_table.{md,csv,json}`` and print the table."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from mnist_gen.console import console
        from mnist_gen.evaluation import aggregate

        sweep_dir = Path(config.hydra.sweep.dir)
        runs = aggregate.load_runs(sweep_dir)
        if not runs:
            log.warning("no complete results.json under %s; nothing to aggregate", sweep_dir)
            return
        rows = aggregate.aggregate(runs)
        files = aggregate.write_outputs(rows, sweep_dir)
        console.print(aggregate.to_rich(rows))
        console.print("written: " + ", ".join(str(p) for p in files.values()))
