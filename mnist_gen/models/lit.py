"""LightningModules for the study's networks, trained the Keras way: one seed, or N seeds stacked.

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
cost) while checkpoints, callbacks and resumption keep working at chunk granularity. In one
process the mini-batches step the optimizer directly and the chunk's last one steps through
Lightning's optimizer wrapper (public API), which counts it: ``global_step`` counts chunks.
Under DDP every step goes through the wrapper, which synchronises gradients.

``DigitClassifier`` trains one seed (any strategy, precision, device). ``StackedClassifier``
trains N seeds of one network in one step (``models/stacked.py``), each member exactly one
ordinary run; it runs in one process and in float32, and refuses anything else.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from mnist_gen.errors import UserError
from mnist_gen.models.networks import build_network, kernel_and_bias_params, num_params
from mnist_gen.models.stacked import StackedSGD, member_network, member_networks, stack_members


def lr_at(epoch: int, base_lr: float, max_epochs: int, schedule: str = "constant") -> float:
    """Learning rate for an epoch. ``constant`` is the study (Keras SGD); ``cosine`` (per-epoch
    cosine decay to 0) is an opt-in departure used by ``experiment=robust``."""
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / max(1, max_epochs)))
    raise ValueError(f"unknown lr schedule '{schedule}'; valid: constant, cosine")


class _KerasLoop(L.LightningModule):
    """What both modules share: the per-epoch learning rate, running sums, the chunked step."""

    def on_train_epoch_start(self):
        # Set from the epoch number alone, so a resumed run continues the same schedule.
        lr = lr_at(self.current_epoch, self.hparams.lr, self.trainer.max_epochs, self.hparams.lr_schedule)
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = lr

    def _reset_epoch_sums(self):
        self._sums = None  # [loss_sum, correct, count] per member, kept on the device: no sync per step

    def _add_sums(self, loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        sums = torch.stack([loss_sum, correct.to(loss_sum.dtype), torch.full_like(loss_sum, float(count))])
        self._sums = sums if self._sums is None else self._sums + sums

    def _steppers(self, n_batches: int):
        """The optimizer to step for each mini-batch of a chunk (see the module docstring)."""
        opt = self.optimizers()
        if self.trainer.world_size > 1:
            return [opt] * n_batches
        return [opt.optimizer] * (n_batches - 1) + [opt]

    def _epoch_means(self) -> torch.Tensor | None:
        """(3, K) [loss, acc, count] summed over DDP ranks, or None before the first step."""
        if self._sums is None:
            return None
        s = self._sums
        if self.trainer.world_size > 1:
            s = self.all_gather(s).reshape(-1, *s.shape).sum(0)
        return s

    def on_train_epoch_end(self):
        # Runs after the callbacks' on_train_epoch_end (EpochCSV reads the epoch's metrics first).
        metrics = self.train_epoch_metrics()
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            # A diverged run would train every remaining epoch on NaN and save a NaN model.
            raise UserError(f"Training diverged in epoch {self.current_epoch + 1}: {', '.join(bad)} is not finite; "
                            f"lower model.optimizer.lr (now {self.hparams.lr}).")
        for key, value in metrics.items():
            self.log(key, value, on_epoch=True)
        self._reset_epoch_sums()


class DigitClassifier(_KerasLoop):
    """One network, one seed."""

    def __init__(self, name: str, arch: str, arch_kwargs: dict, lr: float = 3e-3, momentum: float = 0.0,
                 l2: float = 1e-5, batch_size: int = 32, mean: float = 0.1307, std: float = 0.3081,
                 autocast_bf16: bool = False, lr_schedule: str = "constant"):
        super().__init__()
        # Plain values only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.net = build_network(arch, **arch_kwargs)
        self._reset_epoch_sums()

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

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.hparams.autocast_bf16)

    def training_step(self, chunk, chunk_idx):
        x, y = chunk
        batches = list(zip(x.split(self.hparams.batch_size), y.split(self.hparams.batch_size), strict=True))
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for (xb, yb), opt in zip(batches, self._steppers(len(batches)), strict=True):
            with self._autocast():
                logits = self.net(xb)
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            if self.trainer.world_size > 1:
                self.manual_backward(loss)  # DDP: the wrapper synchronises gradients
            else:
                loss.backward()
            opt.step()
            # In-place sums on the device: no host sync inside the loop.
            loss_sum.add_(loss.detach(), alpha=yb.numel())
            correct.add_((logits.detach().argmax(1) == yb).sum())
        self._add_sums(loss_sum, correct, y.numel())

    def train_epoch_metrics(self) -> dict[str, float]:
        """Mean train loss/accuracy over this epoch's batches so far (summed over DDP ranks)."""
        s = self._epoch_means()
        return {} if s is None else {"train_loss": float(s[0] / s[2]), "train_acc": float(s[1] / s[2])}

    def validation_step(self, batch, batch_idx):
        x, y = batch
        with self._autocast():
            logits = self.net(x)
        loss = F.cross_entropy(logits.float(), y)
        n = y.numel()
        self.log("val_loss", loss, on_epoch=True, batch_size=n, sync_dist=True, prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, batch_size=n, sync_dist=True,
                 prog_bar=True)


