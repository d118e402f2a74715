"""Evaluation sets: anything a trained model can be scored on.

Every set is materialised as an ``EvalSet``: MNIST-like uint8 digits (N, 28, 28, white ink
on black, as MNIST stores them) plus integer labels. Models take care of their own
normalisation, so a set never needs to know which model will read it.

Sets are registered by name in ``REGISTRY``; ``train.py``'s final evaluation and
``evaluate.py`` both go through ``load_eval_set`` so a new set plugs in without touching them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mnist_gen.errors import UserError


@dataclass
class EvalSet:
    name: str
    images: np.ndarray  # uint8 (N, 28, 28), ink bright on dark background
    labels: np.ndarray  # int64 (N,)
    ids: list[str] = field(default_factory=list)  # file path or index per digit, for galleries
    thumbnails: list[np.ndarray] | None = None  # optional raw views (uint8 HxW or HxWx3) per digit
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, one-sentence reason)

    def __post_init__(self):
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.dtype != np.uint8 or self.images.ndim != 3 or self.images.shape[1:] != (28, 28):
            raise ValueError(f"eval set {self.name}: images must be uint8 (N, 28, 28), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"eval set {self.name}: {len(self.images)} images but {len(self.labels)} labels")
        if not self.ids:
            self.ids = [str(i) for i in range(len(self.labels))]

    def __len__(self) -> int:
        return len(self.labels)


# name -> loader(cfg_for_that_set: dict) -> EvalSet
REGISTRY: dict[str, Callable[..., EvalSet]] = {}


def register(name: str):
    def deco(fn):
        REGISTRY[name] = fn
        return fn

    return deco


def load_eval_set(name: str, **kwargs) -> EvalSet:
    _import_builtin_sets()
    if name not in REGISTRY:
        raise UserError(f"Unknown evaluation set '{name}'; valid sets: {', '.join(sorted(REGISTRY))}.")
    loader = REGISTRY[name]
    # Callers pass one uniform bag of options (data_dir, root, preprocess, ...); each loader
    # takes what its signature names.
    params = inspect.signature(loader).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return loader(**kwargs)


def available_sets() -> list[str]:
    _import_builtin_sets()
    return sorted(REGISTRY)


def _import_builtin_sets() -> None:
    # Importing the modules runs their @register decorators.
    import mnist_gen.data.mnist_sets  # noqa: F401
    import mnist_gen.robustness  # noqa: F401

    try:
        import mnist_gen.data.external  # noqa: F401
        import mnist_gen.data.handwritten  # noqa: F401
    except ImportError:  # pragma: no cover - while those modules are being written
        pass
