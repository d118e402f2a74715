"""Models shipped with the package: predict without training first.

``mnist_gen/bundled/<recipe>/<model>/`` holds ``model.safetensors``, ``model.onnx`` and
``card.json`` (what it is, how it was trained, the command, the data, its accuracy per set,
and the sha256 of each file, checked on load). ``mnist_gen/bundled/index.json`` names the
default: the best network for real handwriting, by mean accuracy over the real-handwriting
sets (not MNIST). ``python -m mnist_gen.cli.bundle`` regenerates the bundle from runs.

Short names pick a bundled model anywhere a model path is accepted: ``study/cnn_32_16x3``,
``robust/cnn_robust`` or ``default``.
"""

from __future__ import annotations

import json
from pathlib import Path

from mnist_gen.errors import DataIntegrityError, UserError
from mnist_gen.io import sha256_file
from mnist_gen.paths import bundle_dir

BUNDLE_DIR = bundle_dir()
CARD = "card.json"


def bundle_index() -> dict:
    path = BUNDLE_DIR / "index.json"
    if not path.is_file():
        return {"default": None, "models": []}
    return json.loads(path.read_text())


def bundled_names() -> list[str]:
    return sorted(str(p.parent.relative_to(BUNDLE_DIR)) for p in BUNDLE_DIR.glob(f"*/*/{CARD}"))


def resolve(spec: str, fmt: str = "model.safetensors") -> Path | None:
    """The file of a bundled model named ``spec`` (``default`` or ``<recipe>/<model>``), else None."""
    name = bundle_index().get("default") if spec == "default" else spec
    if not name or name not in bundled_names():
        return None
    path = BUNDLE_DIR / name / fmt
    verify_card(BUNDLE_DIR / name)
    return path


def verify_card(folder: Path) -> dict:
    """The model card, after checking every file it lists against its sha256."""
    card = json.loads((folder / CARD).read_text())
    for name, digest in card.get("sha256", {}).items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"Bundled model {folder.name} lacks {name}; reinstall the package.")
        if sha256_file(path) != digest:
            raise DataIntegrityError(f"Bundled {path} does not match the sha256 in its card; reinstall the package.")
    return card
