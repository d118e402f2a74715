"""The demo's server: one HTML page and three JSON endpoints on ``http.server``.

Endpoints (all answers are JSON with ``ok``; failures carry one ``error`` sentence):

* ``GET  /api/models``  the loaded models, the neighbour index's state, the upload limit.
* ``POST /api/predict`` an image, either JSON ``{"image": "<data URL>", "source": "canvas"|"upload",
  "filename": "..."}`` or the raw file bytes (any non-JSON content type; ``X-Filename`` names it).
  Answer: the preprocessing views (PNG data URIs), the 28×28 digit, every model's probabilities,
  the nearest MNIST training digits. No digit in the image → ``ok: false`` with the pipeline's
  reason (and the views, to show what it saw); unreadable image → HTTP 400.
* ``POST /api/correct`` JSON ``{"image", "source", "filename", "label"}``: the image is saved
  unchanged as ``<handwritten-dir>/<label>/app_<source>_<time>_<id>.<ext>`` (atomic write), where
  ``evaluate.py ... eval_sets=[handwritten]`` picks it up with that label. The client re-sends
  the image, so the server keeps no per-user state. JSON only: a cross-site page cannot send
  ``application/json`` to localhost without a CORS preflight, which this server never grants.

One request is answered at a time (a lock around preprocessing and the models): the models are
small, the machine may be too, and it keeps the torch thread pool from being oversubscribed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import logging
import secrets
import signal
import sys
import tempfile
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import ImageError, UserError, run_main

log = logging.getLogger("mnist_gen.app")

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 10.0
N_NEIGHBOURS = 8  # neighbours shown; a KNN model's own k voters come first
REFERENCE_SIZE = 10_000  # MNIST training digits searched when no KNN model is loaded
REFERENCE_SEED = 0  # the same fixed subset on every start
VIEW_SIDE = 160  # preprocessing views are thumbnailed to this for the page
VIEW_ORDER = ("input", "ink", "crop")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
BLANK_RANGE = 8  # a canvas whose pixels span fewer grey levels than this is blank
#: Pillow format → the extension a correction is saved under (all read by the handwritten set).
FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
                 "WEBP": ".webp", "PPM": ".ppm"}


class RequestError(Exception):
    """A request the user can fix; ``status`` is the HTTP status, the message one sentence."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


# -- small helpers --------------------------------------------------------------------------------


def png_data_uri(img: np.ndarray, max_side: int | None = None) -> str:
    from PIL import Image

    im = Image.fromarray(np.asarray(img, dtype=np.uint8))
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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


# -- nearest MNIST neighbours ---------------------------------------------------------------------


class Neighbours:
    """The MNIST training digits nearest to the 28×28 input (Euclidean on pixels/255, KNN's metric).

    With a KNN model among the loaded ones, its own fitted estimator answers: these are exactly the
    digits it voted with (its ``n_neighbors`` first), drawn from exactly what it was trained on.
    Without one, a fixed subset of ``REFERENCE_SIZE`` MNIST training digits is searched; it loads
    in a background thread so the page is up at once.
    """

    def __init__(self, models: list[tuple[str, object]], data_dir: Path | None, k: int = N_NEIGHBOURS):
        self.k = k
        self.voters: int | None = None
        self.source = ""
        self.note: str | None = None
        self._estimator = None
        self._ready = threading.Event()
        for name, model in models:
            est = getattr(model, "estimator_", None)
            if getattr(model, "kind", None) == "knn" and est is not None and hasattr(est, "kneighbors"):
                try:
                    self._fit_x, self._fit_labels = est._fit_X, est.classes_[est._y]  # sklearn's fitted data
                except (AttributeError, IndexError):
                    continue
                self._estimator, self.voters = est, int(est.n_neighbors)
                self.source = (f"{name}'s own training digits ({len(self._fit_x):,}); "
                               f"its {self.voters} nearest vote")
                self._ready.set()
                return
        self._thread = threading.Thread(target=self._build_reference, args=(data_dir,), daemon=True)
        self._thread.start()

    def _build_reference(self, data_dir: Path | None) -> None:
        try:
            from sklearn.neighbors import NearestNeighbors

            from mnist_gen.data.mnist import load_mnist

            mnist = load_mnist(data_dir or paths.data_dir(), fetch=False)  # never download from the app
            x, y = mnist["x_train"], mnist["y_train"]
            idx = np.sort(np.random.default_rng(REFERENCE_SEED).choice(len(y), min(REFERENCE_SIZE, len(y)),
                                                                       replace=False))
            self._fit_x = x[idx].reshape(len(idx), -1).astype(np.float32) / 255.0
            self._fit_labels = y[idx]
            self._estimator = NearestNeighbors(algorithm="brute").fit(self._fit_x)
            self.source = f"a fixed subset of {len(idx):,} MNIST training digits (no KNN model loaded)"
        except UserError as e:
            self.note = f"Nearest neighbours unavailable: {e}"
        except Exception as e:  # noqa: BLE001 - the demo works without neighbours
            self.note = f"Nearest neighbours unavailable ({type(e).__name__}: {str(e)[:200]})."
        finally:
            self._ready.set()

    def state(self) -> dict:
        if not self._ready.is_set():
            return {"status": "loading", "source": "", "note": "Loading MNIST for the nearest neighbours…"}
        if self._estimator is None:
            return {"status": "unavailable", "source": "", "note": self.note}
        return {"status": "ready", "source": self.source, "note": None}

    def query(self, digit: np.ndarray, wait_s: float = 120.0) -> dict:
        self._ready.wait(wait_s)
        out = {**self.state(), "voters": self.voters, "items": []}
        if out["status"] != "ready":
            return out
        x = digit.reshape(1, -1).astype(self._fit_x.dtype) / 255.0
        dist, idx = self._estimator.kneighbors(x, n_neighbors=min(self.k, len(self._fit_x)))
        for d, i in zip(dist[0], idx[0], strict=True):
            img = np.clip(np.rint(self._fit_x[i].reshape(28, 28) * 255.0), 0, 255).astype(np.uint8)
            out["items"].append({"png": png_data_uri(img), "label": int(self._fit_labels[i]),
                                 "distance": round(float(d), 4)})
        return out


