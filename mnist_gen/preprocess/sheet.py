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

A sheet is convex, so its outline is the hull of its paper (version 25): a digit written
against the sheet's edge joins the desk in the photo's two tones and cuts into the paper, and
only the hull gives it back (a scratch probe of MNIST training digits on a desk read 73.5 % at
version 24; 52 of its 56 misses were such digits, with no sheet found). A shadow's lit part is
no sheet, and its hull is checked for what gives that away: its outline is mostly the frame (a
lit strip), the desk's tone lines a good part of its edge (the hull bridging a ragged edge), or
a stroke meeting the edge goes on beyond it, darker than the shade (on a desk a stroke stops at
the paper's edge).

Under a lamp the light falls off across the photo, and the dim side of a sheet is barely lighter
than the lit side of the desk (version 26): the sheet is judged with the light's tilt taken out
(the plane fitted to its paper) and its edge where the two tones meet, not between their overall
levels. And a broad marker on a note little larger than the digit is allowed: the paper's widest
part need be 2.5 × the pen's half-width, not 4 ×, and the pen's half-width 0.3 × the strokes'
extent, not 0.2 × (scratch renderers: 48.0 -> 68.0 % and 77.0 -> 88.0 % read while it was
developed, 76.5 -> 96.0 % on one held out; README).

Version 27: a desk darker than the ink (a pencil on a note on a dark table) splits the ink in the
photo's two tones, or takes none of it, and no sheet was found: the digit is taken from the
sheet's own levels wherever these find more of it. And a wooden desk's streaks beside a stroke
that meets the sheet's edge are no stroke running on: the desk there must be darker than its own
grain could make it, not only darker than a third of the ink's contrast (``check_usps_desk``:
sheets found 1,920 -> 1,956 of 2,007; a desk renderer held out read 84.5 -> 91.5 %; README).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from mnist_gen.preprocess.config import PreprocessConfig
from mnist_gen.preprocess.normalize import resize
from mnist_gen.preprocess.shade import otsu, wide_part

#: Looked for on a copy at most this many px a side, as the form's box is.
SIDE = 256
#: Below this many px a side an image is a scan or a crop, with no room for a desk around a sheet
#: and a legible digit on it (version 26: 48 -> 96; the smallest desk photo of any set is 133 px,
#: and a 62 px side-lit crop of a 6 passed for one, its loop's lit inside the "sheet").
MIN_SIDE = 96
#: On the coarse copy: a stroke on the sheet reaches this many px inside its outline (the hull's
#: rim, where the blurred edge bends, holds slivers of the desk's tone that are no stroke).
INSIDE = 3
#: The desk's tone lines at most this share of the sheet's edge (inside the frame): a digit touches
#: the edge where a stroke meets it; a hull bridging a shadow's ragged edge is lined along it.
EDGE_INKED = 1 / 3
#: A stroke goes on past the edge when the band just outside, around where strokes meet the edge,
#: holds this share more pixels darker than the desk (by ``RUN_ON_INK`` × the ink's contrast on
#: the paper) than the rest of that band: a desk's grain does not, ink in a shadow does.
RUN_ON, RUN_ON_INK = 0.1, 0.3
#: ... and by this many × the desk's grain (its robust σ), past which a desk's own streaks are rare.
RUN_ON_GRAIN = 3.0


def _frame(shape) -> np.ndarray:
    f = np.zeros(shape, bool)
    f[0, :] = f[-1, :] = f[:, 0] = f[:, -1] = True
    return f


