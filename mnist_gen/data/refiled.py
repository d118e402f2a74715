"""MNIST's training digits filed as other collections file them, and read back by the pipeline.

Why: a digit that reaches a model from a file has been through the photo pipeline. One
stretched to fill a 16×16 box and thresholded to black and white (as binary scan collections
store them), or kept at 8–16 px, comes out of ``to_mnist`` with its strokes thinned or
thickened toward MNIST's width, its box refitted and its centre re-found. The array-level
``reframe`` op (``augment.py``) only imitates the loss of information, not that reading: a
stretched 1 trained on is a fat slab, the same 1 read from a file a thinned bar with stubs.
Here each training digit is rendered once as such a file (one framing per digit, drawn from
its index) and read by ``to_mnist``, so a model can be trained on the pipeline's own reading.

54k readings take minutes (~25 ms each on one core at pipeline version 23), so they are cached under
``<data dir>/cache/refiled/``, keyed by the digits, the framings and ``PIPELINE_VERSION``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_gen.errors import UserError
from mnist_gen.io import key_digest, store_npz
from mnist_gen.preprocess import PIPELINE_VERSION, to_mnist
from mnist_gen.processes import map_in_processes

log = logging.getLogger(__name__)

#: The framings' keys (``augment.refiled`` in configs/augment/robust_files.yaml, the one place
#: for their values): ``stretch`` (share of digits whose ink box is stretched to fill the square;
#: the rest keep their aspect ratio), ``sizes`` (the stored digit's side in px), ``binary`` (share
#: thresholded to black and white), ``seed`` (which framing each digit gets).
FRAMING_KEYS = ("stretch", "sizes", "binary", "seed")
#: Enough digits per process to outweigh starting it.
PARALLEL_FROM = 256


def render(digit: np.ndarray, rng: np.random.Generator, framings: dict) -> np.ndarray:
    """A 28×28 MNIST digit (white ink on black) -> a small grey file image (dark ink on white
    paper), stretched or kept in aspect, at one of ``sizes`` px, maybe black and white."""
    m = digit > 0
    if not m.any():
        return np.full((8, 8), 255, np.uint8)
    ys, xs = np.nonzero(m)
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    side = int(rng.choice(framings["sizes"]))
    if rng.random() < framings["stretch"]:
        shape = (side, side)  # the ink box fills the square: no margin, aspect lost
    else:
        h, w = crop.shape
        k = side / max(h, w)
        shape = (max(1, round(h * k)), max(1, round(w * k)))
    small = np.asarray(Image.fromarray(crop).resize(shape[::-1], Image.Resampling.BOX), np.float32)
    if rng.random() < framings["binary"]:
        small = np.where(small >= 0.5 * max(float(small.max()), 1.0), 255.0, 0.0)
    return (255 - np.round(small)).astype(np.uint8)


def _read(args) -> tuple[np.ndarray, bool]:
    digit, index, framings = args
    rng = np.random.default_rng([int(framings["seed"]), int(index)])
    res = to_mnist(render(digit, rng, framings))
    if res.digit is None:
        return digit, False
    return np.asarray(res.digit, np.uint8), True


def refile_digits(images: np.ndarray, framings: dict, jobs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(the pipeline's readings uint8 (N, 28, 28), bool (N,) where it found a digit).

    Digit ``i``'s framing is drawn from ``(framings["seed"], i)``, so the result does not depend
    on ``jobs``. A digit the pipeline finds nothing in keeps its own image and ``False``.
    """
    work = [(images[i], i, framings) for i in range(len(images))]
    out = map_in_processes(_read, work, jobs or 0, serial_below=PARALLEL_FROM, chunksize=64)
    if not out:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, bool)
    return np.stack([d for d, _ in out]), np.array([ok for _, ok in out], bool)


def cached_refiled(images: np.ndarray, data_dir: str | os.PathLike, framings: dict) -> tuple[np.ndarray, np.ndarray]:
    """``refile_digits(images)``, stored under ``<data_dir>/cache/refiled/`` and reused while the
    digits, the framings and the pipeline are unchanged. A cache that cannot be read or written
    is rebuilt or skipped with a warning: training goes on either way."""
    if missing := [k for k in FRAMING_KEYS if k not in framings]:
        raise UserError(f"augment.refiled needs {', '.join(missing)} (see configs/augment/robust_files.yaml).")
    framings = {k: framings[k] for k in FRAMING_KEYS}  # the share swapped in (p) is not the readings'
    key = {"v": PIPELINE_VERSION, "framings": framings,
           "digits": hashlib.sha256(np.ascontiguousarray(images, np.uint8).tobytes()).hexdigest()}
    path = Path(data_dir) / "cache" / "refiled" / f"refiled-{key_digest(key)}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return z["digits"], z["ok"]
        except (OSError, ValueError, KeyError) as e:
            log.warning("cached refiled digits %s unreadable (%s); reading them again", path, e)
    log.info("Reading %d training digits as small files through the pipeline (once; cached in %s)",
             len(images), path.parent)
    digits, ok = refile_digits(images, framings)
    log.info("The pipeline found a digit in %d of %d", int(ok.sum()), len(ok))
    store_npz(path, "refiled digits", digits=digits, ok=ok)  # read-only data: train anyway, uncached
    return digits, ok
