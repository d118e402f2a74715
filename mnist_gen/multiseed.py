"""Vectorized multi-seed training: N seeds of one network in one process, one SGD step for all.

The study's MLPs are bound by per-step overhead, not arithmetic (a 32×784 @ 784×64 matmul
is microseconds; Python, dispatch and autograd bookkeeping are the rest), so stacking N
seeds into one batched matmul costs little more than one seed (``StackedMLP``). Generic
``torch.func.vmap`` measured slower than this explicit ``baddbmm`` formulation (README, speed).
CNNs stack as grouped convolutions (``StackedCNN``): worth it on a GPU, where one seed leaves
the device idle; on CPU they are arithmetic-bound and ``vectorize=auto`` runs them one by one.

Each member is exactly one ordinary run:
* its initial weights are those ``seed_everything(seed)`` + ``build_network`` give a single run;
* its data order is the permutation ``EpochChunks`` draws for that seed and epoch;
* SGD (``torch.optim.SGD``'s update, weight decay on kernels, optional momentum) acts on each
  member's slice with that member's own gradient: the gradient of its own mean batch loss.
So member k matches a separate run with seed k up to floating-point summation order.

Output: N ordinary run directories (results.json, metrics.csv, model.ckpt, model.pt2, ...)
that ``evaluate.py`` aggregates unchanged. Resumable: a per-epoch state file in the parent.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_gen.data.datamodule import DigitDataModule, EpochChunks, normalize
from mnist_gen.models.lit import lr_at
from mnist_gen.models.networks import build_network, num_params
from mnist_gen.report import write_atomic

log = logging.getLogger(__name__)


def _cross_entropy_grad(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member summed cross-entropy and d(mean loss)/d(logits) = (softmax − onehot) / B.

    logits (K, B, 10), y (K, B, 1). Each member's loss is the mean over its own batch, as in a
    single run; summing the members' losses keeps each member's gradient its own.
    """
    logp = torch.log_softmax(logits, -1)
    loss_sums = -logp.gather(-1, y).sum((1, 2))
    dlogits = logp.exp_().scatter_add_(-1, y, torch.full_like(y, -1, dtype=logp.dtype)).div_(y.shape[1])
    return loss_sums, dlogits


class StackedMLP(nn.Module):
    """K MLPs with identical shapes, evaluated together: x (K, B, 784) -> logits (K, B, 10)."""

    def __init__(self, members: list[nn.Sequential]):
        super().__init__()
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in members]
        # Stored as (K, in, out) so forward is baddbmm(bias, x, W) without transposes.
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([lin[i].weight.detach().t() for lin in linears]).contiguous()) for i in range(len(linears[0]))]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([lin[i].bias.detach() for lin in linears]).unsqueeze(1).contiguous()) for i in range(len(linears[0]))]
        )
        self.requires_grad_(False)  # trained by the explicit backward in ``gradients``, not autograd

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[input, ReLU outputs of the hidden layers..., logits]."""
        acts = [x]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, acts[-1], w)
            acts.append(h.clamp_min_(0) if i < last else h)
        return acts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x)[-1]

    def gradients(self, acts: list[torch.Tensor], dlogits: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Backpropagate ``dlogits`` through the stack: (weight gradients, bias gradients).

        Written out rather than left to autograd: at batch 32 the matmuls are microseconds and
        autograd's per-node bookkeeping plus ``optimizer.step()``'s were a third of each step
        (5 seeds of mlp_64_16: 1.0 s/epoch with autograd + torch.optim.SGD, 0.62 s like this).
        The operations are autograd's own: bmm with the transposed operand, and ReLU's backward
        ``threshold_backward(grad, relu_output, 0)``; ``tests/test_multiseed.py`` checks the result
        against autograd and against separate Lightning runs.
        """
        g = dlogits
        dws, dbs = [], []
        for i in range(len(self.weights) - 1, -1, -1):
            dws.append(torch.bmm(acts[i].transpose(1, 2), g))
            dbs.append(g.sum(1, keepdim=True))
            if i > 0:
                g = torch.ops.aten.threshold_backward(torch.bmm(g, self.weights[i].transpose(1, 2)), acts[i], 0)
        return dws[::-1], dbs[::-1]

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor):
        """(logits, per-member loss sums, weight gradients, bias gradients) for one batch per member."""
        acts = self.activations(x)
        loss_sums, dlogits = _cross_entropy_grad(acts[-1], y)
        return acts[-1], loss_sums, *self.gradients(acts, dlogits)

    def member_state_dict(self, k: int, template: nn.Sequential) -> dict[str, torch.Tensor]:
        """Member k's weights under the names of an ordinary ``nn.Sequential`` network."""
        names = [name for name, m in template.named_children() if isinstance(m, nn.Linear)]
        state = {}
        for name, w, b in zip(names, self.weights, self.biases, strict=True):
            state[f"{name}.weight"] = w[k].detach().t().contiguous().clone()
            state[f"{name}.bias"] = b[k, 0].detach().clone()
        return state


