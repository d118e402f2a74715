"""The bad-input corpus (``tests/bad_inputs.py``) through the real entry points.

Promised (README, RELIABILITY.md): no traceback in any output; ``predict.py`` exits 0 when files or
some models are bad and 2 for user errors, with one sentence; no ``NaN``/``Infinity`` in any JSON;
in a folder one bad model is skipped with a sentence naming it while the others answer; a
modified file is refused against its SHA256SUMS; odd folder entries are named, never read.
"""

from __future__ import annotations

import json
import logging

import pytest

from mnist_gen.errors import UserError
from tests import bad_inputs
from tests.conftest import run_cli

# Every broken model and the words its one sentence must contain (besides the file's path).
EXPECTED = {
    "arch_kwargs_text": "Cannot load",
    "arch_kwargs_unknown": "unexpected keyword argument 'nonsense'",
    "hparams_list": "not a mnist_gen model checkpoint",
    "state_is_tensor": "not a mnist_gen model checkpoint",
    "file_is_tensor": "not a mnist_gen model checkpoint",
    "mean_text": "is not a pixel statistic",
    "std_zero": "is not a pixel statistic",
    "nan_weights": "NaN or infinite",
    "nan_safetensors": "NaN or infinite",
    "garbage": "Refusing to load",
    "empty": "bad header length",
    "truncated_onnx": "Cannot load",
    "runs_code": "arbitrary code execution",
    "bit_flipped": "does not match its recorded sha256",
    "zip_bomb": "would expand to 1.5 GB",
    "knn_huge_k": "n_neighbors=1000000000",
    "huge_declared": "not those of the mlp network its metadata declares",
    "huge_ensemble": "an ensemble has 1 to 64 members",
}


@pytest.fixture(scope="module")
def corpus(tiny_run, tmp_path_factory):
    c = bad_inputs.build(tmp_path_factory.mktemp("bad_inputs"), tiny_run)
    yield c
    bad_inputs.unlock(c)


def _no_nan(text: str, where: str):
    """Parse JSON text, failing on the non-standard NaN / Infinity tokens Python's json would accept."""

    def refuse(token):
        raise AssertionError(f"{token} in {where}")

    return json.loads(text, parse_constant=refuse)


def _clean(proc) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    return out


def test_the_corpus_covers_every_expected_case(corpus):
    assert set(corpus.bad_models) == set(EXPECTED)


# -- models: one at a time ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_model_is_refused_with_one_sentence(corpus, name):
    from mnist_gen.models.predictors import load_predictor

    path = corpus.bad_models[name]
    with pytest.raises(UserError) as err:
        load_predictor(path)
    msg = str(err.value)
    assert str(path) in msg and EXPECTED[name] in msg and "\n" not in msg
    assert not corpus.evil_marker.exists()


@pytest.mark.parametrize("name", ["runs_code", "garbage"])
def test_a_refused_pickle_is_said_in_a_whole_sentence(corpus, name):
    from mnist_gen.models.predictors import load_predictor

    with pytest.raises(UserError) as err:
        load_predictor(corpus.bad_models[name])
    assert "arbitrary code execution" in str(err.value) and "…" not in str(err.value)


