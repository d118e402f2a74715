"""The fast harness (chunks of mini-batches, manual SGD inside Lightning) trains exactly like
the plain PyTorch loop: same seed, same data order, same loss trajectory and weights."""

import lightning as L
import pytest
import torch

from mnist_gen.cli.bench import plain_loop
from mnist_gen.data.datamodule import DigitDataModule, normalize
from mnist_gen.models.lit import DigitClassifier
from mnist_gen.models.networks import build_network


@pytest.mark.parametrize("arch,kwargs", [("mlp", {"hidden": [64, 16]}), ("cnn", {"conv": [32, 16]})])
def test_harness_and_plain_loop_follow_the_same_trajectory(mnist_dir, arch, kwargs):
    dm = DigitDataModule(data_dir=str(mnist_dir), max_train_samples=700, steps_per_call=5, seed=4)
    split = dm.prepare_arrays()

    L.seed_everything(4, verbose=False)
    model = DigitClassifier("t", arch, kwargs, mean=dm.mean, std=dm.std)
    init = {k.removeprefix("net."): v.clone() for k, v in model.state_dict().items()}
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    losses = []

    class Rec(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            losses.append(pl_module.train_epoch_metrics()["train_loss"])

    trainer.callbacks.append(Rec())
    trainer.fit(model, datamodule=dm)

    net = build_network(arch, **kwargs)
    net.load_state_dict(init)
    _, plain_losses = plain_loop(net, normalize(split.x_train, dm.mean, dm.std), torch.as_tensor(split.y_train),
                                 32, 2, lr=3e-3, l2=1e-5, seed=4)
    assert losses == pytest.approx(plain_losses, rel=1e-5)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(model.net.state_dict()[k], v, rtol=1e-5, atol=1e-6)
