"""Shared fixtures. Real MNIST is used throughout (fetched and verified once per machine)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import mnist_gen.preprocess.config  # noqa: F401  (tests compose the packaged configs: the preprocess schema)
from mnist_gen import paths

ROOT = paths.PROJECT_ROOT
# Under pytest-xdist (pyproject's addopts: two workers), one torch thread per worker and per
# process it starts: two workers with two threads each on two cores oversubscribe, and torch's
# thread pool then runs many times slower. Set before any test imports torch.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
#: Fixtures that need real MNIST (downloaded and verified once per machine): their tests are the slow tier.
REAL_DATA = {"mnist_dir", "mnist", "tiny_run"}
#: Modules that run the real entry points in subprocesses (train.py, evaluate.py, the demo server,
#: the benchmark): each start imports torch and Lightning, and most train or read MNIST.
ENTRY_POINT_MODULES = {"test_bad_config", "test_bad_inputs", "test_train_cli", "test_reliability", "test_scale",
                       "test_multiseed", "test_bench", "test_app", "test_app_load", "test_harness_equivalence"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_DATA & set(getattr(item, "fixturenames", ())) or item.module.__name__.split(".")[-1] in ENTRY_POINT_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    from mnist_gen.data.mnist import ensure_mnist

    ensure_mnist(paths.data_dir())
    return paths.data_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from mnist_gen.data.mnist import load_mnist

    return load_mnist(mnist_dir)


def run_cli(script: str, *args: str, timeout: int = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run one of the real entry points (train.py, evaluate.py, predict.py) as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist_dir):
    """One tiny network trained with the real train.py, shared by the CLI, demo and predict tests."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    proc = run_cli("train.py", "model=mlp_64_16", "data.max_train_samples=1000", "trainer.max_epochs=1",
                   "trainer.enable_progress_bar=false", "eval_sets=[mnist_test]", "galleries=false",
                   f"hydra.run.dir={run_dir}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@contextlib.contextmanager
def demo_server(*args: str):
    """The real ``python -m mnist_gen.app`` on a free port: yields (process, base URL, everything it
    printed, growing); stopped with SIGTERM after. Its output is read for the whole run (a full
    pipe would block the server)."""
    proc = subprocess.Popen([sys.executable, "-m", "mnist_gen.app", "--port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    started = threading.Event()

    def drain():
        for line in proc.stdout:
            lines.append(line)
            if "http://127.0.0.1:" in line:
                started.set()
        started.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        started.wait(180)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", "".join(lines))
        assert m, "the demo server did not start:\n" + "".join(lines)
        yield proc, m.group(0).rstrip("/"), lines
    finally:
        proc.terminate()  # SIGTERM: the demo stops cleanly
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)