@pytest.mark.parametrize("name", ["bit_flipped", "runs_code", "zip_bomb", "nan_weights"])
def test_predict_with_only_a_bad_model_is_exit_2(corpus, name, tmp_path, capsys):
    from mnist_gen.cli.predict import main

    code = main([str(corpus.good_image), "--model", str(corpus.bad_models[name]), "--json", "--no-views",
                 "--out", str(tmp_path / "out")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and EXPECTED[name] in errors[0]
    assert not corpus.evil_marker.exists()


def test_a_folder_of_only_bad_models_is_exit_2(corpus, tmp_path, capsys):
    import shutil

    from mnist_gen.cli.predict import main

    for name in ("bit_flipped", "std_zero"):
        shutil.copytree(corpus.bad_models[name].parent, tmp_path / "runs" / name)
    code = main([str(corpus.good_image), "--model", str(tmp_path / "runs"), "--no-views", "--out", str(tmp_path / "o")])
    assert code == 2 and "None of the models under" in capsys.readouterr().err


# -- models: a folder of them, through load_models and the real predict.py ------------------------------


def test_load_models_skips_each_bad_model_with_a_warning_and_keeps_the_good_one(corpus, caplog):
    from mnist_gen.models.predictors import load_models

    with caplog.at_level(logging.WARNING):
        models = load_models([str(corpus.models)])
    assert [name for name, _ in models] == ["mlp_64_16"]
    for path in corpus.bad_models.values():
        assert f"skipping {path.parent}: " in caplog.text, path


def test_load_models_names_odd_entries_in_a_models_folder(corpus, caplog):
    from mnist_gen.models.predictors import load_models

    with caplog.at_level(logging.WARNING):
        load_models([str(corpus.models)])
    for entry in corpus.odd["models"]:
        assert str(entry) in caplog.text, entry


def test_predict_cli_on_the_corpus(corpus, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("predict.py", str(corpus.images), "--model", str(corpus.models), "--json", "--out", str(out),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = _clean(proc)
    lines = [_no_nan(line, "predict.py --json") for line in proc.stdout.splitlines()]
    _ = [_no_nan(line, "predictions.jsonl") for line in (out / "predictions.jsonl").read_text().splitlines()]
    good = [r for r in lines if r["path"] == str(corpus.good_image)]
    assert len(good) == 1 and good[0]["model"] == "mlp_64_16" and good[0]["prediction"] in range(10)
    for path in corpus.bad_models.values():  # one sentence per bad model, the others still answer
        assert f"skipping {path.parent}: " in proc.stderr, path
    errors = {r["path"]: r["error"] for r in lines if r["error"]}
    for entry in corpus.odd["images"]:  # every odd folder entry is named, none is read
        assert any(str(entry) in p or str(entry) in e for p, e in errors.items()), entry
    assert not corpus.evil_marker.exists()
    assert not [line for line in text.splitlines() if line.startswith("error: ")]  # not a user error: exit 0


# -- results.json: evaluate.py runs=... ----------------------------------------------------------------


def test_evaluate_aggregates_the_good_runs_and_names_every_bad_one(corpus, tmp_path):
    proc = run_cli("evaluate.py", f"runs={corpus.runs}", f"out_dir={tmp_path / 'table'}",
                   f"hydra.run.dir={tmp_path / 'hydra'}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = _clean(proc)
    for path in corpus.bad_results.values():
        assert f"skipping {path}: " in text, path
    for entry in corpus.odd["runs"]:
        assert f"{entry}" in text, entry
    table = _no_nan((tmp_path / "table" / "study_table.json").read_text(), "study_table.json")
    assert sorted(r["model"] for r in table) == ["[/x]", "mlp_64_16"]
    assert "[/x]" in proc.stdout  # printed as written, not read as rich markup
    assert "| [/x] | [bold]r |" in (tmp_path / "table" / "study_table.md").read_text()


def test_evaluate_one_bad_model_is_exit_2_with_one_sentence(corpus, tmp_path):
    path = corpus.bad_models["bit_flipped"]
    proc = run_cli("evaluate.py", f"model_path={path}", "eval_sets=[mnist_test]", f"hydra.run.dir={tmp_path}",
                   timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    _clean(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(path) in errors[0] and "sha256" in errors[0]


def test_an_evaluation_set_reads_the_same_over_processes_and_names_its_bad_files(tmp_path):
    # through_pipeline spreads the files over processes: the same set, in the same order, as
    # read in one process, and an unreadable file or a blank page is named, not fatal
    import numpy as np
    from PIL import Image

    from mnist_gen.evalsets.base import through_pipeline

    items = [(f"seven_{s}", 7, bad_inputs.draw_seven(tmp_path / f"seven_{s}.png", s)) for s in range(40, 240, 20)]
    (tmp_path / "garbage.png").write_bytes(b"not an image at all")
    Image.fromarray(np.full((60, 60), 255, np.uint8)).save(tmp_path / "blank.png")
    items[3:3] = [("garbage", 7, tmp_path / "garbage.png"), ("blank", 7, tmp_path / "blank.png")]
    one = through_pipeline("t", items, thumbnails=True, jobs=1)
    two = through_pipeline("t", items, thumbnails=True, jobs=2)
    assert one.ids == two.ids == [i for i, *_ in items if i not in ("garbage", "blank")]
    assert np.array_equal(one.images, two.images) and np.array_equal(one.labels, two.labels)
    assert all(np.array_equal(a, b) for a, b in zip(one.thumbnails, two.thumbnails, strict=True))
    assert one.skipped == two.skipped and [i for i, _ in two.skipped] == ["garbage", "blank"]
    assert two.missed == [7, 7] and "garbage.png" in two.skipped[0][1]
    assert "no digit found" in two.skipped[1][1].lower()
