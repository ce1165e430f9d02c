"""Data files: IDX, checksums, lookup order, (fake) downloads, real MNIST. Never the network."""
import gzip
import hashlib
import io
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from minivae.data import (ChecksumError, DataError, IDXError, MissingDataError, load_dataset,
                          read_idx, sha256_file)
from minivae.data import download, mnist
from minivae.data.idx import encode_idx

_SHARED = [Path(p) for p in (os.environ.get("MINIVAE_DATA"),
                             Path(__file__).resolve().parents[2] / "shared" / "data") if p]
REAL = next((p for p in _SHARED if (p / "mnist" / "train-images-idx3-ubyte.gz").is_file()), None)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, no user cache, no ambient MINIVAE_DATA: only what each test sets up."""
    monkeypatch.setenv("MINIVAE_OFFLINE", "1")
    monkeypatch.delenv("MINIVAE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(url, timeout):
        raise AssertionError(f"a test tried to reach the network: {url}")
    monkeypatch.setattr(download, "_open_url", no_network)


def _tiny_mnist(rng=None):
    """Small IDX-encoded (gzip) files for both splits: name -> (bytes, array)."""
    rng = rng or np.random.default_rng(0)
    files = {}
    for split, n in (("train", 12), ("test", 5)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        image_name, label_name = mnist.SPLIT_FILES[split]
        files[image_name] = (gzip.compress(encode_idx(images)), images)
        files[label_name] = (gzip.compress(encode_idx(labels)), labels)
    return files


def _publish(monkeypatch, files, dataset="mnist"):
    """Make the tiny files the 'published' ones (their SHA-256 becomes the expected one)."""
    table = {name: (hashlib.sha256(blob).hexdigest(), len(blob)) for name, (blob, _) in files.items()}
    monkeypatch.setitem(mnist._PUBLISHED, dataset, table)


def _write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (blob, _) in files.items():
        (folder / name).write_bytes(blob)


# ------------------------------------------------------------------ IDX format

def test_idx_round_trip_gzip_and_raw(tmp_path):
    images = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    (tmp_path / "a.gz").write_bytes(gzip.compress(encode_idx(images)))
    (tmp_path / "a.idx").write_bytes(encode_idx(images))
    assert encode_idx(images)[:4] == bytes([0, 0, 8, 3])
    for name in ("a.gz", "a.idx"):
        out = read_idx(tmp_path / name)
        assert out.dtype == np.uint8 and np.array_equal(out, images)
    floats = np.linspace(-1, 1, 6).reshape(2, 3)         # big-endian types come back native
    (tmp_path / "f.gz").write_bytes(gzip.compress(encode_idx(floats)))
    assert np.array_equal(read_idx(tmp_path / "f.gz"), floats)


def test_idx_truncated_and_wrongly_sized_are_refused(tmp_path):
    blob = encode_idx(np.zeros((5, 4, 3), dtype=np.uint8))
    (tmp_path / "short.gz").write_bytes(gzip.compress(blob[:-7]))
    with pytest.raises(IDXError, match=r"truncated: header says 5 x 4 x 3 items .* = 60 data bytes, found 53"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "long.gz").write_bytes(gzip.compress(blob + b"\0" * 4))
    with pytest.raises(IDXError, match="longer than its header says.*found 64"):
        read_idx(tmp_path / "long.gz")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(blob)[:-10])      # download cut short
    with pytest.raises(IDXError, match="gzip stream ends early"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "junk.gz").write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(IDXError, match="not an IDX file"):
        read_idx(tmp_path / "junk.gz")
    (tmp_path / "header.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 3, 0, 0])))
    with pytest.raises(IDXError, match="announces 3 dimensions"):
        read_idx(tmp_path / "header.gz")


# ------------------------------------------------------------------ lookup and checksums

@pytest.mark.parametrize("layout", ["dataset folder", "flat", "env", "cache", "torchvision"])
def test_mnist_found_in_every_supported_place(tmp_path, monkeypatch, layout):
    files = _tiny_mnist()
    _publish(monkeypatch, files)
    root = tmp_path / "root"
    folder = {"dataset folder": root / "mnist", "flat": root, "env": root / "mnist",
              "cache": tmp_path / "cache" / "minivae" / "mnist", "torchvision": root / "MNIST" / "raw"}
    _write(folder[layout], files)
    data_dir = None if layout in ("env", "cache") else root
    if layout == "env":
        monkeypatch.setenv("MINIVAE_DATA", str(root))
    for split in ("train", "test"):
        data = load_dataset("mnist", split, data_dir=data_dir)
        blob_images, images = files[mnist.SPLIT_FILES[split][0]]
        labels = files[mnist.SPLIT_FILES[split][1]][1]
        assert data.images.shape == (len(images), 1, 28, 28) and data.images.dtype == np.float32
        np.testing.assert_array_equal(data.images[:, 0], images / np.float32(255))
        np.testing.assert_array_equal(data.labels, labels)
    assert load_dataset("mnist", data_dir=data_dir, n=3).images.shape == (3, 1, 28, 28)


def test_checksum_mismatch_names_path_expected_and_found(tmp_path):
    files = _tiny_mnist()                                 # not the published bytes
    _write(tmp_path / "mnist", files)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError, match=rf"(?s){path}.*expected sha256 440fcabf73cc546f.*found +sha256 {found}"):
        load_dataset("mnist", data_dir=tmp_path)


def test_missing_files_offline_say_what_to_put_where(tmp_path):
    with pytest.raises(MissingDataError, match=(
            rf"(?s)fashion-mnist: 2 data file\(s\) not found: t10k-images-idx3-ubyte.gz, "
            rf"t10k-labels-idx1-ubyte.gz.*in {tmp_path / 'fashion-mnist'}/.*"
            r"t10k-images-idx3-ubyte.gz  4,422,102 bytes  sha256 346e55b948d973a9.*MINIVAE_OFFLINE is set")):
        load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError):                # MissingDataError is a FileNotFoundError
        load_dataset("cifar10", data_dir=tmp_path)


def test_download_is_verified_and_lands_in_the_data_dir(tmp_path, monkeypatch):
    files = _tiny_mnist()
    _publish(monkeypatch, files)
    monkeypatch.delenv("MINIVAE_OFFLINE")
    requested = []

    def fake_open(url, timeout):
        requested.append(url)
        assert timeout <= 30
        return io.BytesIO(files[url.rsplit("/", 1)[1]][0])
    monkeypatch.setattr(download, "_open_url", fake_open)
    data = load_dataset("mnist", "test", data_dir=tmp_path)
    assert len(data) == 5 and len(requested) == 2 and requested[0].startswith("https://")
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(mnist.SPLIT_FILES["test"])
    load_dataset("mnist", "test", data_dir=tmp_path)      # now on disk: no second download
    assert len(requested) == 2
    with pytest.raises(MissingDataError, match=r"download=False"):
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)


def test_corrupt_or_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    _publish(monkeypatch, _tiny_mnist())
    monkeypatch.delenv("MINIVAE_OFFLINE")
    monkeypatch.setattr(download, "_open_url", lambda url, timeout: io.BytesIO(b"<html>moved</html>"))
    with pytest.raises(ChecksumError, match=r"(?s)downloaded from https://.*expected sha256"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert list((tmp_path / "mnist").iterdir()) == []

    def unreachable(url, timeout):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(download, "_open_url", unreachable)
    with pytest.raises(MissingDataError, match=r"(?s)t10k-images-idx3-ubyte.gz.*Download failed \(.*Name or service"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_bad_requests_are_clear():
    with pytest.raises(DataError, match="unknown dataset 'mnsit'; choose one of: sprites, mnist, "
                                        "fashion-mnist, cifar10, or a path"):
        load_dataset("mnsit")
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_dataset("sprites", "valid")
    with pytest.raises(DataError, match="seed must be a non-negative integer, got 1.5"):
        load_dataset("sprites", seed=1.5)
    with pytest.raises(TypeError, match="not understood by dataset 'mnist'"):
        load_dataset("mnist", shapes=("square",))


# ------------------------------------------------------------------ the real files

@pytest.mark.skipif(REAL is None, reason="real MNIST files not found (../shared/data or MINIVAE_DATA)")
def test_real_mnist_and_fashion_mnist():
    for name in ("mnist", "fashion-mnist"):
        for f in mnist.remote_files(name, "train") + mnist.remote_files(name, "test"):
            assert sha256_file(REAL / name / f.name) == f.sha256
    train = load_dataset("mnist", "train", data_dir=REAL)
    test = load_dataset("mnist", "test", data_dir=REAL)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    assert list(train.labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]    # the well-known first digits
    assert abs(train.images.mean() - 0.1307) < 5e-4                       # the usual normalisation mean
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    fashion = load_dataset("fashion-mnist", "test", data_dir=REAL)
    assert fashion.images.shape == (10000, 1, 28, 28) and fashion.label_names[9] == "Ankle boot"
    assert np.bincount(fashion.labels).tolist() == [1000] * 10
    assert abs(fashion.images.mean() - 0.2868) < 2e-3
