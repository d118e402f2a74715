"""Training augmentation: shapes, ranges, determinism, the identity default, and label sense."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_gen.data.augment import OPS, Augmenter, augment_pixels, load_config
from mnist_gen.data.datamodule import DigitDataModule
from mnist_gen.data.pixels import normalize
from mnist_gen.errors import UserError
from mnist_gen.settings import compose_group

ROBUST = load_config(compose_group("augment", "robust"))


@pytest.fixture(scope="module")
def digits(mnist):
    return torch.as_tensor(mnist["x_train"][:256], dtype=torch.float32).div(255).unsqueeze(1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_range_are_kept(digits):
    out = augment_pixels(digits, ROBUST, _gen(0))
    assert out.shape == digits.shape and out.dtype == digits.dtype
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, digits)


@pytest.mark.parametrize("op", OPS)
def test_each_op_alone_changes_images_and_keeps_range(digits, op):
    opts = dict(ROBUST[op])
    for k in [k for k in opts if k.startswith("p")]:
        opts[k] = 1.0 if k == "p" else 0.5  # p_thicken / p_thin: half each
    out = augment_pixels(digits[:32], {op: opts}, _gen(0))
    assert out.shape == (32, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    assert (out - digits[:32]).abs().amax((1, 2, 3)).gt(1e-3).float().mean() > 0.5


def test_deterministic_under_a_seed_and_different_across_seeds(digits):
    a = augment_pixels(digits, ROBUST, _gen(7))
    assert torch.equal(a, augment_pixels(digits, ROBUST, _gen(7)))
    assert not torch.equal(a, augment_pixels(digits, ROBUST, _gen(8)))
    aug = Augmenter(ROBUST, 0.1307, 0.3081)
    x = (digits - 0.1307) / 0.3081
    assert torch.equal(aug(x, (0, 1, 0, 2)), aug(x, (0, 1, 0, 2)))
    assert not torch.equal(aug(x, (0, 1, 0, 2)), aug(x, (0, 2, 0, 2)))  # next epoch: new draws


def test_augmenter_round_trips_normalisation(digits):
    x = (digits - 0.1307) / 0.3081
    out = Augmenter({"noise": {"p": 0.0}}, 0.1307, 0.3081)(x, (0,))  # an op that changes nothing
    assert torch.allclose(out, x, atol=1e-5)


def test_none_is_the_identity_and_chunks_equal_the_plain_ones(mnist_dir):
    assert augment_pixels(torch.rand(4, 1, 28, 28), load_config(compose_group("augment", "none")), _gen(0)) is not None
    kw = dict(data_dir=str(mnist_dir), max_train_samples=600, steps_per_call=4, seed=3)
    plain, none, robust = DigitDataModule(**kw), DigitDataModule(**kw, augment=compose_group("augment", "none")), DigitDataModule(**kw, augment=ROBUST)
    for dm in (plain, none, robust):
        dm.setup()
    assert none.augment is None
    for (xa, ya), (xb, yb), (xr, yr) in zip(plain.train_dataloader(), none.train_dataloader(), robust.train_dataloader(), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(ya, yr) and not torch.equal(xa, xr)  # same order, augmented pixels
    # Validation is never augmented.
    assert all(torch.equal(a[0], b[0]) for a, b in zip(plain.val_dataloader(), robust.val_dataloader(), strict=True))


def test_bad_augment_config_is_one_clear_error():
    with pytest.raises(UserError, match="choose one of none, robust"):
        compose_group("augment", "nonexistent")
    with pytest.raises(UserError, match="rotation"):
        load_config({"rotation": {"p": 1}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda(digits):
    out = augment_pixels(digits.cuda(), ROBUST, torch.Generator(device="cuda").manual_seed(0))
    assert out.is_cuda and out.shape == digits.shape


def test_a_model_trained_on_augmented_digits_still_reads_clean_ones(mnist):
    # One epoch over 6,000 augmented digits (3,000 leaves a 1-epoch MLP near 76 %, plain digits 85 %).
    torch.manual_seed(0)
    n = 6000
    x = normalize(mnist["x_train"][:n], 0.1307, 0.3081)
    y = torch.as_tensor(mnist["y_train"][:n]).long()
    aug = Augmenter(ROBUST, 0.1307, 0.3081)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    perm = torch.randperm(n, generator=_gen(0))
    for chunk, start in enumerate(range(0, n, 512)):  # augmented per chunk, as EpochChunks does
        sel = perm[start : start + 512]
        xa, ya = aug(x[sel], (0, 0, 0, chunk)), y[sel]
        for xb, yb in zip(xa.split(32), ya.split(32), strict=True):
            opt.zero_grad()
            F.cross_entropy(net(xb), yb).backward()
            opt.step()
    xt = normalize(mnist["x_test"][:2000], 0.1307, 0.3081)
    with torch.no_grad():
        acc = float((net(xt).argmax(1).numpy() == mnist["y_test"][:2000]).mean())
    assert acc >= 0.80, acc
