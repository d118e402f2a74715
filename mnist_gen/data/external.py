"""Real handwriting that is not MNIST: USPS (scanned mail) and UCI digits (scikit-learn).

Both are stored at lower resolution than MNIST and sized differently, so each digit goes
through ``normalize_digit`` — MNIST's own construction (crop, 20-px box keeping aspect,
centre of mass at the centre of 28×28) — before any model sees it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import UserError
from mnist_gen.evalsets import EvalSet, register
from mnist_gen.preprocess import as_config, normalize_digit


def default_usps_path() -> Path:
    return paths.shared_data_dir() / "usps" / "zip.test.gz"


def read_usps(path) -> tuple[np.ndarray, np.ndarray]:
    """USPS ``zip.test(.gz)``: one digit per line, ``label v1 … v256``, values in [-1, 1] (-1 = paper).

    Returns (float32 (N, 16, 16) ink in [0, 1], int64 labels).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"USPS test file {path} not found; set eval_set_options.usps.path to the zip.test(.gz) file."
        )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            rows = np.loadtxt(fh, dtype=np.float32, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(
            f"USPS file {path} could not be parsed ({e}); expected lines 'label v1 … v256'."
        ) from e
    if rows.shape[1] != 257:
        raise UserError(
            f"USPS file {path} has {rows.shape[1]} columns per line; expected 257 (label + 16×16)."
        )
    labels = rows[:, 0].astype(np.int64)
    ink = (rows[:, 1:].reshape(-1, 16, 16) + 1.0) / 2.0  # -1 (paper) → 0, +1 (ink) → 1: bright ink like MNIST
    return np.clip(ink, 0, 1), labels


@register("usps")
def usps(path=None, preprocess=None, **_) -> EvalSet:
    """USPS test set (2,007 digits), normalised MNIST-style."""
    ink, labels = read_usps(path or default_usps_path())
    cfg = as_config(preprocess) if preprocess is not None else None
    images = np.stack([normalize_digit(x, cfg) for x in ink]) if len(ink) else np.zeros((0, 28, 28), np.uint8)
    return EvalSet("usps", images, labels, ids=[f"usps[{i}]" for i in range(len(labels))])


@register("uci_digits")
def uci_digits(preprocess=None, **_) -> EvalSet:
    """scikit-learn's bundled UCI digits: 1,797 8×8 digits from 43 writers (values 0–16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    ink = d.images.astype(np.float32) / 16.0
    cfg = as_config(preprocess) if preprocess is not None else None
    images = np.stack([normalize_digit(x, cfg) for x in ink])
    return EvalSet(
        "uci_digits", images, d.target.astype(np.int64), ids=[f"uci[{i}]" for i in range(len(d.target))]
    )