class StackedCNN(nn.Module):
    """K CNNs with identical shapes as one network: grouped convolutions (groups=K), then bmm.

    Member k owns channel block k of every convolution (``groups=K`` keeps the blocks apart) and
    slice k of the dense layer, so members never mix. Meant for GPUs, where one wide step keeps
    the device busy; on CPU the CNNs are arithmetic-bound and seeds run one after another
    (``multiseed.vectorize=auto``). Gradients come from autograd (convolutions are not
    overhead-bound, so writing them out would buy nothing).
    """

    def __init__(self, members: list[nn.Sequential]):
        super().__init__()
        self.k = len(members)
        self.layers = list(members[0])  # module types and order; parameters are the stacked ones below
        convs = [[m for m in net if isinstance(m, nn.Conv2d)] for net in members]
        dense = [[m for m in net if isinstance(m, nn.Linear)][0] for net in members]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.cat([c[i].weight.detach() for c in convs]).contiguous()) for i in range(len(convs[0]))]
            + [nn.Parameter(torch.stack([d.weight.detach().t() for d in dense]).contiguous())]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.cat([c[i].bias.detach() for c in convs])) for i in range(len(convs[0]))]
            + [nn.Parameter(torch.stack([d.bias.detach() for d in dense]).unsqueeze(1).contiguous())]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, b = x.shape[:2]
        h = x.reshape(k, b, 28, 28).transpose(0, 1)  # (B, K·1, 28, 28): member k's image in channel k
        i = 0
        for layer in self.layers:
            if isinstance(layer, nn.Conv2d):
                h = F.conv2d(h, self.weights[i], self.biases[i], groups=k)
                i += 1
            elif isinstance(layer, nn.Flatten):
                h = h.reshape(b, k, -1).transpose(0, 1)  # (K, B, C·H·W), each member's own CHW order
            elif isinstance(layer, nn.Linear):
                h = torch.baddbmm(self.biases[i], h, self.weights[i])
            else:  # ReLU, Identity, PoolThenReLU: per channel, so per member
                h = layer(h)
        return h

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor):
        """As ``StackedMLP.loss_and_grads``; autograd carries ``dlogits`` back through the network."""
        with torch.enable_grad():
            logits = self(x)
            loss_sums, dlogits = _cross_entropy_grad(logits.detach(), y)
            grads = torch.autograd.grad(logits, [*self.weights, *self.biases], dlogits)
        n = len(self.weights)
        return logits.detach(), loss_sums, list(grads[:n]), list(grads[n:])

    def member_state_dict(self, k: int, template: nn.Sequential) -> dict[str, torch.Tensor]:
        names = [name for name, m in template.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))]
        state = {}
        for name, w, b in zip(names[:-1], self.weights[:-1], self.biases[:-1], strict=True):
            c = w.shape[0] // self.k
            state[f"{name}.weight"] = w[k * c : (k + 1) * c].detach().clone()
            state[f"{name}.bias"] = b[k * c : (k + 1) * c].detach().clone()
        state[f"{names[-1]}.weight"] = self.weights[-1][k].detach().t().contiguous().clone()
        state[f"{names[-1]}.bias"] = self.biases[-1][k, 0].detach().clone()
        return state


def stack_members(arch: str, members: list[nn.Sequential]) -> StackedMLP | StackedCNN:
    return {"mlp": StackedMLP, "cnn": StackedCNN}[arch](members)


