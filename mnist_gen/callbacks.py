"""Lightning callbacks: the per-epoch CSV the study's curves are drawn from."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import lightning as L

from mnist_gen.report import write_atomic

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s", "val_time_s"]


class EpochCSV(L.Callback):
    """One row per epoch: train/val loss and accuracy, training and validation wall time.

    Rewritten atomically each epoch; on resume the rows of completed epochs are kept.
    ``epoch_time_s`` counts the training steps only (validation is ``val_time_s``).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_fit_start(self, trainer, pl_module):
        self.rows = [r for r in read_epoch_csv(self.path) if int(r["epoch"]) < trainer.current_epoch]

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0 = time.perf_counter()
        self._t_val = None

    def on_validation_epoch_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._t_val = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        train = pl_module.train_epoch_metrics() if hasattr(pl_module, "train_epoch_metrics") else {}
        if trainer.global_rank != 0:
            return
        now = time.perf_counter()
        t_val = self._t_val if self._t_val is not None else now
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "epoch_time_s": round(t_val - self._t0, 4), "val_time_s": round(now - t_val, 4)}
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            row[key] = train[key] if key in train else (float(m[key]) if key in m else "")
        self.rows.append(row)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.path, buf.getvalue())


def read_epoch_csv(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
