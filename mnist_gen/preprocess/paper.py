"""The paper: where it is, how grainy, which way the ink departs from it; and the ink relative to it.

One mechanism for every framing. A digit image is paper (a smooth surface: even, or lit from
one side) plus ink (strokes darker, or lighter, than the paper). The paper is estimated first,
robustly, from the image's frame; the ink is whatever stands out from it by more than the
paper's own grain. Nothing assumes a margin, a size, a polarity or a contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from mnist_gen.preprocess.config import PreprocessConfig
from mnist_gen.preprocess.normalize import box_around, resize, stroke_width
from mnist_gen.preprocess.polarity import frame_mask, ink_is_dark, light_out
from mnist_gen.preprocess.shade import has_shadow, levelled, otsu, wide_part


def _coarse(gray: np.ndarray, side: int = 48) -> np.ndarray:
    h, w = gray.shape
    k = side / max(h, w)
    if k >= 1:
        return gray
    return resize(gray, (max(2, round(h * k)), max(2, round(w * k))), Image.Resampling.BOX)


def _plane_basis(h: int, w: int) -> np.ndarray:
    y = np.linspace(-0.5, 0.5, h)[:, None] * np.ones((1, w))
    x = np.ones((h, 1)) * np.linspace(-0.5, 0.5, w)[None, :]
    return np.stack([np.ones_like(x), x, y], -1).reshape(-1, 3)


def _pool(h: int, w: int, dtype: type = np.float64) -> np.ndarray:
    """The shape of a pool of light centred on the image: x² + y² over [-0.5, 0.5]², less its mean
    (so that the paper's level stays the plane's)."""
    y = np.linspace(-0.5, 0.5, h, dtype=dtype)[:, None]
    x = np.linspace(-0.5, 0.5, w, dtype=dtype)[None, :]
    r2 = x * x + y * y
    return (r2 - r2.mean()).astype(dtype)


@dataclass
class Paper:
    """The paper: a smooth surface, its grain, and which way the ink departs from it."""

    coef: np.ndarray  # a plane over [-0.5, 0.5]², then a pool of light (``_pool``); grey levels
    grain: float  # robust std of the paper around its surface, at the resolution it was fitted
    dark_ink: bool  # the ink is darker than the paper (pen on paper), else lighter (chalk, MNIST arrays)
    shaded: bool = False  # the lighting has an edge (a hard shadow): its wide areas are no ink (``has_shadow``)
    ambiguous: bool = False  # the frame could not say (mixed): the polarity came from the classes' shapes

    def surface(self, shape: tuple[int, int]) -> np.ndarray:
        a0, ax, ay, pool = self.coef
        y = np.linspace(-0.5, 0.5, shape[0], dtype=np.float32)[:, None]
        x = np.linspace(-0.5, 0.5, shape[1], dtype=np.float32)[None, :]
        s = np.float32(a0) + np.float32(ax) * x + np.float32(ay) * y
        if pool:
            s = s + np.float32(pool) * _pool(*shape, np.float32)
        return s.astype(np.float32)


def _half_sample_mode(x: np.ndarray) -> float:
    """The densest value: keep the shortest half of the sorted values until a few remain
    (Bickel & Frühwirth 2006). Robust to anything outside the densest cluster."""
    s = np.sort(np.asarray(x, np.float64).ravel())
    while len(s) > 3:
        h = (len(s) + 1) // 2
        i = int(np.argmin(s[h - 1 :] - s[: len(s) - h + 1]))
        s = s[i : i + h]
    return float(np.median(s))


def _paper_level(x: np.ndarray) -> tuple[float, float]:
    """(level, spread as a normal's σ) of the densest cluster of values: the half-sample mode,
    and the lower quartile of the distances to it (0.3186 σ for a normal), which strokes on up
    to half of the values do not move."""
    level = _half_sample_mode(x)
    return level, float(np.quantile(np.abs(x - level), 0.25)) / 0.3186


def _lts_plane(basis: np.ndarray, z: np.ndarray, starts: int = 4) -> tuple[np.ndarray, float]:
    """Least-trimmed-squares plane: the plane fitting the best half of the points, and the
    spread of that half as a normal's σ. Tolerates anything in the other half, on either
    side (FAST-LTS, Rousseeuw & Van Driessen 2006: random starts, concentration steps)."""
    n = len(z)
    h = n // 2 + 1
    rng = np.random.default_rng(0)  # deterministic: the same image always gives the same paper
    best, best_obj = np.array([np.median(z), 0.0, 0.0]), np.inf
    inits = [best] + [
        np.linalg.lstsq(basis[i], z[i], rcond=None)[0] for i in (rng.choice(n, 3, replace=False) for _ in range(starts))
    ]
    for coef in inits:
        for _ in range(6):
            r2 = (z - basis @ coef) ** 2
            keep = np.argpartition(r2, h - 1)[:h]
            coef = np.linalg.lstsq(basis[keep], z[keep], rcond=None)[0]
        obj = float(np.sort((z - basis @ coef) ** 2)[:h].sum())
        if obj < best_obj:
            best, best_obj = coef, obj
    # A normal's central half (|z| < 0.6745) has mean square 0.1426 σ².
    return best, float(np.sqrt(best_obj / h / 0.1426))


def _light_under_two_classes(c: np.ndarray, pool: bool, iters: int = 4) -> np.ndarray:
    """The light across an image of two classes (paper and ink): the coefficients (0, ax, ay, p)
    of ``c = plane + p · _pool + step · [dark class]``, fitted by alternating an Otsu split of the
    image with the light taken out and a least-squares fit of the light and the step.
    The step absorbs the classes' difference, so the plane cannot lean across them (a bold stroke
    filling one half of a crop); a plane fitted to the image alone does (tried and reverted).

    ``pool``: light from a flash or a lamp close by, brighter in the middle than at the corners,
    is fitted too; one darker in the middle is no pool of light (it is ink filling the middle of
    its crop) and the light is refitted as a plane.
    """
    h, w = c.shape
    basis = _plane_basis(h, w)
    if pool:
        basis = np.column_stack([basis, _pool(h, w).reshape(-1)])
    z = c.reshape(-1).astype(np.float64)
    light = np.zeros(basis.shape[1])
    for _ in range(iters):
        r = z - basis @ light
        dark = (r < otsu(r)).astype(np.float64)
        sol = np.linalg.lstsq(np.column_stack([basis, dark]), z, rcond=None)[0]
        if pool and sol[3] > 0:  # brighter towards the corners: no pool of light
            sol = np.linalg.lstsq(np.column_stack([basis[:, :3], dark]), z, rcond=None)[0]
            sol = np.array([*sol[:3], 0.0])
        light = np.array([0.0, *sol[1 : basis.shape[1]]])
    return light if pool else np.append(light, 0.0)


def _unlit(c: np.ndarray, cfg: PreprocessConfig, pool: bool) -> tuple[np.ndarray, np.ndarray]:
    """(the image with the light taken out, the light's coefficients (0, ax, ay, pool)), the light
    fitted together with the two classes; images too small to show lighting are left as they are."""
    if max(c.shape) < cfg.min_plane_side:
        return c, np.zeros(4)
    light = _light_under_two_classes(c, pool)
    fitted = _plane_basis(*c.shape) @ light[:3] + light[3] * _pool(*c.shape).reshape(-1)
    return c - fitted.reshape(c.shape).astype(c.dtype), light


def find_paper(gray: np.ndarray, cfg: PreprocessConfig, dark_ink: bool | None = None) -> Paper:
    """Fit the paper as a smooth surface to the image's frame; the ink is what departs from it.

    The one assumption about framing: **the paper owns the frame**. With any margin the frame
    is all paper; in a crop tight to the ink, strokes touch it, but along less than half of
    it (MNIST's training digits cropped to their ink at 0 px: the frame is ink for a median
    21 % of its length, and for more than half in 1 % of digits, nearly all near-vertical 1s).
    Inside, the ink may cover any share of the image.

    The surface is a plane, fitted to the frame's pixels by least trimmed squares (the best
    half of the frame decides; the strokes that touch it are ignored): it follows light
    falling from one side across a page and can follow no stroke; softer shading is divided
    out later (``flatten_illumination``). It is fitted on the image as given (box-reduced when
    large), before any enlarging blurs the strokes into the frame. The ink's polarity is the
    side on which the image departs from the plane by more: pen on paper, chalk on a board, an
    MNIST array (bright ink on black) and an inverted scan all come out right.

    ``dark_ink`` forces the polarity (the other reading of an ambiguous image): the paper is
    then the frame's pixels on the paper's side.

    A hard shadow (``has_shadow``: both tones hold wide areas) is lighting with an edge, which no
    plane follows: the frame mostly reads as mixed, and the shapes are read with the shadow levelled
    out (``levelled``); ``flatten_illumination`` then keeps the shadow out of the lid's width.
    """
    c = _coarse(gray)
    plain, lighting = _unlit(c, cfg, pool=False)
    shaded = has_shadow(plain, cfg)
    ring = frame_mask(c.shape, cfg.frame_frac).reshape(-1)
    basis = _plane_basis(*c.shape)
    z = c.reshape(-1).astype(np.float64)
    zr = z[ring]
    level, scale = _paper_level(zr)
    coef = np.array([level, 0.0, 0.0])
    if max(c.shape) >= cfg.min_plane_side:
        plane, plane_scale = _lts_plane(basis[ring], zr)
        if plane_scale < 0.5 * scale:
            # Light from one side of a page: a tilted plane fits the frame far better than a
            # flat paper. Only then, and only on images large enough to show lighting, or it
            # could lean across a tight crop through paper on one side and ink on the other.
            coef, scale = plane, plane_scale
    # Floors: 8-bit levels and JPEG's flat blocks can make the measured grain 0; a paper is
    # never smoother than ``min_grain``, nor than ``min_grain_frac`` of the image's range.
    span = float(np.percentile(z, 99.5) - np.percentile(z, 0.5))

    def floored(grain: float) -> float:
        return max(grain, cfg.min_grain, cfg.min_grain_frac * span)

    scale = floored(scale)
    r = z - basis @ coef
    mixed = (np.abs(r[ring]) > cfg.snr * scale).mean() > cfg.max_frame_ink or cfg.snr * scale > 0.5 * span
    if mixed or dark_ink is not None:
        # The frame is mixed: thick strokes run along nearly half of it or more (a tight crop of
        # a bold digit), or its "grain" is so coarse that ink could hardly stand out from it (over
        # half the image's range: the frame is two surfaces, not one paper — a bold 0 cropped
        # tight under side light, whose frame a plane cannot follow; a coarse 8×8 frame). It
        # cannot tell paper from ink; the shapes of the two classes do (``polarity.ink_is_dark``). The
        # paper's level is the frame's top decile on its side, and its slope and pool the light's,
        # fitted with the two classes (the frame alone cannot show them). Under a hard shadow the
        # two classes are the light and the shade: the shapes are read with the shadow levelled out.
        #
        # The light may also hold a pool, brighter in the middle (a flash, a lamp close by), whose
        # corners in a tight crop are as dark as the pen, so that the shapes took the paper for ink.
        # The pool is kept only for a dark-ink reading: under light ink (chalk, a negative) a stroke
        # across the middle brightens it just as a pool would, so a light-ink reading is taken with
        # the plane alone (version 31's). A tie in that reading is read on the plane-only image:
        # the pool relights the corners, the very pixels the tie counts.
        def shapes(u: np.ndarray) -> np.ndarray:
            return levelled(u, cfg) if shaded else u

        unlit = plain
        if dark_ink is not False:
            pooled, pooled_light = _unlit(c, cfg, pool=True)
            if dark_ink or ink_is_dark(shapes(pooled), cfg, shapes(plain)):
                unlit, lighting, dark_ink = pooled, pooled_light, True
        if dark_ink is None:
            dark_ink = ink_is_dark(shapes(plain), cfg)
        zf = unlit.astype(np.float64)
        zr = zf.reshape(-1)[ring]
        side = np.percentile(zr, 90 if dark_ink else 10)
        paper_px = zr[(zr >= otsu(zf)) == dark_ink]
        spread = _paper_level(paper_px)[1] if paper_px.size >= 4 else scale
        return Paper(np.array([side, *lighting[1:]]), max(spread, cfg.min_grain), dark_ink, shaded, mixed)
    dark, light = _departures(r, scale, cfg)
    # Under a lamp close to the page the frame is paper but no plane: its rim dim, its middle
    # lit, so the departures from the plane were the pool of light, brighter than the paper, and
    # the pen's polarity came out reversed (``check_*_lamp``: 69 of the 100 polarity errors left
    # at version 34 were frames that passed for one paper). Where the frame departs from its
    # plane by ``light_out_frame`` × the grain left once the light is taken out by scale, the
    # departures are counted on that image (``light_out``) instead, if they say it clearly (one
    # way ``light_out_frame`` × the other): strokes cut by the median where they are as wide as
    # half its window (a defocused tight crop, whose corners are dim too) leave edges both ways.
    flat = light_out(c, cfg) if cfg.light_out_frame else None
    if flat is not None:
        f = flat.reshape(-1).astype(np.float64)
        f_scale = floored(_paper_level(f[ring])[1])
        if scale >= cfg.light_out_frame * f_scale:
            f_dark, f_light = _departures(f, f_scale, cfg)
            if max(f_dark, f_light) >= cfg.light_out_frame * min(f_dark, f_light):
                dark, light = f_dark, f_light
    # Nothing departs clearly either way (the "paper" is a bold stroke's edges): the shapes decide.
    dark_ink = dark > light if dark != light else ink_is_dark(plain, cfg)
    return Paper(np.append(coef, 0.0), scale, dark_ink, shaded)


def _departures(r: np.ndarray, scale: float, cfg: PreprocessConfig) -> tuple[float, float]:
    """(dark, light): how far the residuals ``r`` depart clearly below and above the paper, beyond
    ``snr`` × its grain ``scale`` and beyond a third of the strongest departure (a paper's
    texture, whose grain a JPEG's flat blocks hide, is not ink)."""
    t = max(cfg.snr * scale, float(np.percentile(np.abs(r), 99.9)) / 3)
    return float(np.clip(-r - t, 0, None).sum()), float(np.clip(r - t, 0, None).sum())


#: Within half an 8-bit level of black or white: the sensor's limit, where light was clipped.
CLIPPED = 0.5 / 255


def lit_blank(g: np.ndarray, cfg: PreprocessConfig, least_noise: float = 0.0) -> bool:
    """One smooth surface explains the whole image to within its noise: a blank page, however lit.

    ``g`` is the (smoothed) image turned to dark ink. The surface is a quadratic: light from one
    side, and falling off towards the corners as a lens's vignetting or a lamp close to the page
    make it. It is fitted by least squares to the whole image, on a grid of about 128 px, with
    pixels at black or white censored (``_censored_fit``: the light may run past the sensor's
    range; version 15). The image is blank when nothing departs from it by more than either
    * the extreme that its noise reaches somewhere among this many pixels (σ·√(2 ln 2N)); the
      noise's σ from differences between pixels ``3 × smooth_sigma`` apart, where the smoothing
      no longer ties them together (``smoothed_noise``: their lower quartile, which strokes'
      edges and shading do not move even where they fill the image), and at least
      ``least_noise`` of the paper's level (the noise ``denoise.denoised`` left: smoothed into
      blobs, it measures less than it is between them; version 30); or
    * half the faintest ink the pipeline accepts (``min_contrast`` of the paper's level): a
      least-squares surface does not follow a stroke's step, it leaves most of it.
    No digit is that smooth (a 1/10 sample of every framing and check set and every photo, 11,652
    files, read byte-identically with and without this check). Without this a
    page darkening towards its corners read as a digit: the paper lid's width follows the
    "strokes" it is given (``flatten_illumination``), here the shading itself.
    """
    h, w = g.shape
    step = max(1, max(h, w) // 128)
    y = np.linspace(-0.5, 0.5, h, dtype=np.float32)
    x = np.linspace(-0.5, 0.5, w, dtype=np.float32)
    ys, xs = np.meshgrid(y[::step], x[::step], indexing="ij")
    basis = np.stack([np.ones_like(xs), xs, ys, xs * xs, ys * ys, xs * ys], -1).reshape(-1, 6).astype(np.float64)
    high, low = g >= 1 - CLIPPED, g <= CLIPPED  # at the sensor's limit: the light may run past it
    c = _censored_fit(basis, g[::step, ::step].ravel().astype(np.float64), high[::step, ::step].ravel(),
                      low[::step, ::step].ravel())
    level = max(float(np.mean(basis @ c)), cfg.min_paper)
    c = c.astype(np.float32)
    # Separable: rows' part + columns' part + the cross term, without six full-size arrays.
    surface = (c[0] + c[2] * y + c[4] * y * y)[:, None] + (c[1] * x + c[3] * x * x)[None, :] + c[5] * np.outer(y, x)
    # Only a surface on the wrong side of the limit departs from a clipped pixel.
    residual = np.abs(g - surface)
    if high.any():
        residual = np.where(high, np.maximum(1 - CLIPPED - surface, 0), residual)
    if low.any():
        residual = np.where(low, np.maximum(surface - CLIPPED, 0), residual)
    noise = max(smoothed_noise(g, step, cfg), 1 / (255 * np.sqrt(12)), least_noise * level)  # 8-bit rounding is noise too
    bound = max(0.5 * cfg.min_contrast * level, np.sqrt(2 * np.log(2 * g.size)) * noise)
    return float(np.max(residual)) < bound


def smoothed_noise(g: np.ndarray, step: int, cfg: PreprocessConfig) -> float:
    """σ of the noise in the smoothed image ``g``, from differences of pixels ``3 × smooth_sigma``
    apart (beyond the smoothing's reach), on every ``step``-th row, across and down.

    From the lower quartile of |difference| (|N(0, 2σ²)|'s is 0.3186·√2 σ), not the median: in a
    digit cropped tight most pairs straddle a stroke's edge, and the median took strokes for
    noise (the blank-page bound of USPS digits cropped tight came within 1.3× of their residual;
    with the quartile 2.3×).
    """
    h = g.shape[0]
    lag = max(1, int(np.ceil(3 * cfg.smooth_sigma)))
    rows = g[: h - lag : step]
    diffs = np.concatenate([(rows[:, lag:] - rows[:, :-lag]).ravel(), (g[lag::step][: len(rows)] - rows).ravel()])
    return float(np.quantile(np.abs(diffs), 0.25)) / (0.3186 * np.sqrt(2)) if diffs.size else 0.0


def _censored_fit(basis: np.ndarray, v: np.ndarray, high: np.ndarray, low: np.ndarray, rounds: int = 20) -> np.ndarray:
    """Least-squares coefficients of ``basis`` for ``v``, with the values at the sensor's limits
    censored (``high``: at white, ``low``: at black): the light there was at least (at most) that,
    so the surface may pass beyond them.

    Why: a photo over- or under-exposed towards one side is a plane of light clipped flat; a
    plain fit bends to the flat part and leaves the ramp beside it as a "digit". Solved by active
    sets: fit to the unclipped values and to the clipped ones the surface falls short of, until
    that set stops changing (a few rounds; one plain fit when nothing is clipped).
    """
    free = ~(high | low)
    active = np.ones(v.shape, bool)
    for _ in range(rounds):
        b = basis[active]
        c = np.linalg.lstsq(b.T @ b, b.T @ v[active], rcond=None)[0]
        s = basis @ c
        new = free | (high & (s < v)) | (low & (s > v))
        if np.array_equal(new, active):
            break
        active = new
    return c


def _paper_lid(g: np.ndarray, k: int, keep_edges: bool = False) -> np.ndarray:
    """Grey closing of width ``k``, smoothed, never below ``g``: the paper with the strokes lifted off.

    Computed on a max-pooled copy (the lid is smooth at the scale of ``k``, and pooling by the
    maximum never lowers it below a stroke's paper), then enlarged: the same result for a
    fraction of the cost of a wide closing at full resolution.

    ``keep_edges`` (a shaded image): the smoothed lid no higher than the closing itself, which
    follows a shadow's edge; smoothed, the lid rose over the shade beside the edge, and a band of
    shade along it read as a stroke across the digit.
    """
    f = max(1, k // 8)
    h, w = g.shape
    if f > 1:
        ph, pw = -h % f, -w % f
        small = np.pad(g, ((0, ph), (0, pw)), mode="edge").reshape((h + ph) // f, f, (w + pw) // f, f).max(axis=(1, 3))
    else:
        small = g
    kk = max(3, int(round(k / f)))
    closed = ndi.grey_closing(small, size=(kk, kk), mode="nearest")
    lid = ndi.uniform_filter(closed, size=kk, mode="nearest")
    if keep_edges:
        lid = np.minimum(lid, closed)
    if f > 1:
        lid = resize(lid, (small.shape[0] * f, small.shape[1] * f), Image.Resampling.BILINEAR)[:h, :w]
    return np.maximum(lid, g)


def flatten_illumination(g: np.ndarray, paper: Paper, cfg: PreprocessConfig) -> tuple[np.ndarray, float]:
    """(relative ink darkness in [0, 1], lighting and shadows divided out; grain in the same units).

    ``g`` is the smoothed image turned to dark ink. The paper's brightness: a grey closing (a
    rolling "lid" wider than any stroke lifts the ink away and leaves the paper), smoothed.
    The lid must be wider than the strokes, a property of the digit, not of the image: 3 × the
    stroke width of the ink the paper surface leaves, and at least ``background_frac`` of the
    image (so a photo's paper texture is not taken for lighting). Dividing by the paper turns a
    gradient (``sydney/``) or a shadow into a flat page.
    """
    surface = paper.surface(g.shape)
    if not paper.dark_ink:
        surface = 1.0 - surface
    above = surface - g  # ink positive
    rough = above > 0.5 * float(np.percentile(above, 99.5))  # stroke cores
    # A hard shadow is no stroke: were its area measured as one, the lid would be as wide as the
    # shadow and lift it off as ink (a deep shadow reaches half the ink's darkness).
    width = stroke_width(rough & ~wide_part(rough, cfg.lighting_frac) if paper.shaded else rough)
    k = int(round(max(cfg.background_frac * max(g.shape), 3 * width, 3)))
    # The lid is fitted with find_paper's plane divided out (light from one side) and multiplied
    # back: a closing follows a ramp only to within its slope × its width, and a tight crop under
    # side light would otherwise read the ramp as faint ink everywhere and the grain as huge.
    surface = np.maximum(surface, cfg.min_paper)
    flat = g / surface
    lid = _paper_lid(flat, k, paper.shaded) * surface
    # Relative to the paper (lighting multiplies); the floor keeps a near-black "paper" from
    # turning its grain into full-contrast ink.
    level = np.maximum(lid, cfg.min_paper)
    ink = (lid - g) / level
    # The paper's own level and grain in this map, measured well away from the strokes (the lid
    # rides on the top of the grain, so bare paper is not exactly 0).
    reach = int(np.ceil(width)) + 2
    clear = np.ones(rough.shape, bool)
    if rough.any():
        box = box_around(rough, reach)
        clear[box] = ~ndi.binary_dilation(rough[box], iterations=reach)
    if clear.sum() >= 64:
        v = ink[clear]
        base = float(np.median(v))
        grain = float(1.4826 * np.median(np.abs(v - base)))
    else:
        # A crop too tight to leave bare paper: the grain find_paper measured on the frame, or,
        # when less, the spread of the flatter of the image's two classes (Otsu). Strokes can only
        # inflate either: a bold 1 filling its 16×4 crop leaves only the anti-aliased edges in
        # the frame, whose spread would drown the stroke, while its flat core shows the sensor's
        # grain as well as paper would. Noise has no flat class: it stays "nothing stands out".
        # The classes are taken with the plane divided out (side light would spread them).
        split = otsu(flat)
        classes = [v for v in (flat[flat < split], flat[flat >= split]) if v.size >= 4]
        typical = float(np.median(surface))
        spread = min([paper.grain] + [_paper_level(v)[1] * typical for v in classes])
        base, grain = 0.0, spread / float(np.median(level))
    return np.clip(ink - base, 0, 1).astype(np.float32), max(grain, cfg.min_grain)
