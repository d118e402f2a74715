"""Evaluation sets: anything a trained model can be scored on.

Every set is materialised as an ``EvalSet``: MNIST-like uint8 digits (N, 28, 28, white ink
on black, as MNIST stores them) plus integer labels. Models take care of their own
normalisation, so a set never needs to know which model will read it.

Sets are registered by name with ``@register`` (what they are, how many digits, which data
they need); ``train.py``'s final evaluation, ``evaluate.py`` and the EDA all go through
``load_eval_set``. Real digits that are not already MNIST's 28×28 go through ``through_pipeline``:
the same ``to_mnist`` a file goes through in ``predict.py``, so a table reports what users get.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import ImageError, UserError
from mnist_gen.preprocess import PIPELINE_VERSION
from mnist_gen.processes import map_in_processes

log = logging.getLogger(__name__)

THUMB_SIDE = 96


@dataclass
class EvalSet:
    name: str
    images: np.ndarray  # uint8 (N, 28, 28), ink bright on dark background
    labels: np.ndarray  # int64 (N,)
    ids: list[str] = field(default_factory=list)  # file path or index per digit, for galleries
    thumbnails: list[np.ndarray] | None = None  # optional raw views (uint8 HxW or HxWx3) per digit
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, one-sentence reason)
    # Labels of the digit-bearing items the pipeline read no digit from (unreadable, "no digit
    # found"): they count as errors, so an accuracy is over every digit a user would have given.
    missed: list[int] = field(default_factory=list)
    # The ``PIPELINE_VERSION`` whose ``to_mnist`` read the items (None: arrays, not read by it):
    # a figure is only comparable with another read by the same version.
    pipeline_version: int | None = None

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


@dataclass
class SetInfo:
    name: str
    loader: Callable[..., EvalSet]
    about: str  # one line: what the set is
    size: int | None = None  # digits when complete (None: depends on a folder's contents)
    needs: Callable[[], Path | None] | None = None  # the data file/folder it reads, for the listing


REGISTRY: dict[str, SetInfo] = {}


def register(name: str, about: str, size: int | None = None, needs: Callable[[], Path | None] | None = None):
    def deco(fn):
        if name in REGISTRY:
            raise ValueError(f"evaluation set {name!r} is registered twice")
        REGISTRY[name] = SetInfo(name, fn, about, size, needs)
        return fn

    return deco


def load_eval_set(name: str, **kwargs) -> EvalSet:
    if name not in REGISTRY:
        raise UserError(f"Unknown evaluation set '{name}'; valid sets: {', '.join(sorted(REGISTRY))} "
                        "(python -m mnist_gen.evalsets lists them).")
    loader = REGISTRY[name].loader
    # Callers pass one uniform bag of options (data_dir, root, preprocess, ...); each loader
    # takes what its signature names.
    params = inspect.signature(loader).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return loader(**kwargs)


def available_sets() -> list[str]:
    return sorted(REGISTRY)


def expand_set_names(names) -> list[str]:
    """Set names, where a pattern (``usps_*``, ``photos_*_inv``) stands for every registered set it
    matches; an unknown name, or a pattern matching nothing, is a ``UserError``."""
    import fnmatch

    out, unknown = [], []
    for raw in names:
        name = str(raw)
        hits = fnmatch.filter(available_sets(), name) if any(c in name for c in "*?[") else (
            [name] if name in REGISTRY else [])
        if not hits:
            unknown.append(name)
        out += [h for h in hits if h not in out]
    if unknown:
        raise UserError(f"Unknown evaluation set(s) {', '.join(unknown)}; valid sets: {', '.join(available_sets())} "
                        "(python -m mnist_gen.evalsets lists them).")
    return out


def describe_sets() -> list[dict]:
    """One row per registered set: name, what it is, its size, the data it reads and whether it is there."""
    rows = []
    for info in sorted(REGISTRY.values(), key=lambda i: i.name):
        where = info.needs() if info.needs else None
        rows.append({"name": info.name, "about": info.about, "size": info.size,
                     "data": "bundled" if where is None else str(where),
                     "present": True if where is None else Path(where).exists()})
    return rows


# --------------------------------------------------------------------------- through the pipeline


def thumbnail(view: np.ndarray | None) -> np.ndarray:
    """A small grey copy of what the pipeline saw, for galleries."""
    if view is None or view.size == 0:
        return np.zeros((THUMB_SIDE, THUMB_SIDE), np.uint8)
    from PIL import Image

    im = Image.fromarray(view)
    im.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return np.asarray(im)


def _read_item(args) -> tuple[str, int, np.ndarray | None, str | None, np.ndarray | None]:
    """One ``(id, label, image)`` item through ``to_mnist``: (id, label, digit or None, why not, thumbnail)."""
    from mnist_gen.preprocess import to_mnist

    (item_id, label, image), cfg, thumbnails = args
    try:
        res = to_mnist(image, cfg)
    except ImageError as e:
        return item_id, label, None, str(e), None
    except Exception as e:  # noqa: BLE001 - a crash on one image must not lose the others
        return item_id, label, None, f"preprocessing failed unexpectedly ({type(e).__name__}: {e})", None
    if res.digit is None:
        return item_id, label, None, res.reason or "no digit found", None
    return item_id, label, res.digit, None, thumbnail(res.views.get("input")) if thumbnails else None


def through_pipeline(name: str, items: Iterable[tuple[str, int, object]], preprocess=None,
                     thumbnails: bool = False, jobs: int = 0) -> EvalSet:
    """``(id, label, image)`` items -> an EvalSet, each image (a file path, a PIL image or an
    array) through ``to_mnist`` exactly as ``predict.py`` reads a file, over ``jobs`` processes
    (0: one per core; the result does not depend on it). A file that cannot be read, or holds
    no digit, is listed in ``skipped`` with its reason; the others are kept."""
    from mnist_gen.preprocess import as_config

    cfg = as_config(preprocess)
    read = map_in_processes(_read_item, [(item, cfg, thumbnails) for item in items], jobs, chunksize=16)
    images, labels, ids, thumbs, skipped, missed = [], [], [], [], [], []
    for item_id, label, digit, why, thumb in read:
        if digit is None:
            skipped.append((item_id, why))
            missed.append(label)
            continue
        images.append(digit)
        labels.append(label)
        ids.append(item_id)
        if thumbnails:
            thumbs.append(thumb)
    arr = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    return EvalSet(name, arr, np.asarray(labels, np.int64), ids=ids, thumbnails=thumbs if thumbnails else None,
                   skipped=skipped, missed=missed, pipeline_version=PIPELINE_VERSION)


def _pad(thumb: np.ndarray) -> np.ndarray:
    t = np.asarray(thumb, np.uint8)
    if t.ndim == 3:
        t = t.mean(-1).astype(np.uint8)
    out = np.zeros((THUMB_SIDE, THUMB_SIDE), np.uint8)
    out[: t.shape[0], : t.shape[1]] = t[:THUMB_SIDE, :THUMB_SIDE]
    return out


def cached(name: str, key: dict, build: Callable[[], EvalSet], data_dir=None) -> EvalSet:
    """``build()``, stored under ``<data dir>/cache/evalsets/`` and reused while ``key`` (the
    set's sources, the preprocessing settings, ``PIPELINE_VERSION``) is unchanged: preprocessing
    thousands of files costs minutes, scoring them milliseconds."""
    from mnist_gen.io import key_digest, store_npz

    root = Path(data_dir) if data_dir else paths.data_dir()
    path = root / "cache" / "evalsets" / f"{name}-{key_digest({'v': PIPELINE_VERSION, **key})}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                thumbs = list(z["thumbnails"]) if "thumbnails" in z.files else None
                return EvalSet(name, z["images"], z["labels"], ids=meta["ids"], thumbnails=thumbs,
                               skipped=[tuple(s) for s in meta["skipped"]], missed=meta.get("missed", []),
                               pipeline_version=PIPELINE_VERSION)  # the key holds it
        except (OSError, ValueError, KeyError) as e:
            log.warning("cached set %s unreadable (%s); rebuilding it", path, e)
    s = build()
    extra = {}
    if s.thumbnails:  # what the pipeline saw, for the galleries: padded to one shape (no pickles in the cache)
        extra["thumbnails"] = np.stack([_pad(t) for t in s.thumbnails])
    store_npz(path, f"set {name}", images=s.images, labels=s.labels,
              meta=np.array(json.dumps({"ids": s.ids, "skipped": [list(x) for x in s.skipped],
                                        "missed": [int(m) for m in s.missed]})), **extra)
    return s
