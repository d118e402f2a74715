"""MNIST's own evaluation sets, registered beside the real-handwriting ones."""

from __future__ import annotations

from mnist_gen import paths
from mnist_gen.data.mnist import load_mnist
from mnist_gen.data.splits import seed_holdout_split
from mnist_gen.evalsets import EvalSet, register


@register("mnist_test")
def mnist_test(data_dir: str | None = None, **_) -> EvalSet:
    """The 10,000 MNIST test digits (the networks' protocol)."""
    m = load_mnist(data_dir or paths.data_dir())
    return EvalSet("mnist_test", m["x_test"], m["y_test"], ids=[f"t10k[{i}]" for i in range(len(m["y_test"]))])


@register("seed_holdout_test")
def seed_holdout_test(data_dir: str | None = None, **_) -> EvalSet:
    """The 14,000-digit test part of the study's KNN/SVM split."""
    s = seed_holdout_split(load_mnist(data_dir or paths.data_dir()))
    return EvalSet("seed_holdout_test", s.x_test, s.y_test)
