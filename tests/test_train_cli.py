"""The real ``train.py`` command line, end to end, on a small subset."""

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from mnist_gen.paths import CONFIG_DIR
from tests.conftest import run_cli

QUICK = ["data.max_train_samples=1000", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "eval_sets=[mnist_test]"]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("cnn_run")
    proc = run_cli("train.py", "model=cnn_32", *QUICK, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_run_directory_holds_every_artifact(cnn_run):
    for name in ["results.json", "metrics.csv", "model.ckpt", "model.safetensors", "model.onnx", "SHA256SUMS",
                 "loss_curve.png", "accuracy_curve.png",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt", "reports/mnist_test.md", "reports/mnist_test_confusion.png"]:
        assert (cnn_run / name).is_file(), name
    res = json.loads((cnn_run / "results.json").read_text())
    assert res["model"] == "cnn_32" and res["seed"] == 0 and res["num_params"] == 54410 and res["epochs"] == 2
    assert res["data"]["protocol"] == "mnist" and res["data"]["n_train"] == 1000 and res["data"]["n_val"] == 6000
    assert 0.5 < res["test_accuracy"] <= 1.0 and res["test_loss"] > 0
    assert res["train_time_s"] > 0 and res["epoch_time_mean_s"] > 0
    rep = res["eval_sets"]["mnist_test"]["report"]
    assert rep["macro avg"]["support"] == 10000
    misread = (cnn_run / "reports/mnist_test_errors.csv").read_text().strip().splitlines()[1:]
    test = res["eval_sets"]["mnist_test"]
    assert len(misread) == test["n"] - test["correct"] > 0  # every misread test digit, by index
    assert len((cnn_run / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_checkpoint_loads_and_predicts_what_results_json_says(cnn_run, mnist):
    from mnist_gen.models.predictors import load_predictor

    pred = load_predictor(cnn_run / "model.ckpt")
    proba = pred.predict_proba(mnist["x_test"])
    assert proba.shape == (10000, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    acc = float((proba.argmax(1) == mnist["y_test"]).mean())
    assert acc == pytest.approx(json.loads((cnn_run / "results.json").read_text())["test_accuracy"], abs=1e-12)


def test_pt2_archives_are_refused_in_one_sentence(tmp_path):
    from mnist_gen.errors import UserError
    from mnist_gen.models.predictors import load_predictor

    (tmp_path / "model.pt2").write_bytes(b"PK\x03\x04 a torch.export archive")
    with pytest.raises(UserError, match="no longer loads.*model.safetensors or model.onnx"):
        load_predictor(tmp_path / "model.pt2")


def test_exports_reproduce_the_checkpoint_without_project_code(cnn_run, mnist):
    """safetensors (weights only) and ONNX (onnxruntime, no torch) answer what the checkpoint answers."""
    import onnxruntime as ort
    from safetensors.torch import load_file

    from mnist_gen.models.predictors import load_predictor

    x = mnist["x_test"][:256]
    ckpt = load_predictor(cnn_run / "model.ckpt").predict_proba(x)
    np.testing.assert_allclose(load_predictor(cnn_run / "model.safetensors").predict_proba(x), ckpt, atol=1e-6)
    np.testing.assert_allclose(load_predictor(cnn_run / "model.onnx").predict_proba(x), ckpt, atol=1e-5)
    # The ONNX file alone: raw 0..255 pixels in, probabilities out.
    session = ort.InferenceSession(str(cnn_run / "model.onnx"))
    proba = session.run(["probabilities"], {"pixels": x.reshape(-1, 1, 28, 28).astype(np.float32)})[0]
    np.testing.assert_allclose(proba, ckpt, atol=1e-5)
    # safetensors holds plain tensors: the checkpoint's own weights.
    state = torch.load(cnn_run / "model.ckpt", weights_only=True)["state_dict"]
    tensors = load_file(cnn_run / "model.safetensors")
    assert all(torch.equal(tensors[k], state[f"net.{k}"]) for k in tensors)


def test_a_flipped_bit_in_an_export_is_refused(cnn_run, tmp_path):
    import shutil

    from mnist_gen.errors import DataIntegrityError
    from mnist_gen.models.predictors import load_predictor

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run, ignore=shutil.ignore_patterns("checkpoints", "reports"))
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-100] ^= 0x10
    (run / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match="model.safetensors does not match its recorded sha256"):
        load_predictor(run / "model.safetensors")


def _cfg(overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def _train_in_process(tmp_path, seed):
    from mnist_gen.cli.train import run

    cfg = _cfg(["model=mlp_64_16", f"seed={seed}", *QUICK, f"paths.output_dir={tmp_path}", "export=false", "galleries=false"])
    run(cfg)
    return torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]


def test_same_seed_gives_identical_weights(tmp_path, mnist_dir):
    a = _train_in_process(tmp_path / "a", 7)
    b = _train_in_process(tmp_path / "b", 7)
    c = _train_in_process(tmp_path / "c", 8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_gpu_requested_without_gpu_is_one_clear_sentence(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the no-GPU message cannot occur here")
    proc = run_cli("train.py", "trainer.accelerator=gpu", f"hydra.run.dir={tmp_path}", timeout=120)
    assert proc.returncode == 2
    assert "no usable CUDA GPU" in proc.stderr and "trainer.accelerator=cpu" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_model_lists_the_valid_ones(tmp_path):
    proc = run_cli("train.py", "model=resnet50", f"hydra.run.dir={tmp_path}", timeout=120)
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert "resnet50" in out and all(m in out for m in ["mlp_64_16", "cnn_32_16x3", "knn", "svm"])
    assert "Traceback" not in out


def test_last_checkpoint_is_written_every_epoch_even_without_improvement(tmp_path, mnist_dir):
    """Resuming needs every epoch's state; Lightning's save_last alone writes only when the best improves."""
    proc = run_cli("train.py", "model.optimizer.lr=1e-12", "data.max_train_samples=300", "trainer.max_epochs=3",
                   "trainer.enable_progress_bar=false", "eval_sets=[mnist_test]", "export=false", "galleries=false",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=False)
    assert last["epoch"] == 2 and best["epoch"] == 0
    assert json.loads((tmp_path / "results.json").read_text())["epochs"] == 3
