"""What a user feels, measured for ``python -m mnist_gen.cli.bench``: memory, latency, throughput, start-up.

* training peak RSS: ``python train.py`` (the default MLP) for one epoch, with MNIST cached,
  and optionally on a first run (an empty data folder: the fetch included);
* predict latency: photo file -> digit in a warm process (the bundled default model, the
  study's 29 photos), p50 and p95;
* folder throughput: ``predict.py`` on a folder of phone photos, using every core;
* cold start: ``python predict.py one.jpg`` from a fresh interpreter to its answer.

Each command runs as a real subprocess, so the numbers are the ones a user sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mnist_gen import paths

#: Runs a command and prints its peak RSS (kB): the wrapper's only child is the measured process.
_PEAK = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
         "stderr=subprocess.DEVNULL); print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _photos() -> list[Path]:
    root = paths.shared_data_dir() / "handwritten" / "seed_photos"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def peak_rss(cmd: list[str], env: dict | None = None) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True, cwd=paths.PROJECT_ROOT,
                         env={**os.environ, **(env or {})}, check=False)
    rc, kb = (int(v) for v in out.stdout.split()[-2:])
    return {"peak_rss_mb": round(kb / 1024), "seconds": round(time.perf_counter() - t0, 1), "exit": rc}


def training_memory(first_run: bool = False) -> dict:
    """Peak RSS of the default ``python train.py`` for one epoch (MNIST cached; and on a first run)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(paths.PROJECT_ROOT / "train.py"), "trainer.max_epochs=1",
               "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp}/run"]
        out = {"cached": peak_rss(cmd)}
        if first_run:
            out["first_run"] = peak_rss([*cmd[:-1], f"hydra.run.dir={tmp}/run1"], {"MNIST_GEN_DATA": f"{tmp}/data"})
    return out


def predict_latency(repeats: int = 3, model: str = "default") -> dict | None:
    """Photo file -> digit in a warm process, per call: p50/p95 over the study's photos."""
    from mnist_gen.models.predictors import load_models
    from mnist_gen.preprocess import to_mnist

    photos = _photos()
    if not photos:
        return None
    (name, predictor), = load_models([model])
    to_mnist(photos[0])  # warm
    lat = []
    for _ in range(repeats):
        for p in photos:
            t0 = time.perf_counter()
            res = to_mnist(p)
            if res.digit is not None:
                predictor.predict_proba(res.digit[None])
            lat.append(time.perf_counter() - t0)
    return {"model": name, "n": len(lat), "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
            "p95_ms": round(1000 * float(np.percentile(lat, 95)), 1)}


def folder_throughput(copies: int = 10) -> dict | None:
    """``predict.py`` on a folder of ``copies`` × the 29 photos, every core: photos per second."""
    photos = _photos()
    if not photos:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        for k in range(copies):
            for p in photos:
                dest = folder / p.parent.name / f"{k}_{p.name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dest)
        n = copies * len(photos)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(paths.PROJECT_ROOT / "predict.py"), str(folder), "--json", "--no-views",
                        "--out", f"{tmp}/out"], capture_output=True, check=True, cwd=paths.PROJECT_ROOT)
        wall = time.perf_counter() - t0
    return {"photos": n, "cores": os.cpu_count(), "seconds": round(wall, 1), "photos_per_s": round(n / wall, 1)}


def cold_start(repeats: int = 3) -> dict | None:
    """``python predict.py one.jpg`` from a fresh interpreter: median wall time over ``repeats``."""
    photos = [p for p in _photos() if p.suffix.lower() == ".jpg"]
    if not photos:
        return None
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, str(paths.PROJECT_ROOT / "predict.py"), str(photos[0]), "--json",
                            "--no-views", "--out", f"{tmp}/{k}"], capture_output=True, check=True, cwd=paths.PROJECT_ROOT)
            times.append(time.perf_counter() - t0)
    return {"photo": photos[0].name, "median_s": round(float(np.median(times)), 2), "runs": [round(t, 2) for t in times]}


def to_markdown(r: dict) -> str:
    lines = []
    mem = r.get("training_memory") or {}
    for key, label in (("cached", "MNIST cached"), ("first_run", "first run, fetch included")):
        if key in mem:
            lines.append(f"* default `python train.py` (1 epoch), {label}: peak RSS {mem[key]['peak_rss_mb']} MB")
    if lat := r.get("predict_latency"):
        lines.append(f"* photo → digit in a warm process ({lat['model']}, {lat['n']} calls): "
                     f"p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms")
    if tp := r.get("folder_throughput"):
        lines.append(f"* `predict.py` on a folder of {tp['photos']} phone photos ({tp['cores']} cores): "
                     f"{tp['photos_per_s']} photos/s ({tp['seconds']} s, start-up included)")
    if cs := r.get("cold_start"):
        lines.append(f"* cold `python predict.py {cs['photo']}`: {cs['median_s']} s (median of {len(cs['runs'])})")
    return "\n".join(lines) + "\n" if lines else ""
