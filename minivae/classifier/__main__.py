"""``python -m minivae.classifier``: train the classifier of a labelled dataset, print its test accuracy."""
from __future__ import annotations

import os
import sys

from .. import backend
from ..run.cli import CommandParser, command_main, common_flags, finite_float, log, positive_int
from ..run.folder import RunFolder, check_output_path
from .training import FILENAME, ClassifierError, default_dir, train_classifier


def build_parser():
    p = CommandParser(
        prog="python -m minivae.classifier",
        description="Train the small conv-net classifier used by GECO's CLA constraint and by the Fréchet "
                    "distance; writes OUT/classifier.npz (weights, config, test accuracy) and prints the "
                    "test accuracy.")
    p.add_argument("--dataset", default="mnist", help="labelled data set: mnist (default), fashion-mnist, "
                   "sprites (shape classes), cifar10, or a .npz with labels")
    p.add_argument("--out", help="output folder (default runs/classifier-<dataset>)")
    p.add_argument("--epochs", type=positive_int, default=2, help="passes over the training set [default: 2]")
    p.add_argument("--batch-size", type=positive_int, default=128, help="minibatch size [default: 128]")
    p.add_argument("--lr", type=finite_float, default=1e-3, help="Adam learning rate [default: 0.001]")
    p.add_argument("--n-train", type=positive_int, help="use only the first N training images (sprites: generate N)")
    p.add_argument("--n-test", type=positive_int, help="use only the first N test images")
    p.add_argument("--image-size", type=positive_int, help="resize (sprites: render) images to this side length")
    common_flags(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing classifier.npz in --out")
    return p


def train(args) -> int:
    out = check_output_path(args.out or default_dir(args.dataset))
    if not 0 < args.lr <= 1:
        raise ValueError(f"--lr must lie in (0, 1], got {args.lr}")
    folder = RunFolder(out)
    entries = [n for n in (os.listdir(out) if os.path.isdir(out) else []) if not n.startswith(".")]
    if entries and FILENAME not in entries:
        raise ClassifierError(f"--out {out!r} is not empty and holds no classifier ({', '.join(entries[:3])}); "
                              "choose a new or empty folder (nothing was written)")
    if FILENAME in entries and not args.force:
        raise ClassifierError(f"{out} already holds {FILENAME}; pass --force to retrain it, or choose another "
                              "--out (nothing was overwritten)")
    created = not os.path.isdir(out)
    folder.lock("python -m minivae.classifier", log=log)
    try:
        backend.use(args.backend or os.environ.get("MINIVAE_BACKEND", "numpy"), dtype="float32", seed=args.seed)
        result = train_classifier(args.dataset, out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  data_dir=args.data_dir, seed=args.seed, log=log, n_train=args.n_train,
                                  n_test=args.n_test, image_size=args.image_size)
    except BaseException:
        folder.unlock()
        if created and os.path.isdir(out) and not os.listdir(out):
            os.rmdir(out)
        raise
    folder.unlock()
    print(f"test accuracy {result['test_accuracy']:.4f} on {result['n_test']} {args.dataset} test images "
          f"({result['seconds']:.0f} s) -> {result['path']}")
    return 0


def main(argv=None) -> int:
    return command_main(build_parser, train, argv)


if __name__ == "__main__":
    sys.exit(main())
