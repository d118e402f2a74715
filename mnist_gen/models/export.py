"""The network for deployment: ``model.safetensors`` (weights, no code) and ``model.onnx`` (runs anywhere).

* ``model.safetensors``: the network's tensors plus plain metadata (format, architecture,
  normalisation, hyperparameters as JSON). Loading it executes nothing: safe for files from
  anyone. ``load_safetensors`` rebuilds the network with ``build_for_weights``.
* ``model.onnx``: ``RawPixels`` traced by PyTorch's ``torch.export``-based ONNX exporter:
  input ``pixels`` float32 ``(N, 1, 28, 28)`` with raw 0..255 values (bright ink on black,
  as MNIST), output ``probabilities`` float32 ``(N, 10)``. Runs in onnxruntime without
  torch (``predict.py`` does so), in browsers and on phones.

Both are recorded in the run directory's ``SHA256SUMS``; loaders verify them against it.
"""

from __future__ import annotations

import json
from pathlib import Path

from mnist_gen.errors import UserError
from mnist_gen.io import write_atomic, write_checksums

FORMAT = "mnist_gen.network"
VERSION = "1"
SAFETENSORS, ONNX = "model.safetensors", "model.onnx"


def export_all(net, hparams: dict, run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    files = [save_safetensors(net, hparams, run_dir / SAFETENSORS), export_onnx(net, hparams, run_dir / ONNX)]
    write_checksums(run_dir, [f.name for f in files])
    return files


def metadata(hparams: dict) -> dict[str, str]:
    return {"format": FORMAT, "version": VERSION, "name": str(hparams["name"]), "arch": str(hparams["arch"]),
            "arch_kwargs": json.dumps(hparams["arch_kwargs"]), "mean": repr(float(hparams["mean"])),
            "std": repr(float(hparams["std"])), "hyper_parameters": json.dumps(hparams)}


def save_safetensors(net, hparams: dict, path: str | Path) -> Path:
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return write_atomic(path, save(state, metadata=metadata(hparams)))


def load_safetensors(data: bytes, where: str):
    """(network, hyper_parameters) from a ``model.safetensors``'s bytes; any problem is a ``UserError``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from mnist_gen.models.networks import build_for_weights

    try:
        header_len = int.from_bytes(data[:8], "little")
        if not 0 < header_len <= min(len(data) - 8, 1 << 20):
            raise ValueError("bad header length")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a mnist_gen network (format {meta.get('format')!r})")
        hp = json.loads(meta["hyper_parameters"])
        if not isinstance(hp, dict) or not isinstance(hp.get("arch_kwargs"), dict):
            raise ValueError("hyper_parameters are not a mapping with arch_kwargs")
        net = build_for_weights(str(hp["arch"]), hp["arch_kwargs"], load(data))
        mean, std = float(hp["mean"]), float(hp["std"])
        if not (0 <= mean <= 1 and 0 < std < 10):
            raise ValueError(f"normalisation mean={mean}, std={std} is not a pixel statistic")
    except (SafetensorError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise UserError(f"Cannot load {where} as a mnist_gen network: {type(e).__name__}: {one_line(e)}.") from e
    return net.eval(), hp


def export_onnx(net, hparams: dict, path: str | Path) -> Path:
    import logging
    import warnings

    import torch

    from mnist_gen.models.networks import RawPixels

    model = RawPixels(net.cpu().eval(), hparams["mean"], hparams["std"]).eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(model, (torch.zeros(2, 1, 28, 28),), input_names=["pixels"],
                                    output_names=["probabilities"], dynamic_shapes=({0: batch},), dynamo=True,
                                    verbose=False)
    proto = program.model_proto
    for key, value in metadata(hparams).items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    return write_atomic(path, proto.SerializeToString())


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception's message as one printable line (control characters dropped)."""
    text = " ".join(str(e).split()) or type(e).__name__
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 1] + "…"
