"""Speed benchmark: ``python -m mnist_gen.cli.bench``.

Per network, seconds per training epoch (54,000 images, batch 32) through
(a) this project's harness (Lightning + DigitDataModule + manual SGD),
(b) a minimal plain-PyTorch loop over the same in-memory tensors: the floor,
(c) the study's Keras code, when TensorFlow is importable,
(d) N = 1 and N = ``seeds`` seeds stacked into one step, against N seeds one after another,
measured side by side in one process. Writes ``bench.json`` and ``bench.md``.
Timings are wall-clock minima over ``epochs`` epochs: the least disturbed by other load.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from mnist_gen import paths
from mnist_gen.console import console
from mnist_gen.data.datamodule import DigitDataModule, EpochChunks
from mnist_gen.data.pixels import normalize
from mnist_gen.io import to_json, write_atomic
from mnist_gen.models.lit import DigitClassifier
from mnist_gen.models.networks import build_network

log = logging.getLogger(__name__)
def model_cfg(name: str) -> DictConfig:
    from mnist_gen.settings import compose_group

    return OmegaConf.create(compose_group("model", name))


# -- (b) the floor ---------------------------------------------------------------------------------


def plain_loop(net, x, y, batch_size, epochs, lr, l2, seed=0) -> tuple[list[float], list[float]]:
    """The textbook loop (PyTorch examples/mnist style) over tensors already in memory.

    Same data order as the harness (the permutation ``EpochChunks`` draws for ``seed`` and
    each epoch), so for the same initial weights both must follow the same loss trajectory.
    Returns per-epoch wall times and mean training losses.
    """
    kernels = [p for p in net.parameters() if p.dim() > 1]
    biases = [p for p in net.parameters() if p.dim() == 1]
    opt = torch.optim.SGD([{"params": kernels, "weight_decay": 2 * l2}, {"params": biases, "weight_decay": 0.0}], lr=lr)
    orders = EpochChunks(x, y, batch_size, 1, shuffle=True, seed=seed, epoch_fn=lambda: 0)
    times, losses = [], []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = orders.order(epoch)
        total = torch.zeros(())
        for start in range(0, len(y), batch_size):
            idx = perm[start : start + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        times.append(time.perf_counter() - t0)
        losses.append(float(total) / len(y))
    return times, losses


def plain_epoch_times(mcfg, x, y, batch_size, epochs, seed=0) -> list[float]:
    L.seed_everything(seed, verbose=False)
    net = build_network(mcfg.arch, **mcfg.arch_kwargs)
    return plain_loop(net, x, y, batch_size, epochs, mcfg.optimizer.lr, mcfg.l2, seed)[0]


# -- (a) the harness -------------------------------------------------------------------------------


class _EpochTimer(L.Callback):
    def __init__(self):
        self.times = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0 = time.perf_counter()

    def on_validation_epoch_start(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self._t0)


def harness_epoch_times(mcfg, dm: DigitDataModule, epochs: int, seeds: list[int] | None = None) -> list[float]:
    """Seconds per epoch of the training engine itself: ``DigitClassifier`` (one seed) or
    ``StackedClassifier`` (``seeds``, with ``dm`` made for them), through the Lightning Trainer."""
    from mnist_gen.models.lit import StackedClassifier

    L.seed_everything(0, verbose=False)
    kw = dict(name=mcfg.name, arch=mcfg.arch, arch_kwargs=OmegaConf.to_container(mcfg.arch_kwargs),
              lr=mcfg.optimizer.lr, l2=mcfg.l2, batch_size=dm.batch_size, mean=dm.mean, std=dm.std)
    model = StackedClassifier(**kw, seeds=seeds) if seeds else DigitClassifier(**kw)
    timer = _EpochTimer()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(model, datamodule=dm)
    return timer.times


# -- (c) Keras -------------------------------------------------------------------------------------


def keras_epoch_times(mcfg, x_uint8, y, batch_size, epochs) -> list[float] | None:
    """The study's Keras model code, when TensorFlow is installed (``pip install -e .[keras]``)."""
    try:
        import tensorflow as tf  # noqa: F401
        from tensorflow import keras
    except ImportError:
        return None
    reg = keras.regularizers.l2(mcfg.l2)
    layers = [keras.Input((28, 28, 1))]
    if mcfg.arch == "mlp":
        layers.append(keras.layers.Flatten())
        layers += [keras.layers.Dense(h, activation="relu", kernel_regularizer=reg) for h in mcfg.arch_kwargs.hidden]
    else:
        layers += [keras.layers.Conv2D(c, 3, activation="relu", kernel_regularizer=reg) for c in mcfg.arch_kwargs.conv]
        layers += [keras.layers.MaxPooling2D(2), keras.layers.Flatten()]
    layers.append(keras.layers.Dense(10, activation="softmax", kernel_regularizer=reg))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.SGD(mcfg.optimizer.lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    times: list[float] = []
    xs = (x_uint8.astype("float32") / 255.0)[..., None]
    model.fit(xs, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[Timer()])
    return times


# -- (d) multi-seed --------------------------------------------------------------------------------


def stacked_epoch_time(mcfg, dm_kwargs: dict, n_seeds: int, epochs: int) -> float:
    """Seconds per epoch for ``n_seeds`` members trained together by ``StackedClassifier``."""
    seeds = list(range(n_seeds))
    return min(harness_epoch_times(mcfg, DigitDataModule(**dm_kwargs, seeds=seeds), epochs, seeds))


# -- driver ----------------------------------------------------------------------------------------


def augment_epoch_times(mcfg, dm_kwargs: dict, augment: str, epochs: int) -> list[float]:
    from mnist_gen.settings import compose_group

    return harness_epoch_times(mcfg, DigitDataModule(**dm_kwargs, augment=compose_group("augment", augment)), epochs)


def run(cfg: DictConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    dm_kwargs = dict(data_dir=str(cfg.paths.data_dir or paths.data_dir()), batch_size=cfg.batch_size)
    dm = DigitDataModule(**dm_kwargs)
    split = dm.prepare_arrays()
    x = normalize(split.x_train, dm.mean, dm.std)
    y = torch.as_tensor(split.y_train)
    results = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                           "torch": torch.__version__}, "n_train": len(y), "batch_size": cfg.batch_size, "networks": {}}
    for name in cfg.networks:
        mcfg = model_cfg(name)
        console.print(f"[bold]{name}[/]")
        r = {"plain_epoch_s": min(plain_epoch_times(mcfg, x, y, cfg.batch_size, cfg.epochs))}
        r["harness_epoch_s"] = min(harness_epoch_times(mcfg, dm, cfg.epochs))
        r["harness_over_plain"] = r["harness_epoch_s"] / r["plain_epoch_s"]
        if cfg.keras:
            k = keras_epoch_times(mcfg, split.x_train, split.y_train, cfg.batch_size, cfg.epochs)
            if k:
                r["keras_epoch_s"] = min(k)
        # Several seeds: stacked into one step (measured), or one after another (N × the harness).
        # ``multiseed.vectorize=auto`` stacks MLPs on every device and CNNs on GPUs only; these
        # columns are the CPU measurement behind that rule.
        n = cfg.seeds
        r["vectorized1_epoch_s"] = stacked_epoch_time(mcfg, dm_kwargs, 1, cfg.epochs)
        r[f"vectorized{n}_epoch_s"] = stacked_epoch_time(mcfg, dm_kwargs, n, cfg.epochs)
        r[f"sequential{n}_epoch_s"] = n * r["harness_epoch_s"]
        r["multiseed_path"] = "vectorized" if mcfg.arch == "mlp" else "sequential"  # what auto runs on CPU
        r[f"seeds{n}_over_plain"] = r[f"{r['multiseed_path']}{n}_epoch_s"] / r["plain_epoch_s"]
        if cfg.time_augment:
            r[f"harness_{cfg.time_augment}_epoch_s"] = min(augment_epoch_times(mcfg, dm_kwargs, cfg.time_augment, cfg.epochs))
        r["samples_per_s"] = {k.removesuffix("_epoch_s"): len(y) / v for k, v in r.items() if k.endswith("_epoch_s") and v}
        results["networks"][name] = r
        console.print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "samples_per_s"})
    if cfg.use:  # what a user feels: memory, latency, throughput, start-up (bench_use.py)
        from mnist_gen.cli import bench_use

        console.print("[bold]memory, latency, throughput, cold start[/]")
        results["training_memory"] = bench_use.training_memory(first_run=bool(cfg.first_run_memory))
        results["predict_latency"] = bench_use.predict_latency()
        results["folder_throughput"] = bench_use.folder_throughput()
        results["cold_start"] = bench_use.cold_start()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "bench.json", to_json(results))
    md = to_markdown(results, cfg.seeds)
    write_atomic(out / "bench.md", md)
    console.print(md)
    console.print(f"written: {out / 'bench.json'}, {out / 'bench.md'}")
    return results


