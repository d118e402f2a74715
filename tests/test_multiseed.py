"""Stacked seeds (StackedClassifier, the same Trainer) equal separate runs, member by member, and resume."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from mnist_gen.paths import CONFIG_DIR

QUICK = ["data.max_train_samples=600", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
         "eval_sets=[mnist_test]", "export=false", "galleries=false"]


def _cfg(overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def _weights(run_dir):
    return torch.load(run_dir / "model.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    from mnist_gen.cli.train import run

    root = tmp_path_factory.mktemp("multiseed")
    run(_cfg(["model=mlp_64_16", "seeds=[0,3]", *QUICK, f"paths.output_dir={root / 'vec'}"]))
    for s in (0, 3):
        run(_cfg(["model=mlp_64_16", f"seed={s}", *QUICK, f"paths.output_dir={root / f'single{s}'}"]))
    return root


@pytest.mark.parametrize("seed", [0, 3])
def test_member_matches_a_separate_run_with_that_seed(runs, seed):
    vec, single = _weights(runs / "vec" / f"seed{seed}"), _weights(runs / f"single{seed}")
    assert vec.keys() == single.keys()
    for k in vec:
        torch.testing.assert_close(vec[k], single[k], rtol=1e-4, atol=2e-5)


def test_members_differ_and_write_ordinary_run_dirs(runs):
    a, b = _weights(runs / "vec" / "seed0"), _weights(runs / "vec" / "seed3")
    assert not torch.equal(a["net.1.weight"], b["net.1.weight"])
    for s in (0, 3):
        res = json.loads((runs / "vec" / f"seed{s}" / "results.json").read_text())
        assert res["seed"] == s and res["vectorized_seeds"] == 2 and res["epochs"] == 2
        single = json.loads((runs / f"single{s}" / "results.json").read_text())
        assert res["test_accuracy"] == pytest.approx(single["test_accuracy"], abs=2e-3)


def test_cnn_seeds_run_one_after_another(tmp_path, mnist_dir):
    from mnist_gen.cli.train import run

    out = run(_cfg(["model=cnn_32", "seeds=[1,2]", "data.max_train_samples=300", "trainer.max_epochs=1",
                    "trainer.enable_progress_bar=false", "eval_sets=[mnist_test]", "export=false", "galleries=false",
                    f"paths.output_dir={tmp_path}"]))
    assert [r["seed"] for r in out] == [1, 2] and all(r["vectorized_seeds"] == 1 for r in out)
    assert (tmp_path / "seed1" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_stacked_step_equals_autograd_and_torch_sgd(momentum):
    """The explicit backward + StackedSGD take the very step autograd + torch.optim.SGD would."""
    from mnist_gen.models.stacked import StackedMLP, StackedSGD, member_networks

    torch.manual_seed(0)
    ours = StackedMLP(member_networks("mlp", {"hidden": [16, 8]}, [0, 1, 2]))
    ref = StackedMLP(member_networks("mlp", {"hidden": [16, 8]}, [0, 1, 2])).requires_grad_(True)
    opt = StackedSGD(ours, lr=0.05, l2=1e-3, momentum=momentum)
    ref_opt = torch.optim.SGD([{"params": list(ref.weights), "weight_decay": 2e-3},
                               {"params": list(ref.biases), "weight_decay": 0.0}], lr=0.05, momentum=momentum)
    for _ in range(3):
        x, y = torch.randn(3, 32, 784), torch.randint(0, 10, (3, 32, 1))
        acts = ours.activations(x)
        logp = torch.log_softmax(acts[-1], -1)
        dws, dbs = ours.gradients(acts, logp.exp().scatter_add(-1, y, -torch.ones(3, 32, 1)) / 32)
        for p, g in zip([*ours.weights, *ours.biases], dws + dbs, strict=True):
            p.grad = g
        opt.step()
        ref_loss = torch.nn.functional.cross_entropy(ref(x).reshape(-1, 10), y.reshape(-1), reduction="none").reshape(3, -1).mean(1)
        ref_opt.zero_grad()
        ref_loss.sum().backward()
        ref_opt.step()
    for a, b in zip([*ours.weights, *ours.biases], [*ref.weights, *ref.biases], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_stacked_cnn_member_matches_a_separate_run(tmp_path, mnist_dir):
    """Grouped-convolution stacking (the GPU path for CNNs), checked on CPU: member k = seed k alone."""
    from mnist_gen.cli.train import run

    tiny = ["model=cnn_32", "data.max_train_samples=300", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
            "eval_sets=[mnist_test]", "export=false", "galleries=false"]
    out = run(_cfg([*tiny, "seeds=[0,3]", "multiseed.vectorize=always", f"paths.output_dir={tmp_path / 'vec'}"]))
    assert [r["vectorized_seeds"] for r in out] == [2, 2]
    run(_cfg([*tiny, "seed=3", f"paths.output_dir={tmp_path / 'single3'}"]))
    vec, single = _weights(tmp_path / "vec" / "seed3"), _weights(tmp_path / "single3")
    assert vec.keys() == single.keys()
    for k in vec:
        torch.testing.assert_close(vec[k], single[k], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("overrides,stacked", [
    (["model=mlp_64_16"], True),
    (["model=cnn_32"], False),  # CPU: CNN seeds one after another (measured faster)
    (["model=cnn_32", "trainer=gpu"], True),
    (["model=cnn_32", "multiseed.vectorize=always"], True),
    (["model=mlp_64_16", "multiseed.vectorize=never"], False),
    (["model=mlp_64_16", "augment=robust"], True),  # each member draws its own augmentation
    (["model=mlp_64_16", "trainer=ddp"], False),  # DDP: each seed trains with DDP, one after another
    (["model=mlp_64_16", "model.autocast_bf16=true"], False),
])
def test_auto_stacking_rule(overrides, stacked):
    from mnist_gen.training.fit import vectorize

    assert vectorize(_cfg(overrides)) is stacked


@pytest.mark.parametrize("extra,match", [
    (["trainer=ddp"], "one process"),
    (["trainer.precision=bf16-mixed"], "float32"),
])
def test_what_stacking_cannot_do_is_refused_in_one_sentence(tmp_path, extra, match):
    from mnist_gen.errors import UserError
    from mnist_gen.training.fit import check_stackable

    with pytest.raises(UserError, match=match):
        check_stackable(_cfg(["model=mlp_64_16", "seeds=[0,1]", "multiseed.vectorize=always", *extra]))


def test_stacked_run_is_the_trainers_and_resumes_to_the_same_weights(tmp_path, mnist_dir):
    """One Lightning run for all members (its checkpoints in the parent); stopped after an epoch
    and rerun, it ends with the weights of the uninterrupted run."""
    from mnist_gen.cli.train import run

    base = ["model=mlp_64_16", "seeds=[0,3]", "data.max_train_samples=600", "trainer.enable_progress_bar=false",
            "eval_sets=[mnist_test]", "export=false", "galleries=false"]
    run(_cfg([*base, "trainer.max_epochs=3", f"paths.output_dir={tmp_path / 'full'}"]))
    run(_cfg([*base, "trainer.max_epochs=1", f"paths.output_dir={tmp_path / 'cut'}"]))
    assert (tmp_path / "cut" / "checkpoints" / "last.ckpt").is_file()
    run(_cfg([*base, "trainer.max_epochs=3", f"paths.output_dir={tmp_path / 'cut'}"]))  # resumes at epoch 1
    for s in (0, 3):
        a, b = _weights(tmp_path / "full" / f"seed{s}"), _weights(tmp_path / "cut" / f"seed{s}")
        assert all(torch.equal(a[k], b[k]) for k in a), s
        rows = (tmp_path / "cut" / f"seed{s}" / "metrics.csv").read_text().splitlines()
        assert len(rows) == 4  # header + 3 epochs, the resumed run's rows kept
