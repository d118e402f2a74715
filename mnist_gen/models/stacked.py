"""N seeds of one network as one module: the step ``StackedClassifier`` (``models/lit.py``) trains.

The study's MLPs are bound by per-step overhead, not arithmetic (a 32×784 @ 784×64 matmul
is microseconds; Python, dispatch and autograd bookkeeping are the rest), so stacking N
seeds into one batched matmul costs little more than one seed (``StackedMLP``). Generic
``torch.func.vmap`` measured slower than this explicit ``baddbmm`` formulation (README, speed).
CNNs stack as grouped convolutions (``StackedCNN``): worth it on a GPU, where one seed leaves
the device idle; on CPU they are arithmetic-bound and ``multiseed.vectorize=auto`` runs them
one by one.

Each member is exactly one ordinary run:
* its initial weights are those ``seed_everything(seed)`` + ``build_network`` give a single run;
* its data order and augmentation are those ``DigitDataModule`` draws for that seed;
* SGD (``torch.optim.SGD``'s update, weight decay on kernels, optional momentum) acts on each
  member's slice with that member's own gradient: the gradient of its own mean batch loss.
So member k matches a separate run with seed k up to floating-point summation order.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from mnist_gen.models.networks import build_network


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


class StackedSGD(torch.optim.Optimizer):
    """``torch.optim.SGD``'s update, step for step, on the stacked weights (foreach kernels).

    Same groups as ``DigitClassifier``: weight decay 2·l2 on kernels (Keras' l2(λ) adds λ·w²,
    whose gradient is 2λ·w), none on biases; optional momentum with PyTorch's buffer
    convention. Each member's slice only ever sees its own gradient, so members stay
    independent. A real ``Optimizer``: Lightning steps it, checkpoints its state and sets
    its learning rate like any other.
    """

    def __init__(self, model: StackedMLP | StackedCNN, lr: float, l2: float, momentum: float):
        groups = [{"params": list(model.weights), "weight_decay": 2.0 * l2},
                  {"params": list(model.biases), "weight_decay": 0.0}]
        super().__init__(groups, {"lr": lr, "momentum": momentum, "weight_decay": 0.0})

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.update()
        return loss

    @torch.no_grad()
    def update(self) -> None:
        """The update itself, without ``Optimizer.step``'s hooks and profiler record (~7 µs of a
        ~380 µs step): ``StackedClassifier`` calls it directly between Lightning's steps."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                torch._foreach_add_(grads, params, alpha=group["weight_decay"])
            if group["momentum"]:
                bufs = []
                for p, g in zip(params, grads, strict=True):
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                    bufs.append(state["momentum_buffer"])
                grads = bufs
            torch._foreach_add_(params, grads, alpha=-group["lr"])


def member_network(stack: StackedMLP | StackedCNN, k: int, arch: str, arch_kwargs: dict) -> nn.Sequential:
    """Member ``k`` as an ordinary network (the same class and state-dict keys as a single run's)."""
    net = build_network(arch, **arch_kwargs)
    net.load_state_dict(stack.member_state_dict(k, net))
    return net.eval()
