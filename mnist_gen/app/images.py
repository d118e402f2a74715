"""Uploaded bytes → a Pillow image, with the pixel count checked before anything is decoded.

A compressed file says little about its decoded size: a 3.6 MB QOI or PNG of one flat colour can
declare 150 megapixels (0.6 GB as RGBA, and the pipeline holds a few copies for a moment), so three
such uploads took the old demo from 1 to 4.7 GB. ``open_upload`` reads only the header and refuses
anything that would decode to more than ``MAX_PIXELS``; JPEGs count at the size libjpeg actually
decodes them (``draft``), so a 50-megapixel phone photo is still welcome.
"""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_gen.errors import ImageError
from mnist_gen.preprocess import PreprocessConfig

#: Most pixels an upload may decode to: the pipeline's own cap (``preprocess.max_decode_pixels``,
#: over three times a phone's 12 MP photo), checked here first so the answer can name the upload.
MAX_PIXELS = PreprocessConfig().max_decode_pixels
#: Pillow's errors for a file that is not an image, or is truncated or corrupt.
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)
#: Pillow format → the extension a correction is saved under (all read by the handwritten set).
FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
                 "WEBP": ".webp", "PPM": ".ppm"}


def _open(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():  # above Pillow's warning size we decide ourselves, below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:  # more than twice Pillow's limit (179 MP)
        raise ImageError(f"'{name}' declares more pixels than Pillow opens safely; downscale it first.") from e
    except DECODE_ERRORS as e:
        raise ImageError(f"File '{name}' is not an image Pillow can read (empty, corrupt or another format).") from e


def open_upload(data: bytes, name: str, jpeg_side: int | None = None) -> Image.Image:
    """The upload opened lazily (header only), refused if decoding it would exceed ``MAX_PIXELS``.

    ``jpeg_side``: whoever decodes the image asks libjpeg for at least this many pixels a side
    (the preprocessing asks for ``max_load_side`` at most), so a JPEG counts at that reduced size;
    None counts every format at full size.
    """
    im = _open(data, name)
    w, h = im.size
    decoded = w * h
    if jpeg_side and im.format == "JPEG" and max(w, h) > jpeg_side:
        with _open(data, name) as probe:  # a second, throw-away handle: draft() works once per image
            probe.draft(probe.mode, (jpeg_side, jpeg_side))
            decoded = probe.size[0] * probe.size[1]
    if decoded > MAX_PIXELS:
        im.close()
        raise ImageError(f"'{name}' is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); the demo reads at most "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels, so downscale it first.")
    return im


def decode_fully(data: bytes, name: str, jpeg_side: int) -> str:
    """Decode the whole upload (first frame) to prove it is a readable image; returns its format.

    Header checks (``verify``) pass a truncated JPEG; only decoding every byte shows it is whole.
    JPEGs decode reduced (``draft``), which still reads all their data.
    """
    im = open_upload(data, name, jpeg_side)
    try:
        with im, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if im.format == "JPEG":
                im.draft(im.mode, (jpeg_side, jpeg_side))
            im.load()
            return im.format or ""
    except DECODE_ERRORS as e:
        raise ImageError(f"'{name}' could not be decoded ({e}); the file may be truncated or corrupt.") from e


def as_png(data: bytes, name: str) -> bytes:
    """The upload's first frame as PNG (for formats the handwritten set does not read)."""
    with open_upload(data, name) as im:
        buf = io.BytesIO()
        im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buf, format="PNG")
        return buf.getvalue()


def png_data_uri(img: np.ndarray, max_side: int | None = None) -> str:
    im = Image.fromarray(np.asarray(img, dtype=np.uint8))
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
