"""How each framing variant is drawn: a real digit (grey uint8, dark ink on light paper, with the
box of its ink) re-framed the way real image files frame digits. ``render`` is the one entry;
``framing`` names the variants, seeds them and writes the files."""

from __future__ import annotations

import io
from functools import partial

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from mnist_gen.preprocess.normalize import disk, stroke_width


def _resize(g: np.ndarray, side: int) -> np.ndarray:
    h, w = g.shape
    k = side / max(h, w)
    return np.asarray(Image.fromarray(g).resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS))


def _enlarged(g: np.ndarray, k: float) -> np.ndarray:
    """Scaled by ``k`` (bicubic, as a camera's view of a small printed digit is smooth)."""
    size = (max(1, round(g.shape[1] * k)), max(1, round(g.shape[0] * k)))
    return np.asarray(Image.fromarray(g).resize(size, Image.Resampling.BICUBIC))


def crop(g: np.ndarray, box, margin: int) -> np.ndarray:
    y0, x0, y1, x1 = box
    h, w = g.shape
    return g[max(0, y0 - margin) : min(h, y1 + margin), max(0, x0 - margin) : min(w, x1 + margin)]


def _levels(g: np.ndarray) -> tuple[float, float]:
    """(paper, ink) grey levels of a crop: its 90th and 1st percentiles."""
    return float(np.percentile(g, 90)), float(np.percentile(g, 1))


def _ink_share(g: np.ndarray) -> np.ndarray:
    """Each pixel's share of ink: 0 on the paper, 1 at the darkest ink."""
    paper, ink = _levels(g)
    return np.clip((paper - g.astype(np.float32)) / max(paper - ink, 1.0), 0, 1)


def _with_sensor_noise(level: np.ndarray, rng) -> np.ndarray:
    """Grey levels as an 8-bit camera or scanner records them: σ = 2 levels of noise, rounded, clipped."""
    return np.clip(np.round(level + rng.normal(0, 2.0, level.shape)), 0, 255).astype(np.uint8)


def _recolour(g: np.ndarray, paper_new: float, diff: float, rng) -> np.ndarray:
    """Ink share t (0 paper .. 1 darkest ink) re-rendered as ``paper_new - t * diff`` plus sensor noise."""
    t = _ink_share(g)
    return _with_sensor_noise(paper_new - t * diff, rng)


