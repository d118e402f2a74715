"""Load any saved model as a ``Predictor``: the one place that knows file kinds.

* ``*.ckpt``  Lightning checkpoint of a network, read with ``torch.load(weights_only=True)``;
* ``*.pt2``   the deployable ``torch.export`` program (only with ``trust_export=True``);
* ``*.skops`` a classical model (KNN/SVM), read through skops with an allowlist;
* a run directory: its ``model.*`` file in the order above.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch

from mnist_gen.errors import UserError
from mnist_gen.models.networks import build_network

PREDICT_BATCH = 4096


def _softmax_batches(fn, images: np.ndarray, device) -> np.ndarray:
    images = np.asarray(images, dtype=np.uint8).reshape(-1, 1, 28, 28)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), PREDICT_BATCH):
            x = torch.from_numpy(images[start : start + PREDICT_BATCH]).to(device=device, dtype=torch.float32)
            out.append(torch.softmax(fn(x).float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 10), dtype=np.float32)


class NetworkPredictor:
    """A trained network answering on raw uint8 digits (normalisation applied here)."""

    def __init__(self, net: torch.nn.Module, mean: float, std: float, name: str, device: str | torch.device = "cpu"):
        self.net = net.eval().to(device)
        self.mean, self.std, self.name, self.device = mean, std, name, torch.device(device)

    def logits_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net((pixels / 255.0 - self.mean) / self.std)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return _softmax_batches(self.logits_from_pixels, images, self.device)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @classmethod
    def from_checkpoint(cls, path: str | Path, device="cpu") -> NetworkPredictor:
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
            hp = ckpt["hyper_parameters"]
            net = build_network(hp["arch"], **hp["arch_kwargs"])
            state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
            net.load_state_dict(state)
        except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as e:
            raise UserError(f"Cannot load checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        return cls(net, hp["mean"], hp["std"], hp["name"], device)


class ExportPredictor:
    """The ``.pt2`` export, which takes raw 0..255 pixels itself."""

    def __init__(self, path: str | Path, name: str | None = None):
        from mnist_gen.export import load_program

        try:
            self.module = load_program(path)
        except Exception as e:  # noqa: BLE001 - any failure to read the file is the user's bad path/file
            raise UserError(f"Cannot load export {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        self.name = name or _name_from_results(Path(path).parent) or Path(path).stem
        self.device = torch.device("cpu")

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return _softmax_batches(self.module, images, self.device)


def _name_from_results(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "results.json").read_text())["model"]
    except (OSError, ValueError, KeyError):
        return None


MODEL_FILES = ("model.ckpt", "model.skops", "model.pt2")


def model_file(run_dir: Path) -> Path | None:
    for name in MODEL_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def load_predictor(path: str | Path, device: str = "cpu", trust_export: bool = False):
    """A ``Predictor`` for a model file or a run directory.

    ``.ckpt`` is read with ``torch.load(weights_only=True)`` and ``.skops`` through an allowlist;
    a ``.pt2`` export is only loaded with ``trust_export=True`` (torch.export unpickles parts of
    the archive). A run directory resolves to its ``model.ckpt`` or ``model.skops``.
    """
    path = Path(path)
    if path.is_dir():
        found = model_file(path)
        if found is None:
            raise UserError(f"No model file ({', '.join(MODEL_FILES)}) in run directory {path}.")
        path = found
    if not path.is_file():
        raise UserError(f"Model file {path} does not exist.")
    if path.suffix == ".ckpt":
        return NetworkPredictor.from_checkpoint(path, device)
    if path.suffix == ".pt2":
        if not trust_export:
            raise UserError(
                f"Refusing to load {path}: torch.export archives can run code when loaded (they contain pickles). "
                "Use the run's model.ckpt instead, or, for an export you made yourself, allow it "
                "(evaluate.py trust_export=true, predict.py --trust-export)."
            )
        return ExportPredictor(path)
    if path.suffix == ".skops":
        from mnist_gen.models.classical import ClassicalModel

        return ClassicalModel.load(path)
    raise UserError(f"Unknown model file type '{path.suffix}' for {path}; expected .ckpt, .pt2 or .skops.")


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every directory under ``root`` (itself included) that holds a results.json or a model file."""
    root = Path(root)
    dirs = {p.parent for p in root.rglob("results.json")}
    dirs |= {p.parent for name in MODEL_FILES for p in root.rglob(name)}
    return sorted(dirs)
