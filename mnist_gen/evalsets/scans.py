"""Real handwriting that is not MNIST: USPS (scanned mail) and UCI digits (scikit-learn).

``usps`` and ``uci_digits`` send each stored digit through ``to_mnist``, the pipeline a
user's file goes through (``evalsets/framing.py`` renders them as files too). Kept beside
them for comparison, not for headline numbers:
* ``usps_arrays`` / ``uci_digits_arrays``: the arrays boxed and centred directly
  (``normalize_digit``), the path these sets took before the one pipeline, knowing the
  polarity and the crop;
* ``usps_naive`` / ``uci_digits_naive``: the whole frame resized to 28×28 (the study's shortcut).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import UserError
from mnist_gen.evalsets.base import EvalSet, cached, register, through_pipeline
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


def read_uci() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled UCI digits: (float32 (1797, 8, 8) ink in [0, 1], int64 labels); 43 writers."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def _pipeline_set(name: str, ink: np.ndarray, labels: np.ndarray, prefix: str, source: dict, preprocess,
                  data_dir=None) -> EvalSet:
    """Each stored digit (bright ink on black, as the arrays hold it) through ``to_mnist``, cached."""
    cfg = as_config(preprocess)
    items = ((f"{prefix}[{i}]", int(y), x) for i, (x, y) in enumerate(zip(ink, labels, strict=True)))
    key = {"set": name, "source": source, "preprocess": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    return cached(name, key, lambda: through_pipeline(name, items, cfg), data_dir)


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime": st.st_mtime_ns}


@register("usps", "USPS test scans (16×16 grey), through the one pipeline", 2007, default_usps_path)
def usps(path=None, preprocess=None, data_dir=None, **_) -> EvalSet:
    path = Path(path or default_usps_path())
    ink, labels = read_usps(path)
    return _pipeline_set("usps", ink, labels, "usps", _file_key(path), preprocess, data_dir)


@register("uci_digits", "scikit-learn's UCI digits (8×8, 43 writers), through the one pipeline", 1797)
def uci_digits(preprocess=None, data_dir=None, **_) -> EvalSet:
    ink, labels = read_uci()
    return _pipeline_set("uci_digits", ink, labels, "uci", {"sklearn": "load_digits"}, preprocess, data_dir)


def _boxed(name: str, ink: np.ndarray, labels: np.ndarray, prefix: str, preprocess) -> EvalSet:
    cfg = as_config(preprocess) if preprocess is not None else None
    images = np.stack([normalize_digit(x, cfg) for x in ink]) if len(ink) else np.zeros((0, 28, 28), np.uint8)
    return EvalSet(name, images, labels, ids=[f"{prefix}[{i}]" for i in range(len(labels))])


@register("usps_arrays", "reference: USPS arrays boxed and centred directly (knows polarity and crop)", 2007,
          default_usps_path)
def usps_arrays(path=None, preprocess=None, **_) -> EvalSet:
    return _boxed("usps_arrays", *read_usps(path or default_usps_path()), "usps", preprocess)


@register("uci_digits_arrays", "reference: UCI arrays boxed and centred directly (knows polarity and crop)", 1797)
def uci_digits_arrays(preprocess=None, **_) -> EvalSet:
    return _boxed("uci_digits_arrays", *read_uci(), "uci", preprocess)


def _naive_frame(ink: np.ndarray, size: int = 28) -> np.ndarray:
    """The whole frame resized to 28×28, no crop / 20-px box / centring: the study's shortcut."""
    from PIL import Image

    im = Image.fromarray(np.asarray(ink, dtype=np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.round(np.clip(np.asarray(im), 0, 1) * 255).astype(np.uint8)


def _naive(name: str, ink: np.ndarray, labels: np.ndarray, prefix: str) -> EvalSet:
    images = np.stack([_naive_frame(x) for x in ink]) if len(ink) else np.zeros((0, 28, 28), np.uint8)
    return EvalSet(name, images, labels, ids=[f"{prefix}[{i}]" for i in range(len(labels))])


@register("usps_naive", "USPS resized to 28×28 as a whole (the study's shortcut; EDA comparison)", 2007,
          default_usps_path)
def usps_naive(path=None, **_) -> EvalSet:
    return _naive("usps_naive", *read_usps(path or default_usps_path()), "usps")


@register("uci_digits_naive", "UCI digits resized to 28×28 as a whole (the study's shortcut; EDA comparison)", 1797)
def uci_digits_naive(**_) -> EvalSet:
    return _naive("uci_digits_naive", *read_uci(), "uci")
