"""The self-contained HTML report: built from a run dir and an aggregate dir, opened in Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnist_gen.cli.report import main
from mnist_gen.errors import UserError
from mnist_gen.evalsets import EvalSet
from mnist_gen.evaluation import aggregate
from mnist_gen.evaluation.metrics import evaluate_predictions
from mnist_gen.reporting import eda
from mnist_gen.reporting.figures import misclassification_gallery, plot_curves
from mnist_gen.reporting.html import SECTIONS, build_report
from mnist_gen.reporting.set_reports import plot_confusion

ROOT = Path(__file__).resolve().parent.parent
SECTION_IDS = [sid for sid, _ in SECTIONS]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def _fake_run(run_dir: Path, model: str, seed: int, rng: np.random.Generator) -> None:
    """A run directory shaped like train.py's: results.json, metrics.csv, curves, reports/."""
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text(
        "epoch,train_loss,train_acc,val_loss,val_acc\n0,0.9,0.7,0.6,0.8\n1,0.5,0.85,0.45,0.86\n2,0.3,0.9,0.4,0.88\n")
    plot_curves(run_dir / "metrics.csv", run_dir)
    eval_sets = {}
    for name, n, acc in (("mnist_test", 200, 0.95), ("usps", 60, 0.7)):
        y = rng.integers(0, 10, n)
        pred = np.where(rng.random(n) < acc, y, (y + 1) % 10)
        proba = np.full((n, 10), 0.01)
        proba[np.arange(n), pred] = 0.91
        summary = evaluate_predictions(y, proba)
        eval_sets[name] = summary
        plot_confusion(summary["report"]["confusion_matrix"], run_dir / "reports" / f"{name}_confusion.png", name)
        if name != "mnist_test":
            images = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
            misclassification_gallery(EvalSet(name, images, y), proba, run_dir / "reports" / f"{name}_errors.png", model)
    results = {"schema": 1, "model": model, "seed": seed, "recipe": "study", "num_params": 1000, "epochs": 3,
               "data": {"protocol": "mnist"}, "test_set": "mnist_test",
               "test_accuracy": eval_sets["mnist_test"]["accuracy"], "test_loss": eval_sets["mnist_test"]["loss"],
               "eval_sets": eval_sets}
    (run_dir / "results.json").write_text(json.dumps(results))


def _fake_eda(eda_dir: Path, rng: np.random.Generator) -> None:
    """EDA outputs drawn by the real figure functions on small random data."""
    x = rng.integers(0, 255, (100, 28, 28), dtype=np.uint8)
    y = np.arange(100) % 10
    emb = rng.normal(size=(100, 2)) + y[:, None]
    eda.plot_mean_digits({"mnist_train": (x, y)}, eda_dir / "mean_digits.png")
    eda.plot_umap_2d(emb, y, eda_dir / "umap_pixels_2d.png", "test")
    eda.write_umap_3d_html(rng.normal(size=(100, 3)), y, [str(i) for i in range(100)], {},
                           eda_dir / "umap_pixels_3d.html", "test", engine="builtin")
    (eda_dir / "eda.json").write_text(json.dumps({"missing": {"handwritten": "empty"},
                                                  "class_agreement_2d": {"pixels": {"usps": 0.5}}}))


@pytest.fixture(scope="module")
def aggregate_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(0)
    for model, seed in (("mlp_64_16", 0), ("mlp_64_16", 1), ("cnn_32", 0)):
        _fake_run(root / model / f"seed{seed}", model, seed, rng)
    aggregate.write_outputs(aggregate.aggregate(aggregate.load_runs(root)), root)
    _fake_eda(root / "eda", rng)
    return root


def _imgs(doc: str) -> list[str]:
    return re.findall(r"<img [^>]*src=\"([^\"]*)\"", doc)


def test_aggregate_dir_report_is_self_contained(aggregate_dir, tmp_path):
    out = build_report(aggregate_dir, tmp_path / "r.html")
    doc = out.read_text()
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in doc
    srcs = _imgs(doc)
    # 3 runs × (2 curves + 2 confusion + 1 gallery) + 2 EDA figures
    assert len(srcs) == 3 * 5 + 2
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(https?:)?//", doc), "no external resources"
    assert 'src="data:text/html;base64,' in doc  # the 3D viewer travels inside the report
    # the study table is the aggregate's: mean ± std over the two mlp seeds
    assert "mlp_64_16" in doc and "cnn_32" in doc and "±" in doc
    assert "handwritten" in doc  # a set the EDA could not load is named


def test_single_run_dir_report(aggregate_dir, tmp_path):
    run = aggregate_dir / "cnn_32" / "seed0"
    out = build_report(run, tmp_path / "one.html", eda_dir=aggregate_dir / "eda")
    doc = out.read_text()
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in doc
    assert len(_imgs(doc)) == 5 + 2
    assert "mlp_64_16" not in doc  # only this run
    assert "usps: per-class report" in doc


def test_cli_default_output_and_errors(aggregate_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(aggregate_dir / "cnn_32" / "seed0", run)
    assert main([str(run), "--eda", str(aggregate_dir / "eda")]) == 0
    assert (run / "report.html").is_file()
    assert main([str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="No results.json"):
        build_report(tmp_path / "empty")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium not found: install it with `apt-get install -y chromium` (.ci/run does this in CI).")
    return path


def test_report_renders_in_headless_chromium(aggregate_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    out = build_report(aggregate_dir, tmp_path / "report.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(out.resolve().as_uri())
            page.wait_for_load_state("load")
            for sid in SECTION_IDS:
                assert page.locator(f"section#{sid} h2").is_visible(), sid
            sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            assert len(sizes) == 17
            assert all(c and w > 0 and h > 0 for c, w, h in sizes), sizes
            rows = page.locator("#study-table tbody tr").count()
            assert rows == 2  # mlp_64_16 (2 seeds pooled) and cnn_32
            # the embedded 3D viewer runs its script: it draws a canvas and lists the traces
            frame = page.frame_locator("#umap iframe").first
            assert frame.locator("canvas#c").is_visible()
            assert frame.locator("#legend label").count() == 10
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "report_screenshot.png").write_bytes(shot)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "report_screenshot.png").write_bytes(shot)
