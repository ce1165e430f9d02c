"""MNIST and Fashion-MNIST from their original IDX gzip files, verified by SHA-256.

MNIST: LeCun, Cortes & Burges, yann.lecun.com/exdb/mnist (CC BY-SA 3.0).
Fashion-MNIST: Xiao, Rasul & Vollgraf (2017), arXiv:1708.07747 (MIT licence).
Both: 60,000 training and 10,000 test 28×28 greyscale images, labels 0–9; the
official train/test split is used. The checksums are the widely listed
SHA-256 of the published files (see shared/data/README.md).
"""
from __future__ import annotations

import numpy as np

from .dataset import DataError
from .download import RemoteFile, locate
from .idx import read_idx

_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://storage.googleapis.com/cvdf-datasets/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

# name -> (sha256, bytes), per dataset
_PUBLISHED = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        "train-labels-idx1-ubyte.gz": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        "t10k-images-idx3-ubyte.gz": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        "t10k-labels-idx1-ubyte.gz": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        "train-labels-idx1-ubyte.gz": ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        "t10k-images-idx3-ubyte.gz": ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        "t10k-labels-idx1-ubyte.gz": ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    },
}
_MIRRORS = {"mnist": _MNIST_MIRRORS, "fashion-mnist": _FASHION_MIRRORS}
# Folder names inside a data root; the first is where downloads go.
FOLDERS = {"mnist": ("mnist", "MNIST/raw", "MNIST"),
           "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST")}
SPLIT_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
LABEL_NAMES = {
    "mnist": tuple("0123456789"),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def remote_files(dataset: str, split: str) -> list[RemoteFile]:
    """The two published files (images, labels) of one split."""
    table = _PUBLISHED[dataset]
    return [RemoteFile(name, *table[name], tuple(m + name for m in _MIRRORS[dataset]))
            for name in SPLIT_FILES[split]]


def load_idx_split(dataset: str, split: str, data_dir=None, download=None):
    """``(images uint8 (N, 28, 28), labels int64 (N,))`` of one official split."""
    image_path, label_path = locate(dataset, remote_files(dataset, split), FOLDERS[dataset],
                                    data_dir, download)
    images, labels = read_idx(image_path), read_idx(label_path)
    # The checksums already pin these files; these checks guard the format contract itself.
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{image_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{label_path}: {labels.shape} labels for {len(images)} images")
    return images, labels.astype(np.int64)
