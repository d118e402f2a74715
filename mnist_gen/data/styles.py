"""Writing styles MNIST lacks, drawn onto MNIST's own training digits.

MNIST's writers were American: their 1 is a bare stroke, their 7 has no crossbar, their 9 a
curved tail. Continental writers add a flag and a foot to the 1, cross the 7 and write the 9
with a straight stem, and MNIST-trained models misread them (a flagged 1 as 7, a crossed 7
as 3, a straight-stemmed 9 as 3). The open-topped 4 is not drawn: it is already most of
MNIST's 4s, and cutting a closed 4 open damaged more digits than it styled. ``style_digits``
draws those strokes onto training digits of the matching class, found by simple geometry on
the digit itself (its box, the hole of its loop, its stem), so the styled copy keeps the
writer's own shape and pen. In training, training digits only; the one evaluation use is the
``check_styled_*`` sets, MNIST *test* digits styled with a seed of their own, which measure
whether a style survives a framing and are never used to choose a model.

Each styled copy is re-centred by its centre of mass (MNIST's rule), since a new stroke moves it.
Digits whose geometry cannot be read (a 9 without a closed loop, say) keep no styled copy.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

SUPER = 4  # strokes are drawn at 4× and box-reduced: anti-aliased edges like MNIST's


def _stroke_width(mask: np.ndarray) -> float:
    """2 × area / boundary length: the mean width of a digit's strokes (about 2–3 px in MNIST)."""
    boundary = mask & ~ndi.binary_erosion(mask)
    return 2.0 * mask.sum() / max(1, boundary.sum())


def _draw(img: np.ndarray, segments, width: float) -> np.ndarray:
    """Draw line segments ((x0, y0), (x1, y1)) in pixel units onto a copy of ``img`` (max-combined)."""
    size = img.shape[0]
    canvas = Image.new("L", (size * SUPER, size * SUPER), 0)
    d = ImageDraw.Draw(canvas)
    w = max(1, round(width * SUPER))
    for (x0, y0), (x1, y1) in segments:
        pts = [((x0 + 0.5) * SUPER, (y0 + 0.5) * SUPER), ((x1 + 0.5) * SUPER, (y1 + 0.5) * SUPER)]
        d.line(pts, fill=255, width=w)
        r = w / 2  # round caps, as a pen leaves
        for x, y in pts:
            d.ellipse([x - r, y - r, x + r, y + r], fill=255)
    line = np.asarray(canvas.resize((size, size), Image.Resampling.BOX))
    return np.maximum(img, line)


def _recentre(img: np.ndarray) -> np.ndarray:
    """Shift by whole pixels so the centre of mass sits at the centre, as MNIST placed its digits."""
    if img.sum() == 0:
        return img
    cy, cx = ndi.center_of_mass(img.astype(np.float64))
    c = (img.shape[0] - 1) / 2
    return ndi.shift(img, (round(c - cy), round(c - cx)), order=0, mode="constant", cval=0)


def _clip_pt(x: float, y: float, size: int) -> tuple[float, float]:
    return float(np.clip(x, 1, size - 2)), float(np.clip(y, 1, size - 2))


def _box(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return ys.min(), ys.max(), xs.min(), xs.max()


def _mean_x(mask: np.ndarray, rows: slice) -> float | None:
    ys, xs = np.nonzero(mask[rows])
    return float(xs.mean()) if len(xs) else None


def _largest_hole(mask: np.ndarray):
    lab, n = ndi.label(~mask)
    if n < 2:
        return None
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])))
    holes = [(int((lab == i).sum()), i) for i in range(1, n + 1) if i not in border]
    if not holes:
        return None
    area, i = max(holes)
    return (lab == i) if area >= 3 else None


def continental_one(img, rng) -> np.ndarray | None:
    """A 1 with a flag (down-left from the top) and, often, a foot (a bar under the stem)."""
    m = img > 127
    y0, y1, x0, x1 = _box(m)
    h = y1 - y0 + 1
    if h < 10:
        return None
    w = _stroke_width(m) * rng.uniform(0.8, 1.1)
    xt = _mean_x(m, slice(y0, y0 + 2))
    xb = _mean_x(m, slice(y1 - 1, y1 + 1))
    segs = []
    if rng.random() < 0.85:
        length, ang = rng.uniform(0.25, 0.45) * h, math.radians(rng.uniform(25, 60))
        segs.append(((xt, y0), _clip_pt(xt - length * math.cos(ang), y0 + length * math.sin(ang), img.shape[0])))
    if not segs or rng.random() < 0.5:
        a, b = rng.uniform(0.15, 0.3) * h, rng.uniform(0.15, 0.3) * h
        segs.append((_clip_pt(xb - a, y1, img.shape[0]), _clip_pt(xb + b, y1, img.shape[0])))
    return _recentre(_draw(img, segs, w))


def crossed_seven(img, rng) -> np.ndarray | None:
    """A 7 with a bar across the middle of its stem."""
    m = img > 127
    y0, y1, x0, x1 = _box(m)
    h, wid = y1 - y0 + 1, x1 - x0 + 1
    if h < 10:
        return None
    y = int(round(y0 + rng.uniform(0.45, 0.62) * h))
    xc = _mean_x(m, slice(y, y + 1))
    if xc is None:
        return None
    length = max(6.0, rng.uniform(0.35, 0.6) * wid)
    tilt = math.tan(math.radians(rng.uniform(-8, 8)))
    shift = rng.uniform(-0.1, 0.15) * length
    xa, xb = xc + shift - length / 2, xc + shift + length / 2
    seg = (_clip_pt(xa, y - tilt * length / 2, img.shape[0]), _clip_pt(xb, y + tilt * length / 2, img.shape[0]))
    return _recentre(_draw(img, [seg], _stroke_width(m) * rng.uniform(0.8, 1.1)))


def straight_nine(img, rng) -> np.ndarray | None:
    """A 9 whose tail is a straight stem from the right of its loop, instead of MNIST's curve."""
    m = img > 127
    hole = _largest_hole(img > 64)
    if hole is None:
        return None
    y0, y1, x0, x1 = _box(m)
    hy0, hy1, hx0, hx1 = _box(hole)
    w = _stroke_width(m)
    cut = int(math.ceil(hy1 + w + 1))
    if cut >= y1 - 4:  # no tail below the loop to replace
        return None
    out = img.copy()
    out[cut:] = 0
    right = m[hy0 : hy1 + 1, hx1:]
    xs = np.nonzero(right.any(axis=0))[0]
    x_stem = hx1 + (xs[len(xs) // 2] if len(xs) else w)
    slant = math.tan(math.radians(rng.uniform(-10, 6))) * (y1 - (hy0 + hy1) / 2)
    top = ((x_stem, (hy0 + hy1) / 2), _clip_pt(x_stem + slant, y1, img.shape[0]))
    return _recentre(_draw(out, [top], w * rng.uniform(0.85, 1.1)))


STYLES = {1: continental_one, 7: crossed_seven, 9: straight_nine}


def style_digits(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(styled copies uint8 (N, 28, 28), bool (N,) where a styled copy exists).

    Deterministic in ``seed``; a digit of another class, or whose geometry cannot be read,
    gets its own image back and ``False``.
    """
    out = np.array(images, dtype=np.uint8, copy=True)
    ok = np.zeros(len(labels), bool)
    rng = np.random.default_rng(seed)
    for i, y in enumerate(np.asarray(labels)):
        fn = STYLES.get(int(y))
        if fn is None:
            continue
        styled = fn(images[i], rng)
        if styled is not None and styled.any():
            out[i], ok[i] = styled, True
    return out, ok
