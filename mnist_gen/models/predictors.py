"""Load any saved model as a ``Predictor``: the one place that knows model file kinds.

Every trained model offers ``predict_proba`` on raw MNIST-like uint8 digits and normalises
its inputs itself, so evaluation, prediction and the demo never branch on model kind.

* ``*.onnx``        a network for onnxruntime (no torch needed: the fast path of ``predict.py``);
* ``*.safetensors`` a network's weights + plain metadata (no code runs on load);
* ``*.ckpt``        a network's plain checkpoint, read with ``torch.load(weights_only=True)``;
* ``*.skops``       a classical model (KNN/SVM), read through skops with an allowlist;
* a run directory:  its ``model.*`` file in the order above.

A file recorded in its folder's ``SHA256SUMS`` must match it (a flipped bit is refused).
Anything wrong with a file (malformed, malicious, truncated, NaN weights) is one ``UserError``
sentence naming it; a caller loading many models skips that one and keeps the others.
"""

from __future__ import annotations

import io
import math
import pickle
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mnist_gen.errors import UserError
from mnist_gen.io import verify_checksum

PREDICT_BATCH = 4096
#: A run directory answers with the first of these it holds: ONNX first (onnxruntime, no torch to
#: import: the quick path), then the network's weights, then KNN/SVM.
MODEL_FILES = ("model.onnx", "model.safetensors", "model.ckpt", "model.skops")
MAX_MODEL_BYTES = 2 << 30  # a KNN keeps its training set (56k digits as float64: ~350 MB); nothing else comes close


@runtime_checkable
class Predictor(Protocol):
    name: str  # model name, e.g. "cnn_32_16x3" or "knn"

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) MNIST-like digits -> float (N, 10) class probabilities."""
        ...


def _batches(images: np.ndarray):
    images = np.asarray(images, dtype=np.uint8).reshape(-1, 1, 28, 28)
    for start in range(0, len(images), PREDICT_BATCH):
        yield images[start : start + PREDICT_BATCH].astype(np.float32)


class NetworkPredictor:
    """A trained network answering on raw uint8 digits (``RawPixels``: normalisation + softmax)."""

    def __init__(self, net, mean: float, std: float, name: str, device="cpu"):
        import torch

        from mnist_gen.models.networks import RawPixels

        self.net = net.eval().to(device)
        self.model = RawPixels(self.net, mean, std)
        self.mean, self.std, self.name, self.device = mean, std, name, torch.device(device)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for x in _batches(images):
                out.append(self.model(torch.from_numpy(x).to(self.device)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


class OnnxPredictor:
    """``model.onnx`` in onnxruntime: raw 0..255 pixels in, probabilities out; torch is not imported."""

    def __init__(self, data: bytes, name: str):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one digit at a time: threads cost more than they save
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        self.name = name

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        out = [self.session.run(["probabilities"], {"pixels": x})[0] for x in _batches(images)]
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def model_file(run_dir: Path) -> Path | None:
    for name in MODEL_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every directory under ``root`` (itself included) that holds a results.json or a model file.

    Model "files" that are not regular files (pipes, links to nothing) and folders that cannot
    be read are named in a warning rather than passed over in silence.
    """
    import logging
    import os

    log = logging.getLogger("predict")

    def unreadable(err: OSError) -> None:
        log.warning("skipping %s: the folder cannot be read (%s)", err.filename or root, err.strerror or err)

    dirs = set()
    for dirpath, _, filenames in os.walk(root, onerror=unreadable):
        here = Path(dirpath)
        for name in filenames:
            if name == "results.json" or name in MODEL_FILES:
                if name in MODEL_FILES and not (here / name).is_file():
                    log.warning("skipping %s: it is not a regular file (a pipe, or a link to nothing)", here / name)
                    continue
                dirs.add(here)
    return sorted(dirs)