def to_markdown(results: dict, seeds: int) -> str:
    cols = [("plain_epoch_s", "plain loop (floor)"), ("harness_epoch_s", "harness"), ("harness_over_plain", "harness / plain"),
            ("keras_epoch_s", "Keras"), ("vectorized1_epoch_s", "stacked N=1"), (f"vectorized{seeds}_epoch_s", f"{seeds} seeds stacked"),
            (f"sequential{seeds}_epoch_s", f"{seeds} seeds one by one"), ("multiseed_path", "auto on CPU"),
            (f"seeds{seeds}_over_plain", f"{seeds} seeds / plain")]
    aug = [k for r in results["networks"].values() for k in r if k.startswith("harness_") and k.endswith("_epoch_s") and k != "harness_epoch_s"]
    cols += [(k, k.removeprefix("harness_").removesuffix("_epoch_s") + " augment") for k in dict.fromkeys(aug)]
    lines = ["| network | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name, r in results["networks"].items():
        cells = []
        for key, _ in cols:
            v = r.get(key)
            cells.append("–" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    from mnist_gen.cli.bench_use import to_markdown as use_markdown

    text = "Seconds per training epoch (54,000 images, batch 32), minimum over timed epochs.\n\n" + "\n".join(lines) + "\n"
    use = use_markdown(results)
    return text + ("\n" + use if use else "")


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
