"""Per-set statistics of 28×28 digits (pure functions of arrays)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage as ndi

from mnist_gen.reporting.eda.constants import CLASSES, SIZE


def ink_mask(images: np.ndarray, level: int = 128) -> np.ndarray:
    """Boolean (N, 28, 28): pixels at least ``level`` bright (MNIST's cores are 250–255)."""
    return np.asarray(images) >= level


def ink_coverage(images: np.ndarray, level: int = 128) -> np.ndarray:
    """Fraction of each image's pixels that are ink, (N,) in [0, 1]."""
    m = ink_mask(images, level)
    return m.reshape(len(m), -1).mean(axis=1) if len(m) else np.zeros(0)


def stroke_width(images: np.ndarray, level: int = 128, upsample: int = 4) -> np.ndarray:
    """Stroke width in pixels per image, (N,); NaN for an image without ink.

    Distance transform (EDT) of the ink mask read on its medial axis: the pixels where the
    distance to the background is a local maximum, i.e. the stroke's centre line, where it
    equals half the stroke's width. At 28×28 that half-width is quantised to whole pixels,
    so the image is first enlarged ``upsample``× (bilinear, pixel-area aligned) and
    thresholded there: width = 2 · median(EDT on axis) / upsample. Exact for hard-edged
    strokes of whole-pixel width, within 1/upsample px for anti-aliased ones.
    """
    out = np.full(len(images), np.nan)
    for i, img in enumerate(np.asarray(images)):
        big = ndi.zoom(img.astype(np.float32), upsample, order=1, grid_mode=True, mode="grid-constant")
        m = big >= level
        if not m.any():
            continue
        edt = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
        axis = m & (edt >= ndi.maximum_filter(edt, size=3))
        out[i] = 2.0 * float(np.median(edt[axis])) / upsample
    return out


def bbox_size(images: np.ndarray, level: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(height, width) in pixels of each image's ink bounding box; 0 for an image without ink."""
    m = ink_mask(images, level)
    rows, cols = m.any(axis=2), m.any(axis=1)

    def extent(a: np.ndarray) -> np.ndarray:
        first = a.argmax(axis=1)
        last = a.shape[1] - 1 - a[:, ::-1].argmax(axis=1)
        return np.where(a.any(axis=1), last - first + 1, 0)

    return extent(rows), extent(cols)


def center_of_mass_offset(images: np.ndarray, level: int = 128) -> np.ndarray:
    """Distance (px) of the ink's intensity-weighted centre of mass from the field centre, (N,).

    Only ink pixels count, so a grey background (naive photos) does not pull it to the centre.
    MNIST is centred by mass by construction: its offsets are below a pixel.
    """
    imgs = np.asarray(images, dtype=np.float64)
    w = np.where(ink_mask(imgs, level), imgs, 0.0)
    total = w.sum(axis=(1, 2))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (w * yy).sum(axis=(1, 2)) / total
        cx = (w * xx).sum(axis=(1, 2)) / total
    c = (SIZE - 1) / 2
    return np.where(total > 0, np.hypot(cy - c, cx - c), np.nan)


def background_level(images: np.ndarray, border: int = 2) -> np.ndarray:
    """Mean brightness of the ``border``-pixel frame, (N,): 0 for MNIST, paper grey for naive photos."""
    imgs = np.asarray(images, dtype=np.float64)
    if not len(imgs):
        return np.zeros(0)
    frame = np.ones((SIZE, SIZE), bool)
    frame[border:-border, border:-border] = False
    return imgs[:, frame].mean(axis=1)


def set_statistics(images: np.ndarray, level: int = 128) -> dict[str, np.ndarray]:
    """Every per-image statistic of ``STAT_LABELS`` for one set, each (N,)."""
    h, w = bbox_size(images, level)
    return {
        "ink_coverage": 100.0 * ink_coverage(images, level),
        "stroke_width": stroke_width(images, level),
        "bbox_height": h.astype(float),
        "bbox_width": w.astype(float),
        "com_offset": center_of_mass_offset(images, level),
        "background": background_level(images),
    }


def summarize(stats: Mapping[str, np.ndarray]) -> dict[str, dict[str, float | None]]:
    """Median and quartiles of each statistic (NaNs ignored; None when nothing is left)."""
    out = {}
    for k, v in stats.items():
        v = np.asarray(v, dtype=float)
        v = v[~np.isnan(v)]
        if v.size == 0:
            out[k] = {"median": None, "q1": None, "q3": None, "n": 0}
        else:
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            out[k] = {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(v.size)}
    return out


def mean_digits(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean image per class, float (10, 28, 28) in 0..255 (NaN for an absent class), and counts (10,)."""
    images = np.asarray(images, dtype=np.float64)
    labels = np.asarray(labels)
    means = np.full((CLASSES, SIZE, SIZE), np.nan)
    counts = np.zeros(CLASSES, dtype=np.int64)
    for k in range(CLASSES):
        sel = labels == k
        counts[k] = int(sel.sum())
        if counts[k]:
            means[k] = images[sel].mean(axis=0)
    return means, counts


def class_agreement(mnist_emb: np.ndarray, mnist_labels: np.ndarray, emb: np.ndarray, labels: np.ndarray,
                    k: int = 10) -> float | None:
    """Share of projected points whose ``k`` nearest MNIST points in the embedding mostly carry
    their own label: "lands in its own class's cluster". None for an empty set."""
    emb, labels = np.asarray(emb), np.asarray(labels)
    if len(emb) == 0 or len(mnist_emb) == 0:
        return None
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(mnist_emb))).fit(np.asarray(mnist_emb), np.asarray(mnist_labels))
    return float((knn.predict(emb) == labels).mean())
