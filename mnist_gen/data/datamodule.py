"""One DataModule for every model.

Batches are cut from tensors held in memory (on the accelerator when there is one):
with 28×28 digits a per-sample ``Dataset``/PIL pipeline costs more than the model.
For speed, one "chunk" of ``steps_per_call`` mini-batches is handed to the
LightningModule at a time, which then runs the optimizer steps itself; Lightning's
per-batch machinery (hooks, logging, progress) runs once per chunk, not per step.
The mini-batches inside a chunk are exactly Keras' batches: the epoch's permutation
of the training set cut into ``batch_size`` pieces, the last one possibly smaller.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch

from mnist_gen import paths
from mnist_gen.augment import Augmenter, is_identity
from mnist_gen.augment import load_config as load_augment
from mnist_gen.data.mnist import load_mnist
from mnist_gen.data.splits import Split, mnist_split, seed_holdout_split

SPLITS = {"mnist": mnist_split, "seed_holdout": seed_holdout_split}
SUBSET_SEED = 0


def pixel_stats(x_train: np.ndarray) -> tuple[float, float]:
    """Mean and std of pixel/255 over the training images (MNIST: ≈ 0.1307, 0.3081)."""
    x = x_train.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def normalize(images: np.ndarray | torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) as ``(x/255 - mean) / std``."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    x = x.to(torch.float32).div_(255.0).sub_(mean).div_(std)
    return x.reshape(-1, 1, 28, 28)


class EpochChunks:
    """Iterable over one epoch: yields ``(x, y)`` chunks of ``steps_per_call * batch_size`` samples.

    The permutation depends only on ``(seed, epoch)``, so a run resumed from an
    epoch-boundary checkpoint sees exactly the batches an uninterrupted run would.
    Under DDP each rank takes every ``world_size``-th sample of the permutation.
    ``augment`` (training only; ``mnist_gen.augment.Augmenter``) transforms each chunk with
    random numbers seeded by (seed, epoch, rank, chunk index): resumable too, but the draws
    depend on the chunk size, so with augmentation ``steps_per_call`` is part of the recipe.
    """

    def __init__(self, x, y, batch_size, steps_per_call, shuffle, seed, epoch_fn, rank=0, world_size=1, augment=None,
                 styles=None):
        self.x, self.y = x, y
        self.batch_size, self.steps_per_call = batch_size, steps_per_call
        self.shuffle, self.seed, self.epoch_fn = shuffle, seed, epoch_fn
        self.rank, self.world_size = rank, world_size
        self.augment = augment
        self.styles = styles  # StyledCopies or None

    def _n_local(self) -> int:
        return len(range(self.rank, len(self.y), self.world_size))

    def __len__(self) -> int:
        return math.ceil(self._n_local() / (self.batch_size * self.steps_per_call))

    def order(self, epoch: int) -> torch.Tensor:
        n = len(self.y)
        if not self.shuffle:
            idx = torch.arange(n)
        else:
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(epoch))
            idx = torch.randperm(n, generator=g)
        return idx[self.rank :: self.world_size].to(self.x.device)

    def __iter__(self):
        epoch = self.epoch_fn()
        idx = self.order(epoch)
        step = self.batch_size * self.steps_per_call
        for chunk, start in enumerate(range(0, len(idx), step)):
            sel = idx[start : start + step]
            x = self.x.index_select(0, sel)
            if self.styles is not None:
                x = self.styles.swap_in(x, sel, (self.seed, epoch, self.rank, chunk))
            if self.augment is not None:
                x = self.augment(x, (self.seed, epoch, self.rank, chunk))
            yield x, self.y.index_select(0, sel)


class StyledCopies:
    """Styled copies of the training digits (``mnist_gen/data/styles.py``), swapped in per chunk.

    With probability ``p`` a digit that has a styled copy is replaced by it, drawn from a
    generator seeded by (seed, epoch, rank, chunk) like the augmentation: resumable.
    Kept as uint8 and normalised per chunk (a second float copy of the training set would
    double its memory).
    """

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, p: float, mean: float, std: float, device):
        from mnist_gen.data.styles import style_digits

        styled, ok = style_digits(x_train, y_train)
        self.styled = torch.as_tensor(styled).to(device)
        self.ok = torch.as_tensor(ok).to(device)
        self.p, self.mean, self.std = float(p), mean, std

    def swap_in(self, x: torch.Tensor, sel: torch.Tensor, key: tuple[int, ...]) -> torch.Tensor:
        from mnist_gen.augment import seed_for

        g = torch.Generator(device=x.device)
        g.manual_seed(seed_for(*key, 1))  # 1: a stream apart from the augmentation's
        use = self.ok.index_select(0, sel) & (torch.rand(len(sel), generator=g, device=x.device) < self.p)
        if not use.any():
            return x
        rows = use.nonzero()[:, 0]
        return x.index_put((rows,), normalize(self.styled.index_select(0, sel[rows]), self.mean, self.std).to(x.dtype))


class DigitDataModule(L.LightningDataModule):
    """MNIST under the study's protocols (``mnist`` for networks, ``seed_holdout`` for KNN/SVM)."""

    def __init__(
        self,
        protocol: str = "mnist",
        data_dir: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 2000,
        steps_per_call: int = 64,
        max_train_samples: int | None = None,
        seed: int = 0,
        fetch: bool = True,
        augment: str | dict | None = None,
    ):
        super().__init__()
        if protocol not in SPLITS:
            raise ValueError(f"unknown data protocol '{protocol}'; valid: {', '.join(SPLITS)}")
        self.protocol = protocol
        self.data_dir = Path(data_dir) if data_dir else paths.data_dir()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.steps_per_call = steps_per_call
        self.max_train_samples = max_train_samples
        self.seed, self.fetch = seed, fetch
        # Training-set augmentation (configs/augment/: a preset name or its mapping); None or
        # ``none`` leaves the study's data untouched.
        augment = load_augment(augment)
        self.augment = None if is_identity(augment) else augment
        self.split: Split | None = None
        self.mean = self.std = None

    # -- arrays (for classical models and evaluation) -------------------------------------------
    def prepare_arrays(self) -> Split:
        if self.split is None:
            mnist = load_mnist(self.data_dir, fetch=self.fetch)
            # Normalisation scalars always come from the 60k MNIST training images, so every
            # evaluation set (USPS, photos, ...) is normalised with the same numbers.
            self.mean, self.std = pixel_stats(mnist["x_train"])
            split = SPLITS[self.protocol](mnist)
            if self.max_train_samples:
                # Quick runs: a fixed random subset (same for every run seed, so seeds stay comparable
                # and vectorized multi-seed members see the same data as their single runs).
                keep = np.random.default_rng(SUBSET_SEED).permutation(len(split.y_train))[: self.max_train_samples]
                keep.sort()
                split.x_train, split.y_train = split.x_train[keep], split.y_train[keep]
            self.split = split
        return self.split

    # -- Lightning hooks ------------------------------------------------------------------------
    def prepare_data(self):
        load_mnist(self.data_dir, fetch=self.fetch)  # download + verify once, on rank 0

    def setup(self, stage: str | None = None):
        split = self.prepare_arrays()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        # Normalise once, keep everything resident on the training device.
        self.x_train = normalize(split.x_train, self.mean, self.std).to(device)
        self.y_train = torch.as_tensor(split.y_train).to(device)
        self.x_val = normalize(split.x_val, self.mean, self.std).to(device)
        self.y_val = torch.as_tensor(split.y_val).to(device)
        styles = (self.augment or {}).get("styles")
        self.styles = StyledCopies(split.x_train, split.y_train, styles["p"], self.mean, self.std, device) if styles else None

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self):
        rank, world = self._rank_world()
        # Under DDP one optimizer step per Lightning step: gradient all-reduce is tied to
        # DDP's forward/backward pairing, so the chunked fast path is single-process only.
        steps = self.steps_per_call if world == 1 else 1
        augment = Augmenter(self.augment, self.mean, self.std) if self.augment else None
        return EpochChunks(self.x_train, self.y_train, self.batch_size, steps,
                           shuffle=True, seed=self.seed, epoch_fn=self._epoch, rank=rank, world_size=world,
                           augment=augment, styles=self.styles)

    def val_dataloader(self):
        rank, world = self._rank_world()
        return EpochChunks(self.x_val, self.y_val, self.eval_batch_size, 1,
                           shuffle=False, seed=0, epoch_fn=self._epoch, rank=rank, world_size=world)

    def train_batches_per_epoch(self) -> int:
        return math.ceil(len(self.y_train) / self.batch_size)
