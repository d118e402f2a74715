"""The study's two data protocols, as plain arrays.

* ``mnist`` (networks): 60k train / 10k test. Keras ``validation_split=0.1`` takes the
  **last** 10 % of the training arrays *before* shuffling, so validation = images
  54000..59999 and training = the first 54000.
* ``seed_holdout`` (KNN/SVM): all 70k images in OpenML ``mnist_784`` order (train then
  test), ``train_test_split(test_size=0.2, random_state=42)`` -> 56000 / 14000.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

KERAS_VALIDATION_SPLIT = 0.1
#: Each protocol's own test set.
PROTOCOL_TEST_SET = {"mnist": "mnist_test", "seed_holdout": "seed_holdout_test"}
#: Evaluation sets (patterns) whose digits a protocol trains on: never scored for its models.
#: ``seed_holdout`` trains on 56,000 of all 70,000 digits, MNIST's test digits included, so
#: every set drawn from them (corruptions, framings) would flatter it; the ``mnist`` protocol's
#: training digits are most of ``seed_holdout``'s test part.
OVERLAPPING_SETS = {"mnist": ("seed_holdout_test",),
                    "seed_holdout": ("mnist_test", "mnistc_*", "mnist_native*", "mnist_tight*", "mnist_margin*",
                                     "mnist_px*", "mnist_stretch*")}


def overlapping(protocol: str, names) -> list[str]:
    """The sets among ``names`` that overlap ``protocol``'s training data."""
    patterns = OVERLAPPING_SETS.get(protocol, ())
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


@dataclass
class Split:
    x_train: np.ndarray  # uint8 (N, 28, 28)
    y_train: np.ndarray  # int64 (N,)
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str


def mnist_split(mnist: dict[str, np.ndarray], validation_split: float = KERAS_VALIDATION_SPLIT) -> Split:
    n = len(mnist["x_train"])
    n_train = n - int(round(n * validation_split))
    return Split(
        mnist["x_train"][:n_train], mnist["y_train"][:n_train],
        mnist["x_train"][n_train:], mnist["y_train"][n_train:],
        mnist["x_test"], mnist["y_test"], name="mnist",
    )


def seed_holdout_split(mnist: dict[str, np.ndarray], test_size: float = 0.2, random_state: int = 42) -> Split:
    x = np.concatenate([mnist["x_train"], mnist["x_test"]])
    y = np.concatenate([mnist["y_train"], mnist["y_test"]])
    # Split indices, not arrays: identical to splitting the (70000, 784) matrix, without copying it.
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=test_size, random_state=random_state)
    # The study used no validation set for KNN/SVM; the networks validate on the test part here.
    return Split(x[idx_train], y[idx_train], x[idx_test], y[idx_test], x[idx_test], y[idx_test], name="seed_holdout")


SUBSET_SEED = 0  # one fixed subset, the same for every run seed, so seeds stay comparable


def training_subset(labels: np.ndarray, n: int | None) -> np.ndarray:
    """Sorted indices of a fixed stratified subset of ``n`` training digits (all when n is None or ≥ len).

    The one sampler behind every ``max_train_samples`` (networks' ``data.max_train_samples``,
    KNN/SVM's ``model.max_train_samples``): class proportions kept, seeded by ``SUBSET_SEED``.
    """
    from mnist_gen.errors import UserError

    if n is None or n >= len(labels):
        return np.arange(len(labels))
    try:
        idx, _ = train_test_split(np.arange(len(labels)), train_size=int(n), stratify=labels, random_state=SUBSET_SEED)
    except ValueError as e:
        raise UserError(f"max_train_samples={n} is too small for a stratified subset of "
                        f"{len(np.unique(labels))} classes: {e}") from e
    return np.sort(idx)
