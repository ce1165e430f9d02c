"""``load_dataset``: one entry point for every dataset, returning a :class:`Dataset`.

Splits: the official train/test split for ``mnist``, ``fashion-mnist`` and
``cifar10``; for ``sprites`` the test split is drawn from an independent seeded
stream of the same generative process (held out by construction); for an
array file, a seeded permutation holds out ``test_fraction`` of the examples
(unless an ``.npz`` carries ``x_train``/``x_test`` itself).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import cifar, mnist, sprites
from .arrays import check_labels, load_array_file, resize_images, to_images
from .dataset import DataError, Dataset
from .download import locate

DATASETS = ("sprites", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "test")
ARRAY_SUFFIXES = (".npy", ".npz")
SPRITES_SIZE = {"train": 20000, "test": 5000}     # default number of generated sprites
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}
_OPTIONS = {"sprites": ("shapes",), "array": ("key", "layout", "test_fraction")}


def dataset_choices() -> str:
    return ", ".join(DATASETS) + ", or a path to a .npy/.npz image array"


def _resolve(name: str) -> str:
    if not isinstance(name, (str, Path)):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    if str(name).lower().endswith(ARRAY_SUFFIXES):
        return "array"
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise DataError(f"unknown dataset {str(name)!r}; choose one of: {dataset_choices()}")
    return key


def _first(count, n, name, split):
    if n is None:
        return slice(None)
    if int(n) != n or n < 1:
        raise DataError(f"n must be a positive integer, got {n!r}")
    if n > count:
        raise DataError(f"n={n} but {name} ({split}) has only {count} examples")
    return slice(int(n))


def _sprites(split, image_size, n, seed, shapes=sprites.DEFAULT_SHAPES):
    size = 28 if image_size is None else image_size
    if not np.isscalar(size):
        if len(size) != 2 or size[0] != size[1]:
            raise DataError(f"sprites are square: give one image size, got {image_size!r}")
        size = size[0]
    shapes = sprites.check_shapes(shapes)
    count = SPRITES_SIZE[split] if n is None else n
    # train and test come from independent streams of the same seed
    images, factors = sprites.make_sprites(count, size, seed=[seed, SPLITS.index(split)], shapes=shapes)
    return Dataset(images, factors[:, 0].astype(np.int64), factors, sprites.FACTOR_NAMES,
                   "sprites", split, shapes)


def _array(path, split, n, seed, key=None, layout=None, test_fraction=0.1):
    raw, labels, has_split = load_array_file(path, key=key, split=split)
    source = str(path)
    images = to_images(raw, layout=layout, source=source)
    labels = check_labels(labels, len(images), source)
    if not has_split:
        if not 0.0 < test_fraction < 1.0 or len(images) < 2:
            raise DataError(f"{source}: cannot hold out test_fraction={test_fraction} of "
                            f"{len(images)} example(s); use 0 < test_fraction < 1 and >= 2 examples")
        order = np.random.default_rng(seed).permutation(len(images))
        n_test = min(max(1, round(test_fraction * len(images))), len(images) - 1)
        pick = order[:n_test] if split == "test" else order[n_test:]
        images, labels = images[pick], (None if labels is None else labels[pick])
    keep = _first(len(images), n, source, split)
    return Dataset(images[keep], None if labels is None else labels[keep],
                   name=Path(path).name, split=split)


def load_dataset(name: str = "sprites", split: str = "train", data_dir=None, image_size=None,
                 n: int | None = None, seed: int = 0, *, download: bool | None = None,
                 **options) -> Dataset:
    """Load one split of a dataset as float32 ``(N, C, H, W)`` images in [0, 1].

    name        ``sprites`` (default, generated), ``mnist``, ``fashion-mnist``,
                ``cifar10``, or a path to a ``.npy``/``.npz`` image array
    split       ``"train"`` or ``"test"``
    data_dir    where to look first for data files (then ``$MINIVAE_DATA``, then the cache)
    image_size  sprites: the rendered size (default 28); others: resize to this
                int or ``(h, w)`` if it differs from the native size
    n           sprites: how many to generate (default 20,000 train / 5,000 test);
                others: keep the first ``n`` examples of the split
    seed        sprites: the generation seed; arrays: the train/test permutation
    download    None: download missing files unless ``MINIVAE_OFFLINE=1``; False: never
    options     sprites: ``shapes=("square", "ellipse", "heart")`` (or add "triangle");
                arrays: ``key`` (the images in an .npz), ``layout`` ("nchw"/"nhwc"),
                ``test_fraction`` (default 0.1)
    """
    kind = _resolve(name)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    unknown = sorted(set(options) - set(_OPTIONS.get(kind, ())))
    if unknown:
        accepted = ", ".join(_OPTIONS.get(kind, ())) or "none"
        raise TypeError(f"option(s) {', '.join(unknown)} not understood by dataset {kind!r} "
                        f"(its options: {accepted})")
    if kind == "sprites":
        return _sprites(split, image_size, n, seed, **options)
    if kind == "array":
        data = _array(name, split, n, seed, **options)
    elif kind == "cifar10":
        (path,) = locate(kind, [cifar.ARCHIVE], cifar.FOLDERS, data_dir, download)
        raw, labels = cifar.read_cifar10(path, split)
        keep = _first(len(raw), n, kind, split)
        data = Dataset(to_images(raw[keep], layout="nchw", source=str(path)), labels[keep],
                       name=kind, split=split, label_names=cifar.LABEL_NAMES)
    else:
        raw, labels = mnist.load_idx_split(kind, split, data_dir, download)
        keep = _first(len(raw), n, kind, split)
        data = Dataset(to_images(raw[keep], source=kind), labels[keep], name=kind, split=split,
                       label_names=mnist.LABEL_NAMES[kind])
    if image_size is not None:
        data.images = resize_images(data.images, image_size)
    return data
