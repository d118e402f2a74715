"""Scale-out on existing engines: Lightning DDP (2 CPU processes, gloo), Hydra joblib and submitit launchers."""

import json

import torch
from hydra import compose, initialize_config_dir

from mnist_gen.paths import CONFIG_DIR
from tests.conftest import run_cli

TINY = ["data.max_train_samples=600", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "eval_sets=[mnist_test]", "export=false", "galleries=false"]


def test_ddp_two_cpu_processes_train_and_return_the_weights(tmp_path, mnist_dir):
    proc = run_cli("train.py", "trainer=ddp", *TINY, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["config"]["trainer"]["devices"] == 2 and res["config"]["trainer"]["strategy"] == "ddp_spawn"
    final = torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.equal(final[k], last[k]) for k in final)  # the main process evaluates the trained weights
    assert len(list(tmp_path.parent.glob(tmp_path.name + "*"))) == 1  # one output directory, not one per rank


def test_joblib_launcher_runs_jobs_in_parallel_and_aggregates(tmp_path, mnist_dir):
    proc = run_cli("train.py", "--multirun", "hydra/launcher=local_parallel", "threads=1", "model=mlp_64_16",
                   "seed=0,1", *TINY, f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.parent.name for p in tmp_path.rglob("results.json")) == ["seed0", "seed1"]
    table = (tmp_path / "study_table.md").read_text()
    assert "mlp_64_16" in table and "| 2 |" in table  # two seeds pooled in one row


def _hydra_cfg(overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_config_composes_without_a_cluster():
    cfg = _hydra_cfg(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 1


def test_paper_experiment_sweeps_the_seven_models_with_seeds():
    cfg = _hydra_cfg(["experiment=paper"])
    assert cfg.hydra.sweeper.params.model.split(",") == ["knn", "svm", "mlp_64_16", "mlp_64_32", "cnn_32", "cnn_32_16", "cnn_32_16x3"]
    assert list(cfg.seeds) == [0, 1, 2, 3, 4]
    assert cfg.model.optimizer.lr == 0.003 and cfg.trainer.max_epochs == 100 and cfg.data.batch_size == 32
