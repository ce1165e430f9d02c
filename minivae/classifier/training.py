"""Training, evaluating, saving and loading the classifier (``python -m minivae.classifier``).

Cross-entropy −log softmax(c(x))[y] (stable: logits − logsumexp), Adam, seeded
shuffling; the test accuracy is measured on the dataset's test split and saved with
the weights in ``<out>/classifier.npz`` (a minivae checkpoint: parameters plus a JSON
config holding input_shape, n_classes, dataset and test_accuracy).
"""
from __future__ import annotations

import math
import os
import time

import numpy

from .. import backend, ops
from ..autograd import Tensor
from ..nn.evaluation import batched_map, evaluating
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..data import BatchIterator, load_dataset
from ..optim import Adam
from .model import Classifier

FILENAME = "classifier.npz"
KIND = "minivae-classifier"


class ClassifierError(ValueError):
    """A classifier file is missing, foreign or does not fit the data."""


def default_dir(dataset: str) -> str:
    """Where other commands look for the classifier of ``dataset``: ``runs/classifier-<dataset>``."""
    name = os.path.splitext(os.path.basename(str(dataset)))[0]
    return os.path.join("runs", f"classifier-{name}")


def cross_entropy(logits, labels):
    """Mean over the batch of −log softmax(logits)[y] (per example, nats)."""
    xp = backend.get_array_module(logits.data)
    labels = xp.asarray(labels)
    onehot = (labels[:, None] == xp.arange(logits.shape[1])[None, :]).astype(logits.dtype)
    log_softmax = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    return -ops.mean(ops.sum(log_softmax * Tensor(onehot), axis=1))


def predict(model, images, batch_size: int = 1000) -> numpy.ndarray:
    """Predicted classes of host images (N, C, H, W), no graph."""
    if len(images) == 0:
        return numpy.zeros(0, dtype=numpy.int64)
    with evaluating(model):
        return batched_map(model, images, batch_size=batch_size).argmax(axis=1)


