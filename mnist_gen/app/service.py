"""The demo's application logic, without HTTP: models + preprocessing + neighbours + corrections.

``DemoApp.predict`` and ``DemoApp.correct`` take an upload's bytes and return the JSON-ready
answer; ``mnist_gen.app.server`` only translates HTTP to these calls. Both are thread-safe (the
models, the pipeline and the neighbour index are only read), so the server runs several at once
and bounds how many itself.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import warnings
from http import HTTPStatus
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_gen.app.images import DECODE_ERRORS, FORMAT_SUFFIX, as_png, decode_fully, open_upload, png_data_uri
from mnist_gen.app.neighbours import Neighbours
from mnist_gen.errors import ImageError, UserError

DEFAULT_MAX_UPLOAD_MB = 10.0
VIEW_SIDE = 160  # preprocessing views are thumbnailed to this for the page
VIEW_ORDER = ("input", "ink", "crop")
BLANK_RANGE = 8  # a canvas whose pixels span fewer grey levels than this is blank


class RequestError(UserError):
    """A request the user can fix; ``status`` is the HTTP status, the message one sentence.

    ``close``: the body was not (fully) read, so the connection cannot carry another request.
    """

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST, close: bool = False):
        super().__init__(message)
        self.status = status
        self.close = close


def decode_data_url(text: object) -> bytes:
    """The bytes of a ``data:<type>;base64,<...>`` URL (what canvas.toDataURL and FileReader give)."""
    if not isinstance(text, str) or not text.startswith("data:") or "," not in text:
        raise RequestError("The request's 'image' must be a data URL (data:image/...;base64,...).")
    head, _, body = text.partition(",")
    if not head.endswith(";base64"):
        raise RequestError("The request's 'image' data URL must be base64-encoded.")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError("The request's 'image' data URL is not valid base64.") from e


def display_name(filename: object, source: str) -> str:
    """A short, printable name for messages (never used as a path)."""
    if source == "canvas":
        return "the drawing"
    name = Path(str(filename or "upload")).name
    name = "".join(ch for ch in name if ch.isprintable())[:80]
    return name or "upload"


class DemoApp:
    """Models + preprocessing + neighbours + corrections; the HTTP layer only translates."""

    def __init__(self, models: list[tuple[str, object]], handwritten_dir: Path, preprocess: dict | None = None,
                 max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1e6), data_dir: Path | None = None,
                 models_root: str = ""):
        from mnist_gen.preprocess import as_config

        if not models:
            raise UserError("No models to serve; pass --models <run directory or folder of runs>.")
        self.models = models
        self.models_root = models_root
        self.handwritten_dir = Path(handwritten_dir)
        self.preprocess = as_config(preprocess)
        self.max_upload_bytes = int(max_upload_bytes)
        self.neighbours = Neighbours(models, data_dir)

    def info(self) -> dict:
        return {"ok": True, "models": [name for name, _ in self.models], "models_root": self.models_root,
                "neighbours": self.neighbours.state(), "max_upload_bytes": self.max_upload_bytes,
                "handwritten_dir": str(self.handwritten_dir), "preprocess": self.preprocess.method}

    def _check_size(self, data: bytes, name: str) -> None:
        if not data:
            raise RequestError(f"The uploaded file '{name}' is empty; choose a photo of a digit.")
        if len(data) > self.max_upload_bytes:
            raise RequestError(f"The uploaded file '{name}' is {len(data) / 1e6:.1f} MB; the limit is "
                               f"{self.max_upload_bytes / 1e6:.0f} MB (restart with --max-upload-mb to change it).",
                               HTTPStatus.REQUEST_ENTITY_TOO_LARGE)

    def _to_mnist(self, data: bytes, name: str):
        """``to_mnist`` on the upload decoded from memory exactly as evaluation decodes a file
        (``as_gray``: EXIF, JPEG draft, reduction), once its pixel count has been checked.
        Decoding and the pipeline run apart, so only the first can blame the file."""
        from mnist_gen.preprocess import to_mnist
        from mnist_gen.preprocess.load import as_gray

        try:
            with open_upload(data, name, self.preprocess.max_load_side) as im, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                gray = as_gray(im, self.preprocess)
        except Image.DecompressionBombError as e:
            raise RequestError(f"'{name}' is too large to open safely; downscale it first.") from e
        except DECODE_ERRORS as e:
            raise RequestError(f"Image '{name}' could not be decoded ({e}); the file may be truncated or "
                               "corrupt.") from e
        except MemoryError as e:
            raise RequestError(f"'{name}' is too large to process in memory; downscale it first.") from e
        return to_mnist(gray, self.preprocess)  # float grey in [0, 1]: read as is, like a decoded file

    def predict(self, data: bytes, source: str = "upload", filename: str | None = None) -> dict:
        name = display_name(filename, source)
        self._check_size(data, name)
        t0 = time.perf_counter()
        res = self._to_mnist(data, name)
        views = [{"name": k, "png": png_data_uri(res.views[k], VIEW_SIDE)}
                 for k in VIEW_ORDER if res.views.get(k) is not None and np.asarray(res.views[k]).size]
        out: dict = {"ok": res.digit is not None, "source": source, "name": name, "views": views}
        if res.digit is None:
            blank = "input" in res.views and int(np.ptp(res.views["input"])) < BLANK_RANGE
            if source == "canvas" and blank:
                out["error"] = "The canvas is blank: draw a digit with the mouse or a finger first."
            elif blank:
                out["error"] = f"'{name}' is a blank image (one flat colour): there is no digit to read."
            else:
                reason = res.reason or "No digit found."
                hint = (" Draw the digit larger, in one piece." if source == "canvas"
                        else " Try a photo with one dark digit on plain paper.")
                out["error"] = f"{reason}{hint}"
            return out
        digit = np.asarray(res.digit, dtype=np.uint8)
        out["digit"] = png_data_uri(digit)
        out["models"] = []
        for model_name, model in self.models:
            p = np.asarray(model.predict_proba(digit[None]), dtype=np.float64)[0]
            out["models"].append({"name": model_name, "prediction": int(np.argmax(p)),
                                  "probabilities": [round(float(v), 6) for v in p]})
        votes = np.bincount([m["prediction"] for m in out["models"]], minlength=10)
        out["consensus"] = {"digit": int(np.argmax(votes)), "votes": int(votes.max()), "of": len(out["models"])}
        out["neighbours"] = self.neighbours.query(digit)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out

    def correct(self, data: bytes, label: object, source: str = "upload", filename: str | None = None) -> dict:
        """Save the image, unchanged, under ``<handwritten>/<label>/`` for the handwritten evaluation set.

        The image is decoded completely first: a truncated or corrupt file is refused, not saved.
        """
        from mnist_gen.io import write_atomic

        name = display_name(filename, source)
        if isinstance(label, bool) or not isinstance(label, int | str) or str(label) not in set("0123456789"):
            raise RequestError(f"The corrected label must be one digit 0–9, got {label!r}.")
        self._check_size(data, name)
        try:
            fmt = decode_fully(data, name, self.preprocess.max_load_side)
            suffix = FORMAT_SUFFIX.get(fmt)
            if suffix is None:  # a format the handwritten set does not list: store the pixels as PNG
                data, suffix = as_png(data, name), ".png"
        except ImageError as e:
            raise RequestError(f"{str(e).rstrip('.')}; nothing was saved.") from e
        kind = "drawing" if source == "canvas" else "upload"
        fname = f"app_{kind}_{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}{suffix}"
        path = write_atomic(self.handwritten_dir / str(label) / fname, data)
        return {"ok": True, "saved": str(path), "label": int(label),
                "message": f"Saved as {path} with label {label}; evaluate.py's 'handwritten' set now includes it."}
