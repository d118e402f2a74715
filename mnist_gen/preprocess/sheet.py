"""A sheet of paper lying on a desk: find the sheet, so that what is written on it is read.

A phone photo of a note often shows what the sheet lies on around it (a desk, a table, a
lap). That breaks the pipeline's one assumption about framing, that the paper owns the
frame: the desk owns it, and the whole sheet departs from it, so the sheet is read as the
ink (a scratch probe of MNIST digits on a sheet covering 40–85 % of a photo: 9–20 % read).

A sheet is not a stroke: it is one wide area of one tone that the other tone (the desk)
surrounds on the frame, and what it holds of the other tone is narrow (the digit's strokes),
with no narrow mark running off it. Found, the sheet alone is read: cropped to its box, the
desk around it painted in the sheet's tone, so the paper owns the frame again. If nothing is
read there, the whole image is read as before (``pipeline.to_mnist``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from mnist_gen.preprocess.config import PreprocessConfig
from mnist_gen.preprocess.normalize import resize
from mnist_gen.preprocess.shade import otsu, wide_part

#: Looked for on a copy at most this many px a side, as the form's box is.
SIDE = 256
#: Below this many px a side an image is a scan or a crop, with no room for a desk around a sheet.
MIN_SIDE = 48


def _frame(shape) -> np.ndarray:
    f = np.zeros(shape, bool)
    f[0, :] = f[-1, :] = f[:, 0] = f[:, -1] = True
    return f


def _sheet_mask(g: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """The sheet in the coarse copy ``g`` (its holes filled: the digit inside it), or None."""
    split = g > otsu(g)
    frame = _frame(g.shape)
    for plain in (split, ~split):  # a light sheet on a dark desk, or a dark one on a light desk
        # A textured desk (wood grain) holds streaks of the sheet's tone: only its wide part is a sheet.
        tone = wide_part(plain, cfg.sheet_grain, short=True)
        desk = ~tone
        if desk[frame].mean() < cfg.sheet_desk_frame:  # the desk owns the frame
            continue
        lab, n = ndi.label(tone)
        if n == 0:
            continue
        biggest = 1 + int(np.argmax(ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))))
        sheet = ndi.binary_fill_holes(lab == biggest)
        if not cfg.sheet_min_area <= sheet.mean() <= 0.9:
            continue
        marks = sheet & desk  # the other tone on the sheet: the digit
        if marks.sum() < 4:
            continue
        # Paper wide, ink narrow: the sheet's own tone (between the strokes) is wider than the pen by
        # ``sheet_wider`` (a bold digit's ring around a small loop is not), and the desk than the pen
        # (a printed box's line is not).
        pen = float(ndi.distance_transform_edt(sheet & ~plain).max())  # (a small loop's inside is not pen)
        ys, xs = np.nonzero(marks)
        if pen > cfg.sheet_pen * max(np.ptp(ys), np.ptp(xs)):  # marks are strokes, not the paper inside a 0's ring
            continue
        if ndi.distance_transform_edt(sheet & tone).max() < cfg.sheet_wider * pen:
            continue
        if ndi.distance_transform_edt(desk & ~sheet).max() < 2 * pen:
            continue
        # An edge, not a ramp: the two tones meet in a step (light from one side splits in two at
        # Otsu's threshold, and its two halves are nearly the same just either side of the split).
        band = ndi.binary_dilation(sheet, iterations=3) & ~ndi.binary_erosion(sheet, iterations=3)
        inner, outer = band & sheet & tone, band & desk & ~sheet
        if not inner.any() or not outer.any():
            continue
        near_in, near_out = float(np.median(g[inner])), float(np.median(g[outer]))
        paper, table = g[sheet & tone], float(np.median(g[desk & ~sheet]))
        step = abs(float(np.median(paper)) - table)
        if abs(near_in - near_out) < cfg.sheet_edge * step:
            continue
        # One paper: the sheet's tone is even (a shade joined to a digit's strokes is two tones).
        if np.subtract(*np.percentile(paper, [95, 5])) > 0.5 * step:
            continue
        # No stroke runs off the sheet (a digit across a shadow's edge: that is lighting, not a desk):
        # the desk tone just outside the sheet holds no part as narrow as the pen.
        r = int(np.ceil(pen)) + 1
        disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
        narrow = desk & ~ndi.binary_opening(desk, disk, border_value=1)  # the desk runs on past the frame
        edge = ndi.binary_dilation(sheet, disk) & ~sheet
        if (narrow & edge).sum() > 0.1 * marks.sum():
            continue
        return sheet
    return None


def sheet_on_desk(gray: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """``gray`` cropped to a sheet lying on a desk, the desk painted in the sheet's tone; or None."""
    if not cfg.sheet_min_area or min(gray.shape) < MIN_SIDE:
        return None
    h0, w0 = gray.shape
    k = min(1.0, SIDE / max(h0, w0))
    g = gray if k == 1.0 else resize(gray, (round(h0 * k), round(w0 * k)), Image.Resampling.BOX)
    sheet = _sheet_mask(ndi.gaussian_filter(g, 1.0), cfg)
    if sheet is None:
        return None
    # The sheet's edge (blurred, shaded by its own lift off the desk) goes with the desk.
    sheet = ndi.binary_erosion(sheet, iterations=2)
    if not sheet.any():
        return None
    full = resize(sheet.astype(np.float32), (h0, w0), Image.Resampling.NEAREST) > 0.5
    ys, xs = np.nonzero(full)
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    paper = float(np.median(gray[full]))
    return np.where(full, gray, paper)[box]
