"""The one interface every trained model offers to evaluation code.

Networks (Lightning checkpoints, exports) and classical models (KNN, SVM) all answer
``predict_proba`` on raw MNIST-like uint8 digits and normalise inputs themselves, so
evaluation, prediction and the demo never branch on model kind.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Predictor(Protocol):
    name: str  # model name, e.g. "cnn_32_16x3" or "knn"

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) MNIST-like digits -> float (N, 10) class probabilities."""
        ...
