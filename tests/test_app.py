"""``python -m mnist_gen.app``: the real server, driven through its JSON API and in headless Chromium.

The browser test needs Debian's ``chromium`` (installed by ``setup.sh``); without it the test fails
with a sentence saying so rather than skipping, so a missing browser is never mistaken for a pass.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_gen import paths
from tests.conftest import ROOT, demo_server

CHROMIUM = os.environ.get("MNIST_GEN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SEED_PHOTO = paths.shared_data_dir() / "handwritten" / "seed_photos" / "philip" / "3.png"


def _app(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnist_gen.app", *args]


@contextlib.contextmanager
def _serving(*args: str):
    """The real command line on a free port; yields (base URL, everything it printed)."""
    with demo_server(*args) as (_, url, lines):
        yield url, lines


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """The demo serving the tiny run; yields (base URL, handwritten dir). Its log must hold no traceback."""
    hw = tmp_path_factory.mktemp("app") / "handwritten"
    with _serving("--models", str(tiny_run), "--handwritten-dir", str(hw)) as (url, lines):
        yield url, hw
    log = "".join(lines)
    assert "Traceback" not in log and "mnist_gen demo stopped." in log, log[-3000:]


def _request(url: str, data: bytes | None = None, ctype: str = "application/json", headers=None):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _expected(run_dir: Path, photo: Path) -> tuple[int, np.ndarray]:
    """What predict.py's pipeline says for ``photo``: the number the page must show."""
    from mnist_gen.models.predictors import load_predictor
    from mnist_gen.preprocess import to_mnist
    from mnist_gen.settings import compose_group

    res = to_mnist(photo, compose_group("preprocess", "mnist_like"))
    assert res.digit is not None, res.reason
    p = load_predictor(run_dir).predict_proba(res.digit[None])[0]
    return int(np.argmax(p)), p


# -- command line -----------------------------------------------------------------------------------


def test_no_models_is_one_sentence_and_exit_2(tmp_path):
    (tmp_path / "empty_sweep").mkdir()
    for where in (tmp_path / "empty_sweep", tmp_path / "missing"):
        proc = subprocess.run(_app("--models", str(where), "--port", "0"), cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip()
        assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
        assert str(where) in err


def test_without_models_serves_the_bundled_default():
    with _serving() as (url, _):
        status, info = _request(url + "/api/models")
        assert status == 200 and len(info["models"]) == 1 and "bundled" in info["models_root"]


def test_without_models_and_without_a_bundle_it_asks_for_models(tmp_path):
    """An installation whose bundle is missing: one sentence asking for --models."""
    import os

    env = {**os.environ, "MNIST_GEN_BUNDLE_DIR": str(tmp_path / "none")}
    proc = subprocess.run(_app("--port", "0"), cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "--models" in err, err


# -- JSON API ---------------------------------------------------------------------------------------


def test_api_answers_like_predict_and_refuses_bad_input(server, tiny_run):
    url, hw = server
    status, info = _request(url + "/api/models")
    assert status == 200 and info["models"] == ["mlp_64_16"]
    status, res = _request(url + "/api/models", headers={"Host": "rebound.example:80"})
    assert status == 403 and "127.0.0.1" in res["error"]  # a web page's DNS-rebinding gets nothing

    # raw bytes of a seed photo == predict.py's answer for the file
    want, p = _expected(tiny_run, SEED_PHOTO)
    status, res = _request(url + "/api/predict", SEED_PHOTO.read_bytes(), "image/png", {"X-Filename": "3.png"})
    assert status == 200 and res["ok"], res
    (m,) = res["models"]
    assert m["prediction"] == want and np.allclose(m["probabilities"], p, atol=1e-5)
    assert res["digit"].startswith("data:image/png;base64,")
    digit = np.asarray(Image.open(io.BytesIO(base64.b64decode(res["digit"].split(",", 1)[1]))))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8

    status, res = _request(url + "/api/predict", b"not an image at all", "image/png", {"X-Filename": "junk.jpg"})
    assert status == 400 and not res["ok"] and "junk.jpg" in res["error"] and "not an image" in res["error"]
    blank = _data_url(_png(np.full((280, 280), 255, np.uint8)))
    status, res = _request(url + "/api/predict", json.dumps({"image": blank, "source": "canvas"}).encode())
    assert status == 200 and not res["ok"] and "blank" in res["error"]
    status, res = _request(url + "/api/predict", b"{not json")
    assert status == 400 and "JSON" in res["error"]
    status, res = _request(url + "/api/predict", b"", "image/png")
    assert status == 400 and "empty" in res["error"]
    status, res = _request(url + "/api/predict")  # wrong method / no such page: JSON sentences too
    assert status == 405 and "GET" in res["error"]
    status, res = _request(url + "/nowhere")
    assert status == 404 and "/nowhere" in res["error"]
    # an oversized upload is refused from its Content-Length, before the body is read
    req = urllib.request.Request(url + "/api/predict", data=b"x" * 1024, method="POST",
                                 headers={"Content-Type": "image/png", "Content-Length": str(10**9)})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 413 and "limit" in json.loads(e.value.read())["error"]

    # corrections: JSON only (no cross-site form posts), one digit as label, images only
    photo = _data_url(SEED_PHOTO.read_bytes())
    status, res = _request(url + "/api/correct", json.dumps({"image": photo, "label": 3}).encode(), "text/plain")
    assert status == 415
    for bad in (12, "x", None, True):
        status, res = _request(url + "/api/correct", json.dumps({"image": photo, "label": bad}).encode())
        assert status == 400 and "label" in res["error"]
    status, res = _request(url + "/api/correct", json.dumps(
        {"image": _data_url(b"junk"), "label": 1, "filename": "junk.png"}).encode())
    assert status == 400 and "nothing was saved" in res["error"]
    # a truncated JPEG passes a header check; the full decode before saving refuses it
    buf = io.BytesIO()
    Image.open(SEED_PHOTO).convert("RGB").save(buf, format="JPEG", quality=90)
    cut = buf.getvalue()[: len(buf.getvalue()) // 2]
    status, res = _request(url + "/api/correct", json.dumps(
        {"image": _data_url(cut, "image/jpeg"), "label": 3, "filename": "cut.jpg"}).encode())
    assert status == 400 and "cut.jpg" in res["error"] and "nothing was saved" in res["error"], res
    assert not hw.exists() or not any(hw.rglob("*.*"))


def test_knn_model_shows_its_own_voters(mnist, tmp_path):
    """With a KNN loaded, the neighbours shown are exactly the digits it votes with."""
    from mnist_gen.app import DemoApp
    from mnist_gen.models.classical import ClassicalModel

    knn = ClassicalModel("knn", "knn", {"n_neighbors": 3}).fit(mnist["x_train"][:600], mnist["y_train"][:600],
                                                                progress=False)
    app = DemoApp([("knn", knn)], tmp_path / "hw")
    digit = mnist["x_test"][0]
    res = app.predict(_png(255 - digit), "upload", "seven.png")  # dark ink on white, like a photo
    assert res["ok"], res
    nb = res["neighbours"]
    assert nb["status"] == "ready" and nb["voters"] == 3 and "knn" in nb["source"] and len(nb["items"]) == 8
    pred = res["models"][0]["prediction"]
    votes = np.bincount([it["label"] for it in nb["items"][:3]], minlength=10)
    assert votes[pred] == votes.max()  # the shown voters elect the shown prediction
    assert [it["distance"] for it in nb["items"]] == sorted(it["distance"] for it in nb["items"])


# -- the page in headless Chromium ------------------------------------------------------------------


def _browser(p):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with 'apt-get install -y chromium' "
                    "(setup.sh does) or set MNIST_GEN_CHROMIUM to its path.")
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _draw(page, strokes):
    """Real mouse strokes on the pad, in pad coordinates (0–280)."""
    box = page.locator("#pad").bounding_box()
    sx, sy = box["width"] / 280, box["height"] / 280
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * sx, box["y"] + y0 * sy)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=8)
        page.mouse.up()


