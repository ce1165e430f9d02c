"""The training configuration: defaults, the command line, and config files.

Precedence, lowest first: the defaults below, a ``--config`` file (JSON or TOML,
the same keys with ``_`` or ``-``), then flags given on the command line.
"""
from __future__ import annotations

import argparse
import json
import os

from ..vae.models import PRESETS

DEFAULTS = {
    # data
    "dataset": "sprites", "data_dir": None, "image_size": None, "n_train": None, "n_test": None,
    # model
    "preset": None, "model": None, "hidden": None, "channels": None, "latent_dim": None,
    "batchnorm": None, "output": "sigmoid", "activation": None,
    # objective
    "objective": "balanced", "likelihood": None, "gamma": None, "beta": None, "kl_weight": None,
    "gamma_min": None,
    "constraint": None, "kappa": None, "geco_alpha": None, "geco_eta": None, "geco_scale": None,
    "lambda_init": None, "lambda_min": None, "lambda_max": None, "classifier": None,
    # optimisation
    "epochs": 10, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0, "max_steps": None,
    # runtime
    "backend": None, "dtype": "float32", "seed": 0, "out": None, "log_every": 50,
    "checkpoint_every": 0, "n_samples": 64, "diagnose_every": 0,
}

PRESET_BY_DATASET = {"sprites": "sprites-dense", "mnist": "mnist-dense", "fashion-mnist": "mnist-dense",
                     "cifar10": "cifar-conv"}

HELP = {
    "dataset": "data set: sprites (generated, default), mnist, fashion-mnist, cifar10, or a path to a "
               ".npy/.npz image array",
    "data_dir": "folder holding the data files (then $MINIVAE_DATA, then the user cache folder)",
    "image_size": "resize (sprites: render) images to this side length",
    "n_train": "use only the first N training images (sprites: generate N; default 20000)",
    "n_test": "use only the first N test images",
    "preset": f"network preset: {', '.join(PRESETS)} (default: by dataset)",
    "model": "network kind without a preset: dense or conv",
    "hidden": "dense hidden widths, comma separated (e.g. 256,64,32)",
    "channels": "conv channels per stride-2 layer, comma separated (e.g. 32,64)",
    "latent_dim": "number of latent variables k",
    "batchnorm": "BatchNorm after hidden conv layers (true/false)",
    "output": "decoder output: sigmoid (images in [0,1]) or linear",
    "activation": "hidden activation: relu, leaky_relu, elu, tanh, softplus",
    "objective": "elbo | beta-vae | bernoulli | learned-gamma | balanced | geco",
    "likelihood": "elbo's decoder likelihood: gaussian (default) or bernoulli",
    "gamma": "fixed decoder variance γ for elbo (default 1)",
    "beta": "KL weight β for elbo / learned-gamma (default 1)",
    "kl_weight": "balanced: KL multiplier k (default 1; the authors' code uses (2H/latent)^2)",
    "gamma_min": "learned-gamma: lower bound on γ (default 0 = off)",
    "constraint": "geco: constraint(s) re, fre, pncc, cla (comma separated for several)",
    "kappa": "geco: tolerance(s) κ, one per constraint (comma separated)",
    "geco_alpha": "geco: moving-average factor α (default 0.99)",
    "geco_eta": "geco: dual step η (default 0.01)",
    "geco_scale": "geco: normaliser s of the λ update (default κ² for RE-type constraints)",
    "lambda_init": "geco: initial λ (default 1)",
    "lambda_min": "geco: lower bound of λ (default 1e-6)",
    "lambda_max": "geco: upper bound of λ (default 1e6)",
    "classifier": "geco cla: folder or .npz of a classifier trained with python -m minivae.classifier",
    "epochs": "number of passes over the training set",
    "batch_size": "minibatch size",
    "lr": "Adam learning rate",
    "weight_decay": "Adam L2 weight decay",
    "max_steps": "stop after this many optimiser steps in total (checkpoint written; --resume continues)",
    "backend": "numpy (CPU) or cupy (CUDA GPU); default $MINIVAE_BACKEND or numpy",
    "dtype": "float32 (default) or float64",
    "seed": "random seed (data order, initialisation, ε)",
    "out": "run folder (default runs/<dataset>-<preset>-<objective>)",
    "log_every": "write metrics and progress every N steps",
    "checkpoint_every": "also write the checkpoint every N steps (0: at epoch ends only)",
    "n_samples": "number of prior samples in samples.png",
    "diagnose_every": "record per-latent Var μ and E σ² every N steps in latents.jsonl (0: off)",
}

