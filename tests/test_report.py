"""Report files: atomic writes, training curves, misclassification galleries."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
from PIL import Image

from mnist_gen.errors import UserError
from mnist_gen.evalsets import EvalSet
from mnist_gen.io import write_atomic
from mnist_gen.reporting.figures import misclassification_gallery, plot_curves
from mnist_gen.reporting.set_reports import ERROR_COLUMNS, error_list_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return len(data), Image.open(path).size


def test_write_atomic_text_bytes_and_replace(tmp_path):
    p = write_atomic(tmp_path / "sub" / "a.json", '{"x": 1}')
    assert p.read_text() == '{"x": 1}'
    write_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(p.parent)) == ["a.json"]


def test_write_atomic_leaves_old_file_on_failure(tmp_path):
    p = write_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(TypeError):
        write_atomic(p, 12345.0)  # not str/bytes-like
    assert p.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def _write_csv(path, text):
    path.write_text(text)
    return path


def test_plot_curves_writes_loss_and_accuracy(tmp_path):
    csv = _write_csv(
        tmp_path / "metrics.csv",
        "epoch,train_loss,train_acc,val_loss,val_acc,epoch_time_s\n"
        "0,0.9,0.70,0.6,0.80,3.1\n1,0.5,0.85,0.45,0.86,3.0\n2,0.3,0.91,0.40,0.88,3.0\n",
    )
    out = plot_curves(csv, tmp_path / "figs")
    assert [p.name for p in out] == ["loss_curve.png", "accuracy_curve.png"]
    for p in out:
        nbytes, (w, h) = _png_size(p)
        assert nbytes > 10_000 and 300 < w < 2000 and 200 < h < 2000
    assert sorted(os.listdir(tmp_path / "figs")) == ["accuracy_curve.png", "loss_curve.png"]


def test_plot_curves_merges_lightning_style_rows(tmp_path):
    # CSVLogger writes train and val of one epoch on separate rows with blank cells
    csv = _write_csv(
        tmp_path / "metrics.csv",
        "epoch,train_loss,train_acc,val_loss,val_acc\n0,,,0.6,0.8\n0,0.9,0.7,,\n1,,,0.5,0.85\n1,0.5,0.85,,\n",
    )
    a = plot_curves(csv, tmp_path / "a")
    full = _write_csv(
        tmp_path / "full.csv",
        "epoch,train_loss,train_acc,val_loss,val_acc\n0,0.9,0.7,0.6,0.8\n1,0.5,0.85,0.5,0.85\n",
    )
    b = plot_curves(full, tmp_path / "b")
    # same data after merging -> pixel-identical figures
    for pa, pb in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb)))


def test_plot_curves_clear_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        plot_curves(tmp_path / "nope.csv", tmp_path)
    bad = _write_csv(tmp_path / "bad.csv", "epoch,loss\n0,1.0\n")
    with pytest.raises(UserError, match="train_loss"):
        plot_curves(bad, tmp_path)
    empty = _write_csv(tmp_path / "empty.csv", "epoch,train_loss,train_acc,val_loss,val_acc\n")
    with pytest.raises(UserError, match="no epoch rows"):
        plot_curves(empty, tmp_path)


def _set_with_errors(n=12, thumbnails=False):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    thumbs = None
    if thumbnails:
        thumbs = [rng.integers(0, 256, (40 + i, 30, 3), dtype=np.uint8) for i in range(n - 1)]
        thumbs.append(rng.integers(0, 256, (50, 50), dtype=np.uint8))  # grey thumbnails too
    es = EvalSet("photos", images, labels, ids=[f"/x/photo_{i}.jpg" for i in range(n)], thumbnails=thumbs)
    proba = np.full((n, 10), 0.01)
    proba[np.arange(n), labels] = 0.9
    wrong = [1, 4, 7]
    for i in wrong:
        proba[i] = 0.01
        proba[i, (labels[i] + 1) % 10] = 0.6
        proba[i, labels[i]] = 0.3
    return es, proba, wrong


@pytest.mark.parametrize("thumbnails", [True, False])
def test_gallery_writes_png(tmp_path, thumbnails):
    es, proba, wrong = _set_with_errors(thumbnails=thumbnails)
    out = misclassification_gallery(es, proba, tmp_path / "gallery.png", "cnn")
    assert out == tmp_path / "gallery.png"
    nbytes, (w, h) = _png_size(out)
    assert nbytes > 5_000 and w > 200 and h > 150
    assert os.listdir(tmp_path) == ["gallery.png"]


def test_gallery_grows_with_errors_and_caps(tmp_path):
    es, proba, _ = _set_with_errors(n=40)
    few = misclassification_gallery(es, proba, tmp_path / "few.png", "mlp")
    proba_all_wrong = np.roll(np.eye(10)[es.labels], 1, axis=1)  # every digit wrong
    many = misclassification_gallery(es, proba_all_wrong, tmp_path / "many.png", "mlp")
    capped = misclassification_gallery(es, proba_all_wrong, tmp_path / "capped.png", "mlp", max_items=8)
    h_few, h_many, h_capped = (Image.open(p).size[1] for p in (few, many, capped))
    assert h_many > 2 * h_few  # 40 errors need more rows than 3
    assert h_capped < h_many


def test_gallery_none_when_no_errors(tmp_path):
    es, _, _ = _set_with_errors()
    perfect = np.eye(10)[es.labels]
    assert misclassification_gallery(es, perfect, tmp_path / "g.png", "svm") is None
    empty = EvalSet("none", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    assert misclassification_gallery(empty, np.zeros((0, 10)), tmp_path / "g.png", "svm") is None
    assert os.listdir(tmp_path) == []


def test_error_list_names_every_misread_and_unread_item():
    es, proba, wrong = _set_with_errors(n=40)
    es.skipped = [("7/faint.png", "No digit found: nothing on the image stands out from the paper's grain."),
                  ("/x/blank.jpg", "No digit found: the image is a blank page.")]
    rows = list(csv.DictReader(io.StringIO(error_list_csv(es, proba))))
    assert tuple(rows[0]) == ERROR_COLUMNS
    misread = [r for r in rows if r["answer"]]
    assert [r["id"] for r in misread] == [f"/x/photo_{i}.jpg" for i in range(40) if i in wrong]
    first = misread[0]
    assert (first["true"], first["answer"], first["p_answer"], first["p_true"]) == ("1", "2", "0.6000", "0.3000")
    assert rows[-1] == {"id": "/x/blank.jpg", "true": "", "answer": "", "p_answer": "", "p_true": "",
                        "why": "No digit found: the image is a blank page."}
    assert (rows[-2]["id"], rows[-2]["true"], rows[-2]["answer"]) == ("7/faint.png", "7", "")  # its folder's label
    perfect = np.eye(10)[es.labels]
    assert [r["id"] for r in csv.DictReader(io.StringIO(error_list_csv(es, perfect)))] == ["7/faint.png", "/x/blank.jpg"]


def test_gallery_rejects_mismatched_proba(tmp_path):
    es, proba, _ = _set_with_errors()
    with pytest.raises(ValueError, match="proba"):
        misclassification_gallery(es, proba[:-1], tmp_path / "g.png", "svm")
