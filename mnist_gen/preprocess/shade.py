"""Hard shadows: lighting with an edge, which no plane follows.

``find_paper`` asks ``has_shadow`` whether the image's two tones are paper and ink or light and shade,
and reads the ink's shapes with the shadow levelled out (``levelled``); ``flatten_illumination``
keeps the shade out of the stroke width with ``wide_part``. ``otsu`` is the two-tone split every
part of the paper's reading uses.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mnist_gen.preprocess.config import PreprocessConfig


def otsu(x: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold. Written here before scikit-image became a dependency (for one evaluation
    render); its ``threshold_otsu`` splits the same pixels (201 USPS framings compared), but the
    flat and tiny-range cases below are the pipeline's own, so this stays."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo <= 1e-6:  # a flat image (a blank page, to rounding): nothing to split
        return hi
    # float64: a range of a few 1e-6 (a lit blank page with its light taken out) has no 256
    # distinct bin edges in float32, and numpy refuses to bin it
    hist, edges = np.histogram(np.asarray(x, np.float64), bins=bins)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * mids) / np.maximum(w0, 1)
    m1 = (np.sum(hist * mids) - np.cumsum(hist * mids)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(mids[int(np.argmax(between[:-1]))])


def wide_part(mask: np.ndarray, frac: float, inside: bool = False, short: bool = False) -> np.ndarray:
    """The part of ``mask`` that holds a square ``frac`` × the image's longest side (``short``: its
    shortest) (an opening: minimum then maximum filters, separable and linear in the side; odd, so
    the two align). ``inside``: the square lies within the image; else the mask runs on beyond the
    border."""
    k = max(3, int(round(frac * (min if short else max)(mask.shape)))) | 1
    m = ndi.minimum_filter(mask.astype(np.uint8), k, mode="constant" if inside else "nearest", cval=0)
    return ndi.maximum_filter(m, k, mode="nearest") > 0


def has_shadow(u: np.ndarray, cfg: PreprocessConfig) -> bool:
    """The lighting has an edge: each of the image's two tones (an Otsu split of ``u``, the coarse
    image with light from one side taken out) holds areas ``lighting_frac`` of its side wide, within
    the image, over 5 % of it; or one tone's wide area is a shade (``_a_shade``), where a shade
    need only hold a square ``shade_frac`` of the image's shorter side (version 23).

    Ink is narrow, lighting wide. A digit's stroke, even a bold one cropped tight, is a fraction
    of the image across, so only the paper's tone holds wide areas; a hard shadow (a phone, a hand)
    makes a second wide tone, which a plane cannot follow and the shapes' vote (``polarity.ink_is_dark``)
    took for the paper or the ink (70 % of 300 shadowed MNIST training digits read right). Images
    too small to show lighting are never shaded.

    Within the image: taken to run on beyond its border, a bold stroke along a tight crop's border
    passed for a wide area (1 in 5 bold MNIST crops) and the crop's polarity came out reversed
    (300 such crops: 99.0 → 94.7 %).

    The smaller square (version 23): a band of shade along one border, a corner, or a shade beside
    a tall narrow digit (a 1 framed with its margins) holds no square a third of the image's longest
    side wide, and the lid then filled it in and it was read with the digit as a bar. The square
    need only be wider than a stroke when ``_a_shade``'s frame and ink tests hold; both tones
    holding a square measured on the shorter side says nothing by itself: a bold digit's strokes
    hold it (tried: 200 bold 16-px digits photographed read 96.5 → 91.0 %).
    """
    if cfg.lighting_frac <= 0 or max(u.shape) < cfg.min_plane_side:
        return False
    dark = u < otsu(u)
    wide = [wide_part(m, cfg.lighting_frac, inside=True) for m in (dark, ~dark)]
    if min(w.mean() for w in wide) > 0.05:
        return True
    if any(_a_shade(u, m, w, cfg) for m, w in zip((dark, ~dark), wide, strict=True)):
        return True
    # Tried after the wider square, not instead: a wide shade opened with the smaller square can
    # take in a stroke's edge and meet the frame twice (200 shadowed 8-px digits read 96.5 % right
    # with both squares, 95.0 % with the smaller alone).
    return cfg.shade_frac > 0 and any(
        _a_shade(u, m, wide_part(m, cfg.shade_frac, inside=True, short=True), cfg) for m in (dark, ~dark))


def _on_frame(mask: np.ndarray) -> tuple[float, int]:
    """(share of the image's border in ``mask``, how many separate stretches of it; all: none)."""
    ring = np.concatenate([mask[0, :-1], mask[:-1, -1], mask[-1, :0:-1], mask[:0:-1, 0]])  # in order around
    return float(ring.mean()), int(np.sum(ring & ~np.roll(ring, 1)))


def _a_shade(u: np.ndarray, tone: np.ndarray, wide: np.ndarray, cfg: PreprocessConfig) -> bool:
    """``wide``, the wide part of one of the two tones, is a shade though the other tone holds no
    wide area (version 22): the digit stands in the light and cuts the lit paper into strips, or the
    shade covers most of the page. A chalk digit's board and the paper between a bold digit's
    strokes cropped tight are one wide tone too; lighting differs from both:

    * the rest of the image (the light, the digit in it) holds wide areas too;
    * the shade owns one stretch of the frame, 10–90 % of it (its caster is outside the image), and
      its tone meets the frame nowhere else: the digit stands in the light clear of the frame (a
      bold or blurred digit cropped tight meets it in several places);
    * it lies between the paper and the ink: it darkens the strokes under it too, so its tone's
      far 2 % lie beyond its level, away from the light, by ``shade_ink_beyond`` × its step from
      the light (on the paper between bold strokes, the extreme tone, they do not).
    """
    if cfg.shade_ink_beyond <= 0 or wide.mean() <= 0.05:
        return False
    if wide_part(~wide, cfg.lighting_frac, inside=True).mean() <= 0.05:
        return False
    (share, stretches), (_, tone_stretches) = _on_frame(wide), _on_frame(tone)
    if not (0.1 <= share <= 0.9 and stretches == tone_stretches == 1):
        return False
    light, shade = float(np.median(u[~tone])), float(np.median(u[wide]))
    far = float(np.percentile(u[tone], 2 if light > shade else 98))
    return abs(shade - far) >= cfg.shade_ink_beyond * abs(light - shade)


def levelled(u: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """``u`` less a running median ``level_frac`` of its side wide: the shadow taken out, the ink
    left. A median keeps a straight edge where it is (the window's centre is on the majority's
    side) and passes over strokes covering less than half of it, dark or light, so it needs no
    polarity."""
    k = max(3, int(round(cfg.level_frac * max(u.shape))))
    return u - ndi.median_filter(u, size=k, mode="nearest")
