"""LightningModule for the study's networks, trained the Keras way.

Keras semantics kept here:
* loss = mean categorical cross-entropy over the batch (``from_logits`` equivalent);
* ``kernel_regularizer=l2(1e-5)`` adds ``1e-5 * Σw²`` for kernels only; its gradient is
  ``2e-5 * w``, i.e. SGD ``weight_decay=2 * l2`` on the kernel group and 0 on biases;
* ``SGD(learning_rate=3e-3)``: no momentum, no Nesterov, constant rate;
* the train loss/accuracy reported per epoch is the mean over that epoch's batches
  (Keras' running average, without the L2 term).

Optimisation is manual: one ``training_step`` receives a chunk of mini-batches from
``DigitDataModule`` and performs one SGD step per mini-batch. This keeps Lightning's
per-batch overhead out of the inner loop (for the MLPs it is larger than the model's own
cost) while checkpoints, callbacks and resumption keep working at chunk granularity.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from mnist_gen.models.networks import build_network, kernel_and_bias_params, num_params


def lr_at(epoch: int, base_lr: float, max_epochs: int, schedule: str = "constant") -> float:
    """Learning rate for an epoch. ``constant`` is the study (Keras SGD); ``cosine`` (per-epoch
    cosine decay to 0) is an opt-in departure used by ``experiment=robust``."""
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / max(1, max_epochs)))
    raise ValueError(f"unknown lr schedule '{schedule}'; valid: constant, cosine")


class DigitClassifier(L.LightningModule):
    def __init__(
        self,
        name: str,
        arch: str,
        arch_kwargs: dict,
        lr: float = 3e-3,
        momentum: float = 0.0,
        l2: float = 1e-5,
        batch_size: int = 32,
        mean: float = 0.1307,
        std: float = 0.3081,
        autocast_bf16: bool = False,
        lr_schedule: str = "constant",
    ):
        super().__init__()
        # Plain values only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.net = build_network(arch, **arch_kwargs)
        self._reset_epoch_sums()

    # -- model ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def num_params(self) -> int:
        return num_params(self.net)

    def configure_optimizers(self):
        kernels, biases = kernel_and_bias_params(self.net)
        return torch.optim.SGD(
            [
                {"params": kernels, "weight_decay": 2.0 * self.hparams.l2},  # d/dw of l2·Σw² = 2·l2·w
                {"params": biases, "weight_decay": 0.0},  # Keras regularises kernels only
            ],
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
        )

    # -- training -------------------------------------------------------------------------------
    def on_train_epoch_start(self):
        # Set from the epoch number alone, so a resumed run continues the same schedule.
        lr = lr_at(self.current_epoch, self.hparams.lr, self.trainer.max_epochs, self.hparams.lr_schedule)
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = lr

    def _reset_epoch_sums(self):
        self._sums = None  # tensor [loss_sum, correct, count], kept on device: no sync per step

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.hparams.autocast_bf16)

    def training_step(self, chunk, chunk_idx):
        x, y = chunk
        opt = self.optimizers()
        # Single process: step the raw optimizer and call backward directly (the
        # LightningOptimizer/manual_backward wrappers cost tens of µs per step, which is
        # a third of an MLP step). Under DDP the wrappers are needed for gradient sync.
        fast = self.trainer.world_size == 1
        raw_opt = opt.optimizer if fast else opt
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for xb, yb in zip(x.split(self.hparams.batch_size), y.split(self.hparams.batch_size), strict=True):
            with self._autocast():
                logits = self.net(xb)
            loss = F.cross_entropy(logits.float(), yb)
            raw_opt.zero_grad(set_to_none=True)
            if fast:
                loss.backward()
            else:
                self.manual_backward(loss)
            raw_opt.step()
            # In-place sums on the device: no host sync inside the loop.
            loss_sum.add_(loss.detach(), alpha=yb.numel())
            correct.add_((logits.detach().argmax(1) == yb).sum())
        if fast:
            # The raw optimizer bypasses Lightning's step counter; advance it so global_step
            # (checkpoint bookkeeping, max_steps, resumption) counts real SGD steps.
            self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.increment_by(
                len(range(0, len(y), self.hparams.batch_size)))
        sums = torch.stack([loss_sum, correct.to(loss_sum.dtype), torch.tensor(float(y.numel()), device=x.device)])
        self._sums = sums if self._sums is None else self._sums + sums

    def train_epoch_metrics(self) -> dict[str, float]:
        """Mean train loss/accuracy over this epoch's batches so far (summed over DDP ranks)."""
        if self._sums is None:
            return {}
        s = self._sums
        if self.trainer.world_size > 1:
            s = self.all_gather(s).reshape(-1, 3).sum(0)
        return {"train_loss": float(s[0] / s[2]), "train_acc": float(s[1] / s[2])}

    def on_train_epoch_end(self):
        # Runs after the callbacks' on_train_epoch_end (EpochCSV reads train_epoch_metrics first).
        for key, value in self.train_epoch_metrics().items():
            self.log(key, value, on_epoch=True)
        self._reset_epoch_sums()

    # -- validation -----------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        x, y = batch
        with self._autocast():
            logits = self.net(x)
        loss = F.cross_entropy(logits.float(), y)
        n = y.numel()
        self.log("val_loss", loss, on_epoch=True, batch_size=n, sync_dist=True, prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, batch_size=n, sync_dist=True, prog_bar=True)
