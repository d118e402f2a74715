"""A cropped digit -> MNIST's construction: stroke width, 20-px box keeping aspect, centre of mass in 28×28."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from mnist_gen.preprocess.config import PreprocessConfig, as_config


def scale_to_unit(a: np.ndarray) -> np.ndarray:
    """Numbers → [0, 1] by the range they evidently use (1, 255, 65535, else their own span).

    Stretching every image to its own min/max would turn a blank page's sensor noise into
    full-contrast "ink"; using the nominal range keeps faint things faint.
    """
    a = np.asarray(a, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, np.float32)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    a = np.where(finite, a, np.where(np.isnan(a), np.median(a[finite]), np.clip(a, lo, hi)))
    if lo >= 0 and hi <= 1:
        out = a
    elif lo >= 0 and hi <= 255:
        out = a / 255.0
    elif lo >= 0 and hi <= 65535:
        out = a / 65535.0
    else:
        # Halved first (exact for normal floats): the span between float64's extremes overflows to
        # inf, and inf / inf is NaN (found by the property test on arrays).
        out = (a / 2 - lo / 2) / (hi / 2 - lo / 2) if hi > lo else np.zeros_like(a)
    return np.clip(out, 0, 1).astype(np.float32)


def resize(a: np.ndarray, shape: tuple[int, int], resample=Image.Resampling.LANCZOS) -> np.ndarray:
    """Float image resize with Pillow (its filters widen their support when shrinking: true anti-aliasing)."""
    h, w = max(1, int(shape[0])), max(1, int(shape[1]))
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F").resize((w, h), resample)
    )


def disk(radius: float) -> np.ndarray:
    """A filled disk of ``radius`` px (at least half a pixel), as a boolean footprint."""
    r = max(0.5, float(radius))
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    return (yy**2 + xx**2) <= r * r + 1e-6


def box_around(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    """The slices of ``mask``'s True pixels' bounding box grown by ``pad`` px (within the array),
    any number of dimensions; ``mask`` must hold a True pixel.

    A morphology step reaching ``pad`` px gives the same answer on this window as on the whole
    array (nothing outside it is True, and the array's own border is the window's there),
    for a fraction of the work when the ink is a small part of a large photo.
    """
    axes = range(mask.ndim)
    out = []
    for ax in axes:
        idx = np.flatnonzero(mask.any(axis=tuple(a for a in axes if a != ax)))
        out.append(slice(max(0, int(idx[0]) - pad), int(idx[-1]) + 1 + pad))
    return tuple(out)


def stroke_width(img: np.ndarray, level: float = 0.5) -> float:
    """Mean stroke width in px: 2 × area / boundary length (a thin stroke of width w and
    length L has area wL and two edges of length L)."""
    m = img > level
    if not m.any():
        return 0.0
    m = m[box_around(m, 1)]
    boundary = m & ~ndi.binary_erosion(m)
    return 2.0 * m.sum() / max(1, boundary.sum())


def saturate_ink(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Scale so stroke cores are fully white, as in MNIST (most ink pixels are 250–255).

    Low-resolution sources (UCI's 8×8 block counts, blurred scans) arrive as grey blobs;
    a model trained on MNIST reads faint strokes as weak evidence.
    """
    if cfg.saturate_quantile is None or img.size == 0 or img.max() <= 0:
        return img
    ink = img[img > 0.2 * img.max()]
    level = float(np.quantile(ink, cfg.saturate_quantile))
    return np.clip(img / max(level, 1e-6), 0, 1)


def normalize_stroke(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Thicken or thin strokes toward MNIST's stroke-to-size ratio.

    A classifier trained on MNIST has only seen strokes about 2–3 px wide in a 20-px box
    (~13 % of the box). A fine pen photographed large shrinks to hairlines, a fat marker on
    a small digit to a blob; grey dilation/erosion with a disk moves the width back toward
    MNIST's without changing the shape. Runs on a 4×-box-size copy, so at 20 px it is smooth.
    """
    if cfg.stroke_ratio is None or img.size == 0:
        return img
    w = stroke_width(img)
    if w <= 0:
        return img
    target = cfg.stroke_ratio * max(img.shape)
    if abs(target - w) <= cfg.stroke_tolerance * target:
        return img
    change = float(np.clip(target - w, -cfg.stroke_max_thin * w, cfg.stroke_max_thicken * w))
    radius = abs(change) / 2
    if radius < 0.5:
        return img
    pad = int(np.ceil(radius)) + 1
    padded = np.pad(img, pad)
    op = ndi.grey_dilation if change > 0 else ndi.grey_erosion
    out = op(padded, footprint=disk(radius))
    if change < 0 and out.max() < 0.5:  # thinning would erase the digit: keep it as it is
        return img
    return out


def _bbox(img: np.ndarray, level: float) -> tuple[slice, slice] | None:
    m = img > level
    return box_around(m, 0) if m.any() else None


def fit_box(img: np.ndarray, box: int) -> np.ndarray:
    """Longest side → ``box`` px keeping the aspect ratio, anti-aliased (NIST → MNIST's 20×20)."""
    h, w = img.shape
    k = box / max(h, w)
    return np.clip(resize(img, (max(1, round(h * k)), max(1, round(w * k)))), 0, 1)


def center_by_mass(img: np.ndarray, size: int) -> np.ndarray:
    """Place in a ``size``×``size`` field with the centre of mass at the centre (MNIST's rule),
    shifting by whole pixels as MNIST did, never pushing ink off the field."""
    h, w = img.shape
    out = np.zeros((size, size), np.float32)
    cy, cx = ndi.center_of_mass(img) if img.sum() > 0 else ((h - 1) / 2, (w - 1) / 2)
    top = int(np.clip(round(size / 2 - 0.5 - cy), 0, size - h))
    left = int(np.clip(round(size / 2 - 0.5 - cx), 0, size - w))
    out[top : top + h, left : left + w] = img
    return out


def _to_uint8(img: np.ndarray) -> np.ndarray:
    peak = float(img.max())
    if peak <= 0:
        return np.zeros(img.shape, np.uint8)
    return np.round(np.clip(img / peak, 0, 1) * 255).astype(np.uint8)


def normalize_digit(img, cfg: PreprocessConfig | Mapping | None = None, *, level: float = 0.05) -> np.ndarray:
    """Bright-ink-on-dark array (any scale) → 28×28 uint8 by MNIST's construction.

    Crop to the ink's bounding box, normalise the stroke width, fit the longest side to
    20 px with anti-aliasing, centre the mass in 28×28. USPS, UCI digits and cropped photo
    digits all go through this one function so they are comparable.
    """
    cfg = as_config(cfg)
    x = scale_to_unit(img)
    bb = _bbox(x, level * max(float(x.max()), 1e-6))
    if bb is None:
        return np.zeros((cfg.size, cfg.size), np.uint8)
    x = x[bb] / max(float(x.max()), 1e-6)
    work = 4 * cfg.box  # enough resolution for morphology, small enough to be instant
    h, w = x.shape
    k = work / max(h, w)
    x = np.clip(resize(x, (max(1, round(h * k)), max(1, round(w * k)))), 0, 1)
    x = normalize_stroke(saturate_ink(x, cfg), cfg)
    bb = _bbox(x, 0.02)
    if bb is not None:
        x = x[bb]
    return _to_uint8(center_by_mass(fit_box(x, cfg.box), cfg.size))
