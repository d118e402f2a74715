"""Robustness benchmark: MNIST test digits under fixed corruptions, in the spirit of MNIST-C.

MNIST-C (Mu & Gilmer, 2019) scores a classifier on corrupted copies of the test set. Its files
are not fetched here; the corruptions the study's failure points at (geometry, pen, camera,
paper, polarity) are generated locally instead, deterministically, from the first ``n`` test
digits. Each corruption is one registered evaluation set ``mnistc_<name>`` at one fixed
severity, so numbers are comparable across models and runs.

The images are made with numpy/scipy, independently of the torch training augmentation
(``mnist_gen/data/augment.py``), and several severities lie outside its ranges (rotation 20°,
contrast 0.4): the benchmark must not simply replay the training distribution.

Options (``eval_set_options.<set>``): ``n`` digits (default 2,000; the inverted set, which
runs the full photo pipeline at ~50 ms a digit, 500), ``severity`` (replaces the default,
for sweeps; the default is the benchmark), ``seed``. Sets are cached in memory per process.
``mean_corruption_accuracy`` reduces a ``results.json`` ``eval_sets`` dict to one number.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping

import numpy as np
from scipy import ndimage as ndi

from mnist_gen import paths
from mnist_gen.data.mnist import load_mnist
from mnist_gen.evalsets.base import EvalSet, register
from mnist_gen.evalsets.mnist import mnist_raw_dir

PREFIX = "mnistc_"
DEFAULT_N = 2000
DEFAULT_SEED = 0

# -- corruptions: float images in [0, 1] (N, 28, 28), a seeded rng, one severity ----------------


def _affine(img: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map output (row, col) -> input through ``matrix`` about the image centre, bilinear, zero outside."""
    c = (np.array(img.shape) - 1) / 2.0
    offset = c - matrix @ c
    return ndi.affine_transform(img, matrix, offset=offset, order=1, mode="constant", cval=0.0)


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=n)


def rotate(x, rng, severity):
    """Rotation by ±``severity`` degrees (sign random per digit): a tilted page or writer."""
    out = np.empty_like(x)
    for i, s in enumerate(_signs(rng, len(x))):
        out[i] = ndi.rotate(x[i], s * severity, reshape=False, order=1, mode="constant", cval=0.0)
    return out


def shear(x, rng, severity):
    """Horizontal shear ``x += ±severity · y``: italic slant."""
    out = np.empty_like(x)
    for i, s in enumerate(_signs(rng, len(x))):
        out[i] = _affine(x[i], np.array([[1.0, 0.0], [s * severity, 1.0]]))
    return out


def scale(x, rng, severity):
    """Zoom by 1 ± ``severity`` (sign random): a digit smaller or larger than MNIST's 20-px box."""
    out = np.empty_like(x)
    for i, s in enumerate(_signs(rng, len(x))):
        out[i] = _affine(x[i], np.eye(2) / (1.0 + s * severity))
    return out


def translate(x, rng, severity):
    """Shift by ``severity`` px in a random direction: a centre of mass off MNIST's centre."""
    out = np.empty_like(x)
    for i, a in enumerate(rng.uniform(0, 2 * np.pi, len(x))):
        out[i] = ndi.shift(x[i], (severity * np.sin(a), severity * np.cos(a)), order=1, mode="constant", cval=0.0)
    return out


def thicken(x, rng, severity):
    """Grey dilation ``int(severity)`` times with a 3×3 cross: a marker instead of a pen (+2 px per step)."""
    cross = ndi.generate_binary_structure(2, 1)
    out = x
    for _ in range(int(severity)):
        out = np.stack([ndi.grey_dilation(im, footprint=cross, mode="constant", cval=0.0) for im in out])
    return out


def thin(x, rng, severity):
    """Grey erosion with a ``severity``×``severity`` square: a fine pen or a hard pencil."""
    k = int(severity)
    return np.stack([ndi.grey_erosion(im, size=(k, k), mode="constant", cval=0.0) for im in x])


def blur(x, rng, severity):
    """Gaussian blur, sigma = ``severity`` px: an out-of-focus or shaken photo."""
    return np.stack([ndi.gaussian_filter(im, severity, mode="constant") for im in x])


def noise(x, rng, severity):
    """Additive Gaussian noise, std = ``severity`` (of full ink), clipped: sensor noise, paper grain."""
    return np.clip(x + rng.normal(0.0, severity, x.shape), 0.0, 1.0)


def contrast(x, rng, severity):
    """Ink scaled to ``severity`` of its level: a faint pencil or an under-exposed photo."""
    return x * severity


def _line(n_img: int, rng, half_width, intensity, size=28, max_offset=10.0):
    ang = rng.uniform(0, np.pi, n_img)
    off = rng.uniform(-max_offset, max_offset, n_img)
    c = np.arange(size) - (size - 1) / 2
    dist = np.abs(c[None, None, :] * np.cos(ang)[:, None, None] + c[None, :, None] * np.sin(ang)[:, None, None]
                  - off[:, None, None])
    return np.clip(half_width + 0.5 - dist, 0, 1) * intensity


