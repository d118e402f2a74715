"""The study's two protocols and the in-memory batching."""

import numpy as np
import torch

from mnist_gen.data.datamodule import DigitDataModule, EpochChunks
from mnist_gen.data.splits import mnist_split, seed_holdout_split


def test_keras_validation_split_takes_the_last_ten_percent(mnist):
    s = mnist_split(mnist)
    assert len(s.y_train) == 54000 and len(s.y_val) == 6000 and len(s.y_test) == 10000
    assert np.array_equal(s.x_val, mnist["x_train"][54000:])
    assert np.array_equal(s.x_train, mnist["x_train"][:54000])


def test_seed_holdout_split_has_the_studys_supports(mnist):
    s = seed_holdout_split(mnist)
    assert len(s.y_train) == 56000 and len(s.y_test) == 14000
    assert np.bincount(s.y_test).tolist() == [1343, 1600, 1380, 1433, 1295, 1273, 1396, 1503, 1357, 1420]


def test_normalisation_scalars_come_from_the_60k_training_images(mnist_dir):
    dm = DigitDataModule(protocol="seed_holdout", data_dir=str(mnist_dir))
    dm.prepare_arrays()
    assert abs(dm.mean - 0.1307) < 1e-4 and abs(dm.std - 0.3081) < 1e-4


def test_subset_knob(mnist_dir):
    dm = DigitDataModule(data_dir=str(mnist_dir), max_train_samples=500, seed=3)
    s = dm.prepare_arrays()
    assert len(s.y_train) == 500 and len(np.unique(s.y_train)) == 10 and len(s.y_val) == 6000


def _chunks(epoch, seed=0, n=100, batch=32, steps=2):
    x, y = torch.arange(n).float().reshape(n, 1), torch.arange(n)
    return EpochChunks(x, y, batch, steps, shuffle=True, seed=seed, epoch_fn=lambda: epoch)


def test_each_epoch_is_a_fresh_permutation_fixed_by_seed_and_epoch():
    a0 = torch.cat([y for _, y in _chunks(0)])
    assert sorted(a0.tolist()) == list(range(100))
    assert torch.equal(a0, torch.cat([y for _, y in _chunks(0)]))  # reproducible (resume-safe)
    assert not torch.equal(a0, torch.cat([y for _, y in _chunks(1)]))  # reshuffled every epoch
    assert not torch.equal(a0, torch.cat([y for _, y in _chunks(0, seed=1)]))


def test_chunks_hold_whole_keras_batches_and_a_final_partial_batch():
    chunks = list(_chunks(0))
    assert [len(y) for _, y in chunks] == [64, 36]  # 100 = 3 full batches of 32 + one of 4
    assert len(_chunks(0)) == 2
    assert [len(b) for b in chunks[1][1].split(32)] == [32, 4]


def test_ddp_ranks_partition_the_epoch():
    x, y = torch.zeros(10, 1), torch.arange(10)
    parts = [torch.cat([b for _, b in EpochChunks(x, y, 2, 1, True, 0, lambda: 0, rank=r, world_size=2)]) for r in (0, 1)]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))


def test_sets_drawn_from_a_protocols_training_digits_are_never_scored():
    from mnist_gen.data.splits import overlapping

    names = ["mnist_test", "mnistc_blur", "mnist_tight0_inv", "usps", "seed_holdout_test", "uci_digits"]
    # seed_holdout (KNN/SVM) trains on MNIST's test digits too: every set made from them would flatter it.
    assert overlapping("seed_holdout", names) == ["mnist_test", "mnistc_blur", "mnist_tight0_inv"]
    assert overlapping("mnist", names) == ["seed_holdout_test"]


def test_chunk_normalisation_equals_the_networks_standardisation_and_copies():
    """Training chunks are normalised in place for speed: bit for bit what the exported networks
    compute (``standardize``), and never in the caller's tensor."""
    from mnist_gen.data.pixels import normalize, standardize

    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=g)
    f32 = u8.to(torch.float32)
    before = f32.clone()
    for x in (u8, f32, u8.numpy()):
        assert torch.equal(normalize(x, 0.1307, 0.3081), standardize(f32, 0.1307, 0.3081).reshape(-1, 1, 28, 28))
    assert torch.equal(f32, before)
