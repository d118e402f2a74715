"""Evaluation sets: the registry, and every set in it.

Each member module registers its sets with ``@register``; importing them here is what fills
the registry, so a broken member fails loudly at import, never as an "unknown set".
``python -m mnist_gen.evalsets`` lists every set, its size and whether its data is present.
"""

from mnist_gen.evalsets import corruptions, framing, mnist, photos, scans  # noqa: F401  (registers the sets)
from mnist_gen.evalsets.base import (
    REGISTRY,
    EvalSet,
    available_sets,
    describe_sets,
    expand_set_names,
    load_eval_set,
    register,
)

__all__ = ["REGISTRY", "EvalSet", "available_sets", "describe_sets", "expand_set_names", "load_eval_set", "register"]
