"""Any image file, Pillow image or array -> float32 grey in [0, 1], with bounded memory."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from mnist_gen.errors import ImageError
from mnist_gen.preprocess.config import NoDigit, PreprocessConfig, as_config
from mnist_gen.preprocess.normalize import scale_to_unit

# Phones store photos as HEIC (an iPhone's default); Pillow reads it only through this plugin,
# for files, the demo's uploads and images opened by the caller alike.
register_heif_opener()


def load_image(path, cfg: PreprocessConfig | Mapping | None = None) -> np.ndarray:
    """Read an image file as float32 greyscale in [0, 1] (paper bright for ordinary photos).

    Memory stays bounded whatever the file declares: Pillow's decompression-bomb guard stays
    on, JPEGs are decoded at 1/2–1/8 scale (``draft``), any other image that would decode to
    more than ``max_decode_pixels`` is refused before decoding, and anything larger than
    ``max_load_side`` is box-reduced right after, so no photo lives in memory as floats at
    full size. Every failure becomes an ``ImageError`` that names the file.
    """
    cfg = as_config(cfg)
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"Image file {path} does not exist (or is not a file); check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = decode_reduced(im, cfg.max_load_side, _draft_side(cfg), cfg.max_decode_pixels)
                if cfg.exif_transpose:
                    im = exif_transpose(im)
                return pil_to_gray(im)
    except ImageTooLarge as e:
        raise ImageError(f"Image {path} is {e}; downscale it first.") from e
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


class ImageTooLarge(ValueError):
    """An image that would decode to more pixels than allowed."""


def decode_reduced(im: Image.Image, max_side: int, draft_side: int | None = None,
                   max_pixels: int = 40_000_000) -> Image.Image:
    """Decode only the first frame, at reduced size when the file is large.

    ``draft`` lets libjpeg decode directly at 1/2, 1/4 or 1/8 scale, the smallest that keeps
    ``draft_side`` (default ``max_side``) px: memory and time fall with it. Anything still
    larger than ``max_side`` (other formats) is box-reduced at once.
    """
    im.seek(0)  # animated GIF/WebP/TIFF: the first frame is the photo
    draft_side = min(draft_side or max_side, max_side)
    if im.format == "JPEG" and max(im.size) > draft_side:
        im.draft(im.mode, (draft_side, draft_side))
    w, h = im.size  # after draft: what will actually be decoded
    if w * h > max_pixels:
        # Checked before decoding: a small PNG can declare 13000×13000 px (a 0.7 GB decode).
        raise ImageTooLarge(f"{w}×{h} px ({w * h / 1e6:.0f} megapixels) is more than the {max_pixels / 1e6:.0f} "
                            "megapixels decoded here (preprocess.max_decode_pixels)")
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

    Transparent pixels are composited on a backdrop (``transparent_backdrop``); palette, CMYK,
    YCbCr, 16-bit and float modes go through their own conversions.
    """
    mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        tone = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32) / 255.0
        return tone * alpha + transparent_backdrop(tone, alpha) * (1.0 - alpha)
    if mode.startswith("I") or mode == "F":
        return scale_to_unit(np.asarray(im))
    if mode not in ("L", "1"):
        im = im.convert("RGB")
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def transparent_backdrop(tone: np.ndarray, alpha: np.ndarray) -> float:
    """The tone the transparent part of an image stands for: the paper under what is drawn.

    Strokes drawn on nothing (an app's drawing exported without a background: the opaque
    pixels are under half the image) stand on the tone that sets them apart, black under light
    strokes (a dark theme's white pen), white under dark ones; a sheet cut out (the opaque
    pixels the most) on white, as a cut-out digit sits on a page. Composited on white alone,
    white strokes on nothing were a blank page.
    """
    opaque = alpha >= 0.5
    if opaque.any() and opaque.mean() < 0.5 and np.median(tone[opaque]) > 0.5:
        return 0.0
    return 1.0


def array_to_gray(a) -> np.ndarray:
    """An array in any common layout (H×W, H×W×C, C×H×W; any numeric dtype) → float32 grey."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise NoDigit(f"an array of dtype {a.dtype} is not an image")
    while a.ndim > 2 and a.shape[0] == 1:  # batch and single-channel axes in front; never the image's
        a = a[0]  # own: a thin 1 cropped tight at 8 px is 8×1, and squeezing made it 1-D
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
        raise NoDigit(f"an array of shape {a.shape} is not a 2-D image")
    return scale_to_unit(a)


def as_gray(image, cfg: PreprocessConfig) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return load_image(image, cfg)
    if isinstance(image, Image.Image):
        try:
            im = decode_reduced(image, cfg.max_load_side, _draft_side(cfg), cfg.max_decode_pixels)
        except ImageTooLarge as e:
            raise ImageError(f"The image is {e}; downscale it first.") from e
        return pil_to_gray(exif_transpose(im) if cfg.exif_transpose else im)
    return array_to_gray(image)
