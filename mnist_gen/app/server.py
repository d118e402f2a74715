"""The demo's HTTP layer: one HTML page and three JSON endpoints, Starlette on uvicorn.

Endpoints (all answers are JSON with ``ok``; failures carry one ``error`` sentence):

* ``GET  /api/models``  the loaded models, the neighbour index's state, the upload limit.
* ``POST /api/predict`` an image, either JSON ``{"image": "<data URL>", "source": "canvas"|"upload",
  "filename": "..."}`` or the raw file bytes (any non-JSON content type; ``X-Filename`` names it).
  Answer: the preprocessing views (PNG data URIs), the 28×28 digit, every model's probabilities,
  the nearest MNIST training digits. No digit in the image → ``ok: false`` with the pipeline's
  reason (and the views, to show what it saw); unreadable or oversized image → HTTP 400.
* ``POST /api/correct`` JSON ``{"image", "source", "filename", "label"}``: the image is decoded in
  full, then saved unchanged as ``<handwritten-dir>/<label>/app_<source>_<time>_<id>.<ext>``
  (atomic write), where ``evaluate.py ... eval_sets=[handwritten]`` picks it up with that label.
  The client re-sends the image, so the server keeps no per-user state. JSON only: a cross-site
  page cannot send ``application/json`` to localhost without a CORS preflight, never granted here.

Why Starlette + uvicorn rather than ``http.server``: under 20 parallel clients the standard
library's server reset connections (listen backlog 5), gave every idle connection a thread of its
own forever, and processed bodies shorter than their Content-Length. uvicorn (h11) refuses short
bodies, closes idle connections and keeps connections on one event loop; the work itself runs in
at most ``workers`` threads (one per CPU, up to ``MAX_WORKERS``), so memory and the CPU are bounded
however many requests arrive.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources

import anyio
import h11
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from mnist_gen import paths
from mnist_gen.app.service import DEFAULT_MAX_UPLOAD_MB, DemoApp, RequestError, decode_data_url
from mnist_gen.errors import UserError, run_main

log = logging.getLogger("mnist_gen.app")

DEFAULT_PORT = 7860
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
KEEP_ALIVE_S = 5  # a connection with no request under way is closed after this many idle seconds
BODY_IDLE_S = 10  # an upload that sends nothing for this long is answered 408 and dropped
MAX_WORKERS = 8  # requests decoded/predicted at once: one per CPU, at most this many (memory)
MAX_CONNECTIONS = 1000  # open connections beyond this get uvicorn's 503 instead of exhausting file handles
BACKLOG = 2048  # connections the kernel queues before accept: a burst is queued, never reset
SHUTDOWN_S = 5  # Ctrl+C / SIGTERM: requests still running after this many seconds are cancelled
JSON_OVERHEAD = 64_000  # a JSON body holds the image as base64 (4/3 of its bytes) plus a few fields
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'",
}


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def error_response(status: int, message: str, close: bool = False) -> JSONResponse:
    """The JSON error body every failure gets; ``close`` when the request's body was left unread."""
    return JSONResponse({"ok": False, "error": message}, status_code=int(status),
                        headers={"Connection": "close"} if close else None)


