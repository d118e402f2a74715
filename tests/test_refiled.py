"""Training digits filed small and read back by the pipeline (``mnist_gen/data/refiled.py``)."""

import logging

import numpy as np
import pytest
import torch

from mnist_gen.data import refiled
from mnist_gen.data.datamodule import DigitDataModule
from mnist_gen.data.refiled import cached_refiled, refile_digits, render
from mnist_gen.errors import UserError
from mnist_gen.settings import compose_group

FRAMINGS = compose_group("augment", "robust_files")["refiled"]  # the recipe's framings


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist["x_train"][:300], mnist["y_train"][:300]


def test_render_files_the_digit_small_dark_on_light(digits):
    x, _ = digits
    rng = np.random.default_rng(0)
    shapes = set()
    for i in range(60):
        img = render(x[i], rng, FRAMINGS)
        assert img.dtype == np.uint8 and max(img.shape) in FRAMINGS["sizes"]
        assert img.max() == 255 and img.min() < 100  # white paper, dark ink: as a scan stores it
        shapes.add(img.shape[0] == img.shape[1])
    assert shapes == {True, False}  # stretched squares and digits kept in their aspect ratio
    stretched = render(x[0], np.random.default_rng(1), {**FRAMINGS, "stretch": 1.0, "binary": 1.0, "sizes": (16,)})
    assert stretched.shape == (16, 16) and set(np.unique(stretched)) <= {0, 255}
    # the ink box fills the square: ink in the first and last row and column
    ink = stretched < 128
    assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()


def test_readings_are_the_pipelines_and_do_not_depend_on_the_processes(digits):
    from mnist_gen.preprocess import to_mnist

    x, _ = digits
    one, ok1 = refile_digits(x, FRAMINGS, jobs=1)
    two, ok2 = refile_digits(x, FRAMINGS, jobs=2)
    assert np.array_equal(one, two) and np.array_equal(ok1, ok2)
    assert one.shape == x.shape and one.dtype == np.uint8 and ok1.mean() > 0.98
    assert not np.array_equal(one, x)  # information really lost and re-read
    # digit 5 is exactly to_mnist of its rendering
    again = to_mnist(render(x[5], np.random.default_rng([FRAMINGS["seed"], 5]), FRAMINGS)).digit
    assert np.array_equal(one[5], again)


def test_a_blank_digit_keeps_its_image_and_is_not_swapped():
    blank = np.zeros((3, 28, 28), np.uint8)
    out, ok = refile_digits(blank, FRAMINGS, jobs=1)
    assert not ok.any() and np.array_equal(out, blank)


def test_cache_is_reused_rebuilt_when_broken_and_optional(digits, tmp_path, monkeypatch, caplog):
    x = digits[0][:20]
    first, ok = cached_refiled(x, tmp_path, FRAMINGS)
    (path,) = (tmp_path / "cache" / "refiled").iterdir()

    def fail(*a, **k):
        raise AssertionError("read again although cached")

    monkeypatch.setattr(refiled, "refile_digits", fail)
    again, ok_again = cached_refiled(x, tmp_path, FRAMINGS)
    assert np.array_equal(first, again) and np.array_equal(ok, ok_again)
    monkeypatch.undo()

    path.write_bytes(b"not an npz")
    with caplog.at_level(logging.WARNING):
        rebuilt, _ = cached_refiled(x, tmp_path, FRAMINGS)
    assert np.array_equal(first, rebuilt) and "unreadable" in caplog.text

    other = cached_refiled(x[:10], tmp_path, FRAMINGS)[0]  # other digits: another cache entry
    assert np.array_equal(other, first[:10]) and len(list(path.parent.iterdir())) == 2
    with pytest.raises(UserError, match="augment.refiled needs sizes"):
        cached_refiled(x, tmp_path, {"p": 0.3, "stretch": 0.5, "binary": 0.5, "seed": 0})


def test_unwritable_data_folder_still_gives_the_readings(digits, tmp_path, monkeypatch, caplog):
    def read_only(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    import mnist_gen.io

    monkeypatch.setattr(mnist_gen.io, "write_atomic", read_only)  # as a read-only folder answers (root ignores modes)
    x = digits[0][:8]
    with caplog.at_level(logging.WARNING):
        out, ok = cached_refiled(x, tmp_path, FRAMINGS)
    assert out.shape == x.shape and ok.all() and "could not cache" in caplog.text


def test_datamodule_swaps_readings_in_after_styles_resumably(mnist_dir, tmp_path):
    # the refiled cache goes to the DataModule's data folder: a copy of MNIST's, not the project's
    (tmp_path / "MNIST").symlink_to(mnist_dir / "MNIST")
    aug = compose_group("augment", "robust_files")
    assert aug["refiled"]["p"] > 0 and aug["styles"]["p"] > 0
    kw = dict(data_dir=str(tmp_path), max_train_samples=300, steps_per_call=4, seed=3, fetch=False)
    plain = DigitDataModule(**kw)
    every = DigitDataModule(**kw, augment={"refiled": {**FRAMINGS, "p": 1.0}})
    for dm in (plain, every):
        dm.setup()
    (swap,) = every.swaps
    assert swap.stream == 2 and bool(swap.ok.all())
    (xa, ya), (xb, yb) = next(iter(plain.train_dataloader())), next(iter(every.train_dataloader()))
    assert torch.equal(ya, yb) and not torch.equal(xa, xb)  # same digits, read back from small files
    both = DigitDataModule(**kw, augment={"styles": {"p": 0.3}, "refiled": FRAMINGS})
    both.setup()
    assert [s.stream for s in both.swaps] == [1, 2]
    first = [x for x, _ in both.train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, [x for x, _ in both.train_dataloader()], strict=True))


def test_train_py_runs_the_recipe_and_records_it(tmp_path, mnist_dir):
    """``experiment=robust_files`` through the real training entry point, on 600 digits."""
    import json

    from hydra import compose, initialize_config_dir

    from mnist_gen.cli.train import run
    from mnist_gen.settings import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=robust_files", "model=mlp_64_16", "seeds=null", "data.max_train_samples=600",
            "trainer.max_epochs=1", "eval_sets=[mnist_test]", "export=false", "galleries=false",
            f"paths.output_dir={tmp_path}"])
    run(cfg)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["recipe"] == "robust_files" and res["config"]["augment"]["refiled"] == FRAMINGS
    # one epoch on 600 augmented digits (a third read back from small files) learns: 34 % measured, chance 10 %
    assert res["test_accuracy"] > 0.2
