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
    min_work_size: int = 112  # tiny inputs (e.g. a 28×28 array) are enlarged to this first
    background_frac: float = 0.12  # closing window for the paper estimate, × longest side
    smooth_sigma: float = 1.0  # px at work size; averages away paper grain and sensor noise
    min_contrast: float = 0.15  # ink must be this much darker than the paper (relative)
    threshold_frac: float = 0.4  # threshold = max(min_contrast, frac × strong-ink level)
    line_frac: float = 0.5  # straight runs longer than this × image side are ruled lines
    line_angles: tuple[float, ...] = (-6.0, -3.0, 0.0, 3.0, 6.0)  # degrees; photos are rarely square-on
    speck_frac: float = 0.002  # components smaller than this × image area are specks
    min_digit_frac: float = 0.04  # a digit's longest side is at least this × shorter image side
    max_ink_frac: float = 0.35  # more ink than this × image area is not a digit on paper
    max_background_noise: float = 0.05  # robust spread of the background; above it the image is noise
    max_loops: int = 3  # a digit has at most two loops (8); a tangle with more is noise or texture
    min_digit_ink_share: float = 0.35  # the chosen digit holds at least this share of all ink
    group_margin: float = 0.35  # pieces within this × digit size of the main stroke belong to it
    edge_penalty: float = 0.05  # weight of components hugging the border (page edges, shadows)
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
                im = _decode_reduced(im, cfg.max_load_side)
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


def _decode_reduced(im: Image.Image, max_side: int) -> Image.Image:
    """Decode only the first frame, at reduced size when the file is huge.

    ``draft`` lets libjpeg decode directly at 1/2, 1/4 or 1/8 scale (memory and time
    fall with it); other formats are decoded fully and box-reduced at once.
    """
    im.seek(0)  # animated GIF/WebP/TIFF: the first frame is the photo
    if im.format == "JPEG" and max(im.size) > max_side:
        im.draft(im.mode, (max_side, max_side))
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
        im = _decode_reduced(image, cfg.max_load_side)
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


