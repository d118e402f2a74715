"""Ink -> the digit: threshold, ruled lines, the digit's strokes among the marks (not its neighbours' nor
a ring drawn around it), its crop."""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from mnist_gen.preprocess.config import NoDigit, PreprocessConfig
from mnist_gen.preprocess.normalize import box_around, stroke_width
from mnist_gen.preprocess.ring import ring_inside


def threshold_soft(ink: np.ndarray, grain: float, cfg: PreprocessConfig, smoothed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(binary mask, soft ink): the mask finds components, the soft map keeps grey edges.

    Clear ink is at least ``threshold_frac`` × the strongest ink (a stroke's faint halo, a
    faint mark alone, is not a stroke) and stands out from the paper's own noise (``snr`` ×
    the grain: on clean low-contrast paper 20 grey levels are plenty, on grainy paper they are
    not). Fainter ink touching it belongs to it (hysteresis, as in Canny's edges): a stroke
    that fades in the middle (a light pen, the partly covered blocks of an 8×8 block-count
    digit) stays one stroke; a faint rule crossing the digit joins the mask and is then found
    and erased as a line. MNIST's strokes have anti-aliased grey borders; the soft map keeps them.

    On a photo smoothed for its noise (``smoothed``, pipeline version 31), the grain floor can
    reach the clear level itself (the strongest ink at 6–18 × the grain left), and then there
    is no hysteresis at all: the fainter side of a stroke in dim light, lit less or pressed
    lighter, is cut off where it fades, and a 0 reads as its brighter half. There the band is
    kept: touching ink counts down to ``smoothed_band`` × the clear level. Only there: on
    well-lit photos the same band let faint shading join faint marks on blank strips of the
    study's photos (digits in 25 of 116 strips at 0.7, 19 at 0.85, against 14).
    """
    strong = float(np.percentile(ink, 99.9)) if ink.size else 0.0
    low = _floor(grain, cfg)
    high = max(low, cfg.threshold_frac * strong)
    if strong < cfg.min_peak_snr * grain or strong <= high:
        return np.zeros(ink.shape, bool), np.zeros_like(ink)
    if smoothed:
        low = max(min(low, cfg.smoothed_band * high), cfg.min_contrast)
    clear = ink > high
    lab, n = ndi.label(ink > low, structure=np.ones((3, 3)))
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[clear])] = True
    keep[0] = False
    mask = keep[lab]
    hi = max(float(np.percentile(ink[clear], 75)), high + 1e-3)
    lo = 0.5 * high  # grey from here up: a stroke's blurred fringe fades out as MNIST's does
    return mask, np.clip((ink - lo) / (hi - lo), 0, 1).astype(np.float32)


def _floor(grain: float, cfg: PreprocessConfig) -> float:
    """The faintest ink that stands out from the paper: ``snr`` × its grain, and ``min_contrast``."""
    return max(cfg.snr * grain, cfg.min_contrast)


@functools.lru_cache(maxsize=256)  # a handful of (length, angle) pairs per image size, asked for on every image
def _line_footprint(length: int, angle_deg: float, vertical: bool) -> np.ndarray:
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, length)
    off = np.round(t * np.tan(np.deg2rad(angle_deg))).astype(int)
    along = np.round(t).astype(int) - int(np.round(t).min())
    across = off - off.min()
    fp = np.zeros((across.max() + 1, along.max() + 1), bool)
    fp[across, along] = True
    fp = fp.T if vertical else fp
    fp.flags.writeable = False  # shared by every caller through the cache
    return fp


def _opened(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """``ndi.binary_opening(mask, footprint)`` (outside the image is not ink): every placement of
    the footprint that fits in the mask. Written out because scipy visits every offset of the
    footprint while a digit seldom has a straight run that long; stopping at the first offset
    that leaves no placement, and ORing the placements back, reads a small scan in ~70 % of the
    time (``test_line_opening_is_scipys`` checks it equals scipy's)."""
    h, w = mask.shape
    a, b = footprint.shape
    offsets = list(zip(*np.nonzero(footprint), strict=True))
    padded = np.pad(mask, ((a // 2, a - 1 - a // 2), (b // 2, b - 1 - b // 2)))
    fits = np.ones_like(mask)  # the erosion: where the footprint's centre can sit
    for p, q in offsets:
        fits &= padded[p : p + h, q : q + w]
        if not fits.any():
            return fits
    covered = np.zeros_like(padded)  # the dilation: the pixels those placements cover
    for p, q in offsets:
        covered[p : p + h, q : q + w] |= fits
    return covered[a // 2 : a // 2 + h, b // 2 : b // 2 + w]


def find_lines(ink: np.ndarray, grain: float, mask: np.ndarray, soft: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Mask of ruled/squared-paper lines and straight page edges to erase.

    Candidates: straight runs of ink longer than ``line_frac`` of the image (an opening with a
    long thin line, on a max-pooled copy about 80 px wide, at a few angles) in all the ink above
    the grain, thin across: narrower than 1.5 % of the image or, where more, 0.7 × the pen's
    width (in a tight crop a rule is wide beside the image but still thinner than the pen). The
    digit is what is left without the candidates of *both* directions (on squared paper the
    columns must not count as the digit's width when the rows are judged). A candidate is
    erased when either
    * it is much longer than that digit (``line_over_digit`` × its extent): a rule crosses the
      whole page, a 7's bar or a 1's stem in a tight crop is as long as the digit and stays; or
    * it crosses the image from border to border and is faint beside the digit's strokes (at
      most ``line_faint`` × their median ink): in a crop of squared paper the rules are no
      longer than the digit, but they are printed lighter than the pen; they reached the mask
      only by touching the digit (hysteresis) and would make it a tangle of loops.
    Where a pen stroke crosses a rule its run across the rule is long, so the digit is not cut in two.
    A thin pen's strokes are no wider than the rules: ``_faint_bands`` finds those rules by their
    faintness alone.
    """
    h, w = ink.shape
    none = np.zeros(ink.shape, bool)
    if not cfg.line_frac or cfg.line_frac <= 0:
        return none
    f = max(1, max(h, w) // 80)  # lines survive max-pooling; about 80 px is enough to see them
    ph, pw = -h % f, -w % f
    # Lines are looked for in all the ink above the paper's grain, not only in what touches
    # clear ink: a faint rule is then seen whole, not as the stubs the digit's strokes hold on to.
    weak = ink > _floor(grain, cfg)
    small = np.pad(weak, ((0, ph), (0, pw))).reshape((h + ph) // f, f, (w + pw) // f, f).any(axis=(1, 3))
    found = []  # (axis along the run, coarse straight runs, thin candidate pixels)
    runs = []  # (axis along the run, coarse straight runs), thin or not
    across = None  # "thin" means narrower than this (px)
    for vertical in (False, True):
        length = int(cfg.line_frac * (small.shape[0] if vertical else small.shape[1]))
        if length < 8 or _extent(small, 0 if vertical else 1) < length:
            continue  # no ink runs that far: no line (most photos stop here)
        coarse = np.zeros_like(small)
        for ang in cfg.line_angles:
            coarse |= _opened(small, _line_footprint(length, ang, vertical))
        if not coarse.any():
            continue
        coarse = np.repeat(np.repeat(ndi.binary_dilation(coarse), f, 0), f, 1)[:h, :w]
        runs.append((0 if vertical else 1, coarse))
        if across is None:  # only images with long straight runs pay for the pen's width
            across = max(5, int(round(0.015 * max(h, w))), int(round(0.7 * stroke_width(soft))))
        thin = ink - ndi.grey_opening(ink, size=(1, across) if vertical else (across, 1))
        cand = coarse & weak & (thin > 0.6 * ink)
        if cand.any():
            found.append((0 if vertical else 1, coarse, cand))
    lines = _faint_bands(ink, weak, mask, runs, cfg) if runs and cfg.faint_bands else none.copy()
    if found:
        rest = mask & ~ndi.binary_dilation(np.logical_or.reduce([c for _, _, c in found]), iterations=2)
        rest = _drop_specks(rest, cfg)
        stroke = float(np.median(ink[rest])) if rest.any() else 0.0
        for axis, coarse, cand in found:
            extent = _extent(rest, axis)
            # A line's run is measured on the whole straight run (``coarse``), across the strokes
            # that cut its thin part in pieces: a rule crossing a 1 is one rule, not two stubs.
            lab, n = ndi.label(coarse, structure=np.ones((3, 3)))
            for i, sl in enumerate(ndi.find_objects(lab), start=1):
                run = sl[axis].stop - sl[axis].start
                mine = cand & (lab == i)
                if not mine.any():
                    continue
                faint = float(np.median(ink[mine])) <= cfg.line_faint * stroke
                if run >= cfg.line_over_digit * max(extent, 1) or (_crosses(sl, axis, ink.shape[axis]) and faint):
                    lines |= mine
    if lines.any():
        lines = ndi.binary_dilation(lines) & (ink > 0)
    return lines


def _faint_bands(ink: np.ndarray, weak: np.ndarray, mask: np.ndarray, runs: list, cfg: PreprocessConfig) -> np.ndarray:
    """The bare stretches of the straight runs that cross the image from border to border and are
    faint beside the digit's other strokes, however wide they are (a mask to erase).

    A rule is printed lighter than the pen, but not always thinner: under a thin pen (a
    fineliner, a ballpoint photographed close) the rules of squared paper are as wide as the
    strokes, and ``find_lines``' width test keeps them; joined to the digit they make a tangle
    of loops. Faintness alone tells them apart, measured against the strokes that lie in no
    straight run (the same pen, the same blur), so a bold or thin 1 or a 7's bar crossing a
    tight crop is compared with its own digit's curves, and is kept when the digit has none.
    Ruled paper is a family of lines: one faint band alone may be the digit's own light stroke
    (a 7's bar written lightly, crossing its tight crop), so bands are erased only two or more
    at a time. A band is erased only across its bare stretches, where its core stays below
    halfway to the strokes: where the pen crosses or runs along it (and the blurred fringe of a
    stroke lying along it: an 8×8 digit enlarged), the pen and the paper around it stay.
    """
    none = np.zeros(ink.shape, bool)
    straight = np.logical_or.reduce([coarse for _, coarse in runs])
    # Darkness is compared core to core: a thin stroke's pixels are mostly its blurred fringe,
    # so the median over all of them sits far below its core, a faint rule's far less so.
    cores = mask & ~straight & (ink >= ndi.maximum_filter(ink, size=3))
    if not cores.any():
        return none
    stroke = float(np.median(ink[cores]))
    bands = []
    for axis, coarse in runs:
        lab, _ = ndi.label(coarse, structure=np.ones((3, 3)))
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            if not _crosses(sl, axis, ink.shape[axis]):
                continue
            px = (lab[sl] == i) & weak[sl]
            if not px.any():
                continue
            core = np.where(px, ink[sl], 0).max(axis=1 - axis)  # the band's core, all along it
            level = float(np.median(core[core > 0]))
            width = np.median((px & (ink[sl] >= np.expand_dims(core, 1 - axis) / 2)).sum(axis=1 - axis))
            if level <= cfg.line_faint * stroke and width <= cfg.rule_max_width * max(ink.shape):
                band = none.copy()
                band[sl] = px & np.expand_dims(core < (level + stroke) / 2, 1 - axis)
                bands.append(band)
    return np.logical_or.reduce(bands) if len(bands) >= 2 else none


def _crosses(sl: tuple, axis: int, side: int) -> bool:
    """A run's box reaches both borders along ``axis`` (within 3 % of the side: a faint end)."""
    edge = max(1, round(0.03 * side))
    return sl[axis].start <= edge and sl[axis].stop >= side - edge


def _extent(mask: np.ndarray, axis: int) -> int:
    idx = np.nonzero(mask.any(axis=1 - axis))[0]
    return int(idx[-1] - idx[0] + 1) if len(idx) else 0


def _drop_specks(mask: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    area = np.bincount(lab.ravel(), minlength=n + 1)
    keep = area >= max(4.0, cfg.speck_frac * area[1:].max())
    keep[0] = False
    return keep[lab]


def _component_table(mask: np.ndarray, soft: np.ndarray, speck_frac: float):
    """(labels, the components bigger than a speck: label, area, ink mass, centre, box).

    Specks are left out before their rows are built: a photo's paper grain gives thousands.
    """
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return lab, []
    at = np.flatnonzero(lab)  # the marks' pixels only (sums in the same order as over the whole image)
    which = lab.ravel()[at]
    area = np.bincount(which, minlength=n + 1)
    mass = np.bincount(which, weights=soft.ravel()[at], minlength=n + 1)
    ys, xs = np.divmod(at, mask.shape[1])
    cy = np.bincount(which, weights=ys, minlength=n + 1) / np.maximum(area, 1)
    cx = np.bincount(which, weights=xs, minlength=n + 1) / np.maximum(area, 1)
    objs = ndi.find_objects(lab)
    kept = np.flatnonzero(area[1:] >= max(4.0, speck_frac * float(area[1:].max()))) + 1
    return lab, [
        {"label": int(i), "area": float(area[i]), "mass": float(mass[i]), "com": (cy[i], cx[i]), "slc": objs[i - 1]}
        for i in kept
    ]


def _touches_frame(c: dict, shape: tuple[int, int]) -> bool:
    (ys, xs), (h, w) = c["slc"], shape
    return ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w


def _edge_like(c: dict, shape: tuple[int, int]) -> bool:
    """Hugs a border: runs along it over a third of its length and reaches into the image less
    than half as far (each as a share of the image's side). A page edge, a table, a shadow lie
    along the border; a digit's body touching the frame of a tight crop reaches across the
    image, and must not lose to a detached piece of itself (a 4's broken-off arm)."""
    (ys, xs), (h, w) = c["slc"], shape
    span_x, span_y = (xs.stop - xs.start) / w, (ys.stop - ys.start) / h
    touches_tb = ys.start == 0 or ys.stop == h
    touches_lr = xs.start == 0 or xs.stop == w
    return (touches_tb and span_x > 1 / 3 and span_y < span_x / 2) or (touches_lr and span_y > 1 / 3 and span_x < span_y / 2)


def _row_neighbours(group: list[dict], main: dict, shape: tuple[int, int], cfg: PreprocessConfig) -> list[dict]:
    """The pieces of ``group`` that are the next digits in a row of writing, cropped sloppily:
    cut by the left or right border and clear of the digit by a column of paper at least
    ``neighbour_gap`` × its height wide, while the digit itself reaches neither border.

    The digit's columns are its main stroke's and those of the pieces above or below them (a
    5's flag, a broken bar). Both conditions keep a digit's own pieces: cut by the border, the
    crop is tight on that side and the digit reaches it too; a stroke broken by a faint or
    skipped stretch of pen leaves a narrower gap than the space between two written digits.
    """
    if not cfg.neighbour_gap:
        return []
    w = shape[1]
    ys, xs = main["slc"]
    y0, y1, x0, x1 = ys.start, ys.stop, xs.start, xs.stop
    grown = True
    while grown:  # the box only grows, so this ends
        grown = False
        for c in group:
            cy, cx = c["slc"]
            if cx.start < x1 and cx.stop > x0 and (cx.start < x0 or cx.stop > x1 or cy.start < y0 or cy.stop > y1):
                y0, y1, x0, x1 = min(y0, cy.start), max(y1, cy.stop), min(x0, cx.start), max(x1, cx.stop)
                grown = True
    edge = max(1, round(0.03 * w))  # "reaches the border": within 3 % of it (its faint fringe may be below the mask)
    if x0 < edge or x1 > w - edge:
        return []
    gap = cfg.neighbour_gap * (y1 - y0)
    return [c for c in group if (c["slc"][1].start == 0 and x0 - c["slc"][1].stop >= gap)
            or (c["slc"][1].stop == w and c["slc"][1].start - x1 >= gap)]


def _underline(group: list[dict], cfg: PreprocessConfig) -> set[int]:
    """The label of the writer's underline, if the group's lowest piece is one: a flat bar (4 ×
    wider than tall or more) whose middle lies below the rest of the group, ``underline`` × the
    rest's width or wider, under a rest that is a digit's shape (at least half as tall as wide)
    and size (at least 0.4 × the bar's length tall): a flat scribble in pieces, or a dot over a
    bar, is not a digit over a line (census, version 37: a squashed USPS 2). A digit's own
    bars lie above (a 5's flag, a 7's bar) or are joined to it (a 2's base); an underline
    touching the digit is one mark with it and stays."""
    if not cfg.underline or len(group) < 2:
        return set()
    bar = max(group, key=lambda c: c["slc"][0].stop)
    rest = _as_one([c for c in group if c is not bar])
    (by, bx), (ry, rx) = bar["slc"], rest["slc"]
    flat = 4 * (by.stop - by.start) <= bx.stop - bx.start
    below = (by.start + by.stop) / 2 >= ry.stop
    tall = ry.stop - ry.start
    upright = 2 * tall >= rx.stop - rx.start and tall >= 0.4 * (bx.stop - bx.start)
    if flat and below and upright and bx.stop - bx.start >= cfg.underline * (rx.stop - rx.start):
        return {bar["label"]}
    return set()


def choose_digit(mask: np.ndarray, soft: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Boolean mask of the digit: the main component plus the pieces that belong to it.

    Specks (dust, paper grain) are dropped by size. Among the rest the one with the most ink,
    mildly favouring the centre, is the digit, or a stroke broken by the pen into pieces
    (``_broken_stroke``). Components hugging the frame (page edges, a
    table, shadows) are heavily down-weighted, but only when something else does not touch
    the frame: in a tight crop every stroke touches it, and nothing is a page edge. Nearby
    pieces join the digit (a 5's flag, a stroke broken by a ruled line), except the pieces of
    the next digits in a row of writing, cut by the crop's left and right edges
    (``_row_neighbours``). A digit drawn inside a ring (circled, touching it or not) is read
    without it (``ring.ring_inside``). Raises ``NoDigit`` when nothing credible is left.
    """
    h, w = mask.shape
    lab, comps = _component_table(mask, soft, cfg.speck_frac)
    if not comps:
        raise NoDigit("no digit found: the image holds no ink mark larger than a speck")
    inside = ring_inside(comps, lab, soft, cfg)
    if inside is not None:  # a circled digit: the ring is not part of it
        return choose_digit(mask & inside, soft, cfg)
    big = max(c["mass"] for c in comps)
    framed = any(not _touches_frame(c, (h, w)) for c in comps if c["mass"] >= 0.1 * big)
    diag = float(np.hypot(h, w))
    for c in comps:
        d = np.hypot(c["com"][0] - h / 2, c["com"][1] - w / 2) / diag
        c["edge"] = framed and _edge_like(c, (h, w))
        c["score"] = c["mass"] * np.exp(-((d / 0.5) ** 2)) * (cfg.edge_penalty if c["edge"] else 1.0)
    members = _broken_stroke(comps, lab, mask, cfg)
    main = _as_one(members)
    ys, xs = main["slc"]
    size = max(ys.stop - ys.start, xs.stop - xs.start)
    m = cfg.group_margin * size
    y0, y1, x0, x1 = ys.start - m, ys.stop + m, xs.start - m, xs.stop + m
    group = list(members)
    taken = {c["label"] for c in members}
    for c in comps:
        cy, cx = c["slc"]
        if c["label"] in taken or c["edge"] or c["mass"] < 0.02 * main["mass"]:
            continue
        if cy.start < y1 and cy.stop > y0 and cx.start < x1 and cx.stop > x0:
            group.append(c)
    others = {c["label"] for c in _row_neighbours(group, main, (h, w), cfg)} | _underline(group, cfg)
    keep = [c["label"] for c in group if c["label"] not in others]
    chosen = np.zeros(int(lab.max()) + 1, bool)
    chosen[keep] = True
    digit = chosen[lab]
    dys, dxs = ndi.find_objects(digit.astype(np.int32))[0]
    longest = max(dys.stop - dys.start, dxs.stop - dxs.start)
    if longest < max(4, cfg.min_digit_frac * min(h, w)):
        raise NoDigit(
            "no digit found: the largest ink mark is too small to be a digit (blank page or specks)"
        )
    loops = count_loops(digit[dys, dxs], min_area=max(4.0, cfg.speck_frac * float(digit.sum())))
    if loops > cfg.max_loops:
        raise NoDigit(
            f"no digit found: the largest mark is a tangle with {loops} loops (noise or texture, not a digit)",
            marks=True,
        )
    total = sum(c["mass"] for c in comps if not (c["edge"] or c["label"] in others))
    share = float(soft[digit].sum()) / max(total, 1e-6)
    if share < cfg.min_digit_ink_share:
        raise NoDigit(
            f"no digit found: the ink is scattered over many marks (largest holds {share:.0%}; noise or several objects)",
            marks=True,
        )
    return digit


def _broken_stroke(comps: list[dict], lab: np.ndarray, mask: np.ndarray, cfg: PreprocessConfig) -> list[dict]:
    """The main mark: the largest piece (by score), or the pieces of one stroke broken by the pen
    (pencil on the paper's tooth, a dry marker) where together they score higher: pieces each
    within ``stroke_gap`` × the stroke's width of the next (pipeline version 33).

    Without it a digit in pencil was read as its largest piece and those near it (a 3's lower
    curve, half a 0): the group around the main mark reaches a share of *its* size, and one
    piece of a broken stroke is small. A whole digit's pieces (a 5's flag) are in its group
    either way, and the next digits in a row are not chained: cut by the crop's left or right
    edge, they are ``_row_neighbours``'s to judge, and may stand as close as a stroke is broken.
    """
    best = max(comps, key=lambda c: c["score"])
    if not cfg.stroke_gap:
        return [best]
    reach = cfg.stroke_gap * stroke_width(mask) / 2  # each piece reaches half the gap
    win = box_around(mask, int(np.ceil(reach)) + 1)  # the same chains, for the ink's box alone
    near, _ = ndi.label(ndi.distance_transform_edt(~mask[win]) <= reach, structure=np.ones((3, 3)))
    chains: dict[int, list[dict]] = {}
    w = mask.shape[1]
    for c in comps:
        ys, xs = c["slc"]
        if c["edge"] or xs.start == 0 or xs.stop == w or c["mass"] < 0.02 * best["mass"]:
            continue  # as the group leaves out what is this much lighter than the main mark
        at = np.unravel_index(np.argmax(lab[ys, xs] == c["label"]), (ys.stop - ys.start, xs.stop - xs.start))
        chain = int(near[ys.start + at[0] - win[0].start, xs.start + at[1] - win[1].start])
        chains.setdefault(chain, []).append(c)
    chain = max(chains.values(), key=lambda ch: sum(c["score"] for c in ch), default=[best])
    # Itself a credible digit, as every digit must be (``min_digit_ink_share`` of the ink): on a
    # page of grain or texture, chains of specks lie everywhere and none holds that much.
    ink = sum(c["mass"] for c in comps if not c["edge"])
    if sum(c["mass"] for c in chain) < cfg.min_digit_ink_share * ink:
        return [best]
    return chain if sum(c["score"] for c in chain) > best["score"] else [best]


def _as_one(pieces: list[dict]) -> dict:
    """Pieces as one mark: their ink summed, their boxes joined."""
    ys = slice(min(c["slc"][0].start for c in pieces), max(c["slc"][0].stop for c in pieces))
    xs = slice(min(c["slc"][1].start for c in pieces), max(c["slc"][1].stop for c in pieces))
    return {"mass": sum(c["mass"] for c in pieces), "slc": (ys, xs)}


def count_loops(mask: np.ndarray, min_area: float) -> int:
    """Enclosed background regions (the holes of 0, 6, 8, 9) bigger than a speck."""
    lab, n = ndi.label(~np.pad(mask, 1))  # the padded border joins all outside background into one
    if n <= 1:
        return 0
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    outside = lab[0, 0]
    return int(sum(1 for i, a in enumerate(sizes, start=1) if i != outside and a >= min_area))


def crop_to_digit(soft: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """Keep only the digit's ink (plus its grey fringe) inside its bounding box — MNIST's first step."""
    box = box_around(digit, 2)
    keep = ndi.binary_dilation(digit[box], iterations=2)
    ys, xs = ndi.find_objects(keep.astype(np.int32))[0]
    return np.where(keep, soft[box], 0)[ys, xs]