def load_predictor(path: str | Path, device: str = "cpu"):
    """A ``Predictor`` for a model file or a run directory (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        found = model_file(path)
        if found is None:
            raise UserError(f"No model file ({', '.join(MODEL_FILES)}) in run directory {path}.")
        path = found
    if not path.is_file():
        raise UserError(f"Model file {path} does not exist.")
    if path.suffix == ".pt2":
        raise UserError(f"{path} is a torch.export archive, which this version no longer loads (it can run "
                        "code when loaded); use the run's model.safetensors or model.onnx.")
    loaders = {".safetensors": _safetensors, ".onnx": _onnx, ".ckpt": _checkpoint, ".skops": _skops}
    if path.suffix not in loaders:
        raise UserError(f"Unknown model file type '{path.suffix}' for {path}; expected "
                        f"{', '.join(loaders)}.")
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise UserError(f"Model file {path} is {size / 1e9:.1f} GB, larger than any model this project "
                            f"writes ({MAX_MODEL_BYTES / 1e9:.0f} GB); refusing to load it.")
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"Cannot read model file {path}: {e.strerror or e}.") from e
    verify_checksum(path, data)
    try:
        return loaders[path.suffix](path, data, device)
    except UserError:
        raise
    except MemoryError as e:
        raise UserError(f"Cannot load {path}: it needs more memory than is available.") from e
    except Exception as e:  # noqa: BLE001 - any failure to read the file is the user's bad file, in one sentence
        from mnist_gen.models.export import one_line

        raise UserError(f"Cannot load {path}: {type(e).__name__}: {one_line(e)}.") from e


def load_models(specs: list[str]) -> list[tuple[str, Predictor]]:
    """``(name, predictor)`` for every spec: a model file, a run directory, a folder of runs
    (every model in it), or a bundled model's short name (``default``, ``study/cnn_32``). In a folder, a model that cannot be loaded is skipped with a warning
    naming it and the others answer; a spec that yields nothing is a ``UserError``."""
    import logging

    log = logging.getLogger("predict")
    from mnist_gen.models.bundled import bundled_names, resolve

    if not specs:
        raise UserError("No model given; pass a model file, a run directory or a folder of runs.")
    loaded: list[tuple[Predictor, str]] = []  # (predictor, where it came from, relative to its spec)
    for spec in specs:
        root = Path(spec).expanduser()
        if not root.exists():
            bundled = resolve(str(spec), "model.onnx")
            if spec == "default" and bundled is None:
                raise UserError("No model given and no bundled default model in this installation; pass --model "
                                "<model file, run directory or folder of runs>.")
            if bundled is not None:
                loaded.append((load_predictor(bundled), str(spec)))
                continue
            names = ", ".join(["default", *bundled_names()])
            raise UserError(f"Model {spec} does not exist; give a model file, a run directory, a folder of runs "
                            f"or a bundled model ({names}).")
        if root.is_file() or model_file(root) is not None:
            loaded.append((load_predictor(root), str(spec)))  # as given: two files may share a name
            continue
        runs = [d for d in find_run_dirs(root) if model_file(d) is not None]
        if not runs:
            raise UserError(f"No model file ({', '.join(MODEL_FILES)}) found under {spec}; train one first.")
        n_before = len(loaded)
        for run in runs:
            try:
                loaded.append((load_predictor(run), str(run.relative_to(root))))
            except UserError as e:  # one broken run must not hide the others
                log.warning("skipping %s: %s", run, e)
        if len(loaded) == n_before:
            raise UserError(f"None of the models under {spec} could be loaded; see the warnings above.")
    # A model's name in outputs: its own name, made unique with its run path when names repeat.
    names = [p.name for p, _ in loaded]
    return [(p.name if names.count(p.name) == 1 else f"{p.name}@{where}", p) for p, where in loaded]


def _run_name(path: Path, fallback: str) -> str:
    """The model name recorded in the run's results.json (strings only), else ``fallback``."""
    import json

    try:
        name = json.loads((path.parent / "results.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return fallback
    return name if isinstance(name, str) and name else fallback


def _check_network(net, mean, std, where: Path) -> tuple[float, float]:
    import torch

    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (mean, std)) \
            or not (0 <= mean <= 1 and 0 < std < 10):
        raise UserError(f"Cannot load {where}: its normalisation mean={mean!r}, std={std!r} is not a pixel "
                        "statistic (mean in 0..1, std > 0).")
    if not all(torch.isfinite(p).all() for p in net.parameters()):
        raise UserError(f"Cannot load {where}: its weights contain NaN or infinite values (a diverged run?); "
                        "retrain it.")
    return float(mean), float(std)


def _safetensors(path: Path, data: bytes, device):
    from mnist_gen.models.export import load_safetensors

    net, hp = load_safetensors(data, str(path))
    mean, std = _check_network(net, hp.get("mean"), hp.get("std"), path)
    name = hp.get("name") if isinstance(hp.get("name"), str) and hp.get("name") else _run_name(path, path.stem)
    return NetworkPredictor(net, mean, std, name, device)


def _onnx(path: Path, data: bytes, device):
    import onnx

    model = onnx.load_model_from_string(data)
    meta = {p.key: p.value for p in model.metadata_props}
    names = ([i.name for i in model.graph.input], [o.name for o in model.graph.output])
    if names != (["pixels"], ["probabilities"]):
        raise UserError(f"Cannot load {path}: an ONNX model here takes 'pixels' and answers 'probabilities' "
                        f"(see README, Outputs); this one has inputs {names[0]} and outputs {names[1]}.")
    return OnnxPredictor(data, meta.get("name") or _run_name(path, path.stem))


def _checkpoint(path: Path, data: bytes, device):
    import torch

    from mnist_gen.models.networks import build_for_weights

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "pickle protocol" notes are not the user's business
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"Refusing to load {path}: it holds objects other than tensors and plain values, which are "
                        "refused because loading them could allow arbitrary code execution; use a model file "
                        "written by mnist_gen.") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("hyper_parameters"), dict) \
            or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"Cannot load {path}: it is not a mnist_gen model checkpoint (a dict with "
                        "'hyper_parameters' and 'state_dict').")
    hp = ckpt["hyper_parameters"]
    if not isinstance(hp.get("arch_kwargs"), dict):
        raise UserError(f"Cannot load {path}: its hyper_parameters carry no arch_kwargs mapping.")
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if str(k).startswith("net.")}
    net = build_for_weights(str(hp.get("arch")), hp["arch_kwargs"], state)
    mean, std = _check_network(net, hp.get("mean"), hp.get("std"), path)
    name = hp.get("name") if isinstance(hp.get("name"), str) and hp.get("name") else _run_name(path, path.stem)
    return NetworkPredictor(net, mean, std, name, device)


def _skops(path: Path, data: bytes, device):
    from mnist_gen.models.classical import ClassicalModel

    return ClassicalModel.load(path, data)
