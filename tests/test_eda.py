"""EDA: statistics on digits with known answers, every figure on small data, the pipeline end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_gen.errors import UserError
from mnist_gen.models.networks import build_network
from mnist_gen.models.predictors import NetworkPredictor
from mnist_gen.paths import CONFIG_DIR
from mnist_gen.reporting import eda

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(path) -> tuple[int, int]:
    path = Path(path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    return Image.open(path).size


def _bar(width: int, top: int = 4, left: int = 12, height: int = 20, value: int = 255) -> np.ndarray:
    a = np.zeros((28, 28), np.uint8)
    a[top : top + height, left : left + width] = value
    return a


# --------------------------------------------------------------------------- statistics


def test_stroke_width_of_bars_is_their_width():
    bars = np.stack([_bar(w) for w in (1, 2, 3, 4, 5)])
    np.testing.assert_allclose(eda.stroke_width(bars), [1, 2, 3, 4, 5], atol=1e-9)
    assert np.isnan(eda.stroke_width(np.zeros((1, 28, 28), np.uint8)))[0]
    # a faint stroke is not ink at the default level
    assert np.isnan(eda.stroke_width(_bar(3, value=100)[None]))[0]


def test_coverage_bbox_com_background():
    imgs = np.stack([_bar(4, top=4, left=12, height=20), np.zeros((28, 28), np.uint8), _bar(2, top=0, left=0, height=6)])
    np.testing.assert_allclose(eda.ink_coverage(imgs), [80 / 784, 0, 12 / 784])
    h, w = eda.bbox_size(imgs)
    assert h.tolist() == [20, 0, 6] and w.tolist() == [4, 0, 2]
    com = eda.center_of_mass_offset(imgs)
    assert com[0] == pytest.approx(0.0)  # rows 4..23, cols 12..15: centred on 13.5
    assert np.isnan(com[1])
    assert com[2] == pytest.approx(np.hypot(13.5 - 2.5, 13.5 - 0.5))
    grey = np.full((1, 28, 28), 90, np.uint8)
    assert eda.background_level(grey)[0] == pytest.approx(90)
    assert eda.background_level(imgs[:1])[0] == 0


def test_set_statistics_and_summary_shapes():
    imgs = np.stack([_bar(w) for w in (2, 3, 4)] + [np.zeros((28, 28), np.uint8)])
    stats = eda.set_statistics(imgs)
    assert set(stats) == set(eda.STAT_LABELS)
    assert all(v.shape == (4,) for v in stats.values())
    summ = eda.summarize(stats)
    assert summ["stroke_width"]["median"] == pytest.approx(3.0) and summ["stroke_width"]["n"] == 3
    assert eda.summarize({"x": np.array([np.nan])})["x"]["median"] is None
    md = eda.stats_markdown({"a": summ}, {"a": 4})
    assert md.splitlines()[2].startswith("| a | 4 | ")


def test_mean_digits_per_class():
    imgs = np.stack([_bar(2), _bar(4), _bar(3)])
    means, counts = eda.mean_digits(imgs, np.array([1, 1, 7]))
    assert means.shape == (10, 28, 28) and counts.tolist() == [0, 2, 0, 0, 0, 0, 0, 1, 0, 0]
    assert means[1, 10, 12] == 255 and means[1, 10, 15] == pytest.approx(127.5)
    assert np.isnan(means[0]).all()


def test_subsample_is_fixed_and_per_set():
    a = eda.subsample(1000, 50, seed=0, name="usps")
    assert np.array_equal(a, eda.subsample(1000, 50, seed=0, name="usps"))
    assert not np.array_equal(a, eda.subsample(1000, 50, seed=0, name="uci"))
    assert len(np.unique(a)) == 50 and np.all(np.diff(a) > 0)
    assert np.array_equal(eda.subsample(10, None, 0), np.arange(10))
    assert np.array_equal(eda.subsample(10, 99, 0), np.arange(10))


# --------------------------------------------------------------------------- figures


@pytest.fixture(scope="module")
def small(mnist):
    idx = eda.subsample(len(mnist["y_train"]), 300, seed=0, name="t")
    x, y = mnist["x_train"][idx], mnist["y_train"][idx]
    other = np.roll(mnist["x_test"][:40], 3, axis=2)  # shifted: a small domain gap
    return x, y, other, mnist["y_test"][:40]


def test_plot_mean_digits_with_missing_and_empty_sets(small, tmp_path):
    x, y, o, oy = small
    sets = {"mnist": (x, y), "other": (o, oy), "empty": (np.zeros((0, 28, 28), np.uint8), np.zeros(0)),
            "missing": (None, None)}
    p = eda.plot_mean_digits(sets, tmp_path / "m.png")
    w2, h2 = _png(p)
    p3 = eda.plot_mean_digits({**sets, "third": (o[:5], oy[:5])}, tmp_path / "m3.png")
    w3, h3 = _png(p3)
    assert h3 > h2 and abs(w3 - w2) < 40  # one row per present set, ten columns
    assert eda.plot_mean_digits({"missing": (None, None)}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_plot_set_stats(small, tmp_path):
    x, y, o, oy = small
    stats = {"mnist": eda.set_statistics(x), "other": eda.set_statistics(o), "empty": eda.set_statistics(np.zeros((0, 28, 28)))}
    p = eda.plot_set_stats(stats, {"mnist": "mnist", "other": "naive"}, tmp_path / "s.png")
    w, h = _png(p)
    assert w > 900 and h > 500
    assert eda.plot_set_stats({}, {}, tmp_path / "x.png") is None


def test_umap_embed_cache_and_figures(small, tmp_path):
    x, y, o, oy = small
    train, others = eda.pixel_features(x), {"other": eda.pixel_features(o), "empty": np.zeros((0, 784), np.float32)}
    params = {"n_neighbors": 10, "min_dist": 0.1, "n_epochs": 30, "seed": 0}
    emb, proj, hit = eda.cached_umap(tmp_path / "cache", "px_2d", train, others, n_components=2, **params)
    assert not hit and emb.shape == (300, 2) and proj["other"].shape == (40, 2) and proj["empty"].shape == (0, 2)
    assert np.isfinite(emb).all() and np.isfinite(proj["other"]).all()
    emb2, proj2, hit2 = eda.cached_umap(tmp_path / "cache", "px_2d", train, others, n_components=2, **params)
    assert hit2 and np.array_equal(emb, emb2) and np.array_equal(proj["other"], proj2["other"])
    assert len(list((tmp_path / "cache").glob("umap_px_2d_*.npz"))) == 1
    emb3, proj3, hit3 = eda.cached_umap(tmp_path / "cache", "px_3d", train, others, n_components=3, **params)
    assert not hit3 and emb3.shape == (300, 3) and proj3["other"].shape == (40, 3)
    # the embedding separates classes: most MNIST points' neighbours share their label
    assert eda.class_agreement(emb, y, emb, y) > 0.6

    assert _png(eda.plot_umap_2d(emb, y, tmp_path / "u2.png", "t"))[0] > 400
    layout = {"mnist_like": ["other", "missing_set"], "naive": ["empty"]}
    projected = {"other": (proj["other"], oy), "empty": (proj["empty"], np.zeros(0))}
    w, h = _png(eda.plot_domain_gap(emb, y, projected, layout, tmp_path / "gap.png", "t"))
    assert 0.7 < w / h < 1.4  # 2 rows × 2 columns of panels
    w1, h1 = _png(eda.plot_domain_gap(emb, y, projected, {"r": ["other", "empty", "missing_set"]}, tmp_path / "g1.png", "t"))
    assert w1 > 2 * h1  # one row of three
    assert _png(eda.plot_umap_3d(emb3, y, {"other": (proj3["other"], oy)}, layout, tmp_path / "u3.png", "t"))[0] > 800
    with pytest.raises(ValueError):
        eda.plot_umap_2d(emb3, y, tmp_path / "bad.png", "t")

    html_path, engine = eda.write_umap_3d_html(emb3, y, [str(i) for i in range(300)],
                                               {"other": (proj3["other"], oy, [f"o{i}" for i in range(40)])},
                                               tmp_path / "u3.html", "t <3d>", engine="builtin")
    doc = html_path.read_text()
    assert engine == "builtin" and "<canvas" in doc and "other · label" in doc and "t &lt;3d&gt;" in doc
    assert "http" not in doc.split("<script>")[1]  # no external resources


def test_html_engine_choice(tmp_path):
    emb, y = np.zeros((3, 3)), np.array([0, 1, 2])
    try:
        import plotly  # noqa: F401
    except ImportError:
        _, engine = eda.write_umap_3d_html(emb, y, ["a", "b", "c"], {}, tmp_path / "a.html", "t")
        assert engine == "builtin"  # degrades to the built-in viewer
        with pytest.raises(UserError, match="plotly is not installed"):
            eda.write_umap_3d_html(emb, y, ["a", "b", "c"], {}, tmp_path / "b.html", "t", engine="plotly")
    else:
        _, engine = eda.write_umap_3d_html(emb, y, ["a", "b", "c"], {}, tmp_path / "a.html", "t")
        assert engine == "plotly" and "plotly" in (tmp_path / "a.html").read_text()[:200000].lower()


def test_penultimate_features_shapes():
    x = np.random.default_rng(0).integers(0, 255, (7, 28, 28), dtype=np.uint8)
    mlp = NetworkPredictor(build_network("mlp", hidden=[16, 8]), 0.13, 0.31, "mlp")
    assert eda.penultimate_features(mlp, x).shape == (7, 8)
    cnn = NetworkPredictor(build_network("cnn", conv=[4]), 0.13, 0.31, "cnn")
    f = eda.penultimate_features(cnn, x)
    assert f.shape == (7, 4 * 13 * 13) and (f >= 0).all()  # ReLU + max-pool, flattened
    with pytest.raises(UserError):
        eda.penultimate_features(object(), x)


# --------------------------------------------------------------------------- pipeline


def _tiny_checkpoint(run_dir: Path) -> Path:
    from mnist_gen.training.fit import save_plain_checkpoint

    run_dir.mkdir(parents=True)
    net = build_network("mlp", hidden=[16, 8])
    hp = {"name": "mlp_tiny", "arch": "mlp", "arch_kwargs": {"hidden": [16, 8]}, "mean": 0.13, "std": 0.31}
    save_plain_checkpoint(hp, net, run_dir / "model.ckpt")
    (run_dir / "results.json").write_text(json.dumps({"model": "mlp_tiny"}))
    return run_dir


def test_run_end_to_end_small(mnist_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    model = _tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "eda"
    overrides = [f"out_dir={out}", "n_mnist=300", "n_per_set=60", "umap.n_epochs=20",
                 "sets={mnist_like:[usps,handwritten],naive:[uci_digits_naive,no_such_set]}",
                 f"+eval_set_options.handwritten.root={tmp_path / 'nothing'}",
                 f"model_path={model}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="eda", overrides=overrides)
    man = eda.run(cfg)
    assert man["sets"] == {"usps": {"n": 60, "group": "mnist_like"}, "uci_digits_naive": {"n": 60, "group": "naive"}}
    assert set(man["missing"]) == {"handwritten", "no_such_set"}
    assert man["model"]["name"] == "mlp_tiny" and man["features"] == ["pixels", "penultimate"]
    for stem in ("mean_digits", "set_stats", "umap_pixels_2d", "umap_pixels_gap", "umap_pixels_3d",
                 "umap_penultimate_2d", "umap_penultimate_gap", "umap_penultimate_3d"):
        _png(out / f"{stem}.png")
    assert (out / "umap_pixels_3d.html").is_file() and (out / "umap_penultimate_3d.html").is_file()
    stats = json.loads((out / "set_stats.json").read_text())
    assert stats["sizes"] == {"mnist_train": 300, "usps": 60, "uci_digits_naive": 60}
    # the whole-frame naive UCI digits fill the 28×28 field; MNIST's construction keeps 20 px
    assert stats["summary"]["uci_digits_naive"]["bbox_height"]["median"] > 24
    assert stats["summary"]["usps"]["bbox_height"]["median"] == pytest.approx(20, abs=1)
    assert len(list((out / "cache").glob("*.npz"))) == 4
    assert not any(man["cache_hits"].values())
    again = eda.run(cfg)
    assert all(again["cache_hits"].values())  # second run reads every embedding from the cache


def test_module_entry_point_resolves_config():
    proc = subprocess.run([sys.executable, "-m", "mnist_gen.cli.eda", "--cfg", "job", "n_mnist=123"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "n_mnist: 123" in proc.stdout and "mnist_like:" in proc.stdout
