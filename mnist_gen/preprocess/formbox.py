"""A form's printed box around the digit: find it, so that what is inside it is read.

Digits are often written in a box printed on a form (NIST's own digits came from such
forms), and a crop of the field keeps the box. Read whole, the box breaks the pipeline's
one assumption about framing, that the paper owns the frame: where the crop is at the box
its line is the frame and the ink's polarity comes out reversed, and where some paper is
outside, the box joins the digit as one more stroke (``check_*_boxed``: the default read
84–86 % of such digits). A box is not a stroke: it is four straight lines, one along each
border, with bare paper between them and the digit. Found, the inside is read instead;
if nothing is read there (the "box" was a digit's own outline: a square 0 cropped tight),
the whole image is read as before.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnist_gen.preprocess.config import PreprocessConfig
from mnist_gen.preprocess.normalize import resize

#: Looked for on a copy at most this many px a side: a line 1 % of the side wide stays 2–3 px.
SIDE = 256


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True."""
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0], strict=True))


def _line_from_border(cover: np.ndarray, cfg: PreprocessConfig) -> int | None:
    """Index just inside the outermost line along one border (``cover``: the share of each
    row, from the border inward, that is line-like), or None.

    The line is the first run of rows mostly covered (``form_line_cover``) within
    ``form_box_depth`` of the side, thinner than ``form_line_max`` of it, with bare paper
    after it (a row covered less than a fifth as much): the digit does not touch the box.
    """
    n = len(cover)
    depth = max(1, int(cfg.form_box_depth * n))
    runs = _runs(cover[:depth] >= cfg.form_line_cover)
    if not runs:
        return None
    start, stop = runs[0]
    if stop - start > max(1, cfg.form_line_max * n) or stop >= n or cover[stop] > 0.2 * cfg.form_line_cover:
        return None
    return int(stop)


def inside_printed_box(gray: np.ndarray, cfg: PreprocessConfig) -> tuple[slice, slice] | None:
    """(rows, columns) of ``gray`` inside a printed box around the digit, or None.

    A box: along each of the four borders a straight line across the image's middle 80 %
    (corners left out: the lines meet there), all departing from the paper the same way,
    with paper inside them, some ink inside that paper (the digit) and no line across it.
    """
    if not cfg.form_box_depth or min(gray.shape) < 8:
        return None
    h0, w0 = gray.shape
    k = min(1.0, SIDE / max(h0, w0))
    g = gray if k == 1.0 else resize(gray, (round(h0 * k), round(w0 * k)), Image.Resampling.BOX)
    h, w = g.shape
    paper = float(np.median(g))  # the paper inside the box owns most of the image
    dev = g - paper
    lo, hi = np.percentile(dev, [0.5, 99.5])
    strongest = max(-lo, hi)
    if strongest < cfg.min_contrast * max(paper, cfg.min_paper):
        return None
    mid_y, mid_x = slice(h // 10, h - h // 10), slice(w // 10, w - w // 10)
    for sign in (-1.0, 1.0):  # dark lines (a pen's form) or light ones (a negative)
        # Line-like: a quarter of the strongest departure (a printed line 30 % as dark as the pen
        # counts; the paper's grain, at a few % of the pen's contrast, does not).
        ink = sign * dev > 0.25 * strongest
        rows, cols = ink[:, mid_x].mean(axis=1), ink[mid_y, :].mean(axis=0)
        top, bottom = _line_from_border(rows, cfg), _line_from_border(rows[::-1], cfg)
        left, right = _line_from_border(cols, cfg), _line_from_border(cols[::-1], cfg)
        if None in (top, bottom, left, right) or top >= h - bottom or left >= w - right:
            continue
        inside = ink[top : h - bottom, left : w - right]
        # No line runs through the inside: on squared paper the "box" is one cell of a grid
        # whose other lines cross the digit (a digit's own bar stops short of a box's sides).
        crossed = (inside.mean(axis=1) >= 0.9).any() or (inside.mean(axis=0) >= 0.9).any()
        if inside.size and inside.mean() > 0.005 and not crossed:  # some ink inside: an empty box is no digit's
            return (slice(int(np.ceil(top / k)), int(np.floor((h - bottom) / k))),
                    slice(int(np.ceil(left / k)), int(np.floor((w - right) / k))))
    return None
