"""The study's five networks, rebuilt layer for layer from its Keras code.

Keras equivalences, each applied here:
* ``Dense``/``Conv2D`` kernels start Glorot-uniform and biases start at zero
  (``glorot_uniform`` uses fan_in = k*k*in_ch, fan_out = k*k*out_ch, exactly what
  ``nn.init.xavier_uniform_`` computes for an ``nn.Conv2d`` weight).
* ``Conv2D(padding='valid')`` = ``nn.Conv2d(padding=0)``; ``MaxPooling2D(2)`` = ``nn.MaxPool2d(2)``.
  The last convolution's ReLU runs after the pool instead of before it (``PoolThenReLU``):
  the same function and the same gradients, measured faster (see that class).
* The final ``Dense(10, activation='softmax')`` becomes a logits layer; the softmax
  moves into the cross-entropy loss (training) and into ``predict_proba`` (inference).
* Keras flattens channels-last (H, W, C) and PyTorch channels-first (C, H, W): the same
  function class with the same parameter count, only the weight order of the last layer differs.

A model is a config (``configs/model/<name>.yaml``) plus one builder here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnist_gen.data.pixels import standardize

IMAGE_SIZE = 28
NUM_CLASSES = 10

# The study's table (parameters, MNIST test accuracy) is kept in the model configs.


def mlp(hidden: Sequence[int]) -> nn.Sequential:
    """784 -> Dense(h, ReLU) for each h -> Dense(10)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = IMAGE_SIZE * IMAGE_SIZE
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, NUM_CLASSES))
    return nn.Sequential(*layers)


class PoolThenReLU(nn.MaxPool2d):
    """``MaxPool2d`` then ReLU, pooled in channels-last layout: Keras' ReLU -> MaxPooling2D, faster.

    * Same values: max commutes with the monotone ReLU, relu(max(window)) = max(relu(window)).
    * Same gradients: in both orders a window passes its gradient to its first maximum when that
      maximum is positive, and nothing otherwise.
    * Faster: ReLU and its backward touch a quarter of the values, and PyTorch's CPU max-pool
      kernel is vectorised over channels only in channels-last layout (a 32×32×26×26 batch:
      90 µs instead of 1.4 ms forward). cnn_32's plain-loop epoch went from 2.8 to 2.2 s.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x.contiguous(memory_format=torch.channels_last)))


def cnn(conv: Sequence[int], kernel_size: int = 3, pool: int = 2) -> nn.Sequential:
    """Conv(c, k×k, valid, ReLU) for each c -> MaxPool(2) -> Flatten -> Dense(10)."""
    layers: list[nn.Module] = []
    channels, size = 1, IMAGE_SIZE
    for c in conv:
        layers += [nn.Conv2d(channels, c, kernel_size), nn.ReLU()]
        channels, size = c, size - (kernel_size - 1)
    size //= pool
    # The last ReLU moves into the pool (PoolThenReLU); nn.Identity holds its place so layer
    # indices, and so checkpoint keys, stay those of the Keras order.
    layers[-1] = nn.Identity()
    layers += [PoolThenReLU(pool), nn.Flatten(), nn.Linear(channels * size * size, NUM_CLASSES)]
    return nn.Sequential(*layers)


#: More seeds than any run writes: a model file asking for more is refused before anything is built.
MAX_MEMBERS = 64


class SeedEnsemble(nn.Module):
    """Copies of one network trained with different seeds, answering as one: the mean of their
    probabilities (a deep ensemble, Lakshminarayanan et al. 2017). Seeds err on different
    digits, and averaging their answers is most accurate where the data departs from the
    training set: on binarised 16×16 stretches, 3 seeds of ``cnn_32_16x3`` read 94.1 % of USPS
    against 93.0 % for one seed on average (README, Bundled models).

    ``forward`` returns the log of the mean probability, so the softmax that follows every
    network (``RawPixels``, the loss) gives back exactly that mean: the ensemble is a network
    like any other to export, load and score.
    """

    def __init__(self, members: int, member_arch: str, member_kwargs: dict):
        super().__init__()
        if member_arch not in BUILDERS or not 1 <= int(members) <= MAX_MEMBERS:
            raise ValueError(f"an ensemble has 1 to {MAX_MEMBERS} members of a trained architecture "
                             f"({', '.join(BUILDERS)}), not {members} × '{member_arch}'")
        self.members = nn.ModuleList(BUILDERS[member_arch](**member_kwargs) for _ in range(int(members)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-30))


#: The architectures a run trains (``model.arch``).
BUILDERS = {"mlp": mlp, "cnn": cnn}
#: And those a model file may hold: an ensemble is assembled from trained runs, never trained.
LOADABLE = {**BUILDERS, "ensemble": SeedEnsemble}


def build_network(arch: str, **kwargs) -> nn.Module:
    if arch not in LOADABLE:
        raise ValueError(f"unknown architecture '{arch}'; known: {', '.join(LOADABLE)}")
    net = LOADABLE[arch](**kwargs)
    keras_init_(net)
    return net


def build_for_weights(arch: str, kwargs: dict, state: dict[str, torch.Tensor]) -> nn.Module:
    """``build_network(arch, **kwargs)`` holding ``state``, built only once its tensors are known to
    have exactly ``state``'s names and shapes (checked on the meta device, which allocates nothing):
    a model file's few bytes of metadata cannot make a loader allocate a network far larger than
    the file (``hidden: [50000, 50000]`` is 10 GB)."""
    with torch.device("meta"):
        declared = {k: tuple(v.shape) for k, v in build_network(arch, **kwargs).state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items()}
    if declared != given:
        key = next((k for k in declared if declared[k] != given.get(k)), None) or next(k for k in given if k not in declared)
        raise ValueError(f"its tensors are not those of the {arch} network its metadata declares "
                         f"('{key}': {given.get(key, 'absent')} in the file, {declared.get(key, 'absent')} declared)")
    net = build_network(arch, **kwargs)
    net.load_state_dict(state, strict=True)
    return net


def keras_init_(net: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases: Keras' defaults for Dense and Conv2D."""
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def kernel_and_bias_params(net: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split parameters into kernels (regularised in the study) and biases (not)."""
    kernels, biases = [], []
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            kernels.append(m.weight)
            biases.append(m.bias)
    return kernels, biases


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


class RawPixels(nn.Module):
    """A network that takes raw 0..255 pixels ``(N, 1, 28, 28)`` (bright ink on black, as MNIST)
    and answers class probabilities: normalisation and softmax baked in. What ``predict.py``
    runs and what the ONNX export holds, so a deployment needs no project code."""

    def __init__(self, net: nn.Module, mean: float, std: float):
        super().__init__()
        self.net, self.mean, self.std = net, float(mean), float(std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(standardize(pixels, self.mean, self.std)).float(), dim=1)
