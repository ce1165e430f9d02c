"""Building a run from its configuration: data, model, objective, provenance.

The commands (train, sample, diagnose, evaluate, reproduce) and the second-stage
trainer all come here, so a run folder is rebuilt exactly as it was trained.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import platform
import sys

import numpy

from .. import __version__, backend
from ..data import load_dataset
from ..vae import PRESETS, objective_class
from ..nn.conv import set_algorithm as set_conv_algorithm
from ..vae.models import ConvVAE, DenseVAE, build_model as _build_model
from .config import ConfigError, RunConfig, dataset_base_name

MODEL_CLASSES = {"dense": DenseVAE, "conv": ConvVAE}
MODEL_KEYS = {"dense": ("hidden", "latent_dim", "activation", "output"),
              "conv": ("channels", "dense", "latent_dim", "batchnorm", "activation", "output")}


def use_backend(config: RunConfig, override=None) -> str:
    """Select the run's backend, dtype and seed; returns the backend's name."""
    name = override or config.run.backend or os.environ.get("MINIVAE_BACKEND", "numpy")
    backend.use(name, dtype=config.run.dtype, seed=config.run.seed)
    return backend.name()


def load_data(config: RunConfig, data_dir=None):
    """(train, test) :class:`~minivae.data.Dataset` of the run (``data_dir`` overrides the config's)."""
    data = config.data
    common = dict(data_dir=data_dir or data.data_dir, image_size=data.image_size, seed=config.run.seed)
    train = load_dataset(data.dataset, split="train", n=data.n_train, **common)
    test = load_dataset(data.dataset, split="test", n=data.n_test, **common)
    return train, test


def model_spec(config: RunConfig, input_shape) -> dict:
    """The complete architecture: the preset's values, the overrides, and the network's own
    defaults for the rest -- what ``config.json`` records under ``model``."""
    model = config.model
    spec = dict(PRESETS[model.preset]) if model.preset else {"kind": model.model}
    any_shape = spec.pop("any_shape", False)
    if model.preset and not any_shape and tuple(spec["input_shape"]) != tuple(input_shape):
        raise ConfigError(f"preset {model.preset!r} takes images of shape {tuple(spec['input_shape'])} "
                          f"(channels, height, width) but the data has shape {tuple(input_shape)}; choose a "
                          "matching preset, --image-size, or --model dense")
    if model.model is not None and model.preset is not None and model.model != spec["kind"]:
        raise ConfigError(f"--model {model.model} contradicts preset {model.preset!r} (a {spec['kind']} "
                          "network); give one of them")
    kind = spec.pop("kind")
    spec.pop("input_shape", None)
    for key in MODEL_KEYS[kind]:
        value = getattr(model, key)
        if value is not None:
            spec[key] = value
    given_elsewhere = [k for k in ("hidden", "channels", "dense", "batchnorm")
                       if getattr(model, k) is not None and k not in MODEL_KEYS[kind]]
    if given_elsewhere:
        raise ConfigError(f"a {kind} network has no {', '.join('--' + k for k in given_elsewhere)}")
    defaults = {k: p.default for k, p in inspect.signature(MODEL_CLASSES[kind].__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    for key in MODEL_KEYS[kind]:
        spec.setdefault(key, defaults[key])
    spec = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items() if k in MODEL_KEYS[kind]}
    return {"model": kind, **spec}


def build_model(config: RunConfig, input_shape):
    """The network of ``config`` for images of ``input_shape``; fills ``config.model`` with the
    resolved architecture."""
    spec = model_spec(config, input_shape)
    for key, value in spec.items():
        setattr(config.model, key, value)
    kind = spec.pop("model")
    try:
        model = _build_model(None, input_shape=tuple(input_shape), kind=kind, **spec)
    except ValueError as exc:
        raise ConfigError(f"cannot build the {kind} network: {exc}") from None
    set_conv_algorithm(model, config.run.conv_algorithm)
    return model


def complete_config(config: RunConfig, train, test) -> None:
    """Record what the data resolved to (image side, example counts)."""
    config.data.image_size = int(train.shape[-1])
    config.data.n_train, config.data.n_test = len(train), len(test)


def load_classifier_for(path, dataset_name, train=None):
    """GECO's CLA classifier: ``path`` or ``runs/classifier-<dataset>``, checked against the data."""
    from ..classifier import ClassifierError, default_dir, load_classifier  # noqa: PLC0415
    if train is not None and train.labels is None:
        raise ConfigError(f"constraint cla needs labels, and dataset {dataset_name!r} has none; use a labelled "
                          "dataset (mnist, fashion-mnist, sprites, cifar10) or another constraint")
    path = path or default_dir(dataset_name)
    if not os.path.exists(path):
        raise ConfigError(f"constraint cla needs a trained classifier and found none at {path!r}: train one with "
                          f"python -m minivae.classifier --dataset {dataset_name} --out {path}, or pass "
                          "--classifier PATH")
    try:
        model = load_classifier(path)
    except (FileNotFoundError, ClassifierError) as exc:
        raise ConfigError(f"constraint cla: {exc}") from None
    if train is not None:
        if tuple(model.input_shape) != tuple(train.shape):
            raise ConfigError(f"constraint cla: the classifier in {path!r} takes images of shape "
                              f"{tuple(model.input_shape)}, the data has {tuple(train.shape)}; train one on this data")
        if int(train.labels.max()) >= model.n_classes:
            raise ConfigError(f"constraint cla: the classifier in {path!r} knows {model.n_classes} classes, the "
                              f"data has labels up to {int(train.labels.max())}; train one on this data")
    return model, os.path.abspath(path)


def build_objective(config: RunConfig, train=None):
    """The objective of ``config`` (loading GECO's classifier when CLA asks for one)."""
    cls, _ = objective_class(config.objective_name)
    context = {}
    if "cla" in getattr(config.objective, "constraint", ()):
        classifier, path = load_classifier_for(config.objective.classifier, dataset_base_name(config.data.dataset),
                                               train)
        config.objective = dataclasses.replace(config.objective, classifier=path)
        context["classifier"] = classifier
    try:
        objective = cls.from_params(config.objective, **context)
    except ValueError as exc:
        raise ConfigError(f"objective {config.objective_name!r}: {exc}") from None
    if objective.needs_labels and train is not None and train.labels is None:
        raise ConfigError(f"objective {config.objective_name!r} needs labels, and dataset "
                          f"{config.data.dataset!r} has none")
    return objective


def data_fingerprint(train, test) -> dict:
    """SHA-256 of exactly the images (and labels) the run used, and of the data file when it is one."""
    def digest(ds):
        h = hashlib.sha256(numpy.ascontiguousarray(ds.images).tobytes())
        if ds.labels is not None:
            h.update(numpy.ascontiguousarray(ds.labels).tobytes())
        return h.hexdigest()
    return {"name": train.name, "train_sha256": digest(train), "test_sha256": digest(test)}


def provenance(config: RunConfig, train=None, test=None, argv=None) -> dict:
    """Versions, backend and device, seed, the command line and the data fingerprint."""
    info = {"minivae": __version__, "numpy": numpy.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "backend": backend.name(), "dtype": config.run.dtype,
            "device": device_name(), "seed": config.run.seed,
            "command": " ".join([os.path.basename(sys.executable), "-m", "minivae.train",
                                 *(sys.argv[1:] if argv is None else argv)])}
    if backend.name() == "cupy":
        xp = backend.xp()
        info["cupy"] = getattr(xp, "__version__", "unknown")
    if train is not None:
        info["data"] = data_fingerprint(train, test)
        if config.data.dataset.endswith((".npy", ".npz")) and os.path.isfile(config.data.dataset):
            from ..fileio import sha256_file  # noqa: PLC0415
            info["data"]["file_sha256"] = sha256_file(config.data.dataset)
    return info


def device_name() -> str:
    if backend.name() != "cupy":
        return f"CPU ({os.cpu_count()} cores)"
    try:
        xp = backend.xp()
        props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        name = props.get("name", b"GPU")
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - a name is a courtesy, never a failure
        return "CUDA GPU"


__all__ = ["build_model", "build_objective", "complete_config", "data_fingerprint", "load_classifier_for",
           "load_data", "model_spec", "provenance", "use_backend"]
