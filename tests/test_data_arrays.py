""".npy/.npz image arrays in every layout, the validation of their values, and CIFAR-10's archive."""
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from minivae.data import DataError, load_dataset, resize_images, to_images
from minivae.data import cifar, download


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIVAE_OFFLINE", "1")
    monkeypatch.delenv("MINIVAE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "_open_url", lambda url, timeout: pytest.fail(f"network: {url}"))


RGB = np.random.default_rng(0).integers(0, 256, size=(40, 3, 6, 5), dtype=np.uint8)   # N, C, H, W


@pytest.mark.parametrize("layout, array", [
    ("nchw", RGB),
    ("nhwc", RGB.transpose(0, 2, 3, 1)),
    ("gray", RGB[:, 0]),
    ("float nhwc", RGB.transpose(0, 2, 3, 1) / 255.0),
    ("int64", RGB.astype(np.int64)),
])
def test_layouts_and_dtypes_convert_to_nchw_float32(layout, array):
    images = to_images(array)
    expected = (RGB[:, :1] if layout == "gray" else RGB) / np.float32(255)
    assert images.dtype == np.float32 and images.flags.c_contiguous
    np.testing.assert_allclose(images, expected, rtol=1e-6, atol=0)


def test_bad_arrays_each_get_one_clear_error():
    cases = [
        (np.full((2, 4, 4), np.nan), "1?32 pixel value\\(s\\) are NaN or inf"),
        (np.array([[[0.5, np.inf]]]), "NaN or inf"),
        (np.full((2, 4, 4), 2.0), r"float images must lie in \[0, 1\], found \[2, 2\].*divide by 255"),
        (np.full((2, 4, 4), -0.5), r"found \[-0.5, -0.5\]"),
        (np.full((2, 4, 4), 300), r"integer images must lie in \[0, 255\], found \[300, 300\]"),
        (np.zeros((10, 784)), "rank 2 shape \\(10, 784\\); reshape flat images"),
        (np.zeros((2, 3, 4, 3)), "cannot tell the channel axis.*both axis 1 and axis 3"),
        (np.zeros((2, 5, 6, 7)), "neither axis 1 nor axis 3.*layout='nchw'"),
        (np.array([[["a"]]]), "must be numbers, found dtype <U1"),
        (np.zeros((0, 4, 4)), "empty image array"),
    ]
    for array, message in cases:
        with pytest.raises(DataError, match=message):
            to_images(array)
    assert to_images(np.zeros((2, 3, 4, 3)), layout="nhwc").shape == (2, 3, 3, 4)


def test_npy_and_npz_files_with_seeded_split(tmp_path):
    labels = np.arange(40) % 4
    np.save(tmp_path / "x.npy", RGB.transpose(0, 2, 3, 1))
    np.savez(tmp_path / "x.npz", images=RGB, labels=labels)
    for name in ("x.npy", "x.npz"):
        path = str(tmp_path / name)
        train, test = load_dataset(path, "train", seed=3), load_dataset(path, "test", seed=3)
        assert len(train) == 36 and len(test) == 4 and train.shape == (3, 6, 5)
        together = np.concatenate([train.images, test.images])
        # the two splits partition the file: every image exactly once
        assert sorted(map(bytes, together)) == sorted(map(bytes, to_images(RGB)))
        assert np.array_equal(load_dataset(path, "test", seed=3).images, test.images)
        assert not np.array_equal(load_dataset(path, "test", seed=4).images, test.images)
    # labels travel with their images through the permutation (label i belongs to image i)
    np.savez(tmp_path / "y.npz", images=RGB, labels=np.arange(40))
    labels_file = load_dataset(str(tmp_path / "y.npz"), "train", seed=3)
    np.testing.assert_array_equal(labels_file.images, to_images(RGB)[labels_file.labels])
    assert len(load_dataset(str(tmp_path / "x.npz"), test_fraction=0.5, n=7)) == 7


def test_npz_keys_keras_layout_and_labels(tmp_path):
    images = RGB[:, 0]
    np.savez(tmp_path / "k.npz", x_train=images[:30], y_train=np.arange(30) % 10,
             x_test=images[30:], y_test=np.arange(10))
    test = load_dataset(str(tmp_path / "k.npz"), "test")        # the file's own split, unshuffled
    np.testing.assert_array_equal(test.images[:, 0], images[30:] / np.float32(255))
    assert test.labels.tolist() == list(range(10))
    np.savez(tmp_path / "two.npz", a=images, b=images)
    with pytest.raises(DataError, match="several arrays \\(a, b\\) and none is named.*key=NAME"):
        load_dataset(str(tmp_path / "two.npz"))
    assert len(load_dataset(str(tmp_path / "two.npz"), key="b", test_fraction=0.25)) == 30
    with pytest.raises(DataError, match="has no array 'c'; it holds: a, b"):
        load_dataset(str(tmp_path / "two.npz"), key="c")


def test_object_nan_and_missing_files_are_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", images=np.array([np.zeros((2, 2)), "x"], dtype=object))
    with pytest.raises(DataError, match="'images' holds Python objects \\(dtype=object\\)"):
        load_dataset(str(tmp_path / "obj.npz"))
    np.save(tmp_path / "obj.npy", np.array([1, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds Python objects"):
        load_dataset(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "nan.npy", np.where(np.eye(4) > 0, np.nan, 0.5)[None])
    with pytest.raises(DataError, match=r"nan.npy: 4 pixel value\(s\) are NaN or inf"):
        load_dataset(str(tmp_path / "nan.npy"))
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY junk")
    with pytest.raises(DataError, match="not a readable"):
        load_dataset(str(tmp_path / "junk.npy"))
    with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))


def test_resize_keeps_range_and_constants():
    images = np.random.default_rng(1).random((3, 2, 28, 28), dtype=np.float32)
    for size in (14, 32, (20, 40)):
        out = resize_images(images, size)
        assert out.shape[2:] == ((size, size) if np.isscalar(size) else size)
        assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_allclose(resize_images(np.full((1, 1, 28, 28), 0.3, np.float32), 17), 0.3, rtol=1e-6)
    # a symmetric filter reproduces a linear ramp exactly away from the borders
    ramp = np.broadcast_to((np.arange(28, dtype=np.float32) + 0.5) / 28, (1, 1, 28, 28))
    for size, tolerance in ((7, 1e-6), (14, 1e-6), (56, 1e-6), (20, 2e-3)):    # 28/20: not an integer ratio
        centres = (np.arange(size) + 0.5) / size
        inner = slice(2, size - 2)
        np.testing.assert_allclose(resize_images(ramp, size)[0, 0, 5, inner], centres[inner], atol=tolerance)
    assert resize_images(images, 28) is images


# ------------------------------------------------------------------ CIFAR-10

def _batch(n, seed):
    rng = np.random.default_rng(seed)
    # exactly what the Python-2 original holds, once loaded with encoding="bytes"
    return {b"batch_label": b"batch", b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [b"f.png"] * n}


def _write_archive(path, batches, protocol=2):
    with tarfile.open(path, "w:gz") as tar:
        for member, batch in batches.items():
            blob = pickle.dumps(batch, protocol=protocol)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_cifar10_read_from_an_archive_in_the_official_format(tmp_path, monkeypatch):
    batches = {f"data_batch_{i}": _batch(2, i) for i in range(1, 6)}
    batches["test_batch"] = _batch(3, 0)
    (tmp_path / "cifar10").mkdir()
    path = _write_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", batches)
    images, labels = cifar.read_cifar10(path, "train")
    assert images.shape == (10, 3, 32, 32) and labels.shape == (10,)
    first = batches["data_batch_1"][b"data"][0]
    assert np.array_equal(images[0, 0].ravel(), first[:1024])        # red plane first
    assert np.array_equal(images[0, 2].ravel(), first[2048:])        # then green, then blue
    assert labels.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    with pytest.raises(DataError, match=r"(?s)checksum mismatch.*expected sha256 6d958be0"):
        load_dataset("cifar10", data_dir=tmp_path)                    # not the published archive
    monkeypatch.setattr(cifar, "ARCHIVE", cifar.ARCHIVE.__class__(
        cifar.ARCHIVE.name, hashlib.sha256(path.read_bytes()).hexdigest(), 0, cifar.ARCHIVE.urls))
    test = load_dataset("cifar10", "test", data_dir=tmp_path)
    assert test.shape == (3, 32, 32) and test.label_names[0] == "airplane"
    np.testing.assert_array_equal(test.images.reshape(3, -1),
                                  batches["test_batch"][b"data"] / np.float32(255))
    assert load_dataset("cifar10", "test", data_dir=tmp_path, image_size=16).shape == (3, 16, 16)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_refuses_foreign_pickles_and_broken_archives(tmp_path):
    evil = _write_archive(tmp_path / "evil.tar.gz", {"test_batch": {b"data": _Evil(), b"labels": []}})
    with pytest.raises(DataError, match="refers to (__builtin__|builtins).print.*refusing to load it"):
        cifar.read_cifar10(evil, "test")
    good = _write_archive(tmp_path / "good.tar.gz", {"test_batch": _batch(2, 1)})
    cut = tmp_path / "cut.tar.gz"
    blob = good.read_bytes()
    cut.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        cifar.read_cifar10(cut, "test")
    with pytest.raises(DataError, match="archive has no file cifar-10-batches-py/data_batch_1"):
        cifar.read_cifar10(good, "train")
    wrong = _write_archive(tmp_path / "wrong.tar.gz",
                           {"test_batch": {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}})
    with pytest.raises(DataError, match=r"data must be uint8 \(N, 3072\), found uint8 \(2, 100\)"):
        cifar.read_cifar10(wrong, "test")