INT_KEYS = {"image_size", "n_train", "n_test", "latent_dim", "epochs", "batch_size", "max_steps", "seed",
            "log_every", "checkpoint_every", "n_samples", "diagnose_every"}
FLOAT_KEYS = {"gamma", "beta", "kl_weight", "gamma_min", "geco_alpha", "geco_eta", "geco_scale",
              "lambda_init", "lambda_min", "lambda_max", "lr", "weight_decay"}
BOOL_KEYS = {"batchnorm"}
CHOICES = {"output": ("sigmoid", "linear"), "dtype": ("float32", "float64"), "backend": ("numpy", "cupy"),
           "model": ("dense", "conv"), "likelihood": ("gaussian", "bernoulli")}


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


def _parse_bool(text):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minivae.train",
        description="Train a VAE (ELBO, β-VAE, learned γ, balanced γ or GECO) and write a run folder "
                    "with config.json, metrics.jsonl, checkpoint.npz, samples.png, "
                    "reconstructions.png and report.json.",
        argument_default=argparse.SUPPRESS)
    parser.add_argument("--config", help="JSON or TOML file setting any of the keys below")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint, exactly where it stopped "
                             "(flags given now may extend --epochs / --max-steps)")
    parser.add_argument("--stage2", metavar="RUN_DIR",
                        help="train the second-stage VAE on the latent codes of the stage-1 run in RUN_DIR")
    for key, text in HELP.items():
        flag = "--" + key.replace("_", "-")
        kind = int if key in INT_KEYS else float if key in FLOAT_KEYS else _parse_bool if key in BOOL_KEYS else str
        default = DEFAULTS.get(key)
        suffix = f" [default: {default}]" if default is not None else ""
        parser.add_argument(flag, dest=key, type=kind, choices=CHOICES.get(key), help=text + suffix)
    return parser


def load_config_file(path) -> dict:
    """Keys from a JSON or TOML file (``-`` in keys read as ``_``); unknown keys are refused."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        if str(path).endswith(".toml"):
            import tomllib  # noqa: PLC0415  (Python ≥ 3.11 only; JSON works everywhere)
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        else:
            with open(path) as f:
                raw = json.load(f)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path!r} must hold a table/object of keys")
    config = {k.replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"config file {path!r} has unknown keys {unknown}; see --help for the keys")
    return config


def resolve(args: dict) -> dict:
    """Merge defaults, config file and flags into one config dict, then validate it."""
    config = dict(DEFAULTS)
    if args.get("config"):
        config.update(load_config_file(args["config"]))
    config.update({k: v for k, v in args.items() if k in DEFAULTS})
    return validate(config)


def _int_list(value, key):
    if value is None or isinstance(value, (list, tuple)):
        return None if value is None else [int(v) for v in value]
    try:
        return [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{key} must be comma-separated integers, got {value!r}") from None


def _coerce(config):
    """Config files may give numbers as strings; make every typed key its type."""
    for keys, kind in ((INT_KEYS, int), (FLOAT_KEYS, float), (BOOL_KEYS, _parse_bool)):
        for key in keys:
            value = config.get(key)
            if value is None or (kind is not _parse_bool and isinstance(value, kind) and not isinstance(value, bool)):
                continue
            try:
                config[key] = kind(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number' if kind is float else 'true or false'}, "
                                  f"got {value!r}") from None


def validate(config: dict) -> dict:
    _coerce(config)
    for key in INT_KEYS:
        if config.get(key) is not None and int(config[key]) < (0 if key in ("seed", "checkpoint_every",
                                                                             "diagnose_every") else 1):
            raise ConfigError(f"{key} must be a positive integer, got {config[key]}")
    for key in ("lr",):
        if not float(config[key]) > 0:
            raise ConfigError(f"{key} must be positive, got {config[key]}")
    for key, choices in CHOICES.items():
        if config.get(key) is not None and config[key] not in choices:
            raise ConfigError(f"unknown {key} {config[key]!r}; choose one of: {', '.join(choices)}")
    config["hidden"] = _int_list(config.get("hidden"), "hidden")
    config["channels"] = _int_list(config.get("channels"), "channels")
    if config["preset"] is None and config["model"] is None:
        config["preset"] = PRESET_BY_DATASET.get(config["dataset"], None)
        if config["preset"] is None:
            config["model"] = "dense"
    if config["preset"] is not None and config["preset"] not in PRESETS:
        raise ConfigError(f"unknown preset {config['preset']!r}; choose one of: {', '.join(PRESETS)}")
    if config["out"] is None:
        name = os.path.splitext(os.path.basename(str(config["dataset"])))[0]
        config["out"] = os.path.join("runs", f"{name}-{config['preset'] or config['model']}-{config['objective']}")
    return config
