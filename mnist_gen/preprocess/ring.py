"""A ring drawn around the digit (a circled answer, a box drawn by hand): its inside is read without
it, whether the digit stands clear of the ring (``_ring_with_paper_between``, pipeline version 19)
or touches it and is one mark with it, or the ring is drawn thick and close (``_oval_ring``,
version 38), or left open by up to three pens (``_bridged``, version 39)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops

from mnist_gen.preprocess.config import PreprocessConfig
from mnist_gen.preprocess.normalize import disk, stroke_width


def ring_inside(comps: list[dict], lab: np.ndarray, soft: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """The inside of a ring drawn around the digit, or None (``comps`` and ``lab``: the image's
    marks, as ``ink.choose_digit`` tables them)."""
    if not cfg.ring_inside:
        return None
    marks = np.zeros(int(lab.max()) + 1, bool)  # label -> is one of the marks (not a speck)
    marks[[c["label"] for c in comps]] = True
    inside = _ring_with_paper_between(comps, lab, marks, soft, cfg)
    if inside is None and cfg.ring_outline:
        inside = _oval_ring(comps, lab, marks, soft, cfg)
    return inside


def _ring_with_paper_between(comps: list[dict], lab: np.ndarray, marks: np.ndarray, soft: np.ndarray,
                             cfg: PreprocessConfig) -> np.ndarray | None:
    """A ring is a mark with a hole holding other marks, paper between, that carry at least a tenth
    of its ink and reach over a third of the hole's height; the ring itself is a curve, not an
    area (its ink covers at most half of what it encloses). A 0 with a dot or a speck in its
    loop stays a 0 (too small); paper texture in a loop is specks, not marks."""
    big = max(c["mass"] for c in comps)
    for c in comps:
        if c["mass"] < 0.1 * big:
            continue
        ys, xs = c["slc"]
        own = lab[ys, xs] == c["label"]
        holes, n = ndi.label(ndi.binary_fill_holes(own) & ~own)
        if n == 0 or own.sum() > (holes > 0).sum():  # the ring's ink over half of what it encloses
            continue
        inside = marks[lab[ys, xs]] & ~own & (holes > 0)  # other marks in its holes
        ink = soft[ys, xs]
        for k in np.unique(holes[inside]):
            hole = holes == k
            if _holds_a_digit(inside & hole, hole, ink, own, cfg):
                out = np.zeros(lab.shape, bool)
                out[ys, xs] = hole
                return out
    return None


def _holds_a_digit(content: np.ndarray, room: np.ndarray, ink: np.ndarray, ring: np.ndarray, cfg: PreprocessConfig) -> bool:
    """What is inside a ring is a digit: a tenth of the ring's ink (``ring_inside``) or more,
    reaching over a third of the room's height (a dot in a 0 is not)."""
    rows, height = np.nonzero(content.any(axis=1))[0], np.nonzero(room.any(axis=1))[0]
    return (len(rows) > 0 and ink[content].sum() >= cfg.ring_inside * ink[ring].sum()
            and rows[-1] - rows[0] > (height[-1] - height[0]) / 3)


