"""Reliability (RELIABILITY.md): kill + resume, atomic artifacts, safe loading, output-path rule."""

from __future__ import annotations

import ast
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mnist_gen.errors import UserError
from mnist_gen.paths import PROJECT_ROOT

SMALL = ["model=mlp_64_16", "data.max_train_samples=3000", "trainer.max_epochs=4", "trainer.enable_progress_bar=false",
         "eval_sets=[mnist_test]", "export=false", "galleries=false"]


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}


def _train(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "train.py"), *SMALL, f"hydra.run.dir={run_dir}"],
                            cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _log_rows(run_dir: Path) -> list[list[str]]:
    """metrics.csv's epoch, losses and accuracies (not its wall times), row by row."""
    return [line.split(",")[:5] for line in (run_dir / "metrics.csv").read_text().splitlines()]


def _checkpointed_epoch(run_dir: Path) -> int:
    """The epoch last.ckpt holds, -1 before there is one. The file is written whole and renamed
    into place, so a reader sees an old or a new one, never half of one. (metrics.csv's rows
    are no signal: an epoch's row is written before its checkpoint.)"""
    p = run_dir / "checkpoints" / "last.ckpt"
    try:
        return int(torch.load(p, map_location="cpu", weights_only=True)["epoch"])
    except FileNotFoundError:
        return -1


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    proc = _train(run_dir)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return run_dir


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_resumes_to_the_same_weights(reference, tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = _train(run_dir)
    deadline = time.monotonic() + 240
    while _checkpointed_epoch(run_dir) < 1:  # epoch 2's checkpoint is on disk: kill during epoch 3
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        # Lightning stops at the next chunk; we exit 128+15 with one sentence saying how to resume.
        assert proc.returncode == 143, err[-3000:]
        assert f"rerun with hydra.run.dir={run_dir} to resume" in err and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "results.json").exists() and not (run_dir / "model.ckpt").exists()
    assert _checkpointed_epoch(run_dir) >= 1
    if sig == signal.SIGTERM:
        assert not list(run_dir.rglob("*.tmp")), "a temp file was left behind"
    else:  # SIGKILL can land mid-write: its temp stays until the run resumes (here made sure of)
        (run_dir / "checkpoints" / f".best.ckpt.{proc.pid}.0badf00d.tmp").write_bytes(b"partial")

    proc = _train(run_dir)  # same command, same run directory: resume=true by default
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "resuming from" in out + err
    assert not list(run_dir.rglob("*.tmp")), "a temp file was left behind"
    ref, got = _weights(reference), _weights(run_dir)
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    # The epoch log is whole again: one row per epoch, identical losses to the uninterrupted run.
    assert _log_rows(run_dir) == _log_rows(reference)
    assert json.loads((run_dir / "results.json").read_text())["epochs"] == 4


def test_a_kill_after_an_epochs_checkpoint_before_its_end_keeps_its_row(reference, tmp_path):
    """The window CI once hit: SIGKILL once epoch 2's last.ckpt is on disk, before the epoch ends.
    The resumed run does not train that epoch again, so its row must be in metrics.csv already."""
    run_dir = tmp_path / "run"
    code = ("import os, runpy, signal, sys\n"
            "import mnist_gen.training.callbacks as c\n"
            "end = c.EpochCSV.on_train_epoch_end\n"
            "def kill(self, trainer, module):\n"
            "    if trainer.current_epoch == 1:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    end(self, trainer, module)\n"
            "c.EpochCSV.on_train_epoch_end = kill\n"
            f"sys.argv = ['train.py', *{SMALL!r}, 'hydra.run.dir={run_dir}']\n"
            "runpy.run_path('train.py', run_name='__main__')\n")
    killed = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    proc = _train(run_dir)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert _log_rows(run_dir) == _log_rows(reference)
    ref, got = _weights(reference), _weights(run_dir)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


# -- atomic writes ---------------------------------------------------------------------------------


