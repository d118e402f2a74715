"""The five networks match the study's Keras models: parameter counts, init, L2 semantics."""

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mnist_gen.models.lit import DigitClassifier
from mnist_gen.models.networks import build_network, kernel_and_bias_params, num_params
from mnist_gen.paths import CONFIG_DIR

STUDY_PARAMS = {"mlp_64_16": 51450, "mlp_64_32": 52650, "cnn_32": 54410, "cnn_32_16": 27994, "cnn_32_16x3": 25594}


def model_cfg(name):
    return OmegaConf.load(CONFIG_DIR / "model" / f"{name}.yaml")


def build(name):
    cfg = model_cfg(name)
    return build_network(cfg.arch, **OmegaConf.to_container(cfg.arch_kwargs))


@pytest.mark.parametrize("name,expected", STUDY_PARAMS.items())
def test_parameter_counts_equal_the_study(name, expected):
    assert num_params(build(name)) == expected
    assert model_cfg(name).study.params == expected


@pytest.mark.parametrize("name", STUDY_PARAMS)
def test_forward_shape(name):
    assert build(name)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", ["cnn_32", "cnn_32_16", "cnn_32_16x3"])
def test_pool_then_relu_equals_keras_relu_then_pool_in_values_and_gradients(name):
    """The faster layer order computes exactly Keras' Conv -> ReLU -> MaxPooling2D, gradients included."""
    torch.manual_seed(0)
    net = build(name)
    keras_order = torch.nn.Sequential(*[
        torch.nn.ReLU() if isinstance(m, torch.nn.Identity) else torch.nn.MaxPool2d(2) if isinstance(m, torch.nn.MaxPool2d) else m
        for m in net
    ])
    # Digit-like inputs: a constant background (ties inside pooling windows) with random strokes.
    x = torch.full((16, 1, 28, 28), -0.42)
    x[:, :, 6:22, 6:22] = torch.rand(16, 1, 16, 16) * 3 - 0.42
    y = torch.arange(16) % 10
    ours, ref = F.cross_entropy(net(x), y), F.cross_entropy(keras_order(x), y)
    assert torch.equal(ours, ref)
    for g, r in zip(torch.autograd.grad(ours, list(net.parameters())), torch.autograd.grad(ref, list(keras_order.parameters())), strict=True):
        assert torch.equal(g, r)
    assert list(net.state_dict()) == list(keras_order.state_dict())  # checkpoints keep their keys


@pytest.mark.parametrize("name", ["mlp_64_16", "cnn_32_16x3"])
def test_glorot_uniform_kernels_and_zero_biases(name):
    torch.manual_seed(0)
    net = build(name)
    kernels, biases = kernel_and_bias_params(net)
    for b in biases:
        assert torch.count_nonzero(b) == 0
    for w in kernels:
        receptive = w[0, 0].numel() if w.dim() == 4 else 1
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        limit = math.sqrt(6.0 / (fan_in + fan_out))  # Keras glorot_uniform bound
        assert w.abs().max() <= limit
        # uniform(-l, l) has std l/sqrt(3); a few hundred samples pin it within 10 %
        assert abs(w.std().item() - limit / math.sqrt(3)) < 0.1 * limit / math.sqrt(3)


def test_l2_penalty_on_kernels_only_matches_keras_gradient():
    """One SGD step equals a step on CE + 1e-5·Σ‖kernel‖² (biases unpenalised)."""
    torch.manual_seed(0)
    m = DigitClassifier("t", "mlp", {"hidden": [64, 16]}, lr=0.1, l2=1e-5)
    opt = m.configure_optimizers()
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 2e-5]
    decayed = next(g for g in opt.param_groups if g["weight_decay"] > 0)["params"]
    assert all(p.dim() > 1 for p in decayed)  # kernels only, never biases
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))

    ref = DigitClassifier("t", "mlp", {"hidden": [64, 16]}, lr=0.1, l2=1e-5)
    ref.load_state_dict(m.state_dict())
    kernels, _ = kernel_and_bias_params(ref.net)
    loss = F.cross_entropy(ref.net(x), y) + 1e-5 * sum((w**2).sum() for w in kernels)
    loss.backward()
    expected = {k: p - 0.1 * p.grad for k, p in ref.named_parameters()}

    opt.zero_grad()
    F.cross_entropy(m.net(x), y).backward()
    opt.step()
    for k, p in m.named_parameters():
        torch.testing.assert_close(p, expected[k], rtol=0, atol=1e-7)


def test_optimizer_is_plain_sgd_with_study_defaults():
    cfg = model_cfg("cnn_32")
    assert cfg.optimizer.lr == 0.003 and cfg.optimizer.momentum == 0.0 and cfg.l2 == 1e-5
    opt = DigitClassifier("t", "cnn", {"conv": [32]}).configure_optimizers()
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0 and g["lr"] == 3e-3 and not g["nesterov"] for g in opt.param_groups)


def test_lr_schedule_constant_is_the_study_and_cosine_decays_to_zero():
    from mnist_gen.models.lit import lr_at

    assert [lr_at(e, 3e-3, 100) for e in (0, 50, 99)] == [3e-3] * 3
    assert lr_at(0, 0.01, 30, "cosine") == pytest.approx(0.01)
    assert lr_at(15, 0.01, 30, "cosine") == pytest.approx(0.005)
    assert 0 < lr_at(29, 0.01, 30, "cosine") < 1e-4
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_at(0, 0.01, 30, "step")


def test_a_seed_ensemble_answers_the_mean_of_its_members_in_every_model_file(tmp_path):
    """``SeedEnsemble`` (the bundled default's form): its probabilities are the mean of its
    members', after a round trip through model.safetensors and model.onnx alike."""
    import numpy as np

    from mnist_gen.models.export import export_all
    from mnist_gen.models.networks import RawPixels
    from mnist_gen.models.predictors import load_predictor

    torch.manual_seed(0)
    kwargs = {"members": 3, "member_arch": "cnn", "member_kwargs": {"conv": [4, 4]}}
    ens = build_network("ensemble", **kwargs).eval()
    images = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8).numpy()
    with torch.no_grad():
        answers = torch.stack([RawPixels(m, 0.13, 0.31)(torch.from_numpy(images[:, None]).float())
                               for m in ens.members])
    assert not (answers.argmax(2) == answers[0].argmax(1)).all()  # members that disagree: a real average
    expected = answers.mean(0).numpy()
    export_all(ens, {"name": "tiny_seeds", "arch": "ensemble", "arch_kwargs": kwargs, "mean": 0.13, "std": 0.31},
               tmp_path)
    for file in ("model.safetensors", "model.onnx"):
        got = load_predictor(tmp_path / file).predict_proba(images)
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=file)


def test_an_ensemble_is_assembled_from_runs_never_trained():
    from mnist_gen.errors import UserError
    from mnist_gen.training.checks import check_network_hparams

    cfg = OmegaConf.load(CONFIG_DIR / "model" / "cnn_32.yaml")
    cfg = OmegaConf.create({"model": {**OmegaConf.to_container(cfg), "arch": "ensemble"}})
    with pytest.raises(UserError, match="model.arch must be one of mlp, cnn"):
        check_network_hparams(cfg)
