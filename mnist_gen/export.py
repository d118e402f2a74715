"""Deployable export: a ``torch.export`` program (``.pt2``).

Chosen over TorchScript (deprecated in current PyTorch) and ONNX (needs extra
packages to write and a separate runtime to check). The exported program takes raw
pixels — float32 ``(N, 1, 28, 28)`` in 0..255, MNIST polarity (bright ink on black) —
and returns logits; normalisation is baked in, so a deployment needs no project code:

    prog = torch.export.load("model.pt2"); logits = prog.module()(pixels)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


class RawPixelModel(nn.Module):
    """Normalise 0..255 pixels with the training set's scalars, then run the network."""

    def __init__(self, net: nn.Module, mean: float, std: float):
        super().__init__()
        self.net = net
        self.register_buffer("scale", torch.tensor(1.0 / (255.0 * std)))
        self.register_buffer("shift", torch.tensor(mean / std))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels * self.scale - self.shift)


def export_program(net: nn.Module, mean: float, std: float, path: str | Path) -> Path:
    """Write ``path`` (.pt2) atomically; batch size is dynamic."""
    path = Path(path)
    model = RawPixelModel(net, mean, std).eval().cpu()
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    prog = torch.export.export(model, (example,), dynamic_shapes={"pixels": {0: batch}})
    tmp = path.with_name(path.stem + ".tmp.pt2")  # torch.export wants the .pt2 suffix
    torch.export.save(prog, tmp)
    os.replace(tmp, path)
    return path


def load_program(path: str | Path) -> nn.Module:
    return torch.export.load(str(path)).module()