def test_a_killed_writers_temp_files_are_swept_and_a_live_ones_kept(tmp_path):
    """SIGKILL in the middle of ``write_atomic`` leaves its temp (found by CI once, a kill landing
    while best.ckpt was written); the resumed run removes temps whose process is gone."""
    import os
    import subprocess
    import sys

    from mnist_gen.io import remove_stale_temps

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)
    dead = tmp_path / f".best.ckpt.{dead_pid}.dbe26dcf.tmp"
    mine = tmp_path / f".last.ckpt.{os.getpid()}.0123abcd.tmp"
    other = tmp_path / ".notes.tmp"  # not one of write_atomic's names: not ours to delete
    for f in (dead, mine, other):
        f.write_bytes(b"partial")
    assert remove_stale_temps(tmp_path) == [dead]
    assert not dead.exists() and mine.exists() and other.exists()
    assert remove_stale_temps(tmp_path / "missing") == []


def test_checkpoint_io_writes_atomically_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    from mnist_gen.training.callbacks import AtomicCheckpointIO

    io_ = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io_.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    assert io_.load_checkpoint(path)["epoch"] == 1

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        io_.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert io_.load_checkpoint(path)["epoch"] == 1  # the previous checkpoint is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temp file left


def test_trainer_uses_the_atomic_checkpoint_io():
    src = (PROJECT_ROOT / "mnist_gen" / "training" / "fit.py").read_text()
    assert "plugins=[AtomicCheckpointIO()]" in src


# Every place in the package that writes a file, and the atomic mechanism it uses.
ATOMIC_WRITERS = {
    ("io.py", "open"): "write_atomic itself: a temp sibling opened 'xb', fsync, os.replace",
    ("io.py", "save"): "save_torch: torch.save into memory, then write_atomic",
    ("callbacks.py", "save"): "AtomicCheckpointIO: torch.save into memory, then write_atomic",
    ("server.py", "write_bytes"): "demo app: scratch copy of an upload in a private TemporaryDirectory (no artifact)",
}