class StackedClassifier(_KerasLoop):
    """N seeds of one network trained together: member k is exactly the single run with ``seeds[k]``.

    Chunks arrive as ``(K, M, 1, 28, 28)`` images and ``(K, M)`` labels, member k's own data
    order and augmentation (``DigitDataModule(seeds=...)``). Validation data is shared. Logged:
    ``val_loss``/``val_acc`` as the members' mean (the checkpoint monitor) and per member
    (``val_acc/<seed>``), which ``EpochCSV`` writes into each seed's ``metrics.csv``.
    """

    def __init__(self, name: str, arch: str, arch_kwargs: dict, seeds: list[int], lr: float = 3e-3,
                 momentum: float = 0.0, l2: float = 1e-5, batch_size: int = 32, mean: float = 0.1307,
                 std: float = 0.3081, autocast_bf16: bool = False, lr_schedule: str = "constant"):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.seeds = [int(s) for s in seeds]
        self.stack = stack_members(arch, member_networks(arch, arch_kwargs, self.seeds))
        self._reset_epoch_sums()

    @property
    def num_params(self) -> int:
        return num_params(self.member(0))

    def member(self, k: int) -> torch.nn.Sequential:
        return member_network(self.stack, k, self.hparams.arch, self.hparams.arch_kwargs)

    def configure_optimizers(self):
        return StackedSGD(self.stack, self.hparams.lr, self.hparams.l2, self.hparams.momentum)

    def training_step(self, chunk, chunk_idx):
        x, y = chunk
        k, m = y.shape
        flat = x.reshape(k, m, -1)
        params = [*self.stack.weights, *self.stack.biases]
        starts = range(0, m, self.hparams.batch_size)
        loss_sum = torch.zeros(k, device=x.device)
        correct = torch.zeros(k, device=x.device)
        for start, opt in zip(starts, self._steppers(len(starts)), strict=True):
            xb = flat[:, start : start + self.hparams.batch_size]
            yb = y[:, start : start + self.hparams.batch_size].unsqueeze(-1)
            logits, losses, dws, dbs = self.stack.loss_and_grads(xb, yb)
            for p, g in zip(params, dws + dbs, strict=True):
                p.grad = g
            if type(opt) is StackedSGD:  # not Lightning's wrapper, which subclasses it and counts steps
                opt.update()  # between Lightning's steps: the bare update (see StackedSGD.update)
            else:
                opt.step()
            loss_sum += losses
            correct += (logits.argmax(-1, keepdim=True) == yb).sum((1, 2))
        self._add_sums(loss_sum, correct, m)

    def train_epoch_metrics(self) -> dict[str, float]:
        s = self._epoch_means()
        if s is None:
            return {}
        loss, acc = s[0] / s[2], s[1] / s[2]
        out = {"train_loss": float(loss.mean()), "train_acc": float(acc.mean())}
        for seed, lo, ac in zip(self.seeds, loss.tolist(), acc.tolist(), strict=True):
            out[f"train_loss/{seed}"], out[f"train_acc/{seed}"] = lo, ac
        return out

    def validation_step(self, batch, batch_idx):
        x, y = batch
        k, n = len(self.seeds), y.numel()
        logits = self.stack(x.reshape(1, n, -1).expand(k, n, -1))  # every member sees the same digits
        losses = F.cross_entropy(logits.reshape(-1, 10), y.repeat(k), reduction="none").reshape(k, n).mean(1)
        accs = (logits.argmax(-1) == y).float().mean(1)
        self.log("val_loss", losses.mean(), on_epoch=True, batch_size=n, prog_bar=True)
        self.log("val_acc", accs.mean(), on_epoch=True, batch_size=n, prog_bar=True)
        for seed, lo, ac in zip(self.seeds, losses, accs, strict=True):
            self.log(f"val_loss/{seed}", lo, on_epoch=True, batch_size=n)
            self.log(f"val_acc/{seed}", ac, on_epoch=True, batch_size=n)