def _with_margin(g: np.ndarray, box, area_frac: float, rng) -> np.ndarray:
    """The digit's box placed (off-centre, at random) on paper so that it covers ``area_frac`` of the image."""
    c = crop(g, box, 0)
    h, w = c.shape
    side = int(np.ceil(np.sqrt(h * w / area_frac)))
    paper, _ = _levels(g)
    out = np.clip(np.round(rng.normal(paper, 2.0, (side, side))), 0, 255).astype(np.uint8)
    top = int(np.clip((side - h) // 2 + rng.integers(-side // 6, side // 6 + 1), 0, side - h))
    left = int(np.clip((side - w) // 2 + rng.integers(-side // 6, side // 6 + 1), 0, side - w))
    out[top : top + h, left : left + w] = c
    return _resize(out, 2000) if side > 2000 else out


def _unevenly_lit(g: np.ndarray, rng) -> np.ndarray:
    """Re-inked on paper whose level runs from 120 to 210 across the image in a random direction.
    Light multiplies: the ink reflects a fixed share (65–80 %) of what its paper would."""
    t = _ink_share(g)
    h, w = g.shape
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    level = 120 + 90 * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    return np.clip(np.round(level * (1 - t * rng.uniform(0.2, 0.35)) + rng.normal(0, 3.0, g.shape)), 0,
                   255).astype(np.uint8)


def _broken(g: np.ndarray, box, rng) -> np.ndarray:
    """A 2-px band of paper across the digit (rows or columns, 25–75 % into its box), then the
    crop to what ink is left with a 1 px margin."""
    y0, x0, y1, x1 = box
    out = g.copy()
    paper, _ = _levels(g)
    if rng.random() < 0.5:
        cut = int(y0 + rng.uniform(0.25, 0.75) * (y1 - y0))
        out[cut : cut + 2] = paper
    else:
        cut = int(x0 + rng.uniform(0.25, 0.75) * (x1 - x0))
        out[:, cut : cut + 2] = paper
    ys, xs = np.nonzero(out < paper - 0.1 * (paper - g.min()))
    return crop(out, (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1), 1) if len(ys) else out


def _on_squared_paper(g: np.ndarray, box, rng) -> np.ndarray:
    """Re-inked on squared paper (ruled, one in three): rules every 0.45–0.95 digit heights,
    1–3 % of it wide, printed 15–40 % as dark as the pen, which covers them; a crop with 0–50 %
    of the digit's height as margin. A digit under 120 px is enlarged first (a photo of it)."""
    k = max(1.0, 120 / max(1, box[2] - box[0]))
    if k > 1:
        g, box = _enlarged(g, k), tuple(int(round(b * k)) for b in box)
    height = box[2] - box[0]
    c = crop(g, box, int(rng.uniform(0, 0.5) * height))
    t = _ink_share(c)
    yy, xx = np.mgrid[0 : c.shape[0], 0 : c.shape[1]]
    width, step = max(1, round(rng.uniform(0.01, 0.03) * height)), rng.uniform(0.45, 0.95) * height
    phase = rng.uniform(0, step, 2)
    rule = (yy + phase[0]) % step < width
    if rng.random() >= 1 / 3:
        rule |= (xx + phase[1]) % step < width
    paper = rng.uniform(180, 235)
    pen = paper * rng.uniform(0.5, 0.8)
    level = paper - np.maximum(t * pen, rule * rng.uniform(0.15, 0.4) * pen)
    return _with_sensor_noise(level, rng)


def _in_bold_pen(g: np.ndarray, box, rng) -> tuple[np.ndarray, tuple]:
    """(the digit written with a wider pen, its ink box): enlarged to 40 px tall (bicubic), the
    ink grown by a disk until the pen is 18–26 % of the digit's height (MNIST's is ~13 %; a
    felt-tip or marker in a small box). A pen already that wide is left as it is."""
    height = max(1, box[2] - box[0])
    pen = rng.uniform(0.18, 0.26) * 40
    c = _enlarged(crop(g, box, int(np.ceil(pen * height / 40))), 40 / height)
    paper, ink = _levels(c)
    r = max(0.0, (pen - stroke_width(c < (paper + ink) / 2)) / 2)
    if r >= 0.5:
        yy, xx = np.mgrid[-int(r) : int(r) + 1, -int(r) : int(r) + 1]
        c = ndi.grey_erosion(c, footprint=yy * yy + xx * xx <= r * r)  # dark ink grows
    ys, xs = np.nonzero(c < (paper + ink) / 2)
    return c, (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


def _in_thin_pen(g: np.ndarray, box, rng) -> tuple[np.ndarray, tuple]:
    """(the digit written with a fine pen, its ink box): enlarged to 150–300 px tall, its strokes
    redrawn along their skeleton 1.5–4 % of its height wide (a fineliner or a ballpoint; MNIST's
    pen is ~13 %), on the digit's own paper and ink levels, anti-aliased as a camera sees it."""
    from skimage.morphology import skeletonize  # the one render that needs it

    c = crop(g, box, 0)
    paper, ink = _levels(c)
    t = _ink_share(_enlarged(c, rng.uniform(150, 300) / c.shape[0]))
    pen = ndi.distance_transform_edt(~skeletonize(t > 0.5)) <= rng.uniform(0.015, 0.04) * t.shape[0] / 2
    share = np.pad(ndi.gaussian_filter(pen.astype(np.float32), 0.6), 4)
    ys, xs = np.nonzero(share > 0.5)
    return np.round(paper - share * (paper - ink)).astype(np.uint8), (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


def _in_form_box(g: np.ndarray, box, rng) -> np.ndarray:
    """Written in a printed box, as on a form: the digit (a small one enlarged to 50–100 px
    first) off-centre inside a square 1.15–1.5 × its longer side, drawn 1–4 % of that wide and
    30–100 % as dark as the pen; cropped at the box or with up to an eighth of it outside."""
    c = crop(g, box, 0)
    t = _ink_share(_enlarged(c, max(1.0, rng.uniform(50, 100) / max(c.shape))))
    h, w = t.shape
    side = int(max(h, w) * rng.uniform(1.15, 1.5))
    lw = max(1, int(side * rng.uniform(0.01, 0.04)))
    n = side + 2 * lw
    digit = np.zeros((n, n), np.float32)
    y = int(np.clip((n - h) // 2 + rng.integers(-(side - h) // 4 - 1, (side - h) // 4 + 1), lw, n - lw - h))
    x = int(np.clip((n - w) // 2 + rng.integers(-(side - w) // 4 - 1, (side - w) // 4 + 1), lw, n - lw - w))
    digit[y : y + h, x : x + w] = t
    frame = np.zeros_like(digit)
    frame[:lw], frame[-lw:], frame[:, :lw], frame[:, -lw:] = 1, 1, 1, 1
    outside = int(rng.integers(0, max(1, side // 8)))
    digit, frame = np.pad(digit, outside), np.pad(frame, outside)
    paper = rng.uniform(180, 240)
    pen = paper * rng.uniform(0.5, 0.8)
    level = paper - np.maximum(digit * pen, frame * rng.uniform(0.3, 1.0) * pen)
    return _with_sensor_noise(level, rng)


def _in_a_row(g: np.ndarray, box, neighbours, rng) -> np.ndarray:
    """Cropped sloppily out of a row of digits: two other digits of the source, scaled to its
    height, written a fifth to a third of that height to its left and right, and the crop
    taking in 10–40 % of the height of each (their strokes cut by the crop's edges)."""
    c = crop(g, box, 0)
    height = c.shape[0]
    paper, ink = _levels(c)
    parts = []
    for ng, nbox in neighbours:
        n = crop(ng, nbox, 0)
        parts.append(_ink_share(_enlarged(n, height / max(1, n.shape[0]))))
    left, right = (p[:height] for p in parts)
    gaps = [max(1, int(rng.uniform(0.2, 0.33) * height)) for _ in range(2)]
    t = np.concatenate([np.pad(left, ((0, height - left.shape[0]), (0, 0))), np.zeros((height, gaps[0])),
                        _ink_share(c), np.zeros((height, gaps[1])),
                        np.pad(right, ((0, height - right.shape[0]), (0, 0)))], axis=1)
    x0 = max(0, left.shape[1] - int(rng.uniform(0.1, 0.4) * height))
    x1 = left.shape[1] + gaps[0] + c.shape[1] + gaps[1] + int(rng.uniform(0.1, 0.4) * height)
    t = np.pad(t[:, x0:x1], ((int(rng.uniform(0, 0.1) * height),) * 2, (0, 0)))
    return _with_sensor_noise(paper - t * (paper - ink), rng)


def _in_shadow(g: np.ndarray, box, rng) -> np.ndarray:
    """Photographed with a hard shadow (the phone, a hand) over 20–60 % of the image: the light
    falls to 40–75 % beyond a straight edge at any angle, softened by a penumbra of 0.5–2 % of
    the side. A photo keeps its own paper around the digit (a 20–50 % margin); a scan's digit is
    enlarged to 60–200 px and put on paper with that margin first."""
    height, margin = box[2] - box[0], rng.uniform(0.2, 0.5)
    if height >= 60:
        level = crop(g, box, int(margin * height)).astype(np.float32)
    else:
        c = crop(g, box, 0)
        paper, ink = _levels(c)
        t = _ink_share(_enlarged(c, rng.uniform(60, 200) / height))
        level = paper - np.pad(t, int(margin * t.shape[0])) * (paper - ink)
    h, w = level.shape
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    d = np.cos(angle) * xx + np.sin(angle) * yy
    shade = (d > np.quantile(d, 1 - rng.uniform(0.2, 0.6))).astype(np.float32)
    shade = ndi.gaussian_filter(shade, rng.uniform(0.005, 0.02) * max(h, w))
    light = 1 - shade * (1 - rng.uniform(0.4, 0.75))
    return _with_sensor_noise(level * light, rng)


def _for_the_pen(g: np.ndarray, box, rng) -> tuple[np.ndarray, float, float]:
    """(ink share of the digit's tight crop, paper, ink) for drawing on it with the writer's pen:
    a small digit enlarged to 60–160 px first, so that a pen stroke has pixels to be drawn in."""
    c = crop(g, box, 0)
    paper, ink = _levels(c)
    return _ink_share(c if c.shape[0] >= 60 else _enlarged(c, rng.uniform(60, 160) / c.shape[0])), paper, ink


def _same_pen(t: np.ndarray, rng) -> float:
    """The writer's pen: 0.7–1.3 × the digit's own stroke, at most an eighth of its height (an 8×8
    UCI digit enlarged is a blur, not a pen)."""
    return max(1.5, min(stroke_width(t > 0.5), t.shape[0] / 8) * rng.uniform(0.7, 1.3))


def _circled(g: np.ndarray, box, rng, left_open: bool = False) -> np.ndarray:
    """Circled with the same pen, as an answer on a form or a numbered item is: an ellipse through
    the corners of the digit's box or up to a fifth wider (a narrow digit's box taken 0.6 × its
    height wide: nobody circles a 1 with a sliver), the pen 0.7–1.3 × the digit's own (at most an
    eighth of its height), 10–40 % of the height of paper outside it (``left_open``: a ring
    that does not close, ``_open_ring``). A small digit is enlarged to 60–160 px first."""
    t, paper, ink = _for_the_pen(g, box, rng)
    h, w = t.shape
    k = np.sqrt(0.5) * rng.uniform(1.0, 1.2)  # 1/√2 of the box: the ellipse through its corners
    ry, rx = k * h, k * max(w, 0.6 * h)
    pen = _same_pen(t, rng)
    out = int(rng.uniform(0.1, 0.4) * h)
    out += 2.5 * pen if left_open else 0  # room for a ring that runs on outward
    ph, pw = int(ry + pen + out - h / 2), int(rx + pen + out - w / 2)
    t = np.pad(t, ((max(0, ph),) * 2, (max(0, pw),) * 2))
    yy, xx = np.mgrid[0 : t.shape[0], 0 : t.shape[1]]
    cy, cx = (t.shape[0] - 1) / 2, (t.shape[1] - 1) / 2
    if left_open:
        ring = _open_ring(yy - cy, xx - cx, ry, rx, pen, rng)
    else:
        ring = np.abs(np.hypot((yy - cy) / ry, (xx - cx) / rx) - 1) * min(ry, rx) < pen / 2
    t = np.maximum(t, ring)
    return _with_sensor_noise(paper - t * (paper - ink), rng)


def _open_ring(dy: np.ndarray, dx: np.ndarray, ry: float, rx: float, pen: float, rng) -> np.ndarray:
    """A ring drawn in one go that does not close, starting anywhere: half of them stop short,
    leaving a gap of 1–3 pens; half run on 15–60° past the start, the pen drifting outward or
    inward over its last quarter turn and the run, to end 1.2–2.5 pens off the ring's line."""
    m, rho = min(ry, rx), np.hypot(dy / ry, dx / rx)
    phi = np.mod(np.arctan2(dy / ry, dx / rx) - rng.uniform(-np.pi, np.pi), 2 * np.pi)  # from the start
    if rng.random() < 0.5:
        gap = rng.uniform(1, 3) * pen / m
        return (np.abs(rho - 1) * m < pen / 2) & (phi > gap / 2) & (phi < 2 * np.pi - gap / 2)
    over, off = np.deg2rad(rng.uniform(15, 60)), rng.uniform(1.2, 2.5) * pen / m * rng.choice([-1, 1])
    ring = np.zeros(rho.shape, bool)
    for turn in (0, 1):  # the angle walked from the start: this turn, and the run past it
        walked = phi + 2 * np.pi * turn
        drift = off * np.clip((walked - 1.5 * np.pi) / (0.5 * np.pi + over), 0, 1)
        ring |= (walked <= 2 * np.pi + over) & (np.abs(rho - 1 - drift) * m < pen / 2)
    return ring


def _underlined(g: np.ndarray, box, rng) -> np.ndarray:
    """Underlined with the same pen, as a total or an answer is: a straight stroke 1.0–1.6 × the
    digit's width (a narrow digit's taken 0.6 × its height, as for ``_circled``) shifted by up to
    15 % of it, tilted up to 4°, touching the digit in one of three, else 5–20 % of its height
    below it; the pen 0.7–1.3 × the digit's own, 10–40 % of the height of paper around. A small
    digit is enlarged to 60–160 px first."""
    t, paper, ink = _for_the_pen(g, box, rng)
    h, w = t.shape
    pen = _same_pen(t, rng)
    width = max(w, 0.6 * h)
    length = width * rng.uniform(1.0, 1.6)
    left = (w - length) / 2 + rng.uniform(-0.15, 0.15) * width  # the line's left end, in the digit's columns
    gap = 0.0 if rng.random() < 1 / 3 else rng.uniform(0.05, 0.2) * h
    rise = np.tan(np.deg2rad(rng.uniform(-4, 4))) * length
    out = int(rng.uniform(0.1, 0.4) * h)
    side = int(max(0.0, -left, left + length - w) + pen) + out
    t = np.pad(t, ((out, int(gap + pen + abs(rise)) + out), (side, side)))
    ay, ax = out + h - 1 + gap + pen / 2, side + left  # its left end's centre, half a pen below the gap
    dy, dx = rise, length
    yy, xx = np.mgrid[0 : t.shape[0], 0 : t.shape[1]].astype(np.float32)
    along = np.clip(((yy - ay) * dy + (xx - ax) * dx) / (dy * dy + dx * dx), 0, 1)
    line = np.hypot(yy - ay - along * dy, xx - ax - along * dx) < pen / 2
    t = np.maximum(t, line)
    return _with_sensor_noise(paper - t * (paper - ink), rng)


def _on_a_desk(g: np.ndarray, box, rng) -> np.ndarray:
    """Photographed as a note lying on a desk: the digit (a small one enlarged to 60–200 px) on a
    sheet of paper 1.5–4 × its height a side, at 160–245 with the pen 35–70 % darker; the sheet
    turned by up to 20° and covering 25–80 % of the photo, a part of it running off the frame one
    time in three; around it a desk 50–140 levels darker, grained along one direction (wood)."""
    height = max(1, box[2] - box[0])
    c = crop(g, box, 0)
    t = _ink_share(c if height >= 60 else _enlarged(c, rng.uniform(60, 200) / height))
    h, w = t.shape
    sh, sw = (int(rng.uniform(1.5, 4) * h) for _ in range(2))
    sh, sw = max(sh, h + 4), max(sw, w + 4)
    sheet = np.zeros((sh, sw), np.float32)
    y, x = int(rng.integers(2, sh - h - 1)), int(rng.integers(2, sw - w - 1))
    sheet[y : y + h, x : x + w] = t
    paper = rng.uniform(160, 245)
    level = paper - sheet * paper * rng.uniform(0.35, 0.7)
    angle = rng.uniform(-20, 20)
    level = ndi.rotate(level, angle, reshape=True, order=1, mode="constant", cval=-1.0)
    on_sheet = ndi.rotate(np.ones((sh, sw), np.float32), angle, reshape=True, order=1, mode="constant") > 0.5
    side = int(np.sqrt(on_sheet.sum() / rng.uniform(0.25, 0.8)))
    H, W = max(side, level.shape[0]), max(side, level.shape[1])
    desk_level = paper - rng.uniform(50, 140)
    grain = ndi.gaussian_filter(rng.normal(0, 1, (H, W)), (rng.uniform(0.5, 2), rng.uniform(8, 40)))
    out = desk_level + rng.uniform(5, 20) * grain / max(float(grain.std()), 1e-6)
    oy, ox = int(rng.integers(0, H - level.shape[0] + 1)), int(rng.integers(0, W - level.shape[1] + 1))
    if rng.random() < 1 / 3:  # part of the sheet runs off the frame
        oy += int(rng.choice([-1, 1]) * rng.uniform(0.1, 0.25) * level.shape[0])
    region = out[max(0, oy) : oy + level.shape[0], max(0, ox) : ox + level.shape[1]]
    part = level[max(0, -oy) : max(0, -oy) + region.shape[0], : region.shape[1]]
    inside = on_sheet[max(0, -oy) : max(0, -oy) + region.shape[0], : region.shape[1]]
    region[inside] = part[inside]
    return _with_sensor_noise(out, rng)


def _in_low_light(g: np.ndarray, box, rng) -> np.ndarray:
    """Photographed in dim light, a phone at high ISO: the digit (a small one enlarged to
    80–300 px) with 5–50 % of its height as margin on each side, a little out of focus, on
    under-exposed paper (50–150) with the pen 30–60 % darker; shot noise (its variance in
    proportion to the level) of σ 8–25 levels on the paper, correlated over 0.5–1.2 px as a
    camera's demosaicing leaves it."""
    height = max(1, box[2] - box[0])
    c = crop(g, box, 0)
    t = _ink_share(c if height >= 80 else _enlarged(c, rng.uniform(80, 300) / height))
    h = t.shape[0]
    t = np.pad(t, [(int(rng.uniform(0.05, 0.5) * h), int(rng.uniform(0.05, 0.5) * h)) for _ in range(2)])
    t = ndi.gaussian_filter(t, rng.uniform(0.003, 0.015) * h)
    paper = rng.uniform(50, 150)
    level = paper * (1 - t * rng.uniform(0.3, 0.6))
    noise = ndi.gaussian_filter(rng.normal(0, 1, t.shape), rng.uniform(0.5, 1.2))
    shot = rng.uniform(8, 25) * np.sqrt(np.maximum(level, 1) / paper)
    return np.clip(np.round(level + shot * noise / noise.std()), 0, 255).astype(np.uint8)


def _phone_crop(g: np.ndarray, box, rng) -> np.ndarray:
    """Several framings at once, as a phone photo cut to one digit combines them: cropped to the
    ink with 0–2 px margin, enlarged to 100–300 px, on paper of any level (60–200) lit from one
    side (± 12.5 %), the pen only 15–50 % darker than its paper, sensor noise of σ 3 levels, and
    saved as a JPEG at quality 50–90 (stored decoded, as a PNG)."""
    c = crop(g, box, int(rng.integers(0, 3)))
    t = _ink_share(_enlarged(c, rng.uniform(100, 300) / max(c.shape)))
    h, w = t.shape
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = ((np.cos(angle) * xx + np.sin(angle) * yy) / max(h, w) + 1) / 2
    paper = rng.uniform(60, 200) * (0.75 + 0.25 * ramp)
    level = paper * (1 - t * rng.uniform(0.15, 0.5)) + rng.normal(0, 3.0, t.shape)
    return _through_jpeg(level, int(rng.integers(50, 91)))


def _defocused_crop(g: np.ndarray, box, rng) -> np.ndarray:
    """A phone photo cut to one digit, out of focus, in a pool of light: cropped to the ink with
    0–3 px margin, enlarged to 60–400 px, defocused (a disk 1–5 % of the side across, a lens's
    blur, not a Gaussian's), on paper at 70–230 darker towards the corners by 0–35 % (a flash or
    a lamp close by: light that varies at the digit's own scale), the pen 18–45 % darker, noise
    σ 2–5 levels, JPEG at quality 35–85 (stored decoded, as a PNG). Written as the held-out probe
    of a paper-lid change that was not kept (README, "Out of focus, the corners darker")."""
    c = crop(g, box, int(rng.integers(0, 4)))
    t = _ink_share(_enlarged(c, rng.uniform(60, 400) / max(c.shape)))
    r = max(1, int(round(rng.uniform(0.01, 0.05) * max(t.shape))))
    lens = disk(r).astype(np.float32)
    t = np.clip(ndi.convolve(t, lens / lens.sum(), mode="nearest"), 0, 1)
    h, w = t.shape
    yy, xx = np.mgrid[0:h, 0:w]
    corner = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)  # 0 at the middle, 1 at a corner
    paper = rng.uniform(70, 230) * (1 - rng.uniform(0, 0.35) * corner)
    level = paper * (1 - t * rng.uniform(0.18, 0.45)) + rng.normal(0, rng.uniform(2, 5), t.shape)
    return _through_jpeg(level, int(rng.integers(35, 86)))


def _written_on_a_page(g: np.ndarray, box, rng, fine: float, tall: tuple, margin: tuple) -> np.ndarray:
    """The digit's ink share, at its own pen or (a share ``fine`` of them) redrawn fine, enlarged
    to ``tall`` px and given a margin of ``margin`` × its height on each side."""
    if rng.random() < fine:
        g, box = _in_thin_pen(g, box, rng)
    c = crop(g, box, 0)
    t = _ink_share(_enlarged(c, rng.uniform(*tall) / c.shape[0]))
    h = t.shape[0]
    return np.pad(t, [(int(rng.uniform(*margin) * h), int(rng.uniform(*margin) * h)) for _ in range(2)])


def _in_pencil(g: np.ndarray, box, rng) -> np.ndarray:
    """Written in pencil, photographed: graphite catches only on the paper's tooth, so strokes
    break into grains and dashes. The digit at its own pen or (half of them) redrawn fine
    (``_in_thin_pen``), 80–300 px tall, 10–40 % of its height as margin on each side; the tooth
    a grain of 0.7–1.6 px, of which the graphite covers 40–80 % under the stroke's core and less
    towards its edges; 40–80 levels darker than the paper (150–240), a little out of focus,
    noise σ 0.5–2 levels, JPEG at quality 75–95 (stored decoded, as a PNG)."""
    t = _written_on_a_page(g, box, rng, fine=0.5, tall=(80, 300), margin=(0.1, 0.4))
    tooth = ndi.gaussian_filter(rng.standard_normal(t.shape), rng.uniform(0.7, 1.6))
    rank = np.argsort(np.argsort(tooth, axis=None)).reshape(t.shape) / tooth.size  # uniform 0..1
    graphite = (t > 0.02) / (1 + np.exp((1 - rng.uniform(0.4, 0.8) * t - rank) / 0.05))
    level = ndi.gaussian_filter(rng.uniform(150, 240) - graphite * rng.uniform(40, 80), rng.uniform(0.3, 0.8))
    return _through_jpeg(level + rng.normal(0, rng.uniform(0.5, 2), t.shape), int(rng.integers(75, 96)))


def _under_a_lamp(g: np.ndarray, box, rng) -> np.ndarray:
    """Photographed under a desk lamp close to the page: the digit at its own pen or (40 %)
    redrawn fine, 70–600 px tall with 5–60 % of its height as margin on each side; the lamp
    0.6–1.6 × the image's side above a point anywhere in its middle 60 %, its light falling off
    as cos⁴ of the angle (the inverse square and the slant), so that the far corner gets 6–78 %
    (median 42 %) of the light under the lamp; paper at 100–235 there, the pen 15–40 % darker,
    a little out of focus, noise σ 1–4, JPEG at quality 50–90 (stored decoded, as a PNG).
    Written as a held-out probe, scored on pipeline version 33 before any change (README,
    "Under a desk lamp")."""
    t = _written_on_a_page(g, box, rng, fine=0.4, tall=(70, 600), margin=(0.05, 0.6))
    h, w = t.shape
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    d2 = (rng.uniform(0.6, 1.6) * max(h, w)) ** 2
    yy, xx = np.mgrid[0:h, 0:w]
    light = (d2 / (d2 + (yy - cy) ** 2 + (xx - cx) ** 2)) ** 2  # cos⁴ of the angle to the lamp
    level = rng.uniform(100, 235) * light * (1 - t * rng.uniform(0.15, 0.4))
    level = ndi.gaussian_filter(level, rng.uniform(0.3, 1.2)) + rng.normal(0, rng.uniform(1, 4), t.shape)
    return _through_jpeg(level, int(rng.integers(50, 91)))


def _through_jpeg(level: np.ndarray, quality: int) -> np.ndarray:
    """Grey levels saved as a phone saves them (8-bit, JPEG at ``quality``) and decoded again."""
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.round(level), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L"))


# The framings one function draws from the digit alone, (grey, box, rng) -> grey, each kept as a PNG.
_DRAWN = {"boxed": _in_form_box, "shadow": _in_shadow, "circled": _circled, "underlined": _underlined,
          "circled_open": partial(_circled, left_open=True), "desk": _on_a_desk, "lowlight": _in_low_light,
          "phone_tight": _phone_crop, "defocus": _defocused_crop, "pencil": _in_pencil, "lamp": _under_a_lamp}


def render(g: np.ndarray, box, variant: str, rng, neighbours=None) -> tuple[np.ndarray, str]:
    """One framing of a digit: (grey uint8 image, 'PNG' or 'JPEG'); ``neighbours`` ((grey, box)
    of two other digits of the source) only for ``row``."""
    height = box[2] - box[0]
    if variant == "native":
        return g, "PNG"
    if variant in ("tight0", "tight2"):
        return crop(g, box, int(variant[-1])), "PNG"
    if variant == "margin":
        return _with_margin(g, box, 0.05, rng), "PNG"
    if variant.startswith("px"):
        return _resize(crop(g, box, max(1, height // 10)), int(variant[2:])), "PNG"
    if variant in ("stretch_bin16", "smooth_bin16"):
        c = crop(g, box, 0)
        # smooth: from the source enlarged 8× first, as a scan at scanner resolution is stretched.
        # Straight from an 8–16 px source the stretch only repeats its pixels: an 8×8 UCI digit
        # comes out as its own grid thresholded, in blocks of 2×2 and more.
        big = _enlarged(c, 8) if variant == "smooth_bin16" else c
        s = np.asarray(Image.fromarray(big).resize((16, 16), Image.Resampling.BOX), np.float32)
        paper, ink = _levels(c)
        return np.where(s < (paper + ink) / 2, 0, 255).astype(np.uint8), "PNG"
    margin = max(1, height // 5)
    if variant == "grey_lowc":
        return _recolour(crop(g, box, margin), 150, rng.uniform(20, 40), rng), "PNG"
    if variant == "dark_lowc":
        return _recolour(crop(g, box, margin), 60, rng.uniform(20, 40), rng), "PNG"
    if variant == "jpeg":
        return crop(g, box, margin), "JPEG"
    if variant == "dark_jpeg32":
        return _resize(_recolour(crop(g, box, max(1, height // 10)), 60, rng.uniform(20, 40), rng), 32), "JPEG"
    if variant == "uneven_tight0":
        return _unevenly_lit(crop(g, box, 0), rng), "PNG"
    if variant == "broken1":
        return _broken(g, box, rng), "PNG"
    if variant == "squared":
        return _on_squared_paper(g, box, rng), "PNG"
    if variant in ("bold_bin16", "bold_px16"):
        return render(*_in_bold_pen(g, box, rng), "stretch_bin16" if variant == "bold_bin16" else "px16", rng)
    if variant == "thin_squared":
        return _on_squared_paper(*_in_thin_pen(g, box, rng), rng), "PNG"
    if variant == "row":
        return _in_a_row(g, box, neighbours, rng), "PNG"
    if variant in _DRAWN:
        return _DRAWN[variant](g, box, rng), "PNG"
    if variant == "uneven_photo":
        c = crop(g, box, 0)
        return _unevenly_lit(_enlarged(c, rng.uniform(40, 160) / max(c.shape)), rng), "PNG"
    raise ValueError(f"unknown framing variant {variant!r}")
