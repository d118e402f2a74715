"""Where things live on disk.

Hydra (version_base >= 1.2) leaves the working directory alone, but users may still
run the entry points from anywhere, so every default path is resolved from the
project root rather than from the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """MNIST cache folder: ``$MNIST_GEN_DATA`` if set, else ``<project>/data``."""
    return Path(os.environ.get("MNIST_GEN_DATA", PROJECT_ROOT / "data")).expanduser().resolve()


def shared_data_dir() -> Path:
    """The read-only shared evaluation data (``../shared/data`` beside the project)."""
    return Path(os.environ.get("MNIST_GEN_SHARED", PROJECT_ROOT.parent / "shared" / "data")).expanduser().resolve()