def test_browser_draw_upload_correct(server, tiny_run, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=90_000)  # the first prediction waits for MNIST (neighbours) to load
    url, hw = server
    want, _ = _expected(tiny_run, SEED_PHOTO)
    junk = tmp_path / "garbage.png"
    junk.write_text("this is not a png")
    shot = Path(os.environ.get("MNIST_GEN_DEMO_SCREENSHOT") or tmp_path / "demo.png")

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 860})
            page.set_default_timeout(60_000)
            page.goto(url)
            expect(page.locator("#models-line")).to_contain_text("mlp_64_16")

            # blank canvas → the server's sentence in the page
            page.click("#predict")
            expect(page.locator("#message")).to_contain_text("canvas is blank")

            # a "7" drawn with the mouse → a digit shown for every model
            _draw(page, [[(70, 60), (210, 60), (120, 230)]])
            pred = page.locator('.model[data-model="mlp_64_16"] .pred .digit')
            expect(pred).to_have_text(re.compile(r"^[0-9]$"))
            expect(page.locator("#message")).to_contain_text("your drawing")
            expect(page.locator("#digit")).to_be_visible()
            expect(page.locator("#neighbours figure")).to_have_count(8)
            assert page.locator(".model .bar").count() == 10

            # a seed photo → exactly predict.py's answer for that file
            page.set_input_files("#file", str(SEED_PHOTO))
            expect(page.locator("#message")).to_contain_text("Prediction for '3.png'")
            expect(pred).to_have_text(str(want))
            expect(page.locator("#consensus")).to_have_text(str(want))
            page.screenshot(path=str(shot), full_page=True)

            # "wrong answer" → the photo saved, unchanged, under the chosen label
            label = (want + 1) % 10
            page.click("#wrong")
            page.click(f'#labels button[data-label="{label}"]')
            expect(page.locator("#message")).to_contain_text("Saved as")
            saved = list((hw / str(label)).glob("app_upload_*.png"))
            assert len(saved) == 1 and saved[0].read_bytes() == SEED_PHOTO.read_bytes()
            from mnist_gen.evalsets.photos import load_photo_folder

            assert load_photo_folder(hw).labels.tolist() == [label]  # evaluation picks it up

            # an unreadable upload → a sentence naming the file, shown as an error
            page.set_input_files("#file", str(junk))
            expect(page.locator("#message")).to_contain_text("garbage.png")
            expect(page.locator("#message")).to_have_class("error")
        finally:
            browser.close()
    assert shot.stat().st_size > 0
