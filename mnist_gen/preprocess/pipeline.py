"""Photo (or array) → MNIST-like 28×28 digit.

MNIST was not made by shrinking photos. NIST's binary scans were cropped to the digit,
fitted into a 20×20 box keeping the aspect ratio (the resampling anti-aliased the edges
into grey levels), and placed in a 28×28 field so that the centre of mass of the pixels
sits at the centre. The study ("From Pixels to Sharpies") instead shrank the whole phone
photo to 28×28 — grey paper kept as signal, no crop, no centring, EXIF rotation ignored —
and its models collapsed. ``to_mnist`` rebuilds MNIST's construction step by step; each
step below is a small function whose docstring says why it exists. ``naive`` keeps the
study's method for the before/after comparison.

The steps live in small modules named for what they do: ``load`` (file or array -> grey),
``denoise`` (a photo taken in low light, smoothed), ``formbox`` (a form's printed box around the
digit: what is inside it is read), ``sheet`` (a sheet lying on a desk: what is on the sheet is
read), ``paper`` (the paper and the ink's polarity, lighting divided out), ``ink`` (threshold,
lines, which marks are the digit and which a neighbour's or its ring), ``normalize`` (MNIST's
box and centring). Every tunable is a field of ``PreprocessConfig`` (``config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from mnist_gen.errors import ImageError
from mnist_gen.preprocess.config import NoDigit, PreprocessConfig, PreprocessResult, as_config
from mnist_gen.preprocess.denoise import denoised
from mnist_gen.preprocess.formbox import inside_printed_box
from mnist_gen.preprocess.ink import choose_digit, crop_to_digit, find_lines, threshold_soft
from mnist_gen.preprocess.load import array_to_gray, as_gray, load_image, pil_to_gray
from mnist_gen.preprocess.normalize import normalize_digit, resize
from mnist_gen.preprocess.paper import Paper, find_paper, flatten_illumination, lit_blank
from mnist_gen.preprocess.sheet import sheet_on_desk

#: Bump when the pipeline's output changes: caches of its readings (evaluation sets, refiled
#: training digits) are then rebuilt.
PIPELINE_VERSION = 39  # 8 was a polarity change, reverted: its caches must not be read


def to_work_size(gray: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Analyse at a fixed scale: fractions in the config then mean the same on any camera,
    and a 12-megapixel photo costs no more than a thumbnail. Tiny inputs are enlarged so
    morphology has room (a 28×28 MNIST array has 2-px strokes).

    A grey image is enlarged with Lanczos, as ``normalize_digit`` (the array path) resizes:
    bilinear spreads each pixel over its neighbours, and at 8 px, where a 9's loop is one
    pixel, that fills the loop in. A bitmap (two levels) is enlarged bilinearly: its
    staircase is not detail, and smoothing it is the anti-aliasing MNIST gave NIST's binary scans.
    """
    h, w = gray.shape
    s = max(h, w)
    target = min(cfg.work_size, max(s, cfg.min_work_size))
    if target == s:
        return gray.astype(np.float32)
    k = target / s
    if k < 1:
        resample = Image.Resampling.BOX
    else:
        bitmap = np.unique(gray).size <= 2
        resample = Image.Resampling.BILINEAR if bitmap else Image.Resampling.LANCZOS
    return np.clip(resize(gray, (round(h * k), round(w * k)), resample), 0, 1)


def as_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def to_mnist(image, cfg: PreprocessConfig | Mapping | None = None) -> PreprocessResult:
    """Image path, PIL image or array → ``PreprocessResult`` (digit or a reason there is none).

    Unreadable files raise ``ImageError`` naming the file; arrays never raise — anything
    that is not a usable picture comes back as a "no digit" result.
    """
    cfg = as_config(cfg)
    if cfg.method == "naive":
        return PreprocessResult(naive(image, cfg))
    views: dict[str, np.ndarray] = {}
    try:
        gray = as_gray(image, cfg)
        if min(gray.shape) == 0 or max(gray.shape) < 4:  # a thin "1" cropped tight can be 1-2 px wide
            raise NoDigit(f"no digit found: the image is only {gray.shape[0]}×{gray.shape[1]} px")
        gray, least_grain = denoised(gray, cfg)
        digit = None
        for part in _framed_parts(gray, cfg):
            try:
                digit = _read_gray(part, cfg, views, least_grain)
                break
            except NoDigit:  # the "box" was a square 0's own outline, the "sheet" held nothing
                views = {}
        if digit is None:
            digit = _read_gray(gray, cfg, views, least_grain)
    except NoDigit as e:
        msg = str(e)
        return PreprocessResult(None, msg[0].upper() + msg[1:] + ".", views)
    views["digit"] = digit
    return PreprocessResult(digit, None, views)


