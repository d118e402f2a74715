"""Which way the ink departs from the paper, when the image's frame cannot say: the shapes of
its two classes decide (a stroke is narrow and in few pieces, the paper wide and even), read
first with the light taken out by scale (``light_out``). ``paper.find_paper`` asks, for a mixed
frame, and reads a clear frame's departures on ``light_out`` too where a plane cannot follow its light.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mnist_gen.preprocess.config import PreprocessConfig
from mnist_gen.preprocess.shade import otsu


def frame_mask(shape: tuple[int, int], frac: float) -> np.ndarray:
    """The ring of pixels within ``frac`` of the image side from its edges (at least one pixel)."""
    k = max(1, int(round(frac * max(shape))))
    ring = np.zeros(shape, bool)
    ring[:k], ring[-k:], ring[:, :k], ring[:, -k:] = True, True, True, True
    return ring


def _class_width(m: np.ndarray) -> float:
    """A class's width: its pixels' mean distance to the other class (which runs on beyond the frame)."""
    d = ndi.distance_transform_edt(np.pad(m, 2, mode="edge"))[2:-2, 2:-2]
    return float(d[m].mean()) if m.any() else 0.0


def _shape_vote(c: np.ndarray, cfg: PreprocessConfig) -> tuple[int, np.ndarray]:
    """(the vote for dark ink, positive, or light ink, negative; the dark class) of the shapes of
    the two classes of ``c`` split at Otsu's threshold: see ``ink_is_dark``."""
    dark = c < otsu(c)

    def pieces(m: np.ndarray) -> int:
        lab, n = ndi.label(m, structure=np.ones((3, 3)))
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        return int((sizes >= cfg.speck_frac * sizes.max()).sum()) if n else 0

    def spread(v: np.ndarray) -> float:
        return float(np.median(np.abs(v - np.median(v)))) if v.size else 0.0

    vote = 2 * np.sign(pieces(~dark) - pieces(dark))
    vote += np.sign(_class_width(~dark) - _class_width(dark))
    vote += np.sign(spread(c[dark]) - spread(c[~dark]))
    return int(vote), dark


def light_out(c: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """``c`` less its running median over ``light_frac`` × its side, or None where that image
    cannot be trusted. A stroke narrower than half the window stays; light, which varies only
    over wider spans, goes, whatever its shape: a lamp's pool off-centre, which no plane and no
    centred pool follows (pipeline version 34).

    Trusted only where its classes (split at Otsu's threshold) are still strokes and paper, one
    ``light_out_paper`` × wider than the other: a stroke as wide as half the window (a bold 8×8
    digit enlarged, a defocused crop) is cut away with the light, leaving two classes of edges
    and grain, equally thin (five UCI negatives misread in the version-34 census before this).
    None too for images too small to show lighting.
    """
    if not cfg.light_frac or max(c.shape) < cfg.min_plane_side:
        return None
    flat = c - ndi.median_filter(c, size=_window(c.shape, cfg), mode="nearest")
    return flat if _strokes_and_paper(flat, cfg) else None


def _window(shape: tuple[int, int], cfg: PreprocessConfig) -> int:
    """The side of ``light_out``'s median window: ``light_frac`` × the image side, odd."""
    return max(3, round(cfg.light_frac * max(shape)) | 1)


def _strokes_and_paper(c: np.ndarray, cfg: PreprocessConfig) -> bool:
    """Whether ``c``'s two classes (split at Otsu's threshold) are strokes and paper: one
    ``light_out_paper`` × wider than the other."""
    dark = c < otsu(c)
    thin, wide = sorted((_class_width(dark), _class_width(~dark)))
    return wide >= cfg.light_out_paper * thin


def ink_is_dark(c: np.ndarray, cfg: PreprocessConfig, frame: np.ndarray | None = None) -> bool:
    """Split the image in two at Otsu's threshold and tell which class is the ink, from what
    makes handwriting handwriting rather than from any framing:

    * **pieces** (counted twice): a digit is one stroke or a few pieces, while the paper it
      cuts through falls apart into corners and holes (pieces smaller than ``speck_frac`` of
      the class's largest are specks);
    * **width**: a stroke is narrow, the paper between strokes wide (mean distance to the other
      class; the classes run on beyond the frame);
    * **evenness**: the paper is an even surface, the ink varies (pressure, anti-aliased edges;
      an 8×8 block-count digit is exact zeros around ink of every level).

    Pieces alone decide at photo resolution; at 8–16 px a stroke breaks into blocks and the
    other two outvote them. A tie (a bold stroke as wide as the paper between) goes to the
    module's one assumption: the class owning less of the frame is the ink. (A tie used to go
    to dark ink: 1,500 MNIST test digits thickened, cropped tight and reduced to 16 px then read
    98.2 % dark on light but 93.5 % inverted; with the frame deciding, 98.3 % and 98.2 %.)

    The vote is taken first on the image with the light taken out by scale (``light_out``).
    Under a lamp close to the page, the light across the image differs more than faint strokes
    differ from the paper, so that Otsu's two classes were the lit middle and the dim rim, and
    the strokes holes in the "ink" (pipeline version 33: a desk-lamp check at 33–47 %). Where
    that image is not trusted, the image as it is votes. Where its vote ties (a faint stroke
    broken into pieces outvotes its narrowness and unevenness), the class owning less of its
    frame is the ink, if two things hold (version 36; until then the image as it is voted on
    every tie: under a lamp, the lit middle against the dim rim, 31 of the 100 lamp polarity
    errors left at version 34):

    * the image as it is is no strokes and paper itself (a bold 8×8 digit enlarged under a
      shadow is, and votes as it is);
    * the light-free image's wide class spans half the median's window (``light_out_span``):
      only then was each window's median the paper's. Strokes as wide as half the window (a
      bold ring cropped tight) are cut by it, and the halo left beside them is the class
      owning less of the frame.

    ``c`` comes with light from one side already taken out (``_unlit``): split at one global
    level, the darker side of a lit paper joined the ink's class (a marker 9, a bold 0, cropped tight).
    ``frame``: the image whose frame breaks a tie, when it is not ``c`` (``c`` with a pool of
    light taken out: the pool relights the corners, the very pixels that rule counts).
    """
    flat = light_out(c, cfg)
    if flat is not None:
        vote, dark = _shape_vote(flat, cfg)
        if vote:
            return vote > 0
        if cfg.light_out_tie and not _strokes_and_paper(c, cfg) and _spans_the_window(dark, cfg):
            return _less_of_the_frame(dark, cfg)
    vote, dark = _shape_vote(c, cfg)
    if vote == 0:
        return _less_of_the_frame(dark if frame is None else frame < otsu(frame), cfg)
    return bool(vote > 0)


def _less_of_the_frame(dark: np.ndarray, cfg: PreprocessConfig) -> bool:
    """A tie's answer: the ink is the class that owns less of the frame (True: the dark class)."""
    return bool(dark[frame_mask(dark.shape, cfg.frame_frac)].mean() <= 0.5)


def _spans_the_window(dark: np.ndarray, cfg: PreprocessConfig) -> bool:
    """Whether the wider of ``dark``'s two classes (``light_out``'s split) is ``light_out_span``
    × the median's window wide at least (mean distance to the other class): the paper then owns
    most of every window, and its median followed the light, not the strokes."""
    return max(_class_width(dark), _class_width(~dark)) >= cfg.light_out_span * _window(dark.shape, cfg)
