"""A corpus of bad inputs, built into a temporary folder at test time (nothing binary is committed).

``build(root, good_run)`` writes, from the real run directory of a trained network (the ``tiny_run``
fixture), three folders that the real entry points are pointed at (``tests/test_bad_inputs.py``):

* ``models/``: a folder of run directories, one good (a copy of ``good_run``), every other holding
  one broken or malicious model file (``BAD_MODELS``), plus run directories whose model file is a
  FIFO or a dangling link;
* ``runs/``: run directories for ``evaluate.py runs=...``: the good ``results.json`` and one
  wrong-typed variant per entry of ``BAD_RESULTS``, plus odd ``results.json`` entries (FIFO,
  dangling link, a folder) and a valid run whose model name is rich markup (``[/x]``);
* ``images/``: one drawn digit beside a FIFO and a dangling link.

Each folder also gets an unreadable subfolder when permissions are enforced (not as root; root
reads everything, so the FIFO and the dangling link stand in for it there).
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Folders made unreadable with chmod 0 only mean something when permissions are enforced.
PERMISSIONS_ENFORCED = os.geteuid() != 0 if hasattr(os, "geteuid") else True
MODEL_FILES = ("model.safetensors", "model.onnx", "model.ckpt", "SHA256SUMS", "results.json")


class _Evil:
    """A pickle that would run a shell command when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Corpus:
    root: Path
    good_run: Path  # models/good: the trained network, every format
    models: Path
    bad_models: dict[str, Path] = field(default_factory=dict)  # name -> the broken model file
    runs: Path | None = None
    bad_results: dict[str, Path] = field(default_factory=dict)  # name -> the wrong results.json entry
    markup_run: Path | None = None  # a valid run whose model is named "[/x]"
    images: Path | None = None
    good_image: Path | None = None
    odd: dict[str, list[Path]] = field(default_factory=dict)  # folder -> entries that must be named
    evil_marker: Path | None = None


# -- models -----------------------------------------------------------------------------------------


def _ckpt(good: dict, **change) -> dict:
    ckpt = copy.deepcopy(good)
    for key, value in change.items():
        if key in ("hyper_parameters", "state_dict"):
            ckpt[key] = value
        else:
            ckpt["hyper_parameters"][key] = value
    return ckpt


def _nan_state(state: dict) -> dict:
    state = {k: v.clone() for k, v in state.items()}
    first = next(k for k in state if k.endswith("weight"))
    state[first][0, 0] = float("nan")
    return state