def _sheet_mask(g: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """The sheet in the coarse copy ``g`` (its hull: the digit on it included), or None."""
    split = g > otsu(g)
    frame = _frame(g.shape)
    for plain, light in ((split, True), (~split, False)):  # a light sheet on a dark desk, or a dark one on a light desk
        # A textured desk (wood grain) holds streaks of the sheet's tone: only its wide part is a sheet.
        tone = wide_part(plain, cfg.sheet_grain, short=True)
        desk = ~tone
        if desk[frame].mean() < cfg.sheet_desk_frame:  # the desk owns the frame
            continue
        lab, n = ndi.label(tone)
        if n == 0:
            continue
        biggest = 1 + int(np.argmax(ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))))
        sheet = convex_hull_image(lab == biggest)  # convex: the digit inside it, and one against its edge
        if not cfg.sheet_min_area <= sheet.mean() <= 0.9:
            continue
        # The digit: the photo's other tone on the sheet. Unless the sheet's own levels find more of
        # it (past half-way from the paper's level to the sheet's darkest; lightest, in a negative):
        # a desk darker than the ink (a pencil on a note on a dark table) splits it, or takes none.
        inner = ndi.binary_erosion(sheet, iterations=INSIDE)
        if (inner & plain).sum() < 16:
            continue
        ink, pen_tone = sheet & desk, sheet & ~plain
        level = float(np.median(g[inner & plain]))  # the paper's (the photo's split keeps the ink out)
        extreme = float(np.percentile(g[inner], 0.1 if light else 99.9))
        own = sheet & ((g < (level + extreme) / 2) if light else (g > (level + extreme) / 2))
        if (own & inner).sum() > (ink & inner).sum():
            ink = pen_tone = own
        marks = ndi.binary_propagation(ink & inner, mask=ink)
        if marks.sum() < 4:
            continue
        # Paper wide, ink narrow: the sheet's own tone (between the strokes) is wider than the pen by
        # ``sheet_wider`` (a bold digit's ring around a small loop is not), and the desk than the pen
        # (a printed box's line is not).
        pen = float(ndi.distance_transform_edt(pen_tone).max())  # (a small loop's inside is not pen)
        ys, xs = np.nonzero(marks)
        if pen > cfg.sheet_pen * max(np.ptp(ys), np.ptp(xs)):  # marks are strokes, not the paper inside a 0's ring
            continue
        paper, around = sheet & tone & ~ink, desk & ~sheet  # the sheet's own tone, the desk beyond it
        if ndi.distance_transform_edt(paper).max() < cfg.sheet_wider * pen:
            continue
        if ndi.distance_transform_edt(around).max() < 2 * pen:
            continue
        # The light falls off smoothly across a photo (a lamp, a window): the sheet is judged with
        # it taken out, as the plane fitted to the paper's tone away from the strokes' blurred edges
        # (a big digit's fringes are a good share of a small sheet), and where it meets the desk.
        clear = paper & ~ndi.binary_dilation(marks, iterations=INSIDE)
        if clear.sum() < 3:
            continue
        flat = g - _light(g, clear)
        # An edge, not a ramp nor a line: the tones differ as much within 3 px either side as 3-8 px
        # either side (light from one side splits in two at Otsu's threshold, its halves nearly the
        # same just either side of the split; a stroke along the split differs most there).
        d_in, d_out = ndi.distance_transform_edt(sheet), ndi.distance_transform_edt(~sheet)  # the frame is no edge
        rings = [(paper & (d_in > lo) & (d_in <= hi), around & (d_out > lo) & (d_out <= hi))
                 for lo, hi in ((0, 3), (3, 8))]
        if not all(m.any() for pair in rings for m in pair):
            continue
        (near_in, near_out), (far_in, far_out) = ([float(np.median(flat[m])) for m in pair] for pair in rings)
        near, step = abs(near_in - near_out), abs(far_in - far_out)
        if not cfg.sheet_edge * step <= near <= step / cfg.sheet_edge:
            continue
        # One paper: the sheet's tone is even against the edge's step (a shade joined to a digit's
        # strokes is two tones, which no plane of light evens out).
        if np.subtract(*np.percentile(flat[clear], [95, 5])) > 0.5 * step:
            continue
        table, paper_level = float(np.median(g[around])), float(np.median(g[paper]))
        # No stroke runs off the sheet (a digit across a shadow's edge: that is lighting, not a desk):
        # the desk tone just outside the sheet holds no part as narrow as the pen.
        r = int(np.ceil(pen)) + 1
        disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
        narrow = desk & ~ndi.binary_opening(desk, disk, border_value=1)  # the desk runs on past the frame
        edge = ndi.binary_dilation(sheet, disk) & ~sheet
        if (narrow & edge).sum() > 0.1 * marks.sum():
            continue
        if _shadows_edge(g, sheet, marks, table, paper_level):
            continue
        return sheet
    return None


def _light(g: np.ndarray, where: np.ndarray) -> np.ndarray:
    """How the light tilts across ``g``: the plane fitted to its values in ``where`` (one paper),
    less its level; subtracted, so a negative reads as its positive does (least squares with numpy:
    three unknowns need no library)."""
    ys, xs = np.nonzero(where)
    a = np.column_stack([np.ones(len(ys)), ys, xs]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, g[where].astype(np.float64), rcond=None)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return (coef[1] * yy + coef[2] * xx).astype(np.float32)


def _shadows_edge(g: np.ndarray, sheet: np.ndarray, marks: np.ndarray, table: float, paper: float) -> bool:
    """Is the sheet's edge a shadow's: mostly the frame, lined by the desk's tone, or crossed by strokes?"""
    outline = sheet & ~ndi.binary_erosion(sheet, iterations=2)
    ring = outline.copy()
    ring[:3] = ring[-3:] = False  # the frame cuts a sheet running off it: that is no edge
    ring[:, :3] = ring[:, -3:] = False
    if ring.sum() < 0.5 * outline.sum():  # the desk surrounds a sheet; a lit strip of the page is mostly frame
        return True
    touch = marks & ring  # where strokes meet the edge
    if touch.sum() > EDGE_INKED * ring.sum():
        return True
    if not touch.any():
        return False
    band = ndi.binary_dilation(sheet, iterations=4) & ~ndi.binary_dilation(sheet, iterations=1)
    near = ndi.binary_dilation(touch, iterations=4) & band
    rest = band & ~near
    ink = float(np.median(g[marks]))
    # Darker than the desk by more than its own grain could make it (a shade is smooth; a wooden
    # desk's streaks reach a third of the ink's contrast beside a stroke as anywhere else).
    beyond = ~ndi.binary_dilation(sheet, iterations=2)
    grain = 1.4826 * float(np.median(np.abs(g[beyond] - table))) if beyond.any() else 0.0
    darker = np.sign(paper - ink) * (table - g) > max(RUN_ON_INK * abs(paper - ink), RUN_ON_GRAIN * grain)
    near_share = float(darker[near].mean()) if near.any() else 0.0
    rest_share = float(darker[rest].mean()) if rest.any() else 0.0
    return near_share - rest_share > RUN_ON


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
