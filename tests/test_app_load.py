"""The demo under load: the real ``python -m mnist_gen.app`` in a subprocess, driven with raw sockets.

What the old ``http.server`` demo got wrong, checked here against the real server: connection
resets under 20 parallel clients, a thread held by every idle connection, bodies shorter than
their Content-Length processed, decompression bombs decoded in full, tracebacks in the log.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import selectors
import socket
import struct
import subprocess
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageDraw

from tests.conftest import demo_server

N_REQUESTS, PARALLEL, N_IDLE = 200, 20, 500
GB = 1 << 30


class Server:
    """The running demo: its port, pid, handwritten dir and everything it printed so far."""

    def __init__(self, proc: subprocess.Popen, port: int, hw):
        self.proc, self.port, self.hw, self.lines = proc, port, hw, []

    def status(self, field: str) -> int:
        """A number from /proc/<pid>/status (VmHWM and VmRSS in bytes)."""
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field + ":"):
                value = int(line.split()[1])
                return value * 1024 if line.rstrip().endswith("kB") else value
        raise AssertionError(f"{field} not in /proc/{self.proc.pid}/status")

    def request(self, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body, {"Content-Type": "image/png", **(headers or {})})
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    def raw(self, head: bytes, body: bytes, timeout: float = 60, half_close: bool = False) -> bytes:
        """Send ``head`` + ``body`` on a plain socket; everything the server answers until it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(head + body)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except ConnectionResetError:
                pass
            return out


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """The demo serving the tiny run on a free port; stopped with SIGTERM afterwards."""
    hw = tmp_path_factory.mktemp("load") / "handwritten"
    with demo_server("--models", str(tiny_run), "--handwritten-dir", str(hw)) as (proc, url, lines):
        srv = Server(proc, int(url.rsplit(":", 1)[1]), hw)
        srv.lines = lines
        yield srv
    log = "".join(lines)
    assert "Traceback" not in log and "mnist_gen demo stopped." in log, log[-3000:]  # SIGTERM: a clean stop


def _digit_png() -> bytes:
    """A 7 drawn dark on white, as a photo or the canvas gives it."""
    im = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(im).line([(70, 60), (210, 60), (120, 230)], fill=20, width=20)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(w: int, h: int) -> bytes:
    """A valid 8×8 PNG whose header claims w×h: the shape of a decompression bomb, without its size."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _post_head(path: str, length: int, ctype: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _correction(label: int = 7) -> bytes:
    return json.dumps({"image": "data:image/png;base64," + base64.b64encode(_digit_png()).decode(),
                       "source": "upload", "filename": "seven.png", "label": label}).encode()


def test_parallel_load_has_no_errors(server):
    """200 predictions, 20 at a time, all answered; a stalled upload meanwhile holds no worker."""
    png = _digit_png()
    body = _correction()
    stalled: dict = {}
    # an upload that sends half its body and then nothing: answered 408 after the body timeout
    staller = threading.Thread(target=lambda: stalled.update(
        answer=server.raw(_post_head("/api/correct", len(body)), body[: len(body) // 2])))
    staller.start()

    def one(i: int):
        try:
            return server.request("POST", "/api/predict", png, {"X-Filename": f"seven{i}.png"})
        except Exception as e:  # noqa: BLE001 - every failure is counted, not raised
            return None, repr(e)

    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(one, range(N_REQUESTS)))
    errors = [a for a in answers if a[0] != 200 or not a[1].get("ok")]
    print(f"load: {N_REQUESTS} requests, {PARALLEL} parallel, {len(errors)} errors")
    assert not errors, errors[:3]
    assert {a[1]["models"][0]["prediction"] for a in answers} == {answers[0][1]["models"][0]["prediction"]}

    staller.join(60)
    assert stalled["answer"].startswith(b"HTTP/1.1 408"), stalled
    assert not server.hw.exists() or not any(server.hw.rglob("*.*"))


def test_idle_connections_neither_block_nor_pile_up(server):
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(N_IDLE)]
    try:
        status, info = server.request("GET", "/api/models", timeout=10)  # a few seconds at most
        assert status == 200 and info["ok"]
        threads = server.status("Threads")
        print(f"idle: {N_IDLE} open connections, server threads {threads}")
        assert threads < 32  # connections live on one event loop, not one thread each
        # the server closes connections that stay idle (keep-alive timeout)
        deadline, still_open = time.monotonic() + 60, len(idle)
        with selectors.DefaultSelector() as sel:
            for s in idle:
                sel.register(s, selectors.EVENT_READ)
            while still_open and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1.0):
                    try:
                        data = key.fileobj.recv(1)
                    except ConnectionResetError:
                        data = b""
                    assert data == b"", data  # closed, never answered
                    sel.unregister(key.fileobj)
                    still_open -= 1
        assert not still_open, f"{still_open} of {N_IDLE} idle connections still open after 60 s"
    finally:
        for s in idle:
            s.close()


def test_short_body_is_refused_and_nothing_saved(server):
    body = _correction(label=3)
    answer = server.raw(_post_head("/api/correct", len(body)), body[: len(body) - 100], half_close=True)
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert not server.hw.exists() or not any(server.hw.rglob("*.*"))
    status, res = server.request("GET", "/api/models")  # and the server carries on
    assert status == 200


def test_huge_images_are_refused_or_decoded_within_memory(server):
    rss_before = server.status("VmRSS")
    status, res = server.request("POST", "/api/predict", _png_claiming(13000, 13000), {"X-Filename": "bomb.png"})
    assert status == 400 and "bomb.png" in res["error"] and "megapixels" in res["error"], res
    status, res = server.request("POST", "/api/correct", json.dumps(
        {"image": "data:image/png;base64," + base64.b64encode(_png_claiming(13000, 13000)).decode(),
         "filename": "bomb.png", "label": 1}).encode(), {"Content-Type": "application/json"})
    assert status == 400 and "nothing was saved" in res["error"], res

    # just under the cap, in the costliest mode (palette: expanded to RGBA before reduction)
    big = Image.new("P", (6300, 6300), 0)
    big.putpalette([235, 235, 230, 20, 20, 20])
    ImageDraw.Draw(big).line([(1500, 1500), (4800, 1500), (2800, 5200)], fill=1, width=350)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    status, res = server.request("POST", "/api/predict", buf.getvalue(), {"X-Filename": "big.png"})
    assert status == 200 and res["ok"], res.get("error")
    # a 48-megapixel JPEG is over the cap but decodes reduced (draft), so it is read
    photo = Image.new("L", (8000, 6000), 230)
    ImageDraw.Draw(photo).line([(2500, 1500), (5500, 1500), (3500, 5000)], fill=20, width=300)
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=80)
    status, res = server.request("POST", "/api/predict", buf.getvalue(), {"X-Filename": "photo.jpg"})
    assert status == 200 and res["ok"], res.get("error")

    peak = server.status("VmHWM")
    print(f"memory: RSS before {rss_before / 1e6:.0f} MB, peak {peak / 1e6:.0f} MB, "
          f"one image at most {(peak - rss_before) / 1e6:.0f} MB")
    assert peak - rss_before < GB


def test_log_has_no_traceback(server):
    """Runs last: every client error above was answered with a sentence, not logged as a crash."""
    time.sleep(0.5)
    log = "".join(server.lines)
    assert "Traceback" not in log, log[-3000:]
    assert server.proc.poll() is None, "the server died"
