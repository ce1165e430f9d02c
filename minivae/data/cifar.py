"""CIFAR-10 from the official "python version" archive, ``cifar-10-python.tar.gz``.

Krizhevsky (2009), *Learning Multiple Layers of Features from Tiny Images*,
www.cs.toronto.edu/~kriz/cifar.html: 50,000 training images (``data_batch_1``
… ``data_batch_5``) and 10,000 test images (``test_batch``), 32×32 RGB, 10 classes.

Each batch is a Python pickle of a dict ``{b"data": uint8 (10000, 3072), b"labels":
[int], ...}``, rows holding the red, green and blue 32×32 planes in turn. Pickle
is used here *only* because it is this official format, and through an
unpickler that refuses every global except what a NumPy array needs, so a
tampered archive cannot run code. The archive is read in place (no extraction)
after its SHA-256 has been checked.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import DataError
from .download import RemoteFile

ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",   # md5 c58f30108f718f92721af3b95e74349a
    170498071,
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",))
FOLDERS = ("cifar10", "cifar-10")
MEMBERS = {"train": tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
           "test": ("cifar-10-batches-py/test_batch",)}
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as fn   # NumPy >= 2
    except ImportError:                                            # pragma: no cover (NumPy 1.x)
        from numpy.core.multiarray import _reconstruct as fn
    return fn


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays; any other global is refused."""
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise DataError(f"CIFAR batch refers to {module}.{name}, which the official format "
                            "never does: the archive is not the original, refusing to load it")
        if name == "_reconstruct":
            return _reconstruct()
        return super().find_class(module, name)


def _field(batch: dict, key: str, member: str):
    for k in (key.encode(), key):             # Python-2 pickles have bytes keys
        if k in batch:
            return batch[k]
    raise DataError(f"{member}: batch has no {key!r} entry (keys: {sorted(map(str, batch))})")


def read_cifar10(path, split: str = "train"):
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` of one split of the archive."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"CIFAR-10 archive {path} does not exist")
    images, labels = [], []
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in MEMBERS[split]:
                try:
                    handle = archive.extractfile(member)
                except KeyError:
                    handle = None
                if handle is None:
                    raise DataError(f"{path}: archive has no file {member}; is it cifar-10-python.tar.gz?")
                batch = _ArrayOnlyUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
                if not isinstance(batch, dict):
                    raise DataError(f"{path}:{member}: expected a dict, found {type(batch).__name__}")
                data = np.asarray(_field(batch, "data", member))
                if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                    raise DataError(f"{path}:{member}: data must be uint8 (N, 3072), "
                                    f"found {data.dtype} {data.shape}")
                label = np.asarray(_field(batch, "labels", member), dtype=np.int64)
                if label.shape != (len(data),):
                    raise DataError(f"{path}:{member}: {label.shape} labels for {len(data)} images")
                images.append(data.reshape(-1, 3, 32, 32))
                labels.append(label)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError,
            ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:   # malformed pickle
        raise DataError(f"{path}: cannot read the CIFAR-10 archive ({exc}); it is truncated or "
                        "corrupt: delete it and download it again") from None
    return np.concatenate(images), np.concatenate(labels)