# -- the application (no HTTP in here) ------------------------------------------------------------


class DemoApp:
    """Models + preprocessing + neighbours + corrections; the HTTP handler only translates."""

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
        self._lock = threading.Lock()

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
        """``to_mnist`` on the bytes written to a file, so decoding is exactly evaluation's (EXIF, limits)."""
        from mnist_gen.preprocess import to_mnist

        with tempfile.TemporaryDirectory(prefix="mnist_gen_app_") as tmp:
            path = Path(tmp) / "image"
            path.write_bytes(data)
            try:
                return to_mnist(path, self.preprocess)
            except ImageError as e:
                raise RequestError(str(e).replace(str(path), f"'{name}'")) from e
            except MemoryError as e:
                raise RequestError(f"'{name}' is too large to process in memory; downscale it first.") from e

    def predict(self, data: bytes, source: str = "upload", filename: str | None = None) -> dict:
        name = display_name(filename, source)
        self._check_size(data, name)
        with self._lock:
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
            out["consensus"] = {"digit": int(np.argmax(votes)), "votes": int(votes.max()),
                                "of": len(out["models"])}
            out["neighbours"] = self.neighbours.query(digit)
            out["seconds"] = round(time.perf_counter() - t0, 3)
            return out

    def correct(self, data: bytes, label: object, source: str = "upload", filename: str | None = None) -> dict:
        """Save the image, unchanged, under ``<handwritten>/<label>/`` for the handwritten evaluation set."""
        from PIL import Image, UnidentifiedImageError

        from mnist_gen.report import write_atomic

        name = display_name(filename, source)
        if isinstance(label, bool) or not isinstance(label, int | str) or str(label) not in set("0123456789"):
            raise RequestError(f"The corrected label must be one digit 0–9, got {label!r}.")
        self._check_size(data, name)
        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format
                im.verify()
        except Image.DecompressionBombError as e:
            raise RequestError(f"'{name}' is too large to open safely; nothing was saved.") from e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise RequestError(f"'{name}' is not an image Pillow can read; nothing was saved.") from e
        suffix = FORMAT_SUFFIX.get(fmt or "")
        if suffix is None:  # a format the handwritten set does not list: store the pixels as PNG
            with Image.open(io.BytesIO(data)) as im:
                buf = io.BytesIO()
                im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buf, format="PNG")
            data, suffix = buf.getvalue(), ".png"
        kind = "drawing" if source == "canvas" else "upload"
        fname = f"app_{kind}_{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}{suffix}"
        path = write_atomic(self.handwritten_dir / str(label) / fname, data)
        return {"ok": True, "saved": str(path), "label": int(label),
                "message": f"Saved as {path} with label {label}; evaluate.py's 'handwritten' set now includes it."}


# -- HTTP -----------------------------------------------------------------------------------------


def _index_html() -> bytes:
    return resources.files("mnist_gen.app").joinpath("static/index.html").read_bytes()


