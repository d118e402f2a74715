"""The one pixel normalisation: ``(pixel / 255 - mean) / std``, with MNIST's training statistics."""

from __future__ import annotations

import numpy as np
import torch


def pixel_stats(x_train: np.ndarray) -> tuple[float, float]:
    """Mean and std of pixel/255 over the training images (MNIST: ≈ 0.1307, 0.3081).

    From the histogram of the 256 byte values: exact, and no float copy of the 47 million
    pixels (a float64 copy alone is 0.4 GB, the largest allocation of a training run).
    """
    flat = np.asarray(x_train, dtype=np.uint8).reshape(-1)
    counts = np.zeros(256, np.float64)
    for start in range(0, len(flat), 1 << 22):  # bincount widens its input to int64: in blocks, not all at once
        counts += np.bincount(flat[start : start + (1 << 22)], minlength=256)
    levels = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    mean = float((counts * levels).sum() / n)
    return mean, float(np.sqrt(max((counts * (levels - mean) ** 2).sum() / n, 0.0)))


def standardize(pixels: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Raw 0..255 pixels (any float tensor) -> the networks' input."""
    return (pixels / 255.0 - mean) / std


def normalize(images: np.ndarray | torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), standardised."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    # ``standardize``'s operations in place on a fresh float copy: the same values, a third of the
    # allocations (this runs on every training chunk; 5 stacked seeds: ~35 ms less per epoch).
    return x.to(torch.float32, copy=True).div_(255.0).sub_(mean).div_(std).reshape(-1, 1, 28, 28)
