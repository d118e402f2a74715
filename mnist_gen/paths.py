"""Where things live on disk, and which output paths a run may write to.

Hydra (version_base >= 1.2) leaves the working directory alone, but users may still run the
entry points from anywhere, so every default path is resolved from the project root rather
than from the current directory.

Output paths taken from config or from files must not let a run write where it was not asked to:

* ``check_output_path(raw, key)``: an output directory given in config or on the command line
  is either absolute (the user named the place outright, which is allowed) or relative; a
  relative one may not climb above the folder it starts from, so ``outputs/../../etc`` or
  ``../x`` are refused with one sentence. ``outputs/a/../b`` is fine (it stays inside).
* ``safe_child(parent, name, key)``: a name that comes from data (a model's name in a
  checkpoint, a photo's file name) becomes exactly one folder or file *inside* ``parent``;
  separators, ``..`` and absolute names are refused.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from mnist_gen.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
CONFIG_DIR = PACKAGE_DIR / "configs"  # shipped as package data: the same configs from a checkout or a wheel


def data_dir() -> Path:
    """MNIST cache folder: ``$MNIST_GEN_DATA`` if set, else ``<project>/data``."""
    return Path(os.environ.get("MNIST_GEN_DATA", PROJECT_ROOT / "data")).expanduser().resolve()


def shared_data_dir() -> Path:
    """The read-only shared evaluation data (``../shared/data`` beside the project)."""
    return Path(os.environ.get("MNIST_GEN_SHARED", PROJECT_ROOT.parent / "shared" / "data")).expanduser().resolve()


def bundle_dir() -> Path:
    """The bundled models: ``$MNIST_GEN_BUNDLE_DIR`` if set (another bundle, or none), else the package's."""
    return Path(os.environ.get("MNIST_GEN_BUNDLE_DIR", PACKAGE_DIR / "bundled")).expanduser().resolve()


def check_output_path(raw: str | os.PathLike, key: str = "output path") -> Path:
    """Return ``raw`` as a Path, or raise ``UserError`` when a relative path climbs out with ``..``."""
    text = os.fspath(raw)
    if not text.strip():
        raise UserError(f"{key} is empty; give a folder to write into.")
    if os.path.isabs(text):
        return Path(text)
    norm = os.path.normpath(text)
    if norm == ".." or norm.startswith(".." + os.sep) or (os.altsep and norm.startswith(".." + os.altsep)):
        raise UserError(
            f"{key}={text!r} climbs out of its starting folder with '..'; give a path inside it or an absolute path."
        )
    return Path(text)


def safe_child(parent: str | os.PathLike, name: str, key: str = "name") -> Path:
    """``parent / name`` when ``name`` is one plain path component; else ``UserError``."""
    name = str(name)
    if (
        not name
        or name in (".", "..")
        or PurePath(name).name != name
        or "/" in name
        or "\\" in name
        or os.path.isabs(name)
        or "\x00" in name
    ):
        raise UserError(f"{key} {name!r} is not a plain file or folder name; refusing to write outside {parent}.")
    return Path(parent) / name
