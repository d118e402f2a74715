"""The torchmetrics report must agree with scikit-learn, the reference the study used."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from rich.console import Console
from sklearn.metrics import classification_report as sk_report
from sklearn.metrics import confusion_matrix as sk_confusion

from mnist_gen.evalsets import EvalSet
from mnist_gen.evaluation.metrics import (
    classification_report,
    evaluate,
    evaluate_predictions,
    wilson_interval,
)
from mnist_gen.reporting.set_reports import plot_confusion, report_markdown, report_table

LABELS = list(range(10))


def _sk(y_true, y_pred) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk_report(y_true, y_pred, output_dict=True, labels=LABELS, zero_division=0)


def _assert_matches_sklearn(y_true, y_pred):
    ours = classification_report(y_true, y_pred)
    ref = _sk(y_true, y_pred)
    assert set(ref) <= set(ours), "missing sklearn keys"
    for key in [str(c) for c in LABELS] + ["macro avg", "weighted avg"]:
        for metric in ("precision", "recall", "f1-score"):
            assert ours[key][metric] == pytest.approx(ref[key][metric], abs=1e-6), (key, metric)
        assert ours[key]["support"] == ref[key]["support"]
        assert isinstance(ours[key]["support"], int)
    assert ours["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-6)
    assert ours["confusion_matrix"] == sk_confusion(y_true, y_pred, labels=LABELS).tolist()
    json.dumps(ours)  # stored as-is in results.json


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_report_equals_sklearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y_true = rng.integers(0, 10, n)
    # mostly right, some wrong: a realistic mix of per-class scores
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, 10, n))
    _assert_matches_sklearn(y_true, y_pred)


@pytest.mark.parametrize("seed", [10, 11])
def test_report_equals_sklearn_with_missing_classes(seed):
    rng = np.random.default_rng(seed)
    # class 9 in neither input, class 7 only predicted, class 3 only true
    y_true = rng.choice([0, 1, 2, 3, 4, 5, 6, 8], 120)
    y_pred = rng.choice([0, 1, 2, 4, 5, 6, 7, 8], 120)
    _assert_matches_sklearn(y_true, y_pred)
    ours = classification_report(y_true, y_pred)
    assert ours["9"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    # macro runs over all ten classes, so the absent ones pull it down
    assert ours["macro avg"]["recall"] == pytest.approx(
        sum(ours[str(c)]["recall"] for c in LABELS) / 10, abs=1e-6
    )


def test_report_perfect_and_known_values():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 2, 2, 0])
    r = classification_report(y, p)
    assert r["0"]["precision"] == pytest.approx(0.5)
    assert r["1"]["precision"] == pytest.approx(2 / 3)
    assert r["2"]["recall"] == pytest.approx(0.75)
    assert r["accuracy"] == pytest.approx(6 / 8)
    assert r["confusion_matrix"][2] == [1, 0, 3] + [0] * 7
    perfect = classification_report(y, y)
    assert perfect["accuracy"] == 1.0 and perfect["weighted avg"]["f1-score"] == 1.0


def test_report_rejects_bad_labels():
    with pytest.raises(ValueError, match="0..9"):
        classification_report([0, 10], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        classification_report([0, 1, 2], [0, 1])


def test_wilson_interval_known_value_and_edges():
    lo, hi = wilson_interval(28, 29)
    # Hand-computed Wilson score interval, z = 1.959964
    assert lo == pytest.approx(0.82825, abs=1e-4)
    assert hi == pytest.approx(0.99389, abs=1e-4)
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.40383, 0.59617), abs=1e-4)
    assert lo < 0.5 < hi and (0.5 - lo) == pytest.approx(hi - 0.5)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.0 < hi < 0.35
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.65 < lo < 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # wider at higher confidence, narrower with more data
    assert wilson_interval(28, 29, confidence=0.99)[0] < wilson_interval(28, 29)[0]
    assert wilson_interval(280, 290)[0] > wilson_interval(28, 29)[0]
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_evaluate_predictions_toy():
    y = np.array([0, 1, 2, 2])
    proba = np.zeros((4, 10))
    proba[0, 0] = 0.9
    proba[0, 1] = 0.1
    proba[1, 1] = 0.6
    proba[1, 7] = 0.4
    proba[2, 2] = 1.0
    proba[3, 5] = 1.0  # wrong, and p(true) = 0 -> clipped at 1e-7
    s = evaluate_predictions(y, proba)
    assert s["n"] == 4 and s["correct"] == 3 and s["accuracy"] == 0.75
    assert s["ci95"] == list(wilson_interval(3, 4))
    expected_loss = -(np.log(0.9) + np.log(0.6) + np.log(1.0) + np.log(1e-7)) / 4
    assert s["loss"] == pytest.approx(expected_loss, rel=1e-9)
    assert s["per_class_recall"]["0"] == 1.0
    assert s["per_class_recall"]["2"] == 0.5
    assert s["per_class_recall"]["9"] is None  # not in the set: undefined, not 0
    assert s["report"]["confusion_matrix"][2][5] == 1
    assert set(s) == {"accuracy", "n", "correct", "ci95", "loss", "per_class_recall", "report"}
    json.loads(json.dumps(s))


def test_evaluate_predictions_rejects_wrong_shape():
    with pytest.raises(ValueError, match="proba"):
        evaluate_predictions([0, 1], np.zeros((2, 9)))


class _Fixed:
    name = "fixed"

    def __init__(self, proba):
        self.proba = proba
        self.calls = 0

    def predict_proba(self, images):
        self.calls += 1
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
        return self.proba[: len(images)]


def test_evaluate_runs_predictor_and_handles_empty_set():
    labels = np.array([3, 8, 8])
    proba = np.full((3, 10), 0.01)
    proba[0, 3] = proba[1, 8] = proba[2, 3] = 0.91
    es = EvalSet("toy", np.zeros((3, 28, 28), np.uint8), labels)
    model = _Fixed(proba)
    summary, out = evaluate(model, es)
    assert model.calls == 1 and out.shape == (3, 10)
    assert summary["correct"] == 2 and summary["report"]["8"]["recall"] == 0.5

    empty = EvalSet("none", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    model = _Fixed(proba)
    summary, out = evaluate(model, empty)
    assert model.calls == 0 and out.shape == (0, 10)
    assert summary["n"] == 0 and summary["accuracy"] is None and summary["loss"] is None
    assert summary["ci95"] == [0.0, 1.0]
    assert summary["report"]["macro avg"]["support"] == 0
    json.dumps(summary)
    # the empty report still renders
    assert "–" in report_markdown(summary["report"], "empty")


def test_evaluate_rejects_wrong_proba_shape():
    es = EvalSet("toy", np.zeros((2, 28, 28), np.uint8), np.array([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        evaluate(_Fixed(np.zeros((2, 9))), es)


_rng = np.random.default_rng(5)
_Y = _rng.integers(0, 10, 200).tolist()
_P = np.where(_rng.random(200) < 0.8, _Y, 0).tolist()


def _report():
    return classification_report(_Y, _P)


def test_report_table_layout_like_sklearn():
    r = _report()
    table = report_table(r, "cnn on mnist_test")
    assert [c.header for c in table.columns] == ["", "precision", "recall", "f1-score", "support"]
    first = table.columns[0]._cells
    assert first == [str(c) for c in LABELS] + ["", "accuracy", "macro avg", "weighted avg"]
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(table)
    text = console.export_text()
    assert "cnn on mnist_test" in text and "weighted avg" in text
    # same numbers, row by row, as sklearn's own text report
    ref = sk_report(np.array(_Y), np.array(_P), labels=LABELS, zero_division=0, output_dict=False)
    ours = [ln.split() for ln in text.splitlines() if ln.strip()]
    theirs = [ln.split() for ln in ref.splitlines() if ln.strip()]
    assert ours[1] == theirs[0] == ["precision", "recall", "f1-score", "support"]
    assert ours[2:] == theirs[1:]


def test_report_markdown_rows():
    r = _report()
    md = report_markdown(r, "knn on photos")
    lines = md.strip().splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    assert lines[0] == "### knn on photos"
    assert len(table) == 15  # header, separator, 10 classes, accuracy, macro, weighted
    assert table[0].split("|")[1:-1] == [" class ", " precision ", " recall ", " f1-score ", " support "]
    assert table[2].startswith("| 0 |")
    acc_row = next(ln for ln in table if ln.startswith("| accuracy"))
    assert f"{r['accuracy']:.4f}" in acc_row and f"| {r['macro avg']['support']} |" in acc_row
    assert table[-1].startswith("| weighted avg |")


def test_plot_confusion_writes_png(tmp_path):
    r = _report()
    out = plot_confusion(r["confusion_matrix"], tmp_path / "cm" / "confusion.png", "cnn on mnist_test")
    assert out == tmp_path / "cm" / "confusion.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["confusion.png"]  # no temp files left
    from PIL import Image

    w, h = Image.open(out).size
    assert 300 < w < 2000 and 300 < h < 2000


def test_digits_the_pipeline_missed_count_as_errors():
    """A file the pipeline read no digit from is a wrong answer for the user who gave it."""
    from mnist_gen.evaluation.metrics import evaluate

    class Perfect:
        name = "perfect"

        def predict_proba(self, images):
            return np.eye(10)[images[:, 0, 0] % 10]

    images = np.zeros((4, 28, 28), np.uint8)
    images[:, 0, 0] = [1, 2, 3, 7]
    s = EvalSet("x", images, [1, 2, 3, 7], missed=[7, 7, 1, 9])
    summary, _ = evaluate(Perfect(), s)
    assert summary["n"] == 8 and summary["correct"] == 4 and summary["accuracy"] == 0.5
    assert summary["no_digit"] == 4 and summary["no_digit_per_class"]["7"] == 2
    assert summary["per_class_recall"]["7"] == pytest.approx(1 / 3) and summary["per_class_recall"]["9"] == 0.0
    assert summary["report"]["accuracy"] == 1.0  # the classification report is over the digits read
