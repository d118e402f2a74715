"""Bad configuration through the real entry points: exit status + one clear sentence, never a traceback."""

import re

import pytest

from tests.conftest import run_cli

TRAIN = ["trainer.max_epochs=1", "data.max_train_samples=500", "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("override,needle", [
    ("trainer.max_epochs=abc", "trainer.max_epochs must be a positive integer, got 'abc'."),  # wrong type
    ("data.batch_size=0", "data.batch_size must be a positive integer, got 0."),
    ("eval_sets=[nope]", "Unknown evaluation set(s) nope; valid sets:"),                     # before training
])
def test_train_bad_value_is_one_sentence(tmp_path, override, needle):
    proc = run_cli("train.py", *TRAIN, f"hydra.run.dir={tmp_path / 'run'}", override, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any training


@pytest.mark.parametrize("override,needle", [
    ("unknown_key=1", "Key 'unknown_key' is not in struct"),  # Hydra's own answer, exit 1
    ("data=nope", "Could not find 'data/nope'"),
])
def test_train_unknown_key_or_group_is_hydras_clear_message(tmp_path, override, needle):
    proc = run_cli("train.py", f"hydra.run.dir={tmp_path}", override, timeout=120)
    assert proc.returncode != 0 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_run_dir_climbing_out_is_refused(tmp_path):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    proc = run_cli("train.py", *TRAIN, "hydra.run.dir=../../escaped", cwd=cwd, timeout=120)
    assert proc.returncode == 2 and "hydra.run.dir='../../escaped' climbs out" in proc.stderr
    # Hydra creates its own log folder before any project code runs; no artifact reaches it.
    assert not (tmp_path / "escaped" / "checkpoints").exists() and not (tmp_path / "escaped" / "results.json").exists()


def test_evaluate_unknown_set_is_one_sentence(tmp_path):
    proc = run_cli("evaluate.py", "runs=/does/not/matter", f"hydra.run.dir={tmp_path}", "eval_sets=[nope]", timeout=120)
    assert proc.returncode == 2 and "Unknown evaluation set(s) nope" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("override,needle", [
    ("out_dir=../../q", "out_dir='../../q' climbs out"),
    ("paths.output_dir=a/../../b", "paths.output_dir='a/../../b' climbs out"),
    ("model_path=/does/not/exist.ckpt", "Model file /does/not/exist.ckpt does not exist."),
    ("runs=/does/not/exist", "runs=/does/not/exist is not a directory."),
])
def test_evaluate_bad_value_is_a_user_error(tmp_path, override, needle):
    """Same checks as the CLI, in process (the CLI turns UserError into exit 2, tested above)."""
    from hydra import compose, initialize_config_dir

    from mnist_gen.cli.evaluate import run
    from mnist_gen.errors import UserError
    from mnist_gen.paths import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"paths.output_dir={tmp_path}", "eval_sets=[mnist_test]", override])
    with pytest.raises(UserError, match=re.escape(needle)):
        run(cfg)
