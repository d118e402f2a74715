"""Bad configuration through the real entry points: exit status + one clear sentence, never a traceback."""

import os
import re

import pytest

from tests.conftest import run_cli

TRAIN = ["trainer.max_epochs=1", "data.max_train_samples=500", "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("override,needle", [
    ("trainer.max_epochs=abc", "trainer.max_epochs must be a positive integer, got 'abc'."),  # wrong type
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
    # Refused by the Hydra callback's on_run_start, before Hydra creates the folder.
    assert not (tmp_path / "escaped").exists()


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


# -- hyperparameters and trainer settings: refused before any data is loaded ------------------------

ONE_SENTENCE = [  # through the real CLI: a parsed float and a machine-dependent setting
    ("model.optimizer.lr=nan", "model.optimizer.lr must be a positive number, got nan."),
    ("trainer.accelerator=tpu", "trainer.accelerator=tpu is not available on this machine"),
]


def _one_error_line(proc) -> str:
    """The one `error: ` line on stderr (exit 2, no traceback anywhere)."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("override,needle", ONE_SENTENCE, ids=[o for o, _ in ONE_SENTENCE])
def test_train_bad_hyperparameter_or_trainer_setting_is_one_sentence(tmp_path, override, needle):
    proc = run_cli("train.py", *TRAIN, f"hydra.run.dir={tmp_path / 'run'}", override, timeout=120)
    assert needle in _one_error_line(proc)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("override,needle", [
    ("trainer.max_epochs=-1", "trainer.max_epochs must be a positive integer, got -1."),
    ("data.batch_size=0", "data.batch_size must be a positive integer, got 0."),
    ("model.optimizer.schedule=bogus", "model.optimizer.schedule must be constant or cosine, got 'bogus'."),
    ("model.optimizer.momentum=-5", "model.optimizer.momentum must be a number in [0, 1), got -5."),
    ("model.l2=abc", "model.l2 must be a number ≥ 0, got 'abc'."),
    ("threads=abc", "threads must be null (torch's default) or a positive integer, got 'abc'."),
    ("trainer.devices=0", "trainer.devices must be a positive number of devices"),
    ("trainer.precision=bogus", "trainer.precision must be one of"),
    ("trainer.strategy=bogus", "trainer.strategy must be one of auto, ddp, ddp_spawn"),
    ("model.optimizer.lr=inf", "model.optimizer.lr must be a positive number, got inf."),
    ("model.optimizer.lr=-0.1", "model.optimizer.lr must be a positive number, got -0.1."),
    ("model.optimizer.momentum=1.0", "model.optimizer.momentum must be a number in [0, 1), got 1.0."),
    ("model.l2=nan", "model.l2 must be a number ≥ 0, got nan."),
    ("threads=0", "threads must be null"),
    ("seeds=[a]", "seeds must be null or a list of non-negative integers"),
    ("seed=1.5", "seed must be a non-negative integer, got 1.5."),
    ("resume=maybe", "resume must be true or false, got 'maybe'."),
    ("data.protocol=bogus", "data.protocol must be one of mnist, seed_holdout, got 'bogus'."),
    ("model.arch_kwargs.hidden=abc", "model.arch_kwargs {'hidden': 'abc'} do not build a mlp network"),
    ("trainer.devices=abc", "trainer.devices must be a positive number of devices"),
    ("trainer.devices=-3", "trainer.devices must be a positive number of devices"),
    ("trainer.accelerator=quantum", "trainer.accelerator must be one of auto, cpu"),
    ("trainer.strategy=fsdp", "Lightning refuses the trainer settings (accelerator=cpu, devices=1, strategy=fsdp"),
])
def test_more_bad_values_are_user_errors(tmp_path, override, needle):
    """The same checks in process (a train.py subprocess costs ~12 s of imports on 2 cores); the CLI
    turns a UserError into exit 2 and one `error: ` line, tested above through train.py."""
    from hydra import compose, initialize_config_dir

    from mnist_gen.errors import UserError
    from mnist_gen.paths import CONFIG_DIR
    from mnist_gen.training.checks import check_train_config

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={tmp_path}", override])
    with pytest.raises(UserError, match=re.escape(needle)):
        check_train_config(cfg)


def test_the_shipped_trainer_configs_pass_the_checks(tmp_path):
    from hydra import compose, initialize_config_dir

    from mnist_gen.paths import CONFIG_DIR
    from mnist_gen.training.checks import check_train_config

    for trainer in ("default", "cpu", "ddp"):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"paths.output_dir={tmp_path}", f"trainer={trainer}"])
        check_train_config(cfg)


# -- output folder that cannot be created: refused before Hydra makes it --------------------------

def test_run_dir_under_a_file_is_one_sentence(tmp_path):
    (tmp_path / "afile").write_text("a regular file where a folder is needed (fails for root too)")
    proc = run_cli("train.py", *TRAIN, f"hydra.run.dir={tmp_path / 'afile' / 'run'}", timeout=120)
    line = _one_error_line(proc)
    assert f"hydra.run.dir={tmp_path / 'afile' / 'run'} cannot be created: {tmp_path / 'afile'} is a file" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the file case above covers root")
def test_read_only_run_dir_is_one_sentence(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = run_cli("train.py", *TRAIN, f"hydra.run.dir={locked / 'run'}", timeout=120)
    finally:
        locked.chmod(0o755)
    assert "is read-only for this user" in _one_error_line(proc)


# -- divergence: never a NaN model, never NaN in results.json -------------------------------------

def test_diverging_training_stops_with_one_sentence_and_writes_no_model(tmp_path, mnist_dir):
    run = tmp_path / "run"
    proc = run_cli("train.py", *TRAIN, "model.optimizer.lr=1e6", "eval_sets=[mnist_test]", "galleries=false",
                   f"hydra.run.dir={run}", timeout=300)
    line = _one_error_line(proc)
    assert line.startswith("error: Training diverged in epoch ") and "lower model.optimizer.lr" in line
    assert not (run / "model.ckpt").exists() and not (run / "results.json").exists()
    assert not (run / "model.safetensors").exists()
