"""Photo (or array) → MNIST-like 28×28 digit.

MNIST was not made by shrinking photos. NIST's binary scans were cropped to the digit,
fitted into a 20×20 box keeping the aspect ratio (the resampling anti-aliased the edges
into grey levels), and placed in a 28×28 field so that the centre of mass of the pixels
sits at the centre. The study ("From Pixels to Sharpies") instead shrank the whole phone
photo to 28×28 — grey paper kept as signal, no crop, no centring, EXIF rotation ignored —
and its models collapsed. ``to_mnist`` rebuilds MNIST's construction step by step; each
step below is a small function whose docstring says why it exists. ``naive`` keeps the
study's method for the before/after comparison.

Every tunable is a field of ``PreprocessConfig``; ``configs/preprocess/*.yaml`` mirror it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage as ndi

from mnist_gen.errors import ImageError, UserError

#: MNIST's geometry: a 20×20 box for the digit inside a 28×28 field.
MNIST_SIZE = 28
MNIST_BOX = 20


@dataclass
class PreprocessConfig:
    """All knobs of the photo → MNIST pipeline (defaults = ``configs/preprocess/mnist_like.yaml``)."""

    method: str = "mnist_like"  # mnist_like | naive (the study's whole-photo resize)
    exif_transpose: bool = True  # phones store photos sideways and record the rotation in EXIF
    max_load_side: int = 2048  # huge files are reduced while decoding (JPEG draft / reduce)
    work_size: int = 640  # longest side the photo is analysed at
    min_work_size: int = 112  # tiny inputs (a 16×16 scan, a 28×28 array) are enlarged to this first
    smooth_sigma: float = 1.0  # px at work size; averages away paper grain and sensor noise
    frame_frac: float = 0.06  # the frame the paper is fitted to: this × the image side from each edge
    max_frame_ink: float = 0.4  # more of the frame than this off the paper: it is mixed, topology decides
    min_plane_side: int = 32  # images (coarse copies) smaller than this are too small to show lighting: flat paper
    min_grain: float = 0.008  # floor of the paper's grain, 2 of 255 levels (a synthetic image has none)
    min_grain_frac: float = 0.02  # and at least this × the image's range (JPEG's flat blocks hide the grain)
    background_frac: float = 0.12  # the paper closing is at least this × longest side wide
    min_paper: float = 0.1  # ink darkness is relative to the paper, which counts as at least this bright
    snr: float = 5.0  # ink must be this many × the paper's grain darker than the paper
    min_peak_snr: float = 6.0  # the strongest ink must reach this × the grain, else nothing is there
    min_contrast: float = 0.03  # and at least this much darker (relative), whatever the grain
    threshold_frac: float = 0.4  # threshold is at least this × the strongest ink (a stroke's halo is not ink)
    line_frac: float = 0.5  # straight runs longer than this × image side may be ruled lines ...
    line_over_digit: float = 1.5  # ... and are erased when this × longer than the rest of the ink
    line_angles: tuple[float, ...] = (-6.0, -3.0, 0.0, 3.0, 6.0)  # degrees; photos are rarely square-on
    speck_frac: float = 0.02  # marks smaller than this × the largest mark are specks (dust, grain)
    min_digit_frac: float = 0.04  # a digit's longest side is at least this × shorter image side
    max_loops: int = 3  # a digit has at most two loops (8); a tangle with more is noise or texture
    min_digit_ink_share: float = 0.35  # the chosen digit holds at least this share of all ink
    group_margin: float = 0.35  # pieces within this × digit size of the main stroke belong to it
    edge_penalty: float = 0.05  # weight of marks hugging the frame (page edges, shadows) when others do not
    stroke_ratio: float | None = 0.12  # stroke width / box side; MNIST: median 0.135, IQR 0.117–0.157
    stroke_tolerance: float = 0.25  # leave strokes alone within ±25 % of the target
    stroke_max_thicken: float = 3.0  # at most this × current width is added (hairlines → MNIST pen)
    stroke_max_thin: float = 0.5  # at most this × current width is removed (thin parts must survive)
    saturate_quantile: float | None = 0.5  # this ink quantile → full white (MNIST cores: 255)
    box: int = MNIST_BOX
    size: int = MNIST_SIZE
    naive_threshold: float | None = None  # the study's fixed threshold (0–255 after inversion), if any

    def __post_init__(self):
        if self.method not in ("mnist_like", "naive"):
            raise UserError(f"preprocess.method must be 'mnist_like' or 'naive', got '{self.method}'.")
        self.line_angles = tuple(float(a) for a in self.line_angles)


@dataclass
class PreprocessResult:
    """``digit`` is uint8 28×28 (bright ink on black) or None with a one-sentence ``reason``."""

    digit: np.ndarray | None
    reason: str | None = None
    views: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.digit is not None


class _NoDigit(Exception):
    """Internal: the pipeline found no digit; the message becomes ``PreprocessResult.reason``."""


def as_config(cfg: PreprocessConfig | Mapping | None = None, **overrides) -> PreprocessConfig:
    """Accept a config object, a plain/Hydra mapping or None (defaults); unknown keys are a user error."""
    if isinstance(cfg, PreprocessConfig) and not overrides:
        return cfg
    base = (
        {}
        if cfg is None
        else (
            {f.name: getattr(cfg, f.name) for f in fields(cfg)}
            if isinstance(cfg, PreprocessConfig)
            else dict(cfg)
        )
    )
    base.update(overrides)
    known = {f.name for f in fields(PreprocessConfig)}
    unknown = sorted(set(base) - known)
    if unknown:
        raise UserError(
            f"Unknown preprocess setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}."
        )
    if base.get("line_angles") is not None:
        base["line_angles"] = tuple(base["line_angles"])
    return PreprocessConfig(**base)


# --------------------------------------------------------------------------- loading


def load_image(path, cfg: PreprocessConfig | Mapping | None = None) -> np.ndarray:
    """Read an image file as float32 greyscale in [0, 1] (paper bright for ordinary photos).

    Pillow's decompression-bomb guard stays on; huge JPEGs are decoded at 1/2–1/8 scale
    (``draft``) and anything still larger than ``max_load_side`` is box-reduced right
    after decoding, so a 12000×9000 photo never lives in memory as floats. Every failure
    becomes an ``ImageError`` that names the file.
    """
    cfg = as_config(cfg)
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"Image file {path} does not exist (or is not a file); check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = _decode_reduced(im, cfg.max_load_side, _draft_side(cfg))
                if cfg.exif_transpose:
                    im = exif_transpose(im)
                return pil_to_gray(im)
    except Image.DecompressionBombError as e:
        raise ImageError(f"Image {path} is too large to open safely ({e}); downscale it first.") from e
    except UnidentifiedImageError as e:
        raise ImageError(
            f"File {path} is not an image Pillow can read (empty, corrupt or another format)."
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt data
        raise ImageError(
            f"Image {path} could not be decoded ({e}); the file may be truncated or corrupt."
        ) from e


def _draft_side(cfg: PreprocessConfig) -> int | None:
    """The MNIST-like pipeline analyses at ``work_size``: a JPEG need not be decoded larger.
    (The study's naive conversion keeps its own decoding, so its table does not move.)"""
    return cfg.work_size if cfg.method == "mnist_like" else None


def _decode_reduced(im: Image.Image, max_side: int, draft_side: int | None = None) -> Image.Image:
    """Decode only the first frame, at reduced size when the file is large.

    ``draft`` lets libjpeg decode directly at 1/2, 1/4 or 1/8 scale, the smallest that keeps
    ``draft_side`` (default ``max_side``) px: memory and time fall with it. Anything still
    larger than ``max_side`` (other formats) is box-reduced at once.
    """
    im.seek(0)  # animated GIF/WebP/TIFF: the first frame is the photo
    draft_side = min(draft_side or max_side, max_side)
    if im.format == "JPEG" and max(im.size) > draft_side:
        im.draft(im.mode, (draft_side, draft_side))
    im.load()
    factor = int(np.ceil(max(im.size) / max_side))
    if factor > 1:
        if im.mode in ("P", "1"):
            im = im.convert("RGBA" if im.mode == "P" else "L")
        im = im.reduce(factor)
    return im


def exif_transpose(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (1–8). Phones store the sensor's landscape pixels and
    record the rotation; the study ignored it, so ``sydney/`` digits reached its models sideways."""
    try:
        out = ImageOps.exif_transpose(im)
    except Exception:  # a malformed EXIF block must not lose an otherwise good photo
        return im
    return out if out is not None else im


def pil_to_gray(im: Image.Image) -> np.ndarray:
    """Any Pillow mode → float32 grey in [0, 1].

    Transparent pixels are composited on white (a cut-out digit sits on paper, not on black);
    palette, CMYK, YCbCr, 16-bit and float modes go through their own conversions.
    """
    mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("L"), dtype=np.float32) / 255.0
    if mode.startswith("I") or mode == "F":
        return scale_to_unit(np.asarray(im))
    if mode not in ("L", "1"):
        im = im.convert("RGB")
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def scale_to_unit(a: np.ndarray) -> np.ndarray:
    """Numbers → [0, 1] by the range they evidently use (1, 255, 65535, else their own span).

    Stretching every image to its own min/max would turn a blank page's sensor noise into
    full-contrast "ink"; using the nominal range keeps faint things faint.
    """
    a = np.asarray(a, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, np.float32)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    a = np.where(finite, a, np.where(np.isnan(a), np.median(a[finite]), np.clip(a, lo, hi)))
    if lo >= 0 and hi <= 1:
        out = a
    elif lo >= 0 and hi <= 255:
        out = a / 255.0
    elif lo >= 0 and hi <= 65535:
        out = a / 65535.0
    else:
        out = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.clip(out, 0, 1).astype(np.float32)


def array_to_gray(a) -> np.ndarray:
    """An array in any common layout (H×W, H×W×C, C×H×W; any numeric dtype) → float32 grey."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise _NoDigit(f"an array of dtype {a.dtype} is not an image")
    a = np.squeeze(a)
    if a.ndim == 3 and a.shape[0] in (1, 2, 3, 4) and a.shape[-1] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channels-first (torch layout)
    if a.ndim == 3 and a.shape[-1] in (1, 2, 3, 4):
        x = scale_to_unit(a)
        colour, alpha = (
            (x[..., :3], x[..., 3])
            if x.shape[-1] == 4
            else (x[..., :1], x[..., 1])
            if x.shape[-1] == 2
            else (x, None)
        )
        g = colour.mean(-1) if colour.shape[-1] == 1 else colour @ np.array([0.299, 0.587, 0.114], np.float32)
        return (g if alpha is None else alpha * g + (1 - alpha)).astype(np.float32)
    if a.ndim != 2:
        raise _NoDigit(f"an array of shape {a.shape} is not a 2-D image")
    return scale_to_unit(a)


def _as_gray(image, cfg: PreprocessConfig) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return load_image(image, cfg)
    if isinstance(image, Image.Image):
        im = _decode_reduced(image, cfg.max_load_side, _draft_side(cfg))
        return pil_to_gray(exif_transpose(im) if cfg.exif_transpose else im)
    return array_to_gray(image)


# --------------------------------------------------------------------------- geometry helpers


def _resize(a: np.ndarray, shape: tuple[int, int], resample=Image.Resampling.LANCZOS) -> np.ndarray:
    """Float image resize with Pillow (its filters widen their support when shrinking: true anti-aliasing)."""
    h, w = max(1, int(shape[0])), max(1, int(shape[1]))
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F").resize((w, h), resample)
    )


def to_work_size(gray: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Analyse at a fixed scale: fractions in the config then mean the same on any camera,
    and a 12-megapixel photo costs no more than a thumbnail. Tiny inputs are enlarged so
    morphology has room (a 28×28 MNIST array has 2-px strokes)."""
    h, w = gray.shape
    s = max(h, w)
    target = min(cfg.work_size, max(s, cfg.min_work_size))
    if target == s:
        return gray.astype(np.float32)
    k = target / s
    resample = Image.Resampling.BOX if k < 1 else Image.Resampling.BILINEAR
    return np.clip(_resize(gray, (round(h * k), round(w * k)), resample), 0, 1)


def _disk(radius: float) -> np.ndarray:
    r = max(0.5, float(radius))
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    return (yy**2 + xx**2) <= r * r + 1e-6


# --------------------------------------------------------------------------- pipeline steps
#
# One mechanism for every framing. A digit image is paper (a smooth surface: even, shaded or
# lit from one side) plus ink (thin strokes darker, or lighter, than the paper). The paper is
# estimated first, robustly, with no assumption about how much of the image it covers; the ink
# is whatever stands out from it by more than the paper's own grain; the digit is the ink
# that forms strokes. Nothing below assumes a margin, a size, a polarity or a contrast.


def _coarse(gray: np.ndarray, side: int = 48) -> np.ndarray:
    h, w = gray.shape
    k = side / max(h, w)
    if k >= 1:
        return gray
    return _resize(gray, (max(2, round(h * k)), max(2, round(w * k))), Image.Resampling.BOX)


def _plane_basis(h: int, w: int) -> np.ndarray:
    y = np.linspace(-0.5, 0.5, h)[:, None] * np.ones((1, w))
    x = np.ones((h, 1)) * np.linspace(-0.5, 0.5, w)[None, :]
    return np.stack([np.ones_like(x), x, y], -1).reshape(-1, 3)


@dataclass
class Paper:
    """The paper: a smooth surface, its grain, and which way the ink departs from it."""

    coef: np.ndarray  # plane over [-0.5, 0.5]², in the image's own grey levels
    grain: float  # robust std of the paper around its surface, at the resolution it was fitted
    dark_ink: bool  # the ink is darker than the paper (pen on paper), else lighter (chalk, MNIST arrays)

    def surface(self, shape: tuple[int, int]) -> np.ndarray:
        a0, ax, ay = self.coef
        y = np.linspace(-0.5, 0.5, shape[0], dtype=np.float32)[:, None]
        x = np.linspace(-0.5, 0.5, shape[1], dtype=np.float32)[None, :]
        return (np.float32(a0) + np.float32(ax) * x + np.float32(ay) * y).astype(np.float32)


def frame_mask(shape: tuple[int, int], frac: float) -> np.ndarray:
    """The ring of pixels within ``frac`` of the image side from its edges (at least one pixel)."""
    k = max(1, int(round(frac * max(shape))))
    ring = np.zeros(shape, bool)
    ring[:k], ring[-k:], ring[:, :k], ring[:, -k:] = True, True, True, True
    return ring


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


def _otsu(x: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (written here: ten lines, not worth scikit-image as a dependency)."""
    hist, edges = np.histogram(x, bins=bins)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * mids) / np.maximum(w0, 1)
    m1 = (np.sum(hist * mids) - np.cumsum(hist * mids)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(mids[int(np.argmax(between[:-1]))])


def _fewer_pieces_is_dark(c: np.ndarray, cfg: PreprocessConfig) -> bool:
    """Split the image in two at Otsu's threshold; True when the dark class has fewer pieces
    (8-connected, specks ignored), i.e. is the ink. A tie goes to dark ink, the common case."""
    dark = c < _otsu(c)
    min_size = max(2, int(cfg.speck_frac * c.size))

    def pieces(m: np.ndarray) -> int:
        lab, n = ndi.label(m, structure=np.ones((3, 3)))
        return int((np.bincount(lab.ravel(), minlength=n + 1)[1:] >= min_size).sum())

    return pieces(dark) <= pieces(~dark)


def find_paper(gray: np.ndarray, cfg: PreprocessConfig) -> Paper:
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
    """
    c = _coarse(gray)
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
    scale = max(scale, cfg.min_grain, cfg.min_grain_frac * span)
    r = z - basis @ coef
    if (np.abs(r[ring]) > cfg.snr * scale).mean() > cfg.max_frame_ink:
        # The frame is mixed: thick strokes run along nearly half of it or more (a tight crop of
        # a bold digit), and it cannot tell paper from ink. Then topology decides: a digit's ink
        # is one connected stroke (or a few pieces), while the paper it cuts through falls
        # apart into corners and holes. The class with fewer pieces is the ink; the paper's
        # level is the frame's top decile on its side.
        dark_ink = _fewer_pieces_is_dark(c, cfg)
        side = np.percentile(zr, 90 if dark_ink else 10)
        paper_px = zr[(zr >= _otsu(c)) == dark_ink]
        spread = _paper_level(paper_px)[1] if paper_px.size >= 4 else scale
        return Paper(np.array([side, 0.0, 0.0]), max(spread, cfg.min_grain), dark_ink)
    # Count only clear departures: beyond the grain, and beyond a third of the strongest one
    # (a paper's texture, whose grain a JPEG's flat blocks hide, is not ink).
    t = max(cfg.snr * scale, float(np.percentile(np.abs(r), 99.9)) / 3)
    dark = float(np.clip(-r - t, 0, None).sum())
    light = float(np.clip(r - t, 0, None).sum())
    return Paper(coef, scale, dark >= light)


def stroke_width(img: np.ndarray, level: float = 0.5) -> float:
    """Mean stroke width in px: 2 × area / boundary length (a thin stroke of width w and
    length L has area wL and two edges of length L)."""
    m = img > level
    if not m.any():
        return 0.0
    boundary = m & ~ndi.binary_erosion(m)
    return 2.0 * m.sum() / max(1, boundary.sum())


def _paper_lid(g: np.ndarray, k: int) -> np.ndarray:
    """Grey closing of width ``k``, smoothed, never below ``g``: the paper with the strokes lifted off.

    Computed on a max-pooled copy (the lid is smooth at the scale of ``k``, and pooling by the
    maximum never lowers it below a stroke's paper), then enlarged: the same result for a
    fraction of the cost of a wide closing at full resolution.
    """
    f = max(1, k // 8)
    h, w = g.shape
    if f > 1:
        ph, pw = -h % f, -w % f
        small = np.pad(g, ((0, ph), (0, pw)), mode="edge").reshape((h + ph) // f, f, (w + pw) // f, f).max(axis=(1, 3))
    else:
        small = g
    kk = max(3, int(round(k / f)))
    lid = ndi.grey_closing(small, size=(kk, kk), mode="nearest")
    lid = ndi.uniform_filter(lid, size=kk, mode="nearest")
    if f > 1:
        lid = _resize(lid, (small.shape[0] * f, small.shape[1] * f), Image.Resampling.BILINEAR)[:h, :w]
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
    width = stroke_width(rough)
    k = int(round(max(cfg.background_frac * max(g.shape), 3 * width, 3)))
    lid = _paper_lid(g, k)
    # Relative to the paper (lighting multiplies); the floor keeps a near-black "paper" from
    # turning its grain into full-contrast ink.
    level = np.maximum(lid, cfg.min_paper)
    ink = (lid - g) / level
    # The paper's own level and grain in this map, measured well away from the strokes (the lid
    # rides on the top of the grain, so bare paper is not exactly 0). A crop too tight to leave
    # bare paper uses the frame's grain from find_paper.
    clear = ~ndi.binary_dilation(rough, iterations=int(np.ceil(width)) + 2)
    if clear.sum() >= 64:
        v = ink[clear]
        base = float(np.median(v))
        grain = float(1.4826 * np.median(np.abs(v - base)))
    else:
        base, grain = 0.0, paper.grain / float(np.median(level))
    return np.clip(ink - base, 0, 1).astype(np.float32), max(grain, cfg.min_grain)


def _line_footprint(length: int, angle_deg: float, vertical: bool) -> np.ndarray:
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, length)
    off = np.round(t * np.tan(np.deg2rad(angle_deg))).astype(int)
    along = np.round(t).astype(int) - int(np.round(t).min())
    across = off - off.min()
    fp = np.zeros((across.max() + 1, along.max() + 1), bool)
    fp[across, along] = True
    return fp.T if vertical else fp


def find_lines(ink: np.ndarray, mask: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Mask of ruled/squared-paper lines and straight page edges to erase.

    Candidates: straight runs of ink longer than ``line_frac`` of the image (an opening with a
    long thin line, on a max-pooled copy about 80 px wide, at a few angles), thin across. A candidate is
    erased only when it is much longer than the digit left without it
    (``line_over_digit`` × the rest of the ink's extent): a rule crosses the whole page, a
    7's bar or a 1's stem in a tight crop is as long as the digit and stays. Where a pen
    stroke crosses a rule its run across the rule is long, so the digit is not cut in two.
    """
    h, w = ink.shape
    none = np.zeros(ink.shape, bool)
    if not cfg.line_frac or cfg.line_frac <= 0:
        return none
    f = max(1, max(h, w) // 80)  # lines survive max-pooling; about 80 px is enough to see them
    ph, pw = -h % f, -w % f
    small = np.pad(mask, ((0, ph), (0, pw))).reshape((h + ph) // f, f, (w + pw) // f, f).any(axis=(1, 3))
    across = max(5, int(round(0.015 * max(h, w))))
    lines = none.copy()
    for vertical in (False, True):
        length = int(cfg.line_frac * (small.shape[0] if vertical else small.shape[1]))
        if length < 8 or _extent(small, 0 if vertical else 1) < length:
            continue  # no ink runs that far: no line (most photos stop here)
        coarse = np.zeros_like(small)
        for ang in cfg.line_angles:
            coarse |= ndi.binary_opening(small, structure=_line_footprint(length, ang, vertical))
        if not coarse.any():
            continue
        coarse = np.repeat(np.repeat(ndi.binary_dilation(coarse), f, 0), f, 1)[:h, :w]
        thin = ink - ndi.grey_opening(ink, size=(1, across) if vertical else (across, 1))
        cand = coarse & mask & (thin > 0.6 * ink)
        if not cand.any():
            continue
        rest = mask & ~ndi.binary_dilation(cand, iterations=2)
        rest = _drop_specks(rest, cfg)
        axis = 0 if vertical else 1
        extent = _extent(rest, axis)
        lab, n = ndi.label(cand, structure=np.ones((3, 3)))
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            run = sl[axis].stop - sl[axis].start
            if run >= cfg.line_over_digit * max(extent, 1):
                lines |= lab == i
    if lines.any():
        lines = ndi.binary_dilation(lines) & (ink > 0)
    return lines


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


def threshold_soft(ink: np.ndarray, grain: float, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """(binary mask, soft ink): the mask finds components, the soft map keeps grey edges.

    The threshold is the larger of ``snr`` × the paper's grain (ink must stand out from the
    paper's own noise: on clean low-contrast paper 20 grey levels are plenty, on grainy paper
    they are not) and ``threshold_frac`` × the strongest ink (a stroke's faint halo is not a
    stroke). MNIST's strokes have anti-aliased grey borders, so the soft map keeps them.
    """
    strong = float(np.percentile(ink, 99.9)) if ink.size else 0.0
    t = max(cfg.snr * grain, cfg.threshold_frac * strong, cfg.min_contrast)
    if strong < cfg.min_peak_snr * grain or strong <= t:
        return np.zeros(ink.shape, bool), np.zeros_like(ink)
    mask = ink > t
    hi = max(float(np.percentile(ink[mask], 75)), t + 1e-3)
    lo = 0.5 * t
    return mask, np.clip((ink - lo) / (hi - lo), 0, 1).astype(np.float32)


def _component_table(mask: np.ndarray, soft: np.ndarray):
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return lab, []
    flat = lab.ravel()
    area = np.bincount(flat, minlength=n + 1)
    mass = np.bincount(flat, weights=soft.ravel(), minlength=n + 1)
    ys, xs = np.indices(mask.shape)
    cy = np.bincount(flat, weights=ys.ravel(), minlength=n + 1) / np.maximum(area, 1)
    cx = np.bincount(flat, weights=xs.ravel(), minlength=n + 1) / np.maximum(area, 1)
    objs = ndi.find_objects(lab)
    return lab, [
        {"label": i, "area": float(area[i]), "mass": float(mass[i]), "com": (cy[i], cx[i]), "slc": objs[i - 1]}
        for i in range(1, n + 1)
    ]


def _touches_frame(c: dict, shape: tuple[int, int]) -> bool:
    (ys, xs), (h, w) = c["slc"], shape
    return ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w


def _edge_like(c: dict, shape: tuple[int, int]) -> bool:
    """Hugs a border over a third of its length: a page edge, a table, a shadow — or a stroke of a tightly cropped digit."""
    (ys, xs), (h, w) = c["slc"], shape
    touches_tb = ys.start == 0 or ys.stop == h
    touches_lr = xs.start == 0 or xs.stop == w
    return (touches_tb and (xs.stop - xs.start) > w / 3) or (touches_lr and (ys.stop - ys.start) > h / 3)


def choose_digit(mask: np.ndarray, soft: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Boolean mask of the digit: the main component plus the pieces that belong to it.

    Specks (dust, paper grain) are dropped by size. Among the rest the one with the most ink,
    mildly favouring the centre, is the digit. Components hugging the frame (page edges, a
    table, shadows) are heavily down-weighted, but only when something else does not touch
    the frame: in a tight crop every stroke touches it, and nothing is a page edge. Nearby
    pieces join the digit (a 5's flag, a stroke broken by a ruled line). Raises ``_NoDigit``
    when nothing credible is left.
    """
    h, w = mask.shape
    lab, comps = _component_table(mask, soft)
    largest = max((c["area"] for c in comps), default=0.0)
    comps = [c for c in comps if c["area"] >= max(4.0, cfg.speck_frac * largest)]
    if not comps:
        raise _NoDigit("no digit found: the image holds no ink mark larger than a speck")
    big = max(c["mass"] for c in comps)
    framed = any(not _touches_frame(c, (h, w)) for c in comps if c["mass"] >= 0.1 * big)
    diag = float(np.hypot(h, w))
    for c in comps:
        d = np.hypot(c["com"][0] - h / 2, c["com"][1] - w / 2) / diag
        c["edge"] = framed and _edge_like(c, (h, w))
        c["score"] = c["mass"] * np.exp(-((d / 0.5) ** 2)) * (cfg.edge_penalty if c["edge"] else 1.0)
    main = max(comps, key=lambda c: c["score"])
    ys, xs = main["slc"]
    size = max(ys.stop - ys.start, xs.stop - xs.start)
    m = cfg.group_margin * size
    y0, y1, x0, x1 = ys.start - m, ys.stop + m, xs.start - m, xs.stop + m
    keep = [main["label"]]
    for c in comps:
        cy, cx = c["slc"]
        if c is main or c["edge"] or c["mass"] < 0.02 * main["mass"]:
            continue
        if cy.start < y1 and cy.stop > y0 and cx.start < x1 and cx.stop > x0:
            keep.append(c["label"])
    digit = np.isin(lab, keep)
    dys, dxs = ndi.find_objects(digit.astype(np.int32))[0]
    longest = max(dys.stop - dys.start, dxs.stop - dxs.start)
    if longest < max(4, cfg.min_digit_frac * min(h, w)):
        raise _NoDigit(
            "no digit found: the largest ink mark is too small to be a digit (blank page or specks)"
        )
    loops = count_loops(digit[dys, dxs], min_area=max(4.0, cfg.speck_frac * float(digit.sum())))
    if loops > cfg.max_loops:
        raise _NoDigit(
            f"no digit found: the largest mark is a tangle with {loops} loops (noise or texture, not a digit)"
        )
    total = sum(c["mass"] for c in comps if not c["edge"])
    share = float(soft[digit].sum()) / max(total, 1e-6)
    if share < cfg.min_digit_ink_share:
        raise _NoDigit(
            f"no digit found: the ink is scattered over many marks (largest holds {share:.0%}; noise or several objects)"
        )
    return digit


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
    keep = ndi.binary_dilation(digit, iterations=2)
    ys, xs = ndi.find_objects(keep.astype(np.int32))[0]
    return np.where(keep, soft, 0)[ys, xs]


def saturate_ink(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Scale so stroke cores are fully white, as in MNIST (most ink pixels are 250–255).

    Low-resolution sources (UCI's 8×8 block counts, blurred scans) arrive as grey blobs;
    a model trained on MNIST reads faint strokes as weak evidence.
    """
    if cfg.saturate_quantile is None or img.size == 0 or img.max() <= 0:
        return img
    ink = img[img > 0.2 * img.max()]
    level = float(np.quantile(ink, cfg.saturate_quantile))
    return np.clip(img / max(level, 1e-6), 0, 1)


def normalize_stroke(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Thicken or thin strokes toward MNIST's stroke-to-size ratio.

    A classifier trained on MNIST has only seen strokes about 2–3 px wide in a 20-px box
    (~13 % of the box). A fine pen photographed large shrinks to hairlines, a fat marker on
    a small digit to a blob; grey dilation/erosion with a disk moves the width back toward
    MNIST's without changing the shape. Runs on a 4×-box-size copy, so at 20 px it is smooth.
    """
    if cfg.stroke_ratio is None or img.size == 0:
        return img
    w = stroke_width(img)
    if w <= 0:
        return img
    target = cfg.stroke_ratio * max(img.shape)
    if abs(target - w) <= cfg.stroke_tolerance * target:
        return img
    change = float(np.clip(target - w, -cfg.stroke_max_thin * w, cfg.stroke_max_thicken * w))
    radius = abs(change) / 2
    if radius < 0.5:
        return img
    pad = int(np.ceil(radius)) + 1
    padded = np.pad(img, pad)
    op = ndi.grey_dilation if change > 0 else ndi.grey_erosion
    out = op(padded, footprint=_disk(radius))
    if change < 0 and out.max() < 0.5:  # thinning would erase the digit: keep it as it is
        return img
    return out


def _bbox(img: np.ndarray, level: float) -> tuple[slice, slice] | None:
    m = img > level
    if not m.any():
        return None
    ys, xs = np.nonzero(m)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def fit_box(img: np.ndarray, box: int) -> np.ndarray:
    """Longest side → ``box`` px keeping the aspect ratio, anti-aliased (NIST → MNIST's 20×20)."""
    h, w = img.shape
    k = box / max(h, w)
    return np.clip(_resize(img, (max(1, round(h * k)), max(1, round(w * k)))), 0, 1)


def center_by_mass(img: np.ndarray, size: int) -> np.ndarray:
    """Place in a ``size``×``size`` field with the centre of mass at the centre (MNIST's rule),
    shifting by whole pixels as MNIST did, never pushing ink off the field."""
    h, w = img.shape
    out = np.zeros((size, size), np.float32)
    cy, cx = ndi.center_of_mass(img) if img.sum() > 0 else ((h - 1) / 2, (w - 1) / 2)
    top = int(np.clip(round(size / 2 - 0.5 - cy), 0, size - h))
    left = int(np.clip(round(size / 2 - 0.5 - cx), 0, size - w))
    out[top : top + h, left : left + w] = img
    return out


def _to_uint8(img: np.ndarray) -> np.ndarray:
    peak = float(img.max())
    if peak <= 0:
        return np.zeros(img.shape, np.uint8)
    return np.round(np.clip(img / peak, 0, 1) * 255).astype(np.uint8)


def _u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def normalize_digit(img, cfg: PreprocessConfig | Mapping | None = None, *, level: float = 0.05) -> np.ndarray:
    """Bright-ink-on-dark array (any scale) → 28×28 uint8 by MNIST's construction.

    Crop to the ink's bounding box, normalise the stroke width, fit the longest side to
    20 px with anti-aliasing, centre the mass in 28×28. USPS, UCI digits and cropped photo
    digits all go through this one function so they are comparable.
    """
    cfg = as_config(cfg)
    x = scale_to_unit(img)
    bb = _bbox(x, level * max(float(x.max()), 1e-6))
    if bb is None:
        return np.zeros((cfg.size, cfg.size), np.uint8)
    x = x[bb] / max(float(x.max()), 1e-6)
    work = 4 * cfg.box  # enough resolution for morphology, small enough to be instant
    h, w = x.shape
    k = work / max(h, w)
    x = np.clip(_resize(x, (max(1, round(h * k)), max(1, round(w * k)))), 0, 1)
    x = normalize_stroke(saturate_ink(x, cfg), cfg)
    bb = _bbox(x, 0.02)
    if bb is not None:
        x = x[bb]
    return _to_uint8(center_by_mass(fit_box(x, cfg.box), cfg.size))


# --------------------------------------------------------------------------- entry points


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
        gray = _as_gray(image, cfg)
        if min(gray.shape) < 4:
            raise _NoDigit(f"no digit found: the image is only {gray.shape[0]}×{gray.shape[1]} px")
        paper = find_paper(gray, cfg)
        gray = to_work_size(gray, cfg)
        views["input"] = _u8(gray)
        g = ndi.gaussian_filter(gray, cfg.smooth_sigma) if cfg.smooth_sigma else gray
        if not paper.dark_ink:
            g = 1.0 - g
        ink, grain = flatten_illumination(g, paper, cfg)
        mask, soft = threshold_soft(ink, grain, cfg)
        views["ink"] = _u8(soft)
        if not mask.any():
            raise _NoDigit("no digit found: nothing on the image stands out from the paper's grain")
        lines = find_lines(ink, mask, cfg)
        digit_mask = choose_digit(mask & ~lines, np.where(lines, 0, soft), cfg)
        crop = crop_to_digit(np.where(lines, 0, soft), digit_mask)
        views["crop"] = _u8(crop)
        digit = normalize_digit(crop.astype(np.float32), cfg, level=0.02)
    except _NoDigit as e:
        return PreprocessResult(None, str(e)[0].upper() + str(e)[1:] + ".", views)
    views["digit"] = digit
    return PreprocessResult(digit, None, views)


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
        except _NoDigit as e:
            raise ImageError(f"naive preprocessing: {e}.") from e
    if gray.size == 0:
        raise ImageError("naive preprocessing: the image is empty.")
    small = _resize(gray, (cfg.size, cfg.size), Image.Resampling.BILINEAR)
    out = np.round((1.0 - np.clip(small, 0, 1)) * 255)
    if cfg.naive_threshold is not None:
        out = np.where(out >= cfg.naive_threshold, 255, 0)
    return out.astype(np.uint8)


def preprocess_many(
    paths: Iterable, cfg: PreprocessConfig | Mapping | None = None
) -> list[tuple[object, PreprocessResult | None, str | None]]:
    """Run ``to_mnist`` on many files; one bad file yields (path, None, reason) instead of an exception."""
    cfg = as_config(cfg)
    out = []
    for p in paths:
        try:
            out.append((p, to_mnist(p, cfg), None))
        except ImageError as e:
            out.append((p, None, str(e)))
    return out
