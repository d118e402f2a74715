"""The benchmark runs as a user runs it and writes what the README promises (figures are not asserted)."""

import json
import subprocess
import sys

from mnist_gen.paths import PROJECT_ROOT


def test_bench_writes_json_and_markdown(tmp_path, mnist_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_gen.cli.bench", "networks=[mlp_64_16]", "epochs=1", "seeds=2", "keras=false",
         "time_augment=null", "use=false", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "bench.json").read_text())["networks"]["mlp_64_16"]
    for key in ("plain_epoch_s", "harness_epoch_s", "vectorized1_epoch_s", "vectorized2_epoch_s", "sequential2_epoch_s"):
        assert r[key] > 0, key
    assert r["multiseed_path"] == "vectorized" and "keras_epoch_s" not in r
    assert "| mlp_64_16 |" in (tmp_path / "bench.md").read_text()
