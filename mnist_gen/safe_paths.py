"""Output paths taken from config or from files must not let a run write where it was not asked to.

The rule, in two parts:

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