def detect_polarity(gray: np.ndarray, cfg: PreprocessConfig) -> tuple[bool, float]:
    """(True if the ink is darker than its background, robust noise level of the background).

    Paper is the majority of any digit photo, so a large-window median follows the paper
    (and the lighting) whatever the polarity; the ink is the heavy tail of the residual on
    one side. Comparing the two tails' mass handles pen on paper and chalk on a board
    (or an MNIST array passed in directly) alike. The residual's robust spread measures
    how grainy the background is: pure noise has no quiet paper at all.
    """
    g = ndi.gaussian_filter(gray, cfg.smooth_sigma)
    step = max(1, max(g.shape) // 64)
    coarse = g[::step, ::step]
    bg = ndi.median_filter(coarse, size=max(3, int(max(coarse.shape) * 0.3) | 1), mode="nearest")
    bg = ndi.zoom(bg, (g.shape[0] / bg.shape[0], g.shape[1] / bg.shape[1]), order=1, mode="nearest")[
        : g.shape[0], : g.shape[1]
    ]
    r = g - bg
    sigma = 1.4826 * np.median(np.abs(r - np.median(r))) + 1e-3
    dark = np.clip(-r - 4 * sigma, 0, None).sum()
    light = np.clip(r - 4 * sigma, 0, None).sum()
    return bool(dark >= light), float(sigma)


def flatten_illumination(gray: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Relative ink darkness in [0, 1], with uneven light and soft shadows divided out.

    The paper's brightness is estimated by a grey closing (a rolling "lid" wider than any
    stroke lifts the dark ink away, leaving the paper), then smoothed. Dividing by it
    turns a strong gradient (``sydney/``) or a shadow into a flat page, which a fixed
    threshold on the raw photo — the study's — cannot cope with.
    """
    g = ndi.gaussian_filter(gray, cfg.smooth_sigma)
    k = max(3, int(round(cfg.background_frac * max(g.shape))))
    paper = ndi.grey_closing(g, size=(k, k), mode="nearest")
    paper = ndi.uniform_filter(paper, size=k, mode="nearest")
    paper = np.maximum(paper, g)
    # The floor keeps a dark "paper" (a dim photo, or a blank page read with the wrong
    # polarity) from blowing its grain up into full-contrast ink.
    return np.clip((paper - g) / np.maximum(paper, 0.5), 0, 1).astype(np.float32)


def _line_footprint(length: int, angle_deg: float, vertical: bool) -> np.ndarray:
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, length)
    off = np.round(t * np.tan(np.deg2rad(angle_deg))).astype(int)
    along = np.round(t).astype(int) - int(np.round(t).min())
    across = off - off.min()
    fp = np.zeros((across.max() + 1, along.max() + 1), bool)
    fp[across, along] = True
    return fp.T if vertical else fp


def remove_lines(ink: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Erase ruled/squared-paper lines and straight page edges; return (ink, line mask).

    A grey opening with a long, thin line keeps only straight runs longer than
    ``line_frac`` of the image — no digit stroke is that long and straight, every rule on
    lined paper is. It runs on a 4× max-pooled copy, so it is cheap even at several
    angles. Only pixels that are also thin across the line are erased: where a pen stroke
    crosses a rule, its run across the rule is long, so the digit is not cut in two.
    """
    if not cfg.line_frac or cfg.line_frac <= 0:
        return ink, np.zeros(ink.shape, bool)
    f = 4
    h, w = ink.shape
    ph, pw = -h % f, -w % f
    small = np.pad(ink, ((0, ph), (0, pw))).reshape((h + ph) // f, f, (w + pw) // f, f).max(axis=(1, 3))
    across = max(5, int(round(0.015 * max(h, w))))
    mask = np.zeros(ink.shape, bool)
    for vertical in (False, True):
        length = int(cfg.line_frac * (small.shape[0] if vertical else small.shape[1]))
        if length < 8:
            continue
        lines = np.zeros_like(small)
        for ang in cfg.line_angles:
            lines = np.maximum(
                lines, ndi.grey_opening(small, footprint=_line_footprint(length, ang, vertical))
            )
        coarse = lines > cfg.min_contrast * 0.5
        if not coarse.any():
            continue
        coarse = np.repeat(np.repeat(ndi.binary_dilation(coarse), f, 0), f, 1)[:h, :w]
        thin = ink - ndi.grey_opening(ink, size=(1, across) if vertical else (across, 1))
        # A rule vanishes under the opening; the top of a thick stroke only loses a little.
        mask |= coarse & (thin > np.maximum(0.6 * ink, cfg.min_contrast * 0.5))
    if not mask.any():
        return ink, mask
    mask = ndi.binary_dilation(mask) & (ink > 0)
    return np.where(mask, 0, ink).astype(np.float32), mask


def threshold_soft(ink: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """(binary mask, soft ink) — the mask finds components, the soft map keeps grey edges.

    MNIST's strokes have anti-aliased grey borders; a hard 0/255 threshold (the study's)
    throws them away. The threshold is relative to the strongest ink, with an absolute
    floor so that a blank page's grain never becomes a digit.
    """
    strong = float(np.percentile(ink, 99.9)) if ink.size else 0.0
    t = max(cfg.min_contrast, cfg.threshold_frac * strong)
    mask = ink > t
    if not mask.any():
        return mask, np.zeros_like(ink)
    hi = max(float(np.percentile(ink[mask], 75)), t + 1e-3)
    lo = 0.5 * t
    return mask, np.clip((ink - lo) / (hi - lo), 0, 1).astype(np.float32)


def _component_table(mask: np.ndarray, soft: np.ndarray):
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return lab, []
    idx = np.arange(1, n + 1)
    area = ndi.sum_labels(mask, lab, idx)
    mass = ndi.sum_labels(soft, lab, idx)
    com = ndi.center_of_mass(mask, lab, idx)
    objs = ndi.find_objects(lab)
    return lab, [
        {"label": int(i), "area": float(a), "mass": float(m), "com": c, "slc": s}
        for i, a, m, c, s in zip(idx, area, mass, com, objs, strict=True)
    ]


def _edge_like(c: dict, shape: tuple[int, int]) -> bool:
    """Hugs a border over a third of its length: a page edge, a table, a shadow — not a digit."""
    (ys, xs), (h, w) = c["slc"], shape
    touches_tb = ys.start == 0 or ys.stop == h
    touches_lr = xs.start == 0 or xs.stop == w
    return (touches_tb and (xs.stop - xs.start) > w / 3) or (touches_lr and (ys.stop - ys.start) > h / 3)


def choose_digit(mask: np.ndarray, soft: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Boolean mask of the digit: the main component plus the pieces that belong to it.

    Specks (dust, paper grain) are dropped by size; components hugging the border
    (page edges, a table, shadows) are heavily down-weighted; among the rest the one with
    the most ink, mildly favouring the centre, is the digit. Nearby pieces join it (a 5's
    flag, a stroke broken by a ruled line). Raises ``_NoDigit`` when nothing credible is left.
    """
    h, w = mask.shape
    if mask.mean() > cfg.max_ink_frac:
        raise _NoDigit(
            f"no digit found: {mask.mean():.0%} of the image is ink-dark (noise, a dark photo or a filled page)"
        )
    lab, comps = _component_table(mask, soft)
    comps = [c for c in comps if c["area"] >= max(4.0, cfg.speck_frac * h * w)]
    if not comps:
        raise _NoDigit("no digit found: the image holds no ink mark larger than a speck")
    diag = float(np.hypot(h, w))
    for c in comps:
        d = np.hypot(c["com"][0] - h / 2, c["com"][1] - w / 2) / diag
        c["score"] = (
            c["mass"] * np.exp(-((d / 0.5) ** 2)) * (cfg.edge_penalty if _edge_like(c, (h, w)) else 1.0)
        )
    main = max(comps, key=lambda c: c["score"])
    ys, xs = main["slc"]
    size = max(ys.stop - ys.start, xs.stop - xs.start)
    m = cfg.group_margin * size
    y0, y1, x0, x1 = ys.start - m, ys.stop + m, xs.start - m, xs.stop + m
    keep = [main["label"]]
    for c in comps:
        cy, cx = c["slc"]
        if c is main or _edge_like(c, (h, w)) or c["mass"] < 0.02 * main["mass"]:
            continue
        if cy.start < y1 and cy.stop > y0 and cx.start < x1 and cx.stop > x0:
            keep.append(c["label"])
    digit = np.isin(lab, keep)
    dys, dxs = ndi.find_objects(digit.astype(np.int32))[0]
    if max(dys.stop - dys.start, dxs.stop - dxs.start) < max(4, cfg.min_digit_frac * min(h, w)):
        raise _NoDigit(
            "no digit found: the largest ink mark is too small to be a digit (blank page or specks)"
        )
    loops = count_loops(digit[dys, dxs], min_area=max(4.0, cfg.speck_frac * h * w))
    if loops > cfg.max_loops:
        raise _NoDigit(
            f"no digit found: the largest mark is a tangle with {loops} loops (noise or texture, not a digit)"
        )
    total = sum(c["mass"] for c in comps if not _edge_like(c, (h, w)))
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
    sizes = ndi.sum_labels(np.ones(lab.shape), lab, np.arange(1, n + 1))
    outside = lab[0, 0]
    return int(sum(1 for i, a in enumerate(sizes, start=1) if i != outside and a >= min_area))


def crop_to_digit(soft: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """Keep only the digit's ink (plus its grey fringe) inside its bounding box — MNIST's first step."""
    keep = ndi.binary_dilation(digit, iterations=2)
    ys, xs = ndi.find_objects(keep.astype(np.int32))[0]
    return np.where(keep, soft, 0)[ys, xs]


def stroke_width(img: np.ndarray, level: float = 0.5) -> float:
    """Mean stroke width in px: 2 × area / boundary length (a thin stroke of width w and
    length L has area wL and two edges of length L)."""
    m = img > level
    if not m.any():
        return 0.0
    boundary = m & ~ndi.binary_erosion(m)
    return 2.0 * m.sum() / max(1, boundary.sum())


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
        gray = to_work_size(gray, cfg)
        views["input"] = _u8(gray)
        dark_ink, grain = detect_polarity(gray, cfg)
        if grain > cfg.max_background_noise:
            raise _NoDigit(
                f"no digit found: the image is noise, with no quiet background (grain {grain:.2f})"
            )
        if not dark_ink:
            gray = 1.0 - gray
        ink = flatten_illumination(gray, cfg)
        ink, lines = remove_lines(ink, cfg)
        mask, soft = threshold_soft(ink, cfg)
        views["ink"] = _u8(soft)
        if not mask.any():
            raise _NoDigit(
                "no digit found: nothing on the image is darker than the paper by the minimum contrast"
            )
        digit_mask = choose_digit(mask & ~lines, soft, cfg)
        crop = crop_to_digit(soft, digit_mask)
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
