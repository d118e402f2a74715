"""MNIST's own evaluation sets, registered beside the real-handwriting ones."""

from __future__ import annotations

from pathlib import Path

from mnist_gen import paths
from mnist_gen.data.mnist import load_mnist
from mnist_gen.data.splits import seed_holdout_split
from mnist_gen.evalsets.base import EvalSet, register


def mnist_raw_dir() -> Path:
    from mnist_gen.data.mnist import raw_dir

    return raw_dir(paths.data_dir())


@register("mnist_test", "MNIST test (the networks' protocol)", 10_000, mnist_raw_dir)
def mnist_test(data_dir: str | None = None, **_) -> EvalSet:
    m = load_mnist(data_dir or paths.data_dir())
    return EvalSet("mnist_test", m["x_test"], m["y_test"], ids=[f"t10k[{i}]" for i in range(len(m["y_test"]))])


@register("seed_holdout_test", "the study's KNN/SVM test split (70k -> 14k)", 14_000, mnist_raw_dir)
def seed_holdout_test(data_dir: str | None = None, **_) -> EvalSet:
    s = seed_holdout_split(load_mnist(data_dir or paths.data_dir()))
    return EvalSet("seed_holdout_test", s.x_test, s.y_test)
