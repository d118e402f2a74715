"""Aggregation of run directories into the study's table (synthetic runs, one corrupt)."""

import io
import json
import logging

import pytest
from rich.console import Console

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


# -- wrong-typed results.json: skipped with a warning naming the file, never a traceback -------------


@pytest.fixture
def wrong_runs(runs_dir):
    from tests.bad_inputs import bad_results

    good = json.loads((runs_dir / "cnn_32" / "seed0" / "results.json").read_text())
    bad = {}
    for name, text in bad_results(good).items():
        (runs_dir / "wrong" / name).mkdir(parents=True)
        bad[name] = runs_dir / "wrong" / name / "results.json"
        bad[name].write_text(text)
    (runs_dir / "wrong" / "a_folder" / "results.json").mkdir(parents=True)
    bad["a_folder"] = runs_dir / "wrong" / "a_folder" / "results.json"
    return runs_dir, bad


def test_wrong_typed_results_are_skipped_with_a_warning_naming_each(wrong_runs, caplog):
    root, bad = wrong_runs
    with caplog.at_level(logging.WARNING):
        runs = aggregate.load_runs(root)
    assert len(runs) == 6  # the good runs of runs_dir, nothing else
    for path in bad.values():
        assert f"skipping {path}: " in caplog.text, path
    assert "test_accuracy is the string '0.97', expected a number in 0..1" in caplog.text
    assert "test_accuracy is nan" in caplog.text and "eval_sets is null" in caplog.text
    rows = aggregate.aggregate(runs)
    aggregate.write_outputs(rows, root)  # the table is still written


def test_names_that_look_like_markup_or_break_lines_are_shown_as_written(runs_dir):
    _write_run(runs_dir, "[/x]", 0, 0.9)
    _write_run(runs_dir, "a|b\x1b[31m\nc", 0, 0.9, photos=0.5)
    rows = aggregate.aggregate(aggregate.load_runs(runs_dir))
    buf = io.StringIO()
    Console(file=buf, width=400, color_system=None).print(aggregate.to_rich(rows))  # was: MarkupError
    text = buf.getvalue()
    assert "[/x]" in text and "\x1b" not in text and "a|b\\x1b[31m\\nc" in text
    md = aggregate.to_markdown(rows).splitlines()
    assert all(line.count(" | ") == md[0].count(" | ") for line in md[2:])  # '|' escaped: no extra column


def test_the_study_table_json_has_no_nan(runs_dir):
    aggregate.write_outputs(aggregate.aggregate(aggregate.load_runs(runs_dir)), runs_dir)
    text = (runs_dir / "study_table.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in study_table.json"))  # 1 seed: CI is null


def test_multirun_callback_survives_wrong_results_and_writes_the_table(wrong_runs, capsys):
    from omegaconf import OmegaConf

    from mnist_gen.cli.multirun import AggregateOnMultirunEnd

    root, _ = wrong_runs
    AggregateOnMultirunEnd().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(root)}}}))
    assert "mlp_64_16" in capsys.readouterr().out
    assert len(json.loads((root / "study_table.json").read_text())) == 3


def test_multirun_callback_refuses_an_output_folder_under_a_file(tmp_path, capsys):
    from omegaconf import OmegaConf

    from mnist_gen.cli.multirun import AggregateOnMultirunEnd

    (tmp_path / "afile").write_text("x")
    cfg = OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "afile" / "run")},
                                      "sweep": {"dir": str(tmp_path / "afile" / "sweep")}}})
    for hook in (AggregateOnMultirunEnd().on_run_start, AggregateOnMultirunEnd().on_multirun_start):
        with pytest.raises(SystemExit) as stop:
            hook(cfg)
        assert stop.value.code == 2
        assert "is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "afile").is_dir()


def test_an_unwritable_table_folder_is_one_sentence(runs_dir):
    from mnist_gen.errors import UserError

    (runs_dir / "afile").write_text("x")
    rows = aggregate.aggregate(aggregate.load_runs(runs_dir))
    with pytest.raises(UserError, match="Cannot write the study table into .*afile/table"):
        aggregate.write_outputs(rows, runs_dir / "afile" / "table")


def test_a_row_names_the_pipeline_versions_its_seeds_files_were_read_by(tmp_path):
    for seed, version in enumerate([35, 36]):
        d = _write_run(tmp_path, "cnn_32", seed, 0.985, photos=1.0)
        res = json.loads((d / "results.json").read_text())
        res["eval_sets"]["seed_photos"]["pipeline_version"] = version  # mnist_test (arrays) has none
        (d / "results.json").write_text(json.dumps(res))
    _write_run(tmp_path, "mlp_64_16", 0, 0.97, photos=0.9)  # scored before versions were recorded
    rows = {r["model"]: r for r in aggregate.aggregate(aggregate.load_runs(tmp_path))}
    assert rows["cnn_32"]["pipeline_versions"] == [35, 36]
    assert rows["mlp_64_16"]["pipeline_versions"] == []