def _file_writes(path: Path):
    """(function name, line) of calls that can create a file: open(..,'w*'), torch.save, .write_text, ..."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        mode = next((a.value for a in node.args[1:2] if isinstance(a, ast.Constant)), None)
        mode = next((k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)), mode)
        if name in ("open", "fdopen") and isinstance(mode, str) and any(c in mode for c in "wax"):
            yield name, node.lineno
        elif name in ("write_text", "write_bytes", "savefig", "savez", "dump") or (
                name == "save" and isinstance(fn, ast.Attribute) and getattr(fn.value, "id", "") in ("torch", "np", "export")):
            yield name, node.lineno


def test_every_file_writer_in_the_package_is_a_known_atomic_one():
    found = set()
    for path in (PROJECT_ROOT / "mnist_gen").rglob("*.py"):
        for name, line in _file_writes(path):
            if name == "savefig":
                continue  # figures render into BytesIO, then save_figure → write_atomic
            assert (path.name, name) in ATOMIC_WRITERS, f"{path}:{line} writes with {name}() outside the atomic helpers"
            found.add((path.name, name))
    assert ("io.py", "open") in found


def test_aggregation_skips_a_half_written_run_with_a_warning(tmp_path, caplog):
    from mnist_gen.evaluation.aggregate import load_runs

    good = {"model": "mlp_64_16", "seed": 0, "test_accuracy": 0.9, "eval_sets": {}}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(good))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps(good)[:25])  # cut off mid-write
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text(json.dumps({"model": "x"}))  # keys missing
    with caplog.at_level(logging.WARNING):
        runs = load_runs(tmp_path)
    assert [r["_dir"] for r in runs] == [str(tmp_path / "a")]
    assert str(tmp_path / "b" / "results.json") in caplog.text and str(tmp_path / "c" / "results.json") in caplog.text


# -- safe loading ----------------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    from mnist_gen.models.predictors import load_predictor
    from mnist_gen.training.callbacks import AtomicCheckpointIO
    from mnist_gen.training.checks import check_resume_checkpoint

    marker = tmp_path / "pwned"
    bad = tmp_path / "model.ckpt"
    with open(bad, "wb") as f:  # noqa: PTH123 - a raw pickle, as an attacker would write it
        pickle.dump({"hyper_parameters": _Evil(marker), "state_dict": {}}, f)
    torch.save({"hyper_parameters": _Evil(marker), "state_dict": {}}, tmp_path / "last.ckpt")
    # One sentence naming the file, whole up to the reason it is refused.
    with pytest.raises(UserError, match="arbitrary code execution") as refused:
        load_predictor(bad)
    assert str(bad) in str(refused.value)
    with pytest.raises(pickle.UnpicklingError):  # resume path: last.ckpt from a user-given run dir
        AtomicCheckpointIO().load_checkpoint(tmp_path / "last.ckpt")
    with pytest.raises(UserError, match="arbitrary code execution.*resume=false"):  # ... said in one sentence
        check_resume_checkpoint(tmp_path / "last.ckpt", None)
    assert not marker.exists()


# -- output paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,ok", [
    ("outputs/train/x", True), ("outputs/a/../b", True), ("/abs/anywhere", True), ("./x", True),
    ("..", False), ("../x", False), ("outputs/../../x", False), ("a/b/../../../c", False), ("", False),
])
def test_output_path_rule(raw, ok):
    from mnist_gen.paths import check_output_path

    if ok:
        assert check_output_path(raw) == Path(raw)
    else:
        with pytest.raises(UserError):
            check_output_path(raw, "out_dir")


@pytest.mark.parametrize("name", ["../evil", "a/b", "/etc", "..", ".", "", "x\\..\\y"])
def test_names_from_data_stay_inside_their_folder(tmp_path, name):
    from mnist_gen.paths import safe_child

    assert safe_child(tmp_path, "cnn_32") == tmp_path / "cnn_32"
    with pytest.raises(UserError, match="not a plain file or folder name"):
        safe_child(tmp_path, name, "model name")


# -- resume and checkpoint failures: one sentence naming the file and the way out --------------------


def _error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def _run(run_dir: Path, *extra: str, epochs: int = 1) -> subprocess.CompletedProcess:
    from tests.conftest import run_cli

    args = [a for a in SMALL if not a.startswith(("trainer.max_epochs", "data.max_train_samples"))]
    return run_cli("train.py", *args, "data.max_train_samples=500", f"trainer.max_epochs={epochs}",
                   f"hydra.run.dir={run_dir}", *extra, timeout=300)


def _lightning_like(state: dict) -> dict:
    return {"state_dict": state, "optimizer_states": [], "loops": {}, "epoch": 0}


@pytest.mark.parametrize("content,needle", [
    (b"PK\x03\x04 truncated", "it is not a readable checkpoint"),
    ("pickle", "arbitrary code execution"),
    ({"weights": 1}, "it is not a Lightning training checkpoint"),
    (_lightning_like({"net.0.weight": torch.zeros(1)}), "it holds the weights of a different network"),
], ids=["truncated", "runs_code", "not_lightning", "other_network"])
def test_a_bad_last_checkpoint_on_resume_is_one_sentence(tmp_path, mnist_dir, content, needle):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    if isinstance(content, bytes):
        last.write_bytes(content)
    elif content == "pickle":
        torch.save({"state_dict": _Evil(marker)}, last)
    else:
        torch.save(content, last)
    line = _error_line(_run(run_dir))
    assert line.startswith(f"error: Cannot resume from {last}: ") and needle in line
    assert "resume=false" in line and f"mv {last}" in line
    assert not marker.exists() and not (run_dir / "results.json").exists()


def test_resume_false_trains_over_a_corrupt_last_checkpoint(tmp_path, mnist_dir):
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"not a checkpoint")
    proc = _run(tmp_path / "run", "resume=false")  # the way out the sentence above names
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(last, weights_only=True)["epoch"] == 0


def test_an_unusable_checkpoints_folder_stops_training_with_one_sentence(tmp_path, mnist_dir):
    """The first checkpoint write (end of epoch 1) fails: a regular file sits where the folder goes,
    which fails for root too; a read-only folder does the same for other users."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("in the way")
    line = _error_line(_run(run_dir, epochs=2))
    assert line.startswith(f"error: Training stopped: writing {run_dir / 'checkpoints'}")
    assert f"hydra.run.dir={run_dir} to resume" in line
    assert not (run_dir / "results.json").exists() and not (run_dir / "model.ckpt").exists()
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the file case above covers root")
def test_a_read_only_checkpoints_folder_stops_training_with_one_sentence(tmp_path, mnist_dir):
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    ckpt.chmod(0o555)
    try:
        line = _error_line(_run(tmp_path / "run"))
    finally:
        ckpt.chmod(0o755)
    assert "Training stopped: writing" in line and "Permission denied" in line