class Guard:
    """ASGI middleware: the security headers on every answer, and, bound to loopback, only requests
    addressed to loopback (a web page using DNS rebinding to reach this port gets a 403)."""

    def __init__(self, app, loopback_only: bool):
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secured(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
            await send(message)

        host = (Headers(scope=scope).get("host") or "").strip().lower()
        host = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if self.loopback_only and host not in LOOPBACK_NAMES:
            response = error_response(403, "This demo only answers requests addressed to 127.0.0.1 or "
                                           f"localhost, not {host!r}.", close=scope["method"] == "POST")
            return await response(scope, receive, send_secured)
        await self.app(scope, receive, send_secured)


class IdleTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, with its keep-alive timeout also applied before a request's headers
    are complete: uvicorn arms it only after a response, so a connection that was opened and never
    used (or that stalls mid-headers) would otherwise stay open for good."""

    def _arm_idle_timer(self) -> None:
        if self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # cancels the timer
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:  # headers still incomplete
            self._arm_idle_timer()


async def read_body(request: Request, max_upload_bytes: int) -> bytes:
    """The whole body, refused before reading when its Content-Length is over the upload limit.

    h11 never delivers more or fewer bytes than the Content-Length: a client that disconnects
    early raises ``ClientDisconnect`` here, and nothing of its request is processed.
    """
    length = request.headers.get("content-length", "").strip()
    if not length.isdigit():
        raise RequestError("The request has no Content-Length; send the image in one piece.",
                           HTTPStatus.LENGTH_REQUIRED, close=True)
    if int(length) > max_upload_bytes * 4 // 3 + JSON_OVERHEAD:
        raise RequestError(f"The upload is {int(length) / 1e6:.1f} MB; the limit is {max_upload_bytes / 1e6:.0f} MB "
                           "(restart with --max-upload-mb to change it).",
                           HTTPStatus.REQUEST_ENTITY_TOO_LARGE, close=True)
    body = bytearray()
    chunks = request.stream()
    while True:
        try:
            with anyio.fail_after(BODY_IDLE_S):
                chunk = await anext(chunks, None)
        except TimeoutError as e:
            raise RequestError(f"The upload stalled (nothing received for {BODY_IDLE_S} s); send it again.",
                               HTTPStatus.REQUEST_TIMEOUT, close=True) from e
        if chunk is None:
            return bytes(body)
        body += chunk


def parse_payload(body: bytes, ctype: str, x_filename: str | None) -> tuple[bytes, dict]:
    """(image bytes, request fields) from a JSON body with a data URL, or from raw file bytes."""
    if ctype != "application/json":
        return body, {"source": "upload", "filename": x_filename or "upload"}
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


def create_app(demo: DemoApp, loopback_only: bool = True, workers: int | None = None) -> Starlette:
    """The ASGI application serving ``demo``; ``workers`` bounds requests decoded/predicted at once."""
    page = resources.files("mnist_gen.app").joinpath("static/index.html").read_bytes()
    limiter = anyio.CapacityLimiter(workers or default_workers())

    async def work(request: Request, json_only: bool, answer: Callable[[bytes, dict], dict]) -> Response:
        route = request.url.path
        try:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if json_only and ctype != "application/json":
                raise RequestError("Send this request as application/json.", HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                   close=True)
            body = await read_body(request, demo.max_upload_bytes)

            def run() -> dict:  # parsing a 13 MB JSON body is CPU work too: off the event loop
                return answer(*parse_payload(body, ctype, request.headers.get("x-filename")))

            return JSONResponse(await anyio.to_thread.run_sync(run, limiter=limiter))
        except ClientDisconnect:
            log.debug("%s: the client left before sending its whole body; nothing was processed", route)
            return Response(status_code=400)  # nobody reads it; uvicorn drops it
        except RequestError as e:
            return error_response(e.status, str(e), e.close)
        except UserError as e:
            return error_response(400, str(e))
        except Exception as e:  # noqa: BLE001 - answer with a sentence, log one line, keep serving
            from mnist_gen.models.export import one_line

            log.error("%s failed with HTTP 500: %s: %s", route, type(e).__name__, one_line(e))
            log.debug("traceback of the failure above", exc_info=True)
            return error_response(500, f"The server failed on this request ({type(e).__name__}: "
                                       f"{one_line(e, 200)}).")

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    async def models(request: Request) -> Response:
        return JSONResponse(demo.info())

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def predict(request: Request) -> Response:
        return await work(request, False, lambda data, req: demo.predict(data, req["source"], req.get("filename")))

    async def correct(request: Request) -> Response:
        return await work(request, True, lambda data, req: demo.correct(data, req.get("label"), req["source"],
                                                                        req.get("filename")))

    async def not_found(request: Request, exc) -> Response:
        route = request.url.path
        if request.method in ("GET", "HEAD"):
            return error_response(404, f"No page {route}; open / for the demo.")
        return error_response(404, f"No endpoint {route}.", close=True)

    async def not_allowed(request: Request, exc) -> Response:
        response = error_response(405, f"{request.url.path} does not answer {request.method} requests.",
                                  close=request.method not in ("GET", "HEAD"))
        response.headers.update(getattr(exc, "headers", None) or {})  # Starlette's Allow header
        return response

    routes = [Route("/", index), Route("/index.html", index), Route("/api/models", models),
              Route("/favicon.ico", favicon), Route("/api/predict", predict, methods=["POST"]),
              Route("/api/correct", correct, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(Guard, loopback_only=loopback_only)],
                     exception_handlers={404: not_found, 405: not_allowed})


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one), bound here so the real port is known."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as e:
        raise UserError(f"Cannot listen on {host}:{port} ({e.strerror or e}); pass --port <another port> "
                        "(0 picks a free one) or a valid --host.") from e


def make_server(demo: DemoApp, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                workers: int | None = None) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server for ``demo`` and its bound socket; serve with ``server.run(sockets=[sock])``."""
    sock = listen(host, port)
    config = uvicorn.Config(
        create_app(demo, host in LOOPBACK_NAMES, workers), http=IdleTimeoutH11, lifespan="off",
        log_config=None, log_level="warning", access_log=False, proxy_headers=False, server_header=False,
        timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=SHUTDOWN_S,
        limit_concurrency=MAX_CONNECTIONS, backlog=BACKLOG)
    return uvicorn.Server(config), sock


# -- command line ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mnist_gen.app",
        description="Browser demo: draw or upload a digit and see every trained model's answer.")
    p.add_argument("--models", "-m", action="append", metavar="PATH",
                   help="run directory, model file, folder of runs (e.g. multirun/paper_cpu) or bundled model "
                        "name; may be repeated (default: the bundled default model)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--handwritten-dir", metavar="DIR",
                   help="where 'wrong answer' corrections are saved (default <project>/handwritten, "
                        "the folder evaluate.py's 'handwritten' set reads)")
    p.add_argument("--preprocess", default="mnist_like", metavar="NAME",
                   help="mnist_like (default, configs/preprocess/mnist_like.yaml) or naive (the study's resize)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest accepted upload")
    return p


