"""Folders of digit photos as evaluation sets: the study's photos, its conversions, your own.

Any tree works: a photo's label is the name of its parent folder when that is a single
digit (``7/IMG_0042.jpg``), otherwise the first character of its file name when that is a
digit (``gabe/7.jpg``, ``3_alice.png``). A file whose label cannot be told, or which cannot
be read or holds no digit, is listed in ``EvalSet.skipped`` with a reason: one bad file
never sinks the evaluation of a folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import UserError
from mnist_gen.evalsets.base import EvalSet, register, through_pipeline
from mnist_gen.io import scan_folder
from mnist_gen.preprocess import PreprocessConfig

UNLABELLED = "label unknown: put the photo in a folder named after the digit or start its file name with the digit"


def label_from_path(path) -> int | None:
    """The digit a photo shows, from its folder (exactly one digit) or its file name's first character."""
    p = Path(path)
    parent = p.parent.name
    if len(parent) == 1 and parent.isdigit():
        return int(parent)
    stem = p.stem
    if stem[:1].isdigit() and stem[:1].isascii():
        return int(stem[0])
    return None


def seed_photo_dir() -> Path:
    return paths.shared_data_dir() / "handwritten" / "seed_photos"


def load_photo_folder(root, preprocess: PreprocessConfig | Mapping | None = None, name: str = "photos") -> EvalSet:
    """Every photo under ``root`` (recursively) through ``to_mnist`` -> an ``EvalSet``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(
            f"Photo folder {root} does not exist; set eval_set_options.<set>.root to a folder of digit photos."
        )
    files, problems = scan_folder(root, other_files=False)  # READMEs and notes beside photos are fine
    labelled = [(str(f.relative_to(root)), label_from_path(f), f) for f in files]
    s = through_pipeline(name, [i for i in labelled if i[1] is not None], preprocess, thumbnails=True)
    s.skipped = ([(rel, UNLABELLED) for rel, label, _ in labelled if label is None]
                 + [(str(p.relative_to(root)), why) for p, why in problems] + s.skipped)
    return s


def _naive_cfg(preprocess):
    """This set is the study's conversion by definition: the run's common (MNIST-like)
    preprocessing config is not applied to it, only an explicitly naive one."""
    method = (preprocess or {}).get("method") if isinstance(preprocess, Mapping) else getattr(preprocess, "method", None)
    return preprocess if method == "naive" else {"method": "naive", "exif_transpose": False}


@register("seed_photos", "the study's 29 marker photos, MNIST-like preprocessing", 29, seed_photo_dir)
def seed_photos(root=None, preprocess=None, **_) -> EvalSet:
    return load_photo_folder(root or seed_photo_dir(), preprocess, name="seed_photos")


@register("seed_photos_naive", "the same photos, the study's preprocessing (whole photo resized)", 29, seed_photo_dir)
def seed_photos_naive(root=None, preprocess=None, **_) -> EvalSet:
    return load_photo_folder(root or seed_photo_dir(), _naive_cfg(preprocess), name="seed_photos_naive")


def _handwritten_dir() -> Path:
    return paths.PROJECT_ROOT / "handwritten"


@register("handwritten", "your own photos in handwritten/ (see its README); may be empty", None, _handwritten_dir)
def handwritten(root=None, preprocess=None, **_) -> EvalSet:
    root = Path(root) if root else _handwritten_dir()
    if not root.is_dir():
        return EvalSet("handwritten", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    return load_photo_folder(root, preprocess, name="handwritten")


def _formatted_dir() -> Path:
    return paths.shared_data_dir() / "handwritten" / "seed_formatted"


@register("seed_formatted", "the study's own 28×28 conversions (the inputs behind its 0–50 %)", 20, _formatted_dir)
def seed_formatted(root=None, **_) -> EvalSet:
    """Used as they are (already white ink on grey-black): scoring them reproduces the study's failure."""
    from PIL import Image

    root = Path(root) if root else _formatted_dir()
    if not root.is_dir():
        raise UserError(
            f"Folder {root} not found; set eval_set_options.seed_formatted.root to the study's 28×28 images."
        )
    files, problems = scan_folder(root, other_files=False)
    images, labels, ids = [], [], []
    skipped = [(str(p.relative_to(root)), why) for p, why in problems]
    for f in files:
        rel = str(f.relative_to(root))
        label = label_from_path(f)
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert("L"))
        except Exception as e:  # noqa: BLE001
            skipped.append((rel, f"could not read {f}: {e}"))
            continue
        if label is None or a.shape != (28, 28):
            skipped.append((rel, UNLABELLED if label is None else f"not 28×28 (got {a.shape})"))
            continue
        images.append(a)
        labels.append(label)
        ids.append(rel)
    arr = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    return EvalSet("seed_formatted", arr, np.asarray(labels, np.int64), ids=ids,
                   thumbnails=[a.copy() for a in images], skipped=skipped)