def accuracy(model, images, labels, batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose predicted class equals ``labels``."""
    return float((predict(model, images, batch_size) == numpy.asarray(labels)).mean())


def _n_classes(data) -> int:
    if data.label_names:
        return len(data.label_names)
    return int(data.labels.max()) + 1


def train_classifier(dataset, out_dir=None, epochs: int = 2, batch_size: int = 128, lr: float = 1e-3,
                     data_dir=None, seed: int = 0, log=print, n_train=None, n_test=None, image_size=None,
                     log_every: int = 100) -> dict:
    """Train a :class:`Classifier` on the labelled ``dataset`` (a name for ``load_dataset``) and save
    it to ``out_dir/classifier.npz`` (default ``runs/classifier-<dataset>``).

    Returns ``dict(test_accuracy=..., train_accuracy=..., path=..., n_train=..., n_test=..., seconds=...)``.
    """
    if int(epochs) < 1 or int(batch_size) < 1 or not float(lr) > 0:
        raise ValueError(f"train_classifier: epochs and batch_size must be positive integers and lr positive, "
                         f"got epochs={epochs}, batch_size={batch_size}, lr={lr}")
    out_dir = out_dir or default_dir(dataset)
    backend.manual_seed(seed)
    common = dict(data_dir=data_dir, image_size=image_size, seed=seed)
    train = load_dataset(dataset, split="train", n=n_train, **common)
    test = load_dataset(dataset, split="test", n=n_test, **common)
    if train.labels is None or test.labels is None:
        raise ClassifierError(f"dataset {dataset!r} has no labels: a classifier needs labelled data")
    n_classes = max(_n_classes(train), _n_classes(test))
    model = Classifier(train.shape, n_classes)
    optimizer = Adam(model.parameters(), lr=lr)
    batches = BatchIterator(train.images, batch_size, shuffle=True, seed=seed, return_indices=True)
    os.makedirs(out_dir, exist_ok=True)
    log(f"classifier on {dataset}: {len(train)} train / {len(test)} test images of shape {train.shape}, "
        f"{n_classes} classes, {model.num_parameters()} parameters -> {out_dir}")
    t0, step = time.perf_counter(), 0
    for epoch in range(int(epochs)):
        running_loss, running_correct, running_n = 0.0, 0, 0
        for x_host, indices in batches:
            labels = train.labels[indices]
            optimizer.zero_grad()
            logits = model(Tensor(backend.to_device(x_host)))
            loss = cross_entropy(logits, backend.to_device(labels))
            loss.backward()
            optimizer.step()
            step += 1
            value = float(loss.data)
            if not math.isfinite(value):
                raise ClassifierError(f"non-finite classifier loss at step {step}; lower --lr")
            running_loss += value * len(labels)
            running_correct += int((backend.to_host(logits.data).argmax(1) == labels).sum())
            running_n += len(labels)
            if log_every and step % log_every == 0:
                log(f"epoch {epoch + 1} step {step}  loss {running_loss / running_n:.4f}  "
                    f"train acc {running_correct / running_n:.4f}  {time.perf_counter() - t0:.0f}s")
        test_acc = accuracy(model, test.images, test.labels)
        log(f"epoch {epoch + 1}/{epochs}: train loss {running_loss / max(running_n, 1):.4f}  "
            f"train acc {running_correct / max(running_n, 1):.4f}  test acc {test_acc:.4f}")
    seconds = time.perf_counter() - t0
    config = {"kind": KIND, **model.config(), "dataset": str(dataset), "test_accuracy": test_acc,
              "train_accuracy_last_epoch": running_correct / max(running_n, 1), "epochs": int(epochs),
              "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed), "n_train": len(train),
              "n_test": len(test), "image_size": image_size,
              "label_names": list(train.label_names) if train.label_names else None,
              "seconds": seconds}
    path = save_checkpoint(os.path.join(out_dir, FILENAME), model, config=config, step=step, epoch=int(epochs))
    return {"test_accuracy": test_acc, "train_accuracy": config["train_accuracy_last_epoch"], "path": path,
            "n_train": len(train), "n_test": len(test), "n_classes": n_classes, "seconds": seconds}


def _resolve_path(path) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        inner = os.path.join(path, FILENAME)
        if not os.path.isfile(inner):
            raise FileNotFoundError(f"no {FILENAME} in {path!r}; train a classifier with "
                                    f"python -m minivae.classifier --dataset NAME --out {path}")
        return inner
    if not os.path.isfile(path):
        raise FileNotFoundError(f"classifier not found: {path!r} (give the folder written by "
                                "python -m minivae.classifier, or its classifier.npz)")
    return path


def load_classifier(path) -> Classifier:
    """The classifier saved in ``path`` (a folder holding classifier.npz, or the .npz itself),
    in eval mode, in the active backend and dtype. Its config (test_accuracy, dataset...) is
    kept as ``model.info``."""
    file = _resolve_path(path)
    try:
        ckpt = load_checkpoint(file)
    except CheckpointError as exc:
        raise ClassifierError(f"{file} is not a minivae classifier: {exc}") from None
    config = ckpt.config if isinstance(ckpt.config, dict) else {}
    if config.get("kind") != KIND:
        raise ClassifierError(f"{file} is a minivae checkpoint but not a classifier (its config has no "
                              f"kind={KIND!r}); train one with python -m minivae.classifier")
    try:
        model = Classifier(config["input_shape"], config["n_classes"], config.get("channels", (32, 64)),
                           config.get("hidden", 128))
        load_checkpoint(file, model)
    except (KeyError, TypeError, ValueError) as exc:   # CheckpointError is a ValueError
        raise ClassifierError(f"{file}: the classifier's weights or config are inconsistent ({exc})") from None
    model.info = dict(config)
    return model.eval()


__all__ = ["ClassifierError", "FILENAME", "accuracy", "cross_entropy", "default_dir", "load_classifier",
           "predict", "train_classifier"]