def _framed_parts(gray: np.ndarray, cfg: PreprocessConfig):
    """What frames the digit inside the image, tried in turn before the whole image: the inside of
    a form's printed box, then a sheet lying on a desk (each looked for only if the one before
    gave no digit)."""
    if (box := inside_printed_box(gray, cfg)) is not None:
        yield gray[box]
    if (sheet := sheet_on_desk(gray, cfg)) is not None:
        yield sheet


def _read_gray(gray: np.ndarray, cfg: PreprocessConfig, views: dict, least_grain: float = 0.0) -> np.ndarray:
    """Grey image → the 28×28 digit: the paper found, read once, and again when
    ``_second_reading`` says so; raises ``NoDigit`` with the first reading's reason.
    ``least_grain``: the least grain to read the paper with (the noise ``denoised`` left)."""
    paper = find_paper(gray, cfg)
    work = to_work_size(gray, cfg)
    views["input"] = as_u8(work)
    try:
        return _read_digit(work, paper, cfg, views, least_grain)
    except NoDigit as first:
        dark_ink = _second_reading(first, paper)
        if dark_ink is None:
            raise
        other: dict[str, np.ndarray] = {"input": views["input"]}
        try:
            digit = _read_digit(work, find_paper(gray, cfg, dark_ink=dark_ink), cfg, other, least_grain)
        except NoDigit:
            raise first from None  # the first reading's reason and views stand
        views.clear()
        views.update(other)
        return digit


def _second_reading(first: NoDigit, paper: Paper) -> bool | None:
    """After a first reading found no digit: the polarity (``dark_ink``) to read the image again
    in, with the paper taken from the image's two classes instead of its frame, or None.

    * The frame could not tell paper from ink (``ambiguous``) and the shapes' reading found
      nothing (a "1" filling its tight crop), or the ink found is no digit but scattered pieces
      or a tangle (a bold 1's two grey edges on a frame of its own edges): the other polarity,
      the only other reading.
    * Nothing stood out from the grain of a frame that passed for one paper: the same polarity.
      A bold stroke running along the frame of a tight crop under side light passes for the
      paper's grain (the plane fitted to the frame leaves the stroke's contrast as its spread);
      the paper class's own spread is the grain.
    Not after anything else: a blank page read the other way shows its glare and shading.
    """
    if paper.ambiguous or first.marks:
        return not paper.dark_ink
    if first.faint:
        return paper.dark_ink
    return None


def _read_digit(work: np.ndarray, paper: Paper, cfg: PreprocessConfig, views: dict, least_grain: float = 0.0) -> np.ndarray:
    """The work-size grey image, read with ``paper`` → the 28×28 digit (views filled in on the way)."""
    g = ndi.gaussian_filter(work, cfg.smooth_sigma) if cfg.smooth_sigma else work
    if not paper.dark_ink:
        g = 1.0 - g
    if lit_blank(g, cfg, least_grain):
        raise NoDigit("no digit found: the image is a blank page (light and shading explain all of it)")
    ink, grain = flatten_illumination(g, paper, cfg)
    grain = max(grain, least_grain)
    mask, soft = threshold_soft(ink, grain, cfg, smoothed=least_grain > 0)
    views["ink"] = as_u8(soft)
    if not mask.any():
        raise NoDigit("no digit found: nothing on the image stands out from the paper's grain", faint=True)
    lines = find_lines(ink, grain, mask, soft, cfg)
    unlined = np.where(lines, 0, soft)
    crop = crop_to_digit(unlined, choose_digit(mask & ~lines, unlined, cfg))
    views["crop"] = as_u8(crop)
    return normalize_digit(crop.astype(np.float32), cfg, level=0.02)


def naive(image, cfg: PreprocessConfig | Mapping | None = None) -> np.ndarray:
    """The study's conversion: greyscale, the whole photo squashed to 28×28, inverted.

    No crop or centring (the grey paper becomes a grey MNIST "background"), no EXIF
    rotation by default, and optionally the study's fixed threshold. Kept to reproduce the
    0–50 % result, not to be used.
    """
    cfg = PreprocessConfig(method="naive", exif_transpose=False) if cfg is None else as_config(cfg)
    if isinstance(image, (str, Path)):
        gray = load_image(image, cfg)
    elif isinstance(image, Image.Image):
        gray = pil_to_gray(image)
    else:
        try:
            gray = array_to_gray(image)
        except NoDigit as e:
            raise ImageError(f"naive preprocessing: {e}.") from e
    if gray.size == 0:
        raise ImageError("naive preprocessing: the image is empty.")
    small = resize(gray, (cfg.size, cfg.size), Image.Resampling.BILINEAR)
    out = np.round((1.0 - np.clip(small, 0, 1)) * 255)
    if cfg.naive_threshold is not None:
        out = np.where(out >= cfg.naive_threshold, 255, 0)
    return out.astype(np.uint8)