class Handler(BaseHTTPRequestHandler):
    server_version = "mnist_gen-demo"
    app: DemoApp  # set on the subclass made by make_server
    page: bytes
    loopback_only: bool

    # quiet by default: one line per request only at DEBUG
    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("%s - %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data: blob:; "
                             "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"ok": False, "error": message})

    def _host_ok(self) -> bool:
        """Bound to loopback: answer only requests addressed to loopback (no DNS-rebinding via a web page)."""
        if not self.loopback_only:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        host = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if host in LOOPBACK_NAMES:
            return True
        self._error(403, f"This demo only answers requests addressed to 127.0.0.1 or localhost, not {host!r}.")
        return False

    def do_GET(self):  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return
        route = self.path.split("?", 1)[0]
        if route in ("/", "/index.html"):
            self._send(200, self.page, "text/html; charset=utf-8")
        elif route == "/api/models":
            self._json(200, self.app.info())
        elif route == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._error(404, f"No page {route}; open / for the demo.")

    do_HEAD = do_GET

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise RequestError("The request has no Content-Length; send the image in one piece.",
                               HTTPStatus.LENGTH_REQUIRED)
        n = int(length)
        limit = self.app.max_upload_bytes * 4 // 3 + 64_000  # base64 in JSON is 4/3 of the bytes
        if n > limit:
            self.close_connection = True  # the body is not read; drop the connection after answering
            raise RequestError(f"The upload is {n / 1e6:.1f} MB; the limit is "
                               f"{self.app.max_upload_bytes / 1e6:.0f} MB (restart with --max-upload-mb "
                               "to change it).", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(n)

    def _payload(self, json_only: bool) -> tuple[bytes, dict]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        body = self._body()
        if ctype != "application/json":
            if json_only:
                raise RequestError("Send this request as application/json.", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return body, {"source": "upload", "filename": self.headers.get("X-Filename") or "upload"}
        try:
            req = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError("The request body is not valid JSON.") from e
        if not isinstance(req, dict):
            raise RequestError("The request body must be a JSON object.")
        source = req.get("source", "upload")
        if source not in ("canvas", "upload"):
            raise RequestError("'source' must be 'canvas' or 'upload'.")
        return decode_data_url(req.get("image")), {**req, "source": source}

    def do_POST(self):  # noqa: N802 - http.server's naming
        if not self._host_ok():
            self.close_connection = True
            return
        route = self.path.split("?", 1)[0]
        try:
            if route == "/api/predict":
                data, req = self._payload(json_only=False)
                self._json(200, self.app.predict(data, req["source"], req.get("filename")))
            elif route == "/api/correct":
                data, req = self._payload(json_only=True)
                self._json(200, self.app.correct(data, req.get("label"), req["source"], req.get("filename")))
            else:
                self._error(404, f"No endpoint {route}.")
        except RequestError as e:
            self._error(e.status, str(e))
        except UserError as e:
            self._error(400, str(e))
        except Exception as e:  # noqa: BLE001 - answer the page with a sentence, keep serving
            log.exception("request %s failed", route)
            self._error(500, f"The server failed on this request ({type(e).__name__}: {str(e)[:200]}).")


def make_server(app: DemoApp, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A ready-to-serve HTTP server for ``app`` (port 0: any free port; see ``server_address``)."""
    handler = type("DemoHandler", (Handler,), {"app": app, "page": _index_html(),
                                                "loopback_only": host in LOOPBACK_NAMES})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise UserError(f"Cannot listen on {host}:{port} ({e.strerror or e}); pass --port <another port> "
                        "(0 picks a free one) or a valid --host.") from e
    server.daemon_threads = True
    return server


# -- command line ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mnist_gen.app",
        description="Browser demo: draw or upload a digit and see every trained model's answer.")
    p.add_argument("--models", "-m", action="append", required=True, metavar="PATH",
                   help="run directory, model file, or folder of runs (e.g. multirun/paper_cpu); may be repeated")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--handwritten-dir", metavar="DIR",
                   help="where 'wrong answer' corrections are saved (default <project>/handwritten, "
                        "the folder evaluate.py's 'handwritten' set reads)")
    p.add_argument("--preprocess", default="mnist_like", metavar="NAME",
                   help="mnist_like (default, configs/preprocess/mnist_like.yaml) or naive (the study's resize)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest accepted upload")
    return p


def run(argv: list[str] | None = None) -> int:
    from mnist_gen.predict_cli import load_models, preprocess_config
    from mnist_gen.safe_paths import check_output_path

    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a port number (0–65535).")
    if not args.max_upload_mb > 0:
        raise UserError(f"--max-upload-mb must be positive, got {args.max_upload_mb}.")
    hw_dir = (check_output_path(args.handwritten_dir, "--handwritten-dir") if args.handwritten_dir
              else paths.PROJECT_ROOT / "handwritten")
    for spec in args.models:
        if not Path(spec).expanduser().exists():
            raise UserError(f"--models {spec} does not exist; give a run directory, a model file or a folder "
                            "of runs (e.g. multirun/paper_cpu).")
    cfg = preprocess_config(args.preprocess)
    models = load_models(args.models)
    app = DemoApp(models, hw_dir.resolve(), cfg, int(args.max_upload_mb * 1e6),
                  models_root=", ".join(args.models))
    server = make_server(app, args.host, args.port)
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(f"mnist_gen demo: {len(models)} model(s) ({', '.join(n for n, _ in models)}); "
          f"corrections go to {hw_dir.resolve()}", flush=True)
    if args.host not in LOOPBACK_NAMES:
        print(f"warning: listening on {args.host}, reachable from other machines; the demo has no login.",
              file=sys.stderr, flush=True)
    print(f"Open http://{shown}:{port}/  (Ctrl+C to stop)", flush=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("mnist_gen demo stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, argv)