def _oval_ring(comps: list[dict], lab: np.ndarray, marks: np.ndarray, soft: np.ndarray, cfg: PreprocessConfig,
               rays: int = 180) -> np.ndarray | None:
    """The inside of a ring found by its outline, or None: a ring the digit touches (one mark with
    it), or one drawn thick and close around a narrow digit (its ink more than what it encloses,
    which the rule of paper between refuses as no curve).

    The ring is the largest mark's outline: the mark with its holes filled is an oval (the ellipse of its
    moments covers it, and it the ellipse, 90 % alike or more), and along every ray from its
    middle but a twentieth the first ink met is a curve near the outline, thinner than half the
    oval's smaller radius (a filled blob is no ring). Inside the curve's inner edge lies the
    digit: it fills the oval's middle (a 0's own wobbles reach in from its edge: without this,
    the census of a first try read five thin 0s under a desk lamp as 1 or 6) and holds to the rule of a ring with
    paper between (``_holds_a_digit``). A 0 is a ring with nothing inside; a 6, 8 or 9 has no
    oval outline (an 8's waist, a 6's open hook). A 0 drawn twice round, its second loop inside
    the first, is read as that loop (MNIST test at 108 px: 6 of the 10,000 digits, all 0s, are
    taken for a ring; 5 still read as 0, one as 4).

    A ring left open (it stops short of its start) has no hole to fill: when the mark's outline is
    no oval, it is tried again with gaps up to three pens wide closed (``_bridged``), and the rays
    may then miss the curve along one arc of up to three pens (``_one_gap``; not a closed outline's:
    allowed there, a thick touching ring's rays read the digit's strokes as its pen and cut the
    digit). MNIST test at 108 px: 7 of the 10,000 taken for a ring, the 6 above and a 2 whose
    loop nearly closes, read as a 2 as before."""
    mark = max(comps, key=lambda c: c["mass"])
    ys, xs = mark["slc"]
    own = lab[ys, xs] == mark["label"]
    held = marks[lab[ys, xs]]  # the ring's own ink and any mark it holds
    solid = ndi.binary_fill_holes(own)
    fit, opened = _oval_fit(own, solid), False
    if fit is None and cfg.ring_open:
        fit, opened = _oval_fit(own, _bridged(own, solid)), True  # a ring left open: no hole to fill
    if fit is None:
        return None
    cy, cx, th, a, b, r = fit
    # Rays from the middle, walked inward from 1.3 × the ellipse in half-pixel steps; at least
    # ``rays``, and about a pixel apart where they meet the curve, so a gap in it counts at its width.
    rays = max(rays, int(2 * np.pi * a * 1.3))
    ang = np.linspace(0, 2 * np.pi, rays, endpoint=False)[:, None]
    dy, dx = np.sin(ang), np.cos(ang)
    reach = 1.0 / np.hypot((dy * np.cos(th) + dx * np.sin(th)) / a, (-dy * np.sin(th) + dx * np.cos(th)) / b)
    t = reach * np.linspace(1.3, 0, int(2.6 * a) + 2)[None, :]
    py, px = np.round(cy + t * dy).astype(int), np.round(cx + t * dx).astype(int)
    within = (py >= 0) & (py < own.shape[0]) & (px >= 0) & (px < own.shape[1])
    py, px = py.clip(0, own.shape[0] - 1), px.clip(0, own.shape[1] - 1)
    ink = own[py, px] & within
    step = reach[:, 0] * 1.3 / (t.shape[1] - 1)
    first = np.argmax(ink, axis=1)
    met = ink.any(axis=1) & (first * step <= 0.4 * reach[:, 0])  # the first ink near the outline
    if not met.any():
        return None
    run = np.cumprod(ink[np.arange(rays)[:, None], np.clip(first[:, None] + np.arange(t.shape[1]), 0, t.shape[1] - 1)], axis=1)
    pen = float(np.median(run[met].sum(axis=1) * step[met]))
    if opened:  # its opening: the one arc where the rays may miss it
        met = met | _one_gap(~met, reach[:, 0] * 2 * np.pi / rays, 3 * pen)
    if met.mean() < 0.95:
        return None  # not closed
    if pen > 0.5 * b:
        return None  # a filled blob's edge, not a curve
    room = r <= 1 - (pen + 2) / b  # inside the curve's inner edge, clear of it
    if not (held & (r <= 0.5)).any():
        return None  # nothing in the middle: a 0's own wobbles reach into the room, a digit fills it
    if not _holds_a_digit(held & room, room, soft[ys, xs], own & ~room, cfg):
        return None
    out = np.zeros(lab.shape, bool)
    out[ys, xs] = room
    return out


def _oval_fit(own: np.ndarray, solid: np.ndarray) -> tuple | None:
    """(cy, cx, orientation, a, b, each pixel's ellipse radius r: 1 on the ellipse) of a mark's
    outline ``solid`` (the mark with what it encloses) when that is an oval with room inside:
    90 % alike or more with the ellipse of its moments; else None."""
    if solid.sum() < 1.1 * own.sum():
        return None  # no room inside
    p = regionprops(solid.astype(np.uint8))[0]
    (cy, cx), th = p.centroid, p.orientation  # orientation: the long axis's angle from the rows
    a, b = p.axis_major_length / 2, p.axis_minor_length / 2
    if b < 4:
        return None
    yy, xx = np.indices(own.shape, dtype=np.float32)
    r = np.hypot(((yy - cy) * np.cos(th) + (xx - cx) * np.sin(th)) / a,
                 (-(yy - cy) * np.sin(th) + (xx - cx) * np.cos(th)) / b)  # 1 on the ellipse
    oval = r <= 1
    if (oval & solid).sum() < 0.9 * (oval | solid).sum():
        return None  # the outline is no oval
    return cy, cx, th, a, b, r


def _one_gap(missed: np.ndarray, arc: np.ndarray, width: float) -> np.ndarray:
    """The widest run of ``missed`` rays around the circle (each ray ``arc`` px of the outline
    apart), when its arc is at most ``width``: a ring's one opening; else nothing."""
    if missed.all() or not missed.any():
        return np.zeros_like(missed)
    k = int(np.argmin(missed))  # start the walk on a met ray, so no run wraps around the end
    m, a = np.roll(missed, -k), np.roll(arc, -k)
    label, n = ndi.label(m)
    lengths = ndi.sum(a, label, np.arange(1, n + 1))
    best = int(np.argmax(lengths)) + 1
    return np.roll(label == best, k) if lengths[best - 1] <= width else np.zeros_like(missed)


def _bridged(own: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """The mark with what it would enclose were its gaps up to three pens wide closed (a closing
    by a disk of radius 1.5 pens), for a ring left open; ``solid``: the mark with its holes filled.
    The closing runs on the mark shrunk until its pen is ~2 px (a disk of 3 px): its cost then does
    not grow with the photo."""
    f = max(1, int(stroke_width(own) / 2))
    h, w = own.shape
    small = np.pad(own, ((0, -h % f), (0, -w % f))).reshape(-(-h // f), f, -(-w // f), f).any(axis=(1, 3))
    rad = max(1.0, 1.5 * stroke_width(small))
    k = int(np.ceil(rad)) + 1
    closed = ndi.binary_closing(np.pad(small, k), disk(rad))[k:-k, k:-k]
    return np.repeat(np.repeat(ndi.binary_fill_holes(closed), f, axis=0), f, axis=1)[:h, :w] | solid
