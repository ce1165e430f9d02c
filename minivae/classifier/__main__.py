"""``python -m minivae.classifier``: train the classifier of a labelled dataset, print its test accuracy."""
from __future__ import annotations

import argparse
import os
import sys

from .. import backend
from ..backend import BackendError
from ..checkpoint import CheckpointError
from ..data import DataError
from .training import ClassifierError, default_dir, train_classifier


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m minivae.classifier",
        description="Train the small conv-net classifier used by GECO's CLA constraint and by the Fréchet "
                    "distance; writes OUT/classifier.npz (weights, config, test accuracy) and prints the "
                    "test accuracy.")
    p.add_argument("--dataset", default="mnist", help="labelled data set: mnist (default), fashion-mnist, "
                   "sprites (shape classes), cifar10, or a .npz with labels")
    p.add_argument("--out", help="output folder (default runs/classifier-<dataset>)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the training set [default: 2]")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size [default: 128]")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate [default: 0.001]")
    p.add_argument("--data-dir", help="folder holding the data files (then $MINIVAE_DATA, then the cache)")
    p.add_argument("--n-train", type=int, help="use only the first N training images (sprites: generate N)")
    p.add_argument("--n-test", type=int, help="use only the first N test images")
    p.add_argument("--image-size", type=int, help="resize (sprites: render) images to this side length")
    p.add_argument("--seed", type=int, default=0, help="random seed [default: 0]")
    p.add_argument("--backend", choices=("numpy", "cupy"), help="numpy (CPU) or cupy (GPU); default "
                   "$MINIVAE_BACKEND or numpy")
    p.add_argument("--force", action="store_true", help="overwrite an existing classifier.npz in --out")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or default_dir(args.dataset)
    try:
        if os.path.exists(os.path.join(out, "classifier.npz")) and not args.force:
            raise ClassifierError(f"{out} already holds classifier.npz; pass --force to retrain it, or "
                                  "choose another --out (nothing was overwritten)")
        backend.use(args.backend or os.environ.get("MINIVAE_BACKEND", "numpy"), dtype="float32", seed=args.seed)
        log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
        result = train_classifier(args.dataset, out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  data_dir=args.data_dir, seed=args.seed, log=log, n_train=args.n_train,
                                  n_test=args.n_test, image_size=args.image_size)
    except KeyboardInterrupt:
        return 130
    except (ClassifierError, DataError, CheckpointError, BackendError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"test accuracy {result['test_accuracy']:.4f} on {result['n_test']} {args.dataset} test images "
          f"({result['seconds']:.0f} s) -> {result['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