def lines(x, rng, severity):
    """``int(severity)`` thin straight lines at random angles, full ink: ruled paper, crossings."""
    out = x.copy()
    for _ in range(int(severity)):
        out = np.maximum(out, _line(len(x), rng, half_width=0.5, intensity=1.0))
    return out


def grid(x, rng, severity):
    """Graph paper: faint horizontal and vertical lines every 7 px (random phase), brightness ``severity``."""
    period, size = 7, x.shape[-1]
    phase = rng.integers(0, period, (len(x), 2))
    idx = np.arange(size)
    rows = (idx[None, :] - phase[:, :1]) % period == 0  # (N, 28)
    cols = (idx[None, :] - phase[:, 1:]) % period == 0
    paper = (rows[:, :, None] | cols[:, None, :]) * float(severity)
    return np.maximum(x, paper)


def inverted(x, rng, severity, preprocess=None):
    """Dark ink on light paper (``1 - x``), then the photo pipeline ``preprocess.to_mnist``.

    Tests the preprocessing end to end on a known digit: polarity detection, crop, 20-px box,
    centring by mass, stroke normalisation. ``severity`` is the paper's grey level (1 = white).
    A digit the pipeline cannot find becomes a blank image (scored, almost surely wrong),
    never a silent drop.
    """
    from mnist_gen.preprocess import to_mnist

    out, reasons = np.zeros_like(x), []
    for i, im in enumerate(x):
        page = np.round((1.0 - im) * severity * 255).astype(np.uint8)
        res = to_mnist(page, preprocess)
        if res.digit is None:
            reasons.append((i, res.reason))
        else:
            out[i] = res.digit.astype(np.float64) / 255.0
    return out, reasons


#: name -> (corruption, default severity). The defaults *are* the benchmark.
CORRUPTIONS: dict[str, tuple[Callable, float]] = {
    "rotate": (rotate, 20.0),
    "shear": (shear, 0.35),
    "scale": (scale, 0.25),
    "translate": (translate, 3.5),
    "thicken": (thicken, 1),
    "thin": (thin, 2),
    "blur": (blur, 1.0),
    "noise": (noise, 0.2),
    "contrast": (contrast, 0.4),
    "lines": (lines, 1),
    "grid": (grid, 0.5),
    "inverted": (inverted, 1.0),
}
#: Registered set names, benchmark order.
SET_NAMES = [PREFIX + name for name in CORRUPTIONS]
_SMALL_N = {"inverted": 500}

_CACHE: dict[str, EvalSet] = {}


def corrupted_set(corruption: str, data_dir=None, n: int | None = None, severity: float | None = None,
                  seed: int = DEFAULT_SEED, preprocess: Mapping | None = None) -> EvalSet:
    """The first ``n`` MNIST test digits under one corruption, as an ``EvalSet`` (deterministic)."""
    fn, default = CORRUPTIONS[corruption]
    severity = default if severity is None else severity
    n = int(n or _SMALL_N.get(corruption, DEFAULT_N))
    key = json.dumps([corruption, str(data_dir), n, severity, seed, preprocess if corruption == "inverted" else None],
                     sort_keys=True, default=str)
    if key in _CACHE:
        return _CACHE[key]
    m = load_mnist(data_dir or paths.data_dir())
    x = m["x_test"][:n].astype(np.float64) / 255.0
    y = m["y_test"][:n]
    # One stream per corruption: adding a corruption never changes the others' images.
    rng = np.random.default_rng([int(seed), zlib.crc32(corruption.encode())])
    ids = [f"t10k[{i}]" for i in range(len(y))]
    if corruption == "inverted":
        out, failed = fn(x, rng, severity, preprocess=dict(preprocess) if preprocess else None)
        for i, reason in failed:
            ids[i] += f" (blank: {reason})"
    else:
        out = fn(x, rng, severity)
    images = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
    s = EvalSet(PREFIX + corruption, images, y, ids=ids)
    _CACHE[key] = s
    return s


def _loader(corruption: str):
    def load(data_dir=None, n=None, severity=None, seed=DEFAULT_SEED, preprocess=None, **_) -> EvalSet:
        return corrupted_set(corruption, data_dir=data_dir, n=n, severity=severity, seed=seed, preprocess=preprocess)

    load.__doc__ = f"MNIST test under '{corruption}': {CORRUPTIONS[corruption][0].__doc__.splitlines()[0]}"
    return load


for _name in CORRUPTIONS:
    register(PREFIX + _name, f"MNIST test (first {DEFAULT_N}) under the {_name} corruption",
             _SMALL_N.get(_name, DEFAULT_N), mnist_raw_dir)(_loader(_name))


def mean_corruption_accuracy(eval_sets: Mapping, names=None) -> dict:
    """Mean accuracy over the corruption sets present in a results.json ``eval_sets`` dict.

    Returns ``{"mean": float | None, "n_sets": k, "missing": [...], "per_set": {name: acc}}``;
    ``mean`` is over the sets present (``missing`` says which were not scored).
    """
    names = list(names or SET_NAMES)
    per_set = {k: float(eval_sets[k]["accuracy"]) for k in names if k in eval_sets}
    return {
        "mean": float(np.mean(list(per_set.values()))) if per_set else None,
        "n_sets": len(per_set),
        "missing": [k for k in names if k not in per_set],
        "per_set": per_set,
    }
