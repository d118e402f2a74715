"""``predict.py``: the real command line, its ``--json`` format (a stable interface) and bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.bad_inputs import draw_seven
from tests.conftest import run_cli

KEYS = {"path", "label", "model", "prediction", "probabilities", "error"}




@pytest.fixture
def photo_dir(tmp_path):
    d = tmp_path / "photos"
    draw_seven(d / "7" / "a.jpg", 200)
    draw_seven(d / "4_sideways.png", 120)
    Image.new("L", (100, 100), 240).save(d / "blank.png")  # readable, but no digit on it
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.png").write_text("this is not a png")
    (d / "notes.txt").write_text("a note beside the photos")
    return d


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_json_lines_match_the_documented_format_and_the_model(tiny_run, photo_dir, tmp_path):
    from mnist_gen.models.predictors import load_predictor
    from mnist_gen.preprocess import to_mnist

    out = tmp_path / "out"
    proc = run_cli("predict.py", str(photo_dir), str(tmp_path / "missing.jpg"), "--model", str(tiny_run),
                   "--out", str(out), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    recs = {r["path"]: r for r in _lines(proc.stdout)}  # stdout holds JSON lines only
    assert len(recs) == 7
    for r in recs.values():
        assert set(r) == KEYS and r["model"] == "mlp_64_16"
        assert (r["prediction"] is None) == (r["probabilities"] is None) == (r["error"] is not None)
    good = recs[str(photo_dir / "7" / "a.jpg")]
    assert good["label"] == 7 and len(good["probabilities"]) == 10
    assert sum(good["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert good["prediction"] == int(np.argmax(good["probabilities"]))
    # Same numbers as the Python API on the same file.
    digit = to_mnist(photo_dir / "7" / "a.jpg").digit
    expected = load_predictor(tiny_run).predict_proba(digit[None])[0]
    np.testing.assert_allclose(good["probabilities"], expected, atol=2e-6)
    assert recs[str(photo_dir / "4_sideways.png")]["label"] == 4
    for name, needle in [("blank.png", "No digit"), ("zero.jpg", "zero.jpg"), ("text.png", "text.png"),
                         ("notes.txt", "not an image")]:
        r = recs[str(photo_dir / name)]
        assert r["prediction"] is None and needle in r["error"], (name, r)
    assert "does not exist" in recs[str(tmp_path / "missing.jpg")]["error"]
    # The saved 28×28 view is exactly what the model saw; predictions.jsonl repeats stdout.
    saved = sorted((out / "views").glob("*_a_digit.png"))
    assert len(saved) == 1 and np.array_equal(np.asarray(Image.open(saved[0])), digit)
    assert _lines((out / "predictions.jsonl").read_text()) == _lines(proc.stdout)
    # Bad files are listed at the end (stderr in --json mode, stdout stays machine-readable).
    assert "Files without a prediction" in proc.stderr and "zero.jpg" in proc.stderr


def test_every_model_of_a_runs_folder_answers(tiny_run, photo_dir, tmp_path, capsys):
    from mnist_gen.cli.predict import main

    runs = tmp_path / "runs"
    for seed in ("seed0", "seed1"):
        shutil.copytree(tiny_run, runs / "mlp_64_16" / seed)
    rc = main([str(photo_dir / "7" / "a.jpg"), "--model", str(runs), "--json", "--no-views", "--out", str(tmp_path / "o")])
    assert rc == 0
    recs = _lines(capsys.readouterr().out)
    assert sorted(r["model"] for r in recs) == ["mlp_64_16@mlp_64_16/seed0", "mlp_64_16@mlp_64_16/seed1"]
    assert recs[0]["probabilities"] == recs[1]["probabilities"]  # same weights, same answer


def test_every_model_format_answers_the_same(tiny_run, photo_dir, tmp_path, capsys):
    """The checkpoint, its safetensors and its ONNX export give the same answer through predict.py."""
    from mnist_gen.cli.predict import main

    answers = []
    for name in ("model.ckpt", "model.safetensors", "model.onnx"):
        main([str(photo_dir / "7" / "a.jpg"), "--model", str(tiny_run / name), "--json", "--no-views",
              "--out", str(tmp_path / name)])
        (rec,) = _lines(capsys.readouterr().out)
        answers.append(rec)
    assert len({a["prediction"] for a in answers}) == 1
    for a in answers[1:]:
        np.testing.assert_allclose(a["probabilities"], answers[0]["probabilities"], atol=1e-5)


def test_human_output_names_digit_and_bad_files(tiny_run, photo_dir, tmp_path, capsys):
    from mnist_gen.cli.predict import main

    assert main([str(photo_dir), "--model", str(tiny_run / "model.ckpt"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "(label 7)" in out and "p=" in out
    tail = out.split("Files without a prediction:")[1]
    assert all(n in tail for n in ("zero.jpg", "text.png", "notes.txt", "blank.png")) and "a.jpg" not in tail
    for line in tail.strip().splitlines():  # each file named once in its line
        name = line.split("/")[-1].split(":")[0].split()[0]
        assert line.count(name) == 1, line


@pytest.mark.parametrize("args,needle", [
    (["{photo}", "--model", "{tmp}/nowhere"], "does not exist"),
    (["{photo}", "--model", "{tmp}"], "No model file"),
    (["--model", "{run}"], "No input images"),
    (["{photo}", "--model", "{run}", "--preprocess", "fancy"], "preprocess 'fancy' is unknown"),
    (["{photo}", "--model", "{run}", "--out", "../../escape"], "climbs out"),
])
def test_user_errors_are_one_sentence_and_exit_2(tiny_run, photo_dir, tmp_path, capsys, args, needle):
    from mnist_gen.cli.predict import main

    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(photo=photo_dir / "7" / "a.jpg", tmp=empty, run=tiny_run) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1


def test_folder_of_1000_files_with_bad_ones_finishes(tiny_run, tmp_path):
    d = tmp_path / "many"
    rng = np.random.default_rng(0)
    bad = set()
    for i in range(1000):
        sub = d / str(i % 10)
        sub.mkdir(parents=True, exist_ok=True)
        name = sub / f"img{i:04d}.png"
        if i % 97 == 0:
            name.write_bytes(b"")
            bad.add(name)
        elif i % 101 == 0:
            name.write_text("not an image")
            bad.add(name)
        elif i % 211 == 0:
            name = name.with_suffix(".txt")
            name.write_text("notes")
            bad.add(name)
        else:
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(name)
    proc = run_cli("predict.py", str(d), "--model", str(tiny_run), "--preprocess", "naive", "--json", "--no-views",
                   "--out", str(tmp_path / "o"), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = _lines(proc.stdout)
    assert len(recs) == 1000
    failed = {r["path"] for r in recs if r["error"]}
    assert failed == {str(p) for p in bad}
    assert all(r["label"] == int(r["path"].split("/")[-2]) for r in recs)
    assert all(str(p) in proc.stderr for p in bad)
