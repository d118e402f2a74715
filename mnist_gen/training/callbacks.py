"""Lightning callbacks: the per-epoch CSV the study's curves are drawn from, a line per epoch,
and atomic, weights-only checkpoint I/O."""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mnist_gen.io import write_atomic

log = logging.getLogger("train")

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s", "val_time_s"]
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


class EpochCSV(L.Callback):
    """One row per epoch: train/val loss and accuracy, training and validation wall time.

    ``paths`` maps a member to its CSV: ``{None: path}`` for one seed, ``{seed: path}`` for
    stacked seeds, whose metrics are logged as ``<metric>/<seed>``. Rewritten atomically each
    epoch; on resume the rows of completed epochs are kept. ``epoch_time_s`` counts the
    training steps only (validation is ``val_time_s``); with stacked seeds, each member's
    share of the shared step (its wall time / N).
    """

    def __init__(self, paths: dict):
        self.paths = {k: Path(p) for k, p in paths.items()}
        self.rows: dict = {k: [] for k in self.paths}
        self._t0 = self._t_val = None

    def on_train_start(self, trainer, pl_module):
        # Runs after a checkpoint is restored (on_fit_start runs before). last.ckpt is written
        # after validation and this epoch's row, before Lightning counts the epoch as completed,
        # so on resume current_epoch is the checkpoint's epoch and its row is in the file (a later
        # epoch's row, written before a kill that came before its checkpoint, is dropped); an
        # epoch that starts again replaces its row.
        self.rows = {k: [r for r in read_epoch_csv(p) if int(r["epoch"]) <= trainer.current_epoch]
                     for k, p in self.paths.items()}
        self._t0 = self._t_val = None

    def on_train_epoch_start(self, trainer, pl_module):
        self.rows = {k: [r for r in rows if int(r["epoch"]) < trainer.current_epoch] for k, rows in self.rows.items()}
        self._t0 = time.perf_counter()
        self._t_val = None

    def on_validation_epoch_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._t_val = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        # The row is written before last.ckpt (Lightning runs checkpoint callbacks last): a run
        # killed once the checkpoint is on disk has the row too, and its resumed run, which does
        # not train that epoch again, keeps it (written at the epoch's end, CI once lost it).
        if not trainer.sanity_checking:
            self._write_row(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._write_row(trainer, pl_module)  # an epoch without validation

    def _write_row(self, trainer, pl_module):
        if self._t0 is None:  # written already, or epoch-end hooks re-run after a resume: row kept
            return
        train = pl_module.train_epoch_metrics() if hasattr(pl_module, "train_epoch_metrics") else {}
        t0, self._t0 = self._t0, None
        if trainer.global_rank != 0:
            return
        now = time.perf_counter()
        t_val = self._t_val if self._t_val is not None else now
        m = trainer.callback_metrics
        n = len(self.paths)
        for member, rows in self.rows.items():
            row = {"epoch": trainer.current_epoch, "epoch_time_s": round((t_val - t0) / n, 4),
                   "val_time_s": round((now - t_val) / n, 4)}
            for key in METRICS:
                name = key if member is None else f"{key}/{member}"
                row[key] = train[name] if name in train else (float(m[name]) if name in m else "")
            rows.append(row)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
            write_atomic(self.paths[member], buf.getvalue())


class EpochLog(L.Callback):
    """One log line per finished epoch, so a run without a progress bar is never silent."""

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0 = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.global_rank != 0 or not hasattr(self, "_t0"):
            return
        m = trainer.callback_metrics
        parts = [f"{k} {float(m[k]):.4f}" for k in ("val_loss", "val_acc") if k in m]
        log.info("epoch %d/%d  %s  (%.1f s)", trainer.current_epoch + 1, trainer.max_epochs, "  ".join(parts),
                 time.perf_counter() - self._t0)


def read_epoch_csv(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written as temp file + rename in the checkpoint's own folder, read weights-only.

    Lightning's own save stages the file in the system temp dir and ``shutil.move``s it, which
    is a copy (not atomic) when that dir is on another filesystem. Loading forces
    ``weights_only=True``: a resumed ``last.ckpt`` comes from a user-given run directory.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        import torch

        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        write_atomic(path, buf.getbuffer())

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)
