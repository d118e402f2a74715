"""Aggregation of run directories into the study's table (synthetic runs, one corrupt)."""

import json
import logging

import pytest

from mnist_gen.evalsets.corruptions import SET_NAMES
from mnist_gen.evaluation import aggregate
from tests.conftest import run_cli


def _summary(acc, n=100):
    return {"accuracy": acc, "n": n, "correct": int(round(acc * n)), "ci95": [0, 1], "loss": 0.1}


def _write_run(root, model, seed, acc, photos=None, study=0.97, corruption=None, recipe="study"):
    d = root / model / f"seed{seed}"
    d.mkdir(parents=True)
    sets = {"mnist_test": _summary(acc, 10000)}
    if photos is not None:
        sets["seed_photos"] = _summary(photos, 29)
    for name in SET_NAMES if corruption is not None else []:
        sets[name] = _summary(corruption, 2000)
    res = {"model": model, "seed": seed, "recipe": recipe, "num_params": 51450, "epochs": 100, "test_set": "mnist_test",
           "test_accuracy": acc, "test_loss": 0.1 + seed / 100, "eval_sets": sets, "data": {"protocol": "mnist"},
           "study": {"mnist_accuracy": study}}
    (d / "results.json").write_text(json.dumps(res))
    return d


@pytest.fixture
def runs_dir(tmp_path):
    for seed, acc in enumerate([0.970, 0.972, 0.974]):
        _write_run(tmp_path, "mlp_64_16", seed, acc, photos=0.9, study=0.9712)
    _write_run(tmp_path, "cnn_32", 0, 0.985, study=0.9837)
    for seed in range(2):
        _write_run(tmp_path, "cnn_robust", seed, 0.99, corruption=0.95 + seed / 100, study=None, recipe="robust")
    (tmp_path / "broken" / "seed0").mkdir(parents=True)
    (tmp_path / "broken" / "seed0" / "results.json").write_text('{"model": "cnn_32", "seed": 1, "test_acc')  # half-written
    (tmp_path / "partial" / "seed0").mkdir(parents=True)
    (tmp_path / "partial" / "seed0" / "results.json").write_text('{"model": "cnn_32"}')
    return tmp_path


def test_corrupt_and_partial_results_are_skipped_with_a_warning(runs_dir, caplog):
    with caplog.at_level(logging.WARNING):
        runs = aggregate.load_runs(runs_dir)
    assert len(runs) == 6
    assert "broken/seed0/results.json" in caplog.text and "partial/seed0/results.json" in caplog.text


def test_seed_statistics_and_the_studys_number(runs_dir):
    rows = {r["model"]: r for r in aggregate.aggregate(aggregate.load_runs(runs_dir))}
    mlp = rows["mlp_64_16"]["test_accuracy"]
    assert mlp["n"] == 3 and mlp["mean"] == pytest.approx(0.972) and mlp["std"] == pytest.approx(0.002)
    assert mlp["ci95"][0] < 0.972 < mlp["ci95"][1]
    assert rows["mlp_64_16"]["study_outside_seed_range"] is False  # 97.12 lies within 97.0–97.4
    assert rows["cnn_32"]["study_outside_seed_range"] is True  # one seed at 98.5 vs the study's 98.37
    assert rows["mlp_64_16"]["eval_sets"]["seed_photos"]["mean"] == pytest.approx(0.9)
    assert rows["cnn_robust"]["eval_sets"]["mnistc_mean"]["mean"] == pytest.approx(0.955)


def test_table_orders_rows_like_the_study_and_labels_the_recipe(runs_dir):
    md = aggregate.to_markdown(aggregate.aggregate(aggregate.load_runs(runs_dir)))
    lines = md.splitlines()
    assert lines[2].startswith("| mlp_64_16 | study") and lines[3].startswith("| cnn_32 | study")
    assert lines[4].startswith("| cnn_robust | robust")
    assert "mnistc_mean %" in lines[0] and "mnistc_rotate" not in lines[0]
    assert "97.20 ± 0.20" in md


def test_evaluate_cli_writes_every_format(runs_dir):
    proc = run_cli("evaluate.py", f"runs={runs_dir}", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for ext in ("md", "csv", "json"):
        assert (runs_dir / f"study_table.{ext}").stat().st_size > 100
    assert len(json.loads((runs_dir / "study_table.json").read_text())) == 3
    assert "skipping" in proc.stderr + proc.stdout
