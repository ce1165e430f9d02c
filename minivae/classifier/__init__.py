"""A small convolutional image classifier trained with minivae itself.

It provides GECO's CLA constraint (math.md §3) and the features of the Fréchet
distance (math.md §6). Train one with ``python -m minivae.classifier --dataset mnist``
(it is saved in ``runs/classifier-mnist/classifier.npz``, its test accuracy printed
and stored with the weights); load it with :func:`load_classifier`.
"""
from .model import Classifier
from .training import (ClassifierError, FILENAME, accuracy, cross_entropy, default_dir, load_classifier,
                       predict, train_classifier)

__all__ = ["Classifier", "ClassifierError", "FILENAME", "accuracy", "cross_entropy", "default_dir",
           "load_classifier", "predict", "train_classifier"]