def _skops_bomb(path: Path, size: int = 1_500_000_000) -> None:
    """A .skops (zip) whose schema.json really inflates to 1.5 GB of spaces (6 MB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z, z.open("schema.json", "w") as f:
        chunk = b" " * (16 << 20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
        f.write(b" " * (size % len(chunk)))


def _knn_huge_k(path: Path) -> None:
    """A genuine mnist_gen KNN file whose estimator says n_neighbors=10**9."""
    from mnist_gen.models.classical import ClassicalModel

    rng = np.random.default_rng(0)
    model = ClassicalModel("knn", "knn", {"n_neighbors": 3})
    model.fit(rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), np.arange(30) % 10)
    model.estimator_.n_neighbors = 10**9
    model.save(path)


def _bad_models(models: Path, good_run: Path, marker: Path) -> dict[str, Path]:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save as st_save

    good = torch.load(good_run / "model.ckpt", weights_only=True)
    out: dict[str, Path] = {}

    def put(name: str, filename: str, data: bytes | None = None, obj=None) -> None:
        d = models / name
        d.mkdir(parents=True)
        if obj is not None:
            torch.save(obj, d / filename)
        else:
            (d / filename).write_bytes(data)
        out[name] = d / filename

    put("arch_kwargs_text", "model.ckpt", obj=_ckpt(good, arch_kwargs={"hidden": "abc"}))
    put("arch_kwargs_unknown", "model.ckpt", obj=_ckpt(good, arch_kwargs={"nonsense": 1}))
    put("hparams_list", "model.ckpt", obj=_ckpt(good, hyper_parameters=[1, 2, 3]))
    put("state_is_tensor", "model.ckpt", obj=_ckpt(good, state_dict=torch.zeros(3)))
    put("file_is_tensor", "model.ckpt", obj=torch.zeros(3))
    put("mean_text", "model.ckpt", obj=_ckpt(good, mean="abc"))
    put("std_zero", "model.ckpt", obj=_ckpt(good, std=0.0))
    put("nan_weights", "model.ckpt", obj=_ckpt(good, state_dict=_nan_state(good["state_dict"])))
    put("garbage", "model.ckpt", data=bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)))
    put("empty", "model.safetensors", data=b"")
    put("truncated_onnx", "model.onnx", data=(good_run / "model.onnx").read_bytes()[:5000])
    buf = io.BytesIO()
    pickle.dump({"hyper_parameters": _Evil(marker), "state_dict": {}}, buf)
    put("runs_code", "model.ckpt", data=buf.getvalue())

    # NaN weights in a well-formed safetensors file (its metadata copied from the good one).
    with safe_open(good_run / "model.safetensors", "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    put("nan_safetensors", "model.safetensors", data=st_save(_nan_state(tensors), metadata=meta))

    # The good weights under metadata declaring a far larger network (10 GB of float32) or a
    # billion-member ensemble: refused from the metadata, before anything is allocated.
    for name, arch, kwargs in (("huge_declared", "mlp", {"hidden": [50_000, 50_000]}),
                               ("huge_ensemble", "ensemble", {"members": 10**9, "member_arch": "mlp",
                                                              "member_kwargs": {"hidden": [64, 16]}})):
        hp = {**json.loads(meta["hyper_parameters"]), "arch": arch, "arch_kwargs": kwargs}
        put(name, "model.safetensors", data=st_save(tensors, metadata={**meta, "arch": arch,
                                                                        "arch_kwargs": json.dumps(kwargs),
                                                                        "hyper_parameters": json.dumps(hp)}))

    # One flipped bit in model.safetensors, beside the SHA256SUMS that recorded the original.
    flipped = bytearray((good_run / "model.safetensors").read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    put("bit_flipped", "model.safetensors", data=bytes(flipped))
    shutil.copy(good_run / "SHA256SUMS", models / "bit_flipped" / "SHA256SUMS")

    (models / "zip_bomb").mkdir()
    _skops_bomb(models / "zip_bomb" / "model.skops")
    out["zip_bomb"] = models / "zip_bomb" / "model.skops"
    (models / "knn_huge_k").mkdir()
    _knn_huge_k(models / "knn_huge_k" / "model.skops")
    out["knn_huge_k"] = models / "knn_huge_k" / "model.skops"
    return out


# -- results.json -----------------------------------------------------------------------------------


def bad_results(good: dict) -> dict[str, str]:
    """name -> text of a results.json that is JSON but not what train.py writes."""

    def changed(**kv) -> str:
        res = copy.deepcopy(good)
        res.update(kv)
        return json.dumps(res)

    return {
        "json_string": json.dumps("a results.json that is a string"),
        "json_list": json.dumps([good]),
        "accuracy_text": changed(test_accuracy="0.97"),
        "accuracy_nan": changed(test_accuracy=float("nan")),  # Python's json writes NaN; RFC JSON has none
        "accuracy_above_1": changed(test_accuracy=97.1),
        "eval_sets_null": changed(eval_sets=None),
        "eval_sets_int": changed(eval_sets=3),
        "eval_set_text": changed(eval_sets={**good["eval_sets"], "usps": "high"}),
        "eval_set_accuracy_text": changed(eval_sets={"usps": {"accuracy": "high", "n": 10, "correct": 9}}),
        "model_dict": changed(model={"name": "mlp_64_16"}),
        "model_empty": changed(model=""),
        "seed_text": changed(seed="0"),
        "data_text": changed(data="mnist"),
        "study_list": changed(study=[0.97]),
        "loss_text": changed(test_loss="low"),
        "deep_nesting": '{"model": ' + "[" * 100_000 + "]" * 100_000 + "}",
    }


def _runs(runs: Path, good_run: Path) -> tuple[dict[str, Path], Path]:
    good = json.loads((good_run / "results.json").read_text())
    (runs / "good").mkdir(parents=True)
    shutil.copy(good_run / "results.json", runs / "good" / "results.json")
    out = {}
    for name, text in bad_results(good).items():
        (runs / name).mkdir()
        (runs / name / "results.json").write_text(text)
        out[name] = runs / name / "results.json"
    markup = runs / "markup_name"
    markup.mkdir()
    (markup / "results.json").write_text(json.dumps({**good, "model": "[/x]", "recipe": "[bold]r"}))
    (runs / "results_is_a_folder" / "results.json").mkdir(parents=True)
    out["results_is_a_folder"] = runs / "results_is_a_folder" / "results.json"
    return out, markup


# -- images -----------------------------------------------------------------------------------------


def draw_seven(path: Path, size: int = 160) -> Path:
    from PIL import Image, ImageDraw

    im = Image.new("L", (size, size), 230)
    ImageDraw.Draw(im).line([(size * 0.3, size * 0.2), (size * 0.7, size * 0.2), (size * 0.45, size * 0.85)],
                            fill=20, width=max(2, size // 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


# -- odd folder entries -----------------------------------------------------------------------------


def _odd_entries(folder: Path, fifo_name: str, link_name: str, hidden: Path | None = None) -> list[Path]:
    """A FIFO, a dangling link and (where permissions are enforced) an unreadable subfolder
    (holding a copy of ``hidden``, which the tools cannot see and must say so)."""
    fifo, link = folder / fifo_name, folder / link_name
    for p in (fifo, link):
        p.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)  # reading it would block for ever: it must never be opened
    link.symlink_to(folder / "no_such_target")
    entries = [fifo, link]
    if PERMISSIONS_ENFORCED:
        locked = folder / "unreadable"
        (locked / "inside").mkdir(parents=True)
        if hidden is not None:
            shutil.copy(hidden, locked / "inside" / hidden.name)
        locked.chmod(0)
        entries.append(locked)
    return entries


def unlock(corpus: Corpus) -> None:
    """Give the unreadable folders their permissions back (so the temporary folder can be removed)."""
    for entries in corpus.odd.values():
        for p in entries:
            if p.name == "unreadable" and not p.is_symlink():
                p.chmod(0o755)


def build(root: Path, good_run: Path) -> Corpus:
    root = Path(root)
    models = root / "models"
    shutil.copytree(good_run, models / "good", ignore=lambda d, names: [n for n in names if n not in MODEL_FILES])
    marker = root / "pwned"
    corpus = Corpus(root=root, good_run=models / "good", models=models, evil_marker=marker)
    corpus.bad_models = _bad_models(models, good_run, marker)
    corpus.odd["models"] = _odd_entries(models, "fifo_run/model.ckpt", "dangling_run/model.safetensors",
                                        hidden=good_run / "model.ckpt")

    corpus.runs = root / "runs"
    corpus.bad_results, corpus.markup_run = _runs(corpus.runs, good_run)
    corpus.odd["runs"] = _odd_entries(corpus.runs, "fifo_run/results.json", "dangling_run/results.json",
                                      hidden=good_run / "results.json")

    corpus.images = root / "images"
    corpus.good_image = draw_seven(corpus.images / "7" / "seven.png")
    corpus.odd["images"] = _odd_entries(corpus.images, "pipe.png", "dangling.png")
    return corpus
