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
from mnist_gen.data.augment import Augmenter, is_identity
from mnist_gen.data.augment import load_config as load_augment
from mnist_gen.data.mnist import load_mnist
from mnist_gen.data.pixels import normalize, pixel_stats
from mnist_gen.data.splits import Split, mnist_split, seed_holdout_split, training_subset

SPLITS = {"mnist": mnist_split, "seed_holdout": seed_holdout_split}


class EpochChunks:
    """Iterable over one epoch: yields ``(x, y)`` chunks of ``steps_per_call * batch_size`` samples.

    The permutation depends only on ``(seed, epoch)``, so a run resumed from an
    epoch-boundary checkpoint sees exactly the batches an uninterrupted run would.
    Under DDP each rank takes every ``world_size``-th sample of the permutation.
    ``augment`` (training only; ``mnist_gen.data.augment.Augmenter``) transforms each chunk with
    random numbers seeded by (seed, epoch, rank, chunk index): resumable too, but the draws
    depend on the chunk size, so with augmentation ``steps_per_call`` is part of the recipe.
    """

    def __init__(self, x, y, batch_size, steps_per_call, shuffle, seed, epoch_fn, rank=0, world_size=1, augment=None,
                 swaps=(), mean: float | None = None, std: float | None = None):
        self.x, self.y = x, y  # x: uint8 digits (normalised per chunk with mean/std), or ready floats
        self.mean, self.std = mean, std
        self.batch_size, self.steps_per_call = batch_size, steps_per_call
        self.shuffle, self.seed, self.epoch_fn = shuffle, seed, epoch_fn
        self.rank, self.world_size = rank, world_size
        self.augment = augment
        self.swaps = tuple(swaps)  # SwappedCopies, applied in order

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
            for swap in self.swaps:
                x = swap.swap_in(x, sel, (self.seed, epoch, self.rank, chunk))
            if x.dtype == torch.uint8:
                x = normalize(x, self.mean, self.std)
            if self.augment is not None:
                x = self.augment(x, (self.seed, epoch, self.rank, chunk))
            yield x, self.y.index_select(0, sel)


class StackedEpochChunks:
    """One epoch for N seeds at once: chunk c of every seed's own ``EpochChunks``, stacked.

    Yields ``(K, M, 1, 28, 28)`` images and ``(K, M)`` labels; member k receives exactly the
    chunks (order, styles, augmentation) a single run with ``seeds[k]`` would.
    """

    def __init__(self, members: list[EpochChunks]):
        self.members = members

    def __len__(self) -> int:
        return len(self.members[0])

    def __iter__(self):
        for parts in zip(*self.members, strict=True):
            yield torch.stack([x for x, _ in parts]), torch.stack([y for _, y in parts])


class SwappedCopies:
    """Other versions of the training digits, swapped in per chunk: the styles MNIST lacks
    (``mnist_gen/data/styles.py``) or the pipeline's reading of each digit filed small
    (``mnist_gen/data/refiled.py``).

    With probability ``p`` a digit that has a copy (``ok``) is replaced by it, drawn from a
    generator seeded by (seed, epoch, rank, chunk) and ``stream`` (one per kind of copy, apart
    from the augmentation's): resumable. Swapped on the uint8 digits, before normalisation.
    """

    def __init__(self, copies: np.ndarray, ok: np.ndarray, p: float, device, stream: int):
        self.copies = torch.as_tensor(copies).to(device)
        self.ok = torch.as_tensor(ok).to(device)
        self.p, self.stream = float(p), int(stream)

    def swap_in(self, x: torch.Tensor, sel: torch.Tensor, key: tuple[int, ...]) -> torch.Tensor:
        from mnist_gen.data.augment import seed_for

        g = torch.Generator(device=x.device)
        g.manual_seed(seed_for(*key, self.stream))
        use = self.ok.index_select(0, sel) & (torch.rand(len(sel), generator=g, device=x.device) < self.p)
        if not use.any():
            return x
        rows = use.nonzero()[:, 0]
        return x.index_put((rows,), self.copies.index_select(0, sel[rows]))


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
        seeds: list[int] | None = None,
        fetch: bool = True,
        augment: dict | None = None,
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
        self.seeds = [int(s) for s in seeds] if seeds else None  # stacked seeds: chunks for every member
        # Training-set augmentation (the ``augment`` config: op -> options); None or an
        # empty one (``augment=none``) leaves the study's data untouched.
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
                # Quick runs: a fixed subset (the same for every run seed, so seeds stay comparable
                # and stacked members see the data of their single runs).
                keep = training_subset(split.y_train, self.max_train_samples)
                split.x_train, split.y_train = split.x_train[keep], split.y_train[keep]
            self.split = split
        return self.split

    # -- Lightning hooks ------------------------------------------------------------------------
    def prepare_data(self):
        load_mnist(self.data_dir, fetch=self.fetch)  # download + verify once, on rank 0
        if (self.augment or {}).get("refiled"):  # minutes of reading: once, not once per DDP rank
            from mnist_gen.data.refiled import cached_refiled

            cached_refiled(self.prepare_arrays().x_train, self.data_dir, self.augment["refiled"])

    def setup(self, stage: str | None = None):
        split = self.prepare_arrays()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        # Resident on the training device as uint8, normalised chunk by chunk: a float copy of the
        # training set would quadruple its memory for no speed (index_select dominates either way).
        self.x_train = torch.as_tensor(split.x_train).to(device)
        self.y_train = torch.as_tensor(split.y_train).to(device)
        self.x_val = torch.as_tensor(split.x_val).to(device)
        self.y_val = torch.as_tensor(split.y_val).to(device)
        self.swaps = self._swaps(split, device)

    def _swaps(self, split: Split, device) -> list[SwappedCopies]:
        """The ``augment`` config's data ops (styles, then refiled digits), each its own stream."""
        out = []
        if styles := (self.augment or {}).get("styles"):
            from mnist_gen.data.styles import style_digits

            out.append(SwappedCopies(*style_digits(split.x_train, split.y_train), styles["p"], device, stream=1))
        if refiled := (self.augment or {}).get("refiled"):
            from mnist_gen.data.refiled import cached_refiled

            out.append(SwappedCopies(*cached_refiled(split.x_train, self.data_dir, refiled), refiled["p"], device, stream=2))
        return out

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

        def chunks(seed: int) -> EpochChunks:
            return EpochChunks(self.x_train, self.y_train, self.batch_size, steps, shuffle=True, seed=seed,
                               epoch_fn=self._epoch, rank=rank, world_size=world, augment=augment, swaps=self.swaps,
                               mean=self.mean, std=self.std)

        if self.seeds is not None:
            return StackedEpochChunks([chunks(s) for s in self.seeds])
        return chunks(self.seed)

    def val_dataloader(self):
        rank, world = self._rank_world()
        return EpochChunks(self.x_val, self.y_val, self.eval_batch_size, 1, shuffle=False, seed=0,
                           epoch_fn=self._epoch, rank=rank, world_size=world, mean=self.mean, std=self.std)

