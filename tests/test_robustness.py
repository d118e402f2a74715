"""Corruption benchmark: every set builds, is deterministic, keeps labels; severity matters."""

import numpy as np
import pytest

from mnist_gen.evalsets import available_sets, load_eval_set
from mnist_gen.evalsets import corruptions as robustness
from mnist_gen.evalsets.corruptions import CORRUPTIONS, SET_NAMES, corrupted_set, mean_corruption_accuracy

N = 40


def _fresh(name, **kw):
    robustness._CACHE.clear()
    return corrupted_set(name, n=kw.pop("n", 12 if name == "inverted" else N), **kw)


def test_every_corruption_is_a_registered_set():
    assert set(SET_NAMES) <= set(available_sets())
    assert len(SET_NAMES) == len(CORRUPTIONS) == 12


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_set_builds_deterministically_with_mnist_labels(mnist, name):
    a = _fresh(name)
    n = len(a)
    assert a.images.shape == (n, 28, 28) and a.images.dtype == np.uint8
    assert np.array_equal(a.labels, mnist["y_test"][:n])
    assert a.name == f"mnistc_{name}"
    assert not np.array_equal(a.images, mnist["x_test"][:n])  # actually corrupted
    assert np.array_equal(a.images, _fresh(name).images)  # same images on every build


@pytest.mark.parametrize("name", [c for c in CORRUPTIONS if c != "inverted"])
def test_severity_changes_the_images(name):
    default = CORRUPTIONS[name][1]
    stronger = default + 1 if isinstance(default, int) or name in ("translate", "rotate") else default * 0.5 if name == "contrast" else default * 1.6
    a, b = _fresh(name, n=20), _fresh(name, n=20, severity=stronger)
    assert not np.array_equal(a.images, b.images)


def test_seed_changes_random_corruptions():
    assert not np.array_equal(_fresh("noise", n=10).images, _fresh("noise", n=10, seed=1).images)


def test_loaded_through_the_registry_with_options():
    s = load_eval_set("mnistc_blur", n=15, severity=0.5, data_dir=None, preprocess={})
    assert len(s) == 15


def test_mean_corruption_accuracy():
    sets = {name: {"accuracy": acc} for name, acc in zip(SET_NAMES, np.linspace(0.9, 1.0, len(SET_NAMES)), strict=True)}
    sets["mnist_test"] = {"accuracy": 0.5}  # not a corruption: ignored
    r = mean_corruption_accuracy(sets)
    assert r["mean"] == pytest.approx(0.95) and r["n_sets"] == 12 and r["missing"] == []
    partial = mean_corruption_accuracy({"mnistc_blur": {"accuracy": 0.8}})
    assert partial["mean"] == pytest.approx(0.8) and len(partial["missing"]) == 11
    assert mean_corruption_accuracy({})["mean"] is None