def member_networks(arch: str, arch_kwargs: dict, seeds: list[int]) -> list[nn.Sequential]:
    """Initialise each member exactly as a single run with that seed would."""
    nets = []
    for s in seeds:
        L.seed_everything(s, workers=True, verbose=False)
        nets.append(build_network(arch, **arch_kwargs))
    return nets


class StackedSGD:
    """``torch.optim.SGD``'s update, step for step, on the stacked weights (foreach kernels).

    Same groups as DigitClassifier: weight decay 2·l2 on kernels (Keras' l2(λ) adds λ·w², whose
    gradient is 2λ·w), none on biases; optional momentum with PyTorch's buffer convention.
    Each member's slice only ever sees its own gradient, so members stay independent.
    """

    def __init__(self, model: StackedMLP, lr: float, l2: float, momentum: float):
        self.weights, self.biases = list(model.weights), list(model.biases)
        self.lr, self.weight_decay, self.momentum = lr, 2.0 * l2, momentum
        self.buffers: list[torch.Tensor] | None = None  # momentum buffers, created by the first step

    def step(self, dws: list[torch.Tensor], dbs: list[torch.Tensor]) -> None:
        if self.weight_decay:
            torch._foreach_add_(dws, self.weights, alpha=self.weight_decay)
        grads = dws + dbs
        if self.momentum:
            if self.buffers is None:
                self.buffers = [g.clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers, self.momentum)
                torch._foreach_add_(self.buffers, grads)
            grads = self.buffers
        torch._foreach_add_(self.weights + self.biases, grads, alpha=-self.lr)

    def state_dict(self) -> dict:
        return {"momentum_buffers": self.buffers}

    def load_state_dict(self, state: dict) -> None:
        if "momentum_buffers" in state:
            self.buffers = state["momentum_buffers"]
        else:  # a state file written with torch.optim.SGD (params: kernels, then biases)
            bufs = [state["state"].get(i, {}).get("momentum_buffer") for i in range(len(self.weights) + len(self.biases))]
            self.buffers = None if any(b is None for b in bufs) else bufs