def _load(specs: list[str] | None):
    from mnist_gen.models.bundled import resolve
    from mnist_gen.models.predictors import load_models

    if not specs:
        if resolve("default") is None:
            raise UserError("No bundled default model is installed yet; pass --models <run directory, model "
                            "file or folder of runs> (e.g. multirun/paper_cpu).")
        return load_models(["default"]), "default (bundled)"
    return load_models(specs), ", ".join(specs)


def run(argv: list[str] | None = None) -> int:
    from mnist_gen.paths import check_output_path
    from mnist_gen.settings import compose_group

    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a port number (0–65535).")
    if not args.max_upload_mb > 0:
        raise UserError(f"--max-upload-mb must be positive, got {args.max_upload_mb}.")
    hw_dir = (check_output_path(args.handwritten_dir, "--handwritten-dir") if args.handwritten_dir
              else paths.PROJECT_ROOT / "handwritten")
    cfg = compose_group("preprocess", args.preprocess)
    models, root = _load(args.models)
    if "torch" in sys.modules:  # one thread per request: the workers already use every CPU between them
        import torch

        torch.set_num_threads(1)
    demo = DemoApp(models, hw_dir.resolve(), cfg, int(args.max_upload_mb * 1e6), models_root=root)
    server, sock = make_server(demo, args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    print(f"mnist_gen demo: {len(models)} model(s) ({', '.join(n for n, _ in models)}); "
          f"corrections go to {hw_dir.resolve()}", flush=True)
    if args.host not in LOOPBACK_NAMES:
        print(f"warning: listening on {args.host}, reachable from other machines; the demo has no login.",
              file=sys.stderr, flush=True)
    print(f"Open http://{shown}:{port}/  (Ctrl+C to stop)", flush=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    # uvicorn handles SIGINT/SIGTERM while serving (graceful stop), then re-raises the signal
    # against this handler: both end in KeyboardInterrupt here.
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("mnist_gen demo stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, argv)

