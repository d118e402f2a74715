"""Folders of digit photos as evaluation sets.

Any tree works: a photo's label is the name of its parent folder when that is a single
digit (``7/IMG_0042.jpg``), otherwise the first character of its file name when that is a
digit (``gabe/7.jpg``, ``3_alice.png``). A file whose label cannot be told, or which cannot
be read or holds no digit, is listed in ``EvalSet.skipped`` with a reason — one bad file
never sinks the evaluation of a folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import ImageError, UserError
from mnist_gen.evalsets import EvalSet, register
from mnist_gen.preprocess import PreprocessConfig, as_config, to_mnist

#: Extensions treated as photos; anything else in the tree (READMEs, notes) is ignored.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
THUMB_SIDE = 96


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


def _image_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _thumbnail(view: np.ndarray | None) -> np.ndarray:
    """A small grey copy of what the pipeline saw, for galleries."""
    if view is None or view.size == 0:
        return np.zeros((THUMB_SIDE, THUMB_SIDE), np.uint8)
    from PIL import Image

    im = Image.fromarray(view)
    im.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return np.asarray(im)


def load_photo_folder(
    root, preprocess: PreprocessConfig | Mapping | None = None, name: str = "photos"
) -> EvalSet:
    """Every photo under ``root`` (recursively) through ``to_mnist`` → an ``EvalSet``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(
            f"Photo folder {root} does not exist; set eval_set_options.<set>.root to a folder of digit photos."
        )
    cfg = as_config(preprocess)
    images, labels, ids, thumbs, skipped = [], [], [], [], []
    for f in _image_files(root):
        rel = str(f.relative_to(root))
        label = label_from_path(f)
        if label is None:
            skipped.append(
                (
                    rel,
                    "label unknown: put the photo in a folder named after the digit or start its file name with the digit",
                )
            )
            continue
        try:
            res = to_mnist(f, cfg)
        except ImageError as e:
            skipped.append((rel, str(e)))
            continue
        except Exception as e:  # noqa: BLE001 - a crash on one photo must not lose the others
            skipped.append((rel, f"preprocessing failed unexpectedly ({type(e).__name__}: {e})"))
            continue
        if res.digit is None:
            skipped.append((rel, res.reason or "no digit found"))
            continue
        images.append(res.digit)
        labels.append(label)
        ids.append(rel)
        thumbs.append(_thumbnail(res.views.get("input")))
    arr = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    return EvalSet(name, arr, np.asarray(labels, dtype=np.int64), ids=ids, thumbnails=thumbs, skipped=skipped)


def _naive_cfg(preprocess):
    """This set is the study's conversion by definition: the run's common (MNIST-like)
    preprocessing config is not applied to it, only an explicitly naive one."""
    cfg = as_config(preprocess) if preprocess is not None else None
    return cfg if cfg is not None and cfg.method == "naive" else {"method": "naive", "exif_transpose": False}


@register("seed_photos")
def seed_photos(root=None, preprocess=None, **_) -> EvalSet:
    """The study's 29 phone photos (gabe, philip, sydney) through the MNIST-like pipeline."""
    return load_photo_folder(
        root or paths.shared_data_dir() / "handwritten" / "seed_photos", preprocess, name="seed_photos"
    )


@register("seed_photos_naive")
def seed_photos_naive(root=None, preprocess=None, **_) -> EvalSet:
    """The same photos through the study's own conversion (whole photo → 28×28, inverted)."""
    return load_photo_folder(
        root or paths.shared_data_dir() / "handwritten" / "seed_photos",
        _naive_cfg(preprocess),
        name="seed_photos_naive",
    )


@register("handwritten")
def handwritten(root=None, preprocess=None, **_) -> EvalSet:
    """Your own photos in the repository's ``handwritten/`` folder (see its README); may be empty."""
    root = Path(root) if root else paths.PROJECT_ROOT / "handwritten"
    if not root.is_dir():
        return EvalSet("handwritten", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    return load_photo_folder(root, preprocess, name="handwritten")


@register("seed_formatted")
def seed_formatted(root=None, **_) -> EvalSet:
    """The study's own 28×28 conversions, used as they are (already white ink on grey-black).

    These are the exact inputs behind its 0–50 % table; scoring them reproduces the failure.
    """
    from PIL import Image

    root = Path(root) if root else paths.shared_data_dir() / "handwritten" / "seed_formatted"
    if not root.is_dir():
        raise UserError(
            f"Folder {root} not found; set eval_set_options.seed_formatted.root to the study's 28×28 images."
        )
    images, labels, ids, skipped = [], [], [], []
    for f in _image_files(root):
        rel = str(f.relative_to(root))
        label = label_from_path(f)
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert("L"))
        except Exception as e:  # noqa: BLE001
            skipped.append((rel, f"could not read {f}: {e}"))
            continue
        if label is None or a.shape != (28, 28):
            skipped.append((rel, "label unknown" if label is None else f"not 28×28 (got {a.shape})"))
            continue
        images.append(a)
        labels.append(label)
        ids.append(rel)
    arr = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    return EvalSet(
        "seed_formatted",
        arr,
        np.asarray(labels, np.int64),
        ids=ids,
        thumbnails=[a.copy() for a in images],
        skipped=skipped,
    )
