"""Reading and writing files: the one atomic writer, JSON without NaN, checksums, image suffixes.

Every file the project creates goes through ``write_atomic`` (a temp file in the destination
folder, flushed to disk, then ``os.replace``): a run killed half-way never leaves a truncated
PNG, JSON or checkpoint that a later ``evaluate.py`` would trust, and no ``*.tmp`` stays
behind (after SIGKILL, which nothing can catch, until the run resumes: ``remove_stale_temps``). Files are created with the process's umask, like any other file (not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import uuid
from pathlib import Path

import numpy as np

#: File name endings read as images when found in a folder (evaluation sets, predict.py, the demo).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm",
                  ".heic", ".heif", ".avif")


def write_atomic(path: str | os.PathLike, data: str | bytes | bytearray | memoryview) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        payload = data.encode("utf-8")
    elif isinstance(data, bytes | bytearray | memoryview):
        payload = data
    else:
        raise TypeError(f"write_atomic writes str or bytes, got {type(data).__name__}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:  # "x": created with the umask's mode, never an existing file
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete ``write_atomic``'s temp files in ``folder`` whose writer no longer runs; returns them.

    A process killed with SIGKILL in the middle of a write cannot remove its temp file (the
    file it was replacing is intact: that is the point of the temp). A run resumed in the same
    folder sweeps them, so none stays. A temp of a live process (another job writing there) is left.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name.split(".")  # "", name..., pid, random hex, "tmp"
        try:
            pid = int(parts[-3])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid() or process_running(pid):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists (under any user): a temp or folder it left is still being written."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def save_torch(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` through ``write_atomic`` (serialised in memory first)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_atomic(path, buf.getbuffer())


def json_safe(obj):
    """``obj`` with numpy scalars/arrays and paths made plain, and NaN or ±inf replaced by None.

    RFC 8259 JSON has no NaN; a missing or undefined number is ``null`` everywhere in this
    project's files and outputs.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(obj, indent: int | None = 2) -> str:
    """JSON text of ``obj`` (see ``json_safe``); never NaN or Infinity."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False, ensure_ascii=False)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    return write_atomic(path, to_json(obj, indent) + "\n")


def key_digest(key) -> str:
    """16 hex digits naming a cache entry: the sha256 of ``key``'s JSON."""
    return hashlib.sha256(to_json(key, None).encode()).hexdigest()[:16]


def store_npz(path: str | os.PathLike, what: str, **arrays) -> None:
    """Cache ``arrays`` as a compressed ``.npz`` at ``path`` (atomically). A folder that cannot
    be written (read-only data) is a warning, not an error: the caller has its arrays anyway."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    try:
        write_atomic(path, buf.getvalue())
    except OSError as e:
        logging.getLogger(__name__).warning("could not cache %s at %s (%s)", what, path, e)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


CHECKSUMS = "SHA256SUMS"  # in each run directory, `sha256sum -c SHA256SUMS` format


def write_checksums(folder: str | os.PathLike, names) -> Path:
    """Record the sha256 of each file ``names`` in ``folder/SHA256SUMS`` (merged with what is there)."""
    folder = Path(folder)
    sums = read_checksums(folder)
    for name in names:
        sums[name] = sha256_file(folder / name)
    return write_atomic(folder / CHECKSUMS, "".join(f"{h}  {n}\n" for n, h in sorted(sums.items())))


def read_checksums(folder: str | os.PathLike) -> dict[str, str]:
    path = Path(folder) / CHECKSUMS
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def verify_checksum(path: str | os.PathLike, data: bytes | None = None) -> bool:
    """Check ``path`` (or its bytes, already read) against its folder's SHA256SUMS.

    True when verified, False when no sum is recorded for it; a mismatch raises
    ``DataIntegrityError`` naming the file (a flipped bit must never load silently).
    """
    from mnist_gen.errors import DataIntegrityError

    path = Path(path)
    expected = read_checksums(path.parent).get(path.name)
    if expected is None:
        return False
    got = sha256_bytes(data) if data is not None else sha256_file(path)
    if got != expected:
        raise DataIntegrityError(f"{path} does not match its recorded sha256 in {path.parent / CHECKSUMS} "
                                 f"(file {got[:12]}…, recorded {expected[:12]}…): it was modified or corrupted; "
                                 "re-export or retrain it.")
    return True


def scan_folder(root: str | os.PathLike, other_files: bool = True) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(image files under ``root``, sorted; [(path, one sentence)] for every entry that is not one).

    Nothing under the folder vanishes silently: unreadable subfolders, dangling links, pipes and
    devices are each named with the reason, and so are files with other endings unless
    ``other_files=False`` (an evaluation folder's README is not worth a line). Hidden entries
    (``.name``) are skipped on purpose (editor and OS leftovers).
    """
    root = Path(root)
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def unreadable(err: OSError) -> None:
        where = Path(err.filename) if err.filename else root
        problems.append((where, f"Folder {where} cannot be read ({err.strerror or err}); its files were not searched."))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            p = Path(dirpath) / d
            if p.is_symlink():  # os.walk does not follow it: say so
                problems.append((p, f"{p} is a link to a folder; it was not followed (give its target instead)."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.is_symlink() and not p.exists():
                problems.append((p, f"{p} is a link to nothing (its target is missing)."))
            elif not p.is_file():
                problems.append((p, f"{p} is not a regular file (a pipe, socket or device); it was not read."))
            elif p.suffix.lower() not in IMAGE_SUFFIXES:
                if other_files:
                        problems.append((p, f"File {p} is not an image (extension '{p.suffix or 'none'}'); "
                                        f"accepted: {', '.join(IMAGE_SUFFIXES)}."))
            else:
                files.append(p)
    return sorted(files), sorted(problems)
