"""The models shipped in ``mnist_gen/bundled``: cards that match their weights, and predictions
without training first (issue: ready out of the box)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mnist_gen import paths
from mnist_gen.io import sha256_file
from mnist_gen.models.bundled import BUNDLE_DIR, CARD, bundle_index, bundled_names, verify_card
from tests.conftest import run_cli

SEED_PHOTOS = paths.shared_data_dir() / "handwritten" / "seed_photos"
needs_photos = pytest.mark.skipif(not SEED_PHOTOS.is_dir(), reason=f"the study's data ({SEED_PHOTOS.parent}) is absent")
STUDY_NETWORKS = ("mlp_64_16", "mlp_64_32", "cnn_32", "cnn_32_16", "cnn_32_16x3")


def test_the_bundle_holds_the_five_study_networks_and_a_robust_default():
    names = bundled_names()
    assert {f"study/{m}" for m in STUDY_NETWORKS} <= set(names)
    index = bundle_index()
    assert index["default"] in names and index["default"].split("/")[0] in ("robust", "robust_files")
    assert sorted(index["models"]) == names


@pytest.mark.parametrize("name", bundled_names())
def test_each_card_matches_its_weights_and_says_how_they_were_made(name):
    folder = BUNDLE_DIR / name
    card = json.loads((folder / CARD).read_text())
    assert set(card["sha256"]) == {"model.safetensors", "model.onnx"}
    for file, digest in card["sha256"].items():
        assert sha256_file(folder / file) == digest
    assert verify_card(folder) == card
    assert card["name"] == name and card["recipe"] == name.split("/")[0]
    assert card["command"].startswith("python train.py ") and f"model={card['model']}" in card["command"]
    assert card["params"] > 0 and 0.96 < card["accuracy"]["mnist_test"] <= 1.0
    if name.endswith("_seeds"):  # an ensemble: every seed it averages was trained by the command
        assert len(card["seeds"]) >= 2 and "seed" not in card
        assert all(f"seed={s}" in card["command"] for s in card["seeds"])
    else:
        assert card["seed"] == 0


def test_the_default_is_the_best_networks_seeds_answering_together():
    """The default averages the seeds of the best robust network, which is bundled alone too."""
    from mnist_gen.models.predictors import load_predictor

    default = bundle_index()["default"]
    card = json.loads((BUNDLE_DIR / default / CARD).read_text())
    single = f"{card['recipe']}/{card['model']}"
    assert default == f"{single}_seeds" and single in bundled_names()
    ensemble = load_predictor(BUNDLE_DIR / default / "model.safetensors")
    seed0 = load_predictor(BUNDLE_DIR / single / "model.safetensors")
    assert len(ensemble.net.members) == len(card["seeds"])
    # Member 0 is the seed-0 network bundled alone: the same weights.
    for a, b in zip(ensemble.net.members[0].state_dict().values(), seed0.net.state_dict().values(), strict=True):
        assert (a == b).all()


def test_a_changed_byte_in_a_bundled_file_is_refused(tmp_path):
    import shutil

    from mnist_gen.errors import DataIntegrityError

    src = BUNDLE_DIR / bundle_index()["default"]
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError):
        verify_card(copy)


def _correct_per_model(proc) -> Counter:
    assert proc.returncode == 0, proc.stderr[-2000:]
    correct: Counter = Counter()
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        correct[row["model"]] += int(row["prediction"] is not None and row["prediction"] == row["label"])
    return correct


@needs_photos
def test_predict_without_a_model_reads_the_study_photos_with_the_bundled_default():
    proc = run_cli("predict.py", str(SEED_PHOTOS), "--json", "--no-views", timeout=300)
    correct = _correct_per_model(proc)
    assert len(correct) == 1 and sum(correct.values()) >= 28, correct


@needs_photos
def test_every_bundled_file_answers_through_predict_model():
    """Each bundled .onnx and .safetensors, given by path: the study's networks read most of the
    photos (25-28 of 29 measured across their seeds), the robust default at least 28."""
    args = []
    for name in bundled_names():
        for fmt in ("model.onnx", "model.safetensors"):
            args += ["--model", str(BUNDLE_DIR / name / fmt)]
    proc = run_cli("predict.py", str(SEED_PHOTOS), "--json", "--no-views", *args, timeout=600)
    correct = _correct_per_model(proc)
    assert len(correct) == 2 * len(bundled_names()), correct
    default = str(BUNDLE_DIR / bundle_index()["default"])
    for model, n in correct.items():
        assert n >= (28 if default in model else 25), (model, n)


@needs_photos
def test_evaluate_scores_a_bundled_model_by_name(tmp_path):
    proc = run_cli("evaluate.py", "model_path=study/mlp_64_16", "eval_sets=[seed_formatted]", f"out_dir={tmp_path}",
                   "galleries=false", f"hydra.run.dir={tmp_path / 'hydra'}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "mlp_64_16" / "evaluation.json").read_text())
    assert result["model_path"].endswith("study/mlp_64_16/model.onnx")
    assert result["eval_sets"]["seed_formatted"]["n"] == 20


@needs_photos
def test_two_models_of_one_name_are_scored_into_two_folders(tmp_path):
    proc = run_cli("evaluate.py", "model_path=[study/cnn_32_16x3,robust/cnn_32_16x3]", "eval_sets=[seed_formatted]",
                   f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'hydra'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = {json.loads((tmp_path / d / "evaluation.json").read_text())["model_path"]
               for d in ("cnn_32_16x3", "cnn_32_16x3-2")}
    assert len(written) == 2  # one each: neither overwrote the other


def _robust_run(root, model, seed, photos, params, recipe="robust"):
    run = root / recipe / model / f"seed{seed}"
    run.mkdir(parents=True)
    res = {"model": model, "seed": seed, "kind": "network", "recipe": recipe, "test_accuracy": 0.99,
           "num_params": params, "eval_sets": {"seed_photos": {"accuracy": photos}, "uci_digits": {"accuracy": 0.5}}}
    (run / "results.json").write_text(json.dumps(res))


def test_the_default_is_the_best_mean_unless_a_smaller_network_is_within_one_standard_error(tmp_path):
    from mnist_gen.cli.bundle import best_robust

    # big: mean 0.90, standard error 0.01; small: 0.895, inside it; tiny: 0.85, outside it.
    for seed, (big, small, tiny) in enumerate([(0.89, 0.895, 0.85), (0.90, 0.895, 0.85), (0.91, 0.895, 0.85)]):
        _robust_run(tmp_path, "big", seed, big, 50_000)
        _robust_run(tmp_path, "small", seed, small, 25_000)
        _robust_run(tmp_path, "tiny", seed, tiny, 10_000)
    model, score, run_dirs = best_robust(tmp_path)
    assert model == "robust/small" and score == pytest.approx(0.895)
    assert [d.name for d in run_dirs] == ["seed0", "seed1", "seed2"]  # all its seeds, for the ensemble
    # Without it, the clear winner wins whatever its size; held-out UCI never enters the choice.
    for seed in range(3):
        (tmp_path / "robust" / "small" / f"seed{seed}" / "results.json").unlink()
    assert best_robust(tmp_path)[0] == "robust/big"
    # The same network by another robust recipe is a candidate of its own; study runs never are.
    for seed, acc in enumerate((0.92, 0.93, 0.94)):
        _robust_run(tmp_path, "big", seed, acc, 50_000, recipe="robust_files")
        _robust_run(tmp_path, "huge", seed, 0.99, 90_000, recipe="study")
    model, score, run_dirs = best_robust(tmp_path)
    assert model == "robust_files/big" and score == pytest.approx(0.93)
    assert all("robust_files" in str(d) for d in run_dirs)