class MultiSeedTrainer:
    """Train ``len(seeds)`` members of one network config on one DigitDataModule's arrays."""

    def __init__(self, arch: str, arch_kwargs: dict, seeds: list[int], lr: float, l2: float, momentum: float,
                 batch_size: int, device: str = "cpu"):
        self.arch, self.arch_kwargs, self.seeds = arch, arch_kwargs, list(seeds)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.templates = member_networks(arch, arch_kwargs, self.seeds)
        self.model = stack_members(arch, self.templates).to(self.device)
        self.opt = StackedSGD(self.model, lr, l2, momentum)
        self.epoch = 0
        self.history: list[list[dict]] = [[] for _ in self.seeds]

    def set_lr(self, lr: float) -> None:
        self.opt.lr = lr

    def _orders(self, n: int, epoch: int) -> torch.Tensor:
        # The permutation each member's single run would draw (EpochChunks.order).
        orders = [EpochChunks(torch.empty(n, 0), torch.empty(n), 1, 1, True, s, lambda: epoch).order(epoch) for s in self.seeds]
        return torch.stack(orders).to(self.device)

    @torch.no_grad()
    def train_epoch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch for all members; returns per-member mean loss and accuracy."""
        k, n = len(self.seeds), len(y)
        flat = x.reshape(n, -1)
        orders = self._orders(n, self.epoch)
        loss_sum = torch.zeros(k, device=self.device)
        correct = torch.zeros(k, device=self.device)
        for start in range(0, n, self.batch_size):
            idx = orders[:, start : start + self.batch_size]  # (K, B)
            b = idx.shape[1]
            xb = flat.index_select(0, idx.reshape(-1)).view(k, b, -1)  # (K, B, 784)
            yb = y.index_select(0, idx.reshape(-1)).view(k, b, 1)
            logits, losses, dws, dbs = self.model.loss_and_grads(xb, yb)
            self.opt.step(dws, dbs)
            loss_sum += losses
            correct += (logits.argmax(-1, keepdim=True) == yb).sum((1, 2))
        self.epoch += 1
        return loss_sum / n, correct / n

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
        k = len(self.seeds)
        loss, correct = torch.zeros(k, device=self.device), torch.zeros(k, device=self.device)
        flat = x.reshape(len(y), -1)
        for s in range(0, len(y), chunk):
            xb, yb = flat[s : s + chunk], y[s : s + chunk]
            logits = self.model(xb.unsqueeze(0).expand(k, -1, -1))
            loss += F.cross_entropy(logits.reshape(-1, 10), yb.repeat(k), reduction="none").reshape(k, -1).sum(1)
            correct += (logits.argmax(-1) == yb).sum(1)
        return loss / len(y), correct / len(y)

    # -- resumable state ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "epoch": self.epoch,
                "seeds": self.seeds, "history": json.dumps(self.history)}

    def load_state(self, state: dict) -> None:
        if list(state["seeds"]) != self.seeds:
            raise ValueError(f"resume state is for seeds {state['seeds']}, not {self.seeds}")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.epoch = int(state["epoch"])
        self.history = json.loads(state["history"])

    def member_network(self, k: int) -> nn.Sequential:
        net = build_network(self.arch, **self.arch_kwargs)
        net.load_state_dict(self.model.member_state_dict(k, net))
        return net.eval()


def _write_csv(path: Path, rows: list[dict]) -> None:
    from mnist_gen.callbacks import COLUMNS

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)
    write_atomic(path, buf.getvalue())


def fit_multiseed(cfg, dm: DigitDataModule, seeds: list[int], parent: Path, max_epochs: int,
                  device: str = "cpu") -> dict[int, tuple[nn.Sequential, dict]]:
    """Train all seeds together; return {seed: (network, fit_info)} and write per-seed metrics.csv."""
    split = dm.prepare_arrays()
    x = normalize(split.x_train, dm.mean, dm.std).to(device)
    y = torch.as_tensor(split.y_train).to(device)
    xv = normalize(split.x_val, dm.mean, dm.std).to(device)
    yv = torch.as_tensor(split.y_val).to(device)
    tr = MultiSeedTrainer(cfg.model.arch, dict(cfg.model.arch_kwargs), seeds, cfg.model.optimizer.lr, cfg.model.l2,
                          cfg.model.optimizer.momentum, cfg.data.batch_size, device)
    state_path = parent / "multiseed_state.pt"
    if cfg.get("resume", True) and state_path.is_file():
        tr.load_state(torch.load(state_path, map_location=device, weights_only=True))
        log.info("resumed vectorized run at epoch %d from %s", tr.epoch, state_path)
    schedule = cfg.model.optimizer.get("schedule", "constant")
    while tr.epoch < max_epochs:
        tr.set_lr(lr_at(tr.epoch, cfg.model.optimizer.lr, max_epochs, schedule))
        t0 = time.perf_counter()
        tl, ta = tr.train_epoch(x, y)
        t1 = time.perf_counter()
        vl, va = tr.evaluate(xv, yv)
        t2 = time.perf_counter()
        for k in range(len(seeds)):
            tr.history[k].append({"epoch": tr.epoch - 1, "train_loss": float(tl[k]), "train_acc": float(ta[k]),
                                  "val_loss": float(vl[k]), "val_acc": float(va[k]),
                                  # wall time of the shared epoch, split evenly: the cost per seed
                                  "epoch_time_s": round((t1 - t0) / len(seeds), 4), "val_time_s": round((t2 - t1) / len(seeds), 4)})
        tmp = state_path.with_name(state_path.name + ".tmp")
        torch.save(tr.state(), tmp)
        tmp.replace(state_path)
        log.info("epoch %d/%d  %.2fs for %d seeds  val_acc %s", tr.epoch, max_epochs, t1 - t0, len(seeds),
                 " ".join(f"{float(v):.4f}" for v in va))
    out = {}
    for k, s in enumerate(seeds):
        run_dir = parent / f"seed{s}"
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_csv(run_dir / "metrics.csv", tr.history[k])
        times = [r["epoch_time_s"] for r in tr.history[k]]
        net = tr.member_network(k).cpu()
        out[s] = (net, {"num_params": num_params(net), "epochs": len(times), "train_time_s": round(sum(times), 3),
                        "epoch_time_mean_s": round(float(np.mean(times)), 4) if times else None,
                        "device": str(device), "vectorized_seeds": len(seeds)})
    return out
