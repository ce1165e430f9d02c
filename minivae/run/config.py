"""The run configuration: typed sections (data, model, objective, optimiser, run).

Each section is a dataclass of :func:`minivae.settings.setting` fields; the objective
section is the chosen objective's own ``Params`` (declared in its module). The same
declarations build the command-line flags of ``python -m minivae.train`` and validate
JSON/TOML config files, so both go through one code path (:func:`resolve`).

Precedence, lowest first: defaults, a ``--config`` file, flags. A file may be flat
(``{"lr": 0.001, "objective": "geco"}``) or sectioned (``{"optim": {"lr": 0.001}}``).
``config.json`` records the *resolved* value of everything that ran -- preset widths,
latent size, γ, GECO's η/α/s and λ bounds, the data actually used -- plus provenance
(versions, backend, device, data fingerprint, seed, command line): no ``null``.
"""
from __future__ import annotations

import dataclasses
import json
import os

from ..settings import SettingError, at_least, between, check_value, coerce, non_negative, setting
from ..vae import PRESETS, objective_class, objective_names
from ..vae.objective import REGISTRY

CONFIG_FORMAT, CONFIG_VERSION = "minivae-run", 2
PRESET_BY_DATASET = {"sprites": "sprites-dense", "mnist": "mnist-dense", "fashion-mnist": "mnist-dense",
                     "cifar10": "cifar-conv"}
MAX_SAMPLES = 10000


class ConfigError(ValueError):
    """A configuration value or file is invalid (the message says which and what is allowed)."""


@dataclasses.dataclass
class DataConfig:
    dataset: str = setting("sprites", "data set: sprites (generated), mnist, fashion-mnist, cifar10, or a path "
                           "to a .npy/.npz image array", kind="str")
    data_dir: str = setting(None, "folder holding the data files (then $MINIVAE_DATA, then the user cache)",
                            kind="str", optional=True)
    image_size: int = setting(None, "resize (sprites: render) images to this side length (default: native)",
                              kind="int", check=at_least(4), optional=True)
    n_train: int = setting(None, "use only the first N training images (sprites: generate N; default all / "
                           "20000)", kind="int", check=at_least(1), optional=True)
    n_test: int = setting(None, "use only the first N test images (default all / 5000)", kind="int",
                          check=at_least(1), optional=True)


@dataclasses.dataclass
class ModelConfig:
    preset: str = setting(None, "network preset (default: by dataset)", kind="str", choices=tuple(PRESETS),
                          optional=True)
    model: str = setting(None, "network kind without a preset", kind="str", choices=("dense", "conv"),
                         optional=True)
    hidden: list = setting(None, "dense hidden widths, comma separated (e.g. 256,64,32)", kind="ints",
                           check=lambda v: None if v and min(v) >= 1 else "must be positive widths",
                           optional=True)
    channels: list = setting(None, "conv channels per stride-2 layer, comma separated (e.g. 32,64)",
                             kind="ints", check=lambda v: None if v and min(v) >= 1 else "must be positive",
                             optional=True)
    dense: int = setting(None, "conv: width of the dense layer before the latent heads", kind="int",
                         check=at_least(1), optional=True)
    latent_dim: int = setting(None, "number of latent variables k", kind="int", check=at_least(1), optional=True)
    batchnorm: bool = setting(None, "conv: BatchNorm after hidden conv layers", kind="bool", optional=True)
    output: str = setting("sigmoid", "decoder output: sigmoid (images in [0,1]) or linear", kind="str",
                          choices=("sigmoid", "linear"))
    activation: str = setting(None, "hidden activation", kind="str",
                              choices=("relu", "leaky_relu", "elu", "tanh", "softplus"), optional=True)


@dataclasses.dataclass
class OptimConfig:
    epochs: int = setting(10, "passes over the training set", kind="int", check=at_least(1))
    batch_size: int = setting(128, "minibatch size", kind="int", check=at_least(1))
    lr: float = setting(1e-3, "Adam learning rate (above 1 every weight moves by up to lr per step and the "
                        "run diverges)", kind="float", check=between(0, 1, open_lo=True))
    weight_decay: float = setting(0.0, "Adam L2 weight decay", kind="float", check=non_negative)


@dataclasses.dataclass
class RunSettings:
    backend: str = setting(None, "numpy (CPU) or cupy (CUDA GPU) (default $MINIVAE_BACKEND or numpy)",
                           kind="str", choices=("numpy", "cupy"), optional=True)
    dtype: str = setting("float32", "floating-point precision", kind="str", choices=("float32", "float64"))
    conv_algorithm: str = setting("auto", "how convolutions are computed: im2col (exact GEMM), winograd "
                                  "(F(4x4,2x2) for 4x4 stride-2 layers: fewer multiplications, float32 error "
                                  "about 10x im2col's) or auto (Winograd on the CPU for layers wide enough that it pays)",
                                  kind="str", choices=("auto", "im2col", "winograd"))
    seed: int = setting(0, "random seed (data order, initialisation, ε)", kind="int", check=non_negative)
    out: str = setting(None, "run folder (default runs/<dataset>-<preset>-<objective>[-<what sets it apart>])",
                       kind="str", optional=True)
    log_every: int = setting(50, "write metrics and a progress line every N steps", kind="int", check=at_least(1))
    checkpoint_every: int = setting(0, "also write the checkpoint every N steps (0: off)", kind="int",
                                    check=non_negative)
    checkpoint_minutes: float = setting(5.0, "also write the checkpoint when this many minutes passed since "
                                        "the last one (0: off), so a kill loses minutes, not an epoch",
                                        kind="float", check=non_negative)
    n_samples: int = setting(64, "prior samples in samples.png", kind="int", check=between(1, MAX_SAMPLES))
    diagnose_every: int = setting(0, "record per-latent Var μ and E σ² every N steps in latents.jsonl (0: off)",
                                  kind="int", check=non_negative)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "run": RunSettings}
# keys that may change on --resume without making it a different run
EXTENDABLE = {"optim": ("epochs",),
              "run": ("backend", "conv_algorithm", "out", "log_every", "checkpoint_every", "checkpoint_minutes", "n_samples",
                      "diagnose_every")}
INVOCATION_KEYS = ("max_steps",)  # a stop for one invocation, not part of the run


def _section_of():
    table = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            table[f.name] = section
    return table


SECTION_OF = _section_of()


def objective_param_owners() -> dict:
    """Every objective hyperparameter name -> the objectives that use it."""
    owners = {}
    for name, cls in sorted(REGISTRY.items()):
        for f in dataclasses.fields(cls.Params):
            owners.setdefault(f.name, []).append(name)
    return owners


@dataclasses.dataclass
class RunConfig:
    """One run's whole configuration; ``objective`` is the objective's validated ``Params``."""
    data: DataConfig
    model: ModelConfig
    objective_name: str
    objective: object
    optim: OptimConfig
    run: RunSettings
    max_steps: int | None = None                      # this invocation's stop, not recorded
    provenance: dict = dataclasses.field(default_factory=dict)
    explicit: frozenset = frozenset()                 # keys the user set (for the default folder name)

    def to_json(self) -> dict:
        """The record written to ``config.json`` (no ``None``: unset optional keys are left out)."""
        def clean(obj):
            return {k: v for k, v in dataclasses.asdict(obj).items() if v is not None}
        return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, "data": clean(self.data),
                "model": clean(self.model), "objective": {"name": self.objective_name, **clean(self.objective)},
                "optim": clean(self.optim), "run": clean(self.run), "provenance": dict(self.provenance)}

    def comparable(self) -> dict:
        """The record without what may change on --resume (and without provenance)."""
        record = self.to_json()
        record.pop("provenance")
        for section, keys in EXTENDABLE.items():
            for key in keys:
                record[section].pop(key, None)
        return record


# ------------------------------------------------------------------------------------ reading

def load_config_file(path) -> dict:
    """The keys of a JSON or TOML file (sections flattened); ``-`` in keys read as ``_``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ConfigError(f"config file {path!r} is a folder; give a .json or .toml file")
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        if path.endswith(".toml"):
            raw = _read_toml(path)
        else:
            with open(path) as f:
                raw = json.load(f, parse_constant=lambda c: float(c))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path!r} must hold a table/object of keys")
    return flatten(raw, where=f"config file {path!r}")


def _read_toml(path):
    try:
        import tomllib  # noqa: PLC0415  (Python >= 3.11)
    except ImportError:
        try:
            import tomli as tomllib  # noqa: PLC0415
        except ImportError:
            raise ConfigError(f"reading the TOML file {path!r} needs Python >= 3.11 or `pip install tomli`; "
                              "or write the config as JSON") from None
    with open(path, "rb") as f:
        return tomllib.load(f)


def flatten(raw: dict, where: str = "config") -> dict:
    """Flat keys from a flat or sectioned mapping (also a ``config.json`` record)."""
    flat = {}
    for key, value in raw.items():
        key = str(key).replace("-", "_")
        if key in ("format", "version", "provenance"):
            continue
        if key == "objective" and isinstance(value, dict):
            value = dict(value)
            if "name" in value:
                flat["objective"] = value.pop("name")
            flat.update({str(k).replace("-", "_"): v for k, v in value.items()})
        elif key in SECTIONS and isinstance(value, dict):
            flat.update({str(k).replace("-", "_"): v for k, v in value.items()})
        else:
            flat[key] = value
    known = set(SECTION_OF) | set(objective_param_owners()) | {"objective", "max_steps", "config"}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; "
                          "python -m minivae.train --help lists the keys")
    return flat


# ------------------------------------------------------------------------------------ resolving

def resolve(values: dict, config_file=None) -> RunConfig:
    """Defaults < ``config_file`` < ``values`` (flags or a dict), validated into a :class:`RunConfig`.

    Data- and model-dependent values (native image size, preset widths) are filled later by
    :func:`minivae.run.build.complete_config` once the data are loaded.
    """
    merged = {}
    if config_file is None and values.get("config"):
        config_file = values["config"]
    if config_file:
        merged.update(load_config_file(config_file))
    merged.update(flatten({k: v for k, v in values.items() if k != "config"}, where="the settings"))
    explicit = frozenset(k for k, v in merged.items() if v is not None)
    try:
        return _build(merged, explicit)
    except SettingError as exc:
        raise ConfigError(str(exc)) from None
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc)) from None


def _build(merged, explicit):
    sections = {}
    for section, cls in SECTIONS.items():
        sections[section] = _section(cls, merged)
    name = merged.get("objective")
    name = "balanced" if name is None else coerce(name, "str", "objective")
    cls, fixed = objective_class(name)
    own = {f.name for f in dataclasses.fields(cls.Params)}
    foreign = sorted(k for k, owners in objective_param_owners().items()
                     if k not in own and merged.get(k) is not None)
    if foreign:
        owners = objective_param_owners()
        detail = "; ".join(f"--{k.replace('_', '-')} (used by {', '.join(owners[k])})" for k in foreign)
        raise ConfigError(f"objective {name!r} does not use {detail}")
    for key, value in fixed.items():
        if merged.get(key) not in (None, value):
            raise ConfigError(f"objective {name!r} fixes {key} = {value!r}")
        merged[key] = value
    params = cls.resolve_params(_section(cls.Params, merged))
    if getattr(params, "likelihood", None) == "bernoulli" and sections["model"].output != "sigmoid":
        raise ConfigError("the Bernoulli likelihood needs a decoder with sigmoid output (its logits): use "
                          "--output sigmoid or the gaussian likelihood")
    max_steps = merged.get("max_steps")
    if max_steps is not None:
        max_steps = coerce(max_steps, "int", "max_steps")
        if max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {max_steps}")
    config = RunConfig(sections["data"], sections["model"], name, params, sections["optim"], sections["run"],
                       max_steps=max_steps, explicit=explicit)
    _defaults_from_dataset(config)
    return config


def _section(cls, merged):
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in merged:
            kwargs[f.name] = check_value(f, merged[f.name])
    return cls(**kwargs)


def dataset_base_name(dataset) -> str:
    return os.path.splitext(os.path.basename(str(dataset)))[0]


def _defaults_from_dataset(config: RunConfig):
    model = config.model
    if model.preset is None and model.model is None:
        model.preset = PRESET_BY_DATASET.get(config.data.dataset)
        if model.preset is None:
            model.model = "dense"
    if config.run.out is None:
        config.run.out = os.path.join("runs", default_run_name(config))


def _fmt(v):
    return ",".join(_fmt(x) for x in v) if isinstance(v, list) else f"{v:g}" if isinstance(v, float) else str(v)


def default_run_name(config: RunConfig) -> str:
    """``<dataset>-<preset|model>-<objective>`` plus what tells runs apart: GECO's constraints with
    their κ, and β, γ, the KL weight or the likelihood where they were set."""
    parts = [dataset_base_name(config.data.dataset), config.model.preset or config.model.model,
             config.objective_name]
    params = config.objective
    if config.objective_name == "geco":
        parts.append("+".join(f"{c}{_fmt(k)}" for c, k in zip(params.constraint, params.kappa)))
    for key, tag in (("gamma", "g"), ("beta", "b"), ("kl_weight", "k"), ("likelihood", "")):
        if key in config.explicit and hasattr(params, key) and config.objective_name != "bernoulli":
            parts.append(f"{tag}{_fmt(getattr(params, key))}")
    return "-".join(parts)


# ------------------------------------------------------------------------------------ the parser

def add_config_flags(parser):
    """The flags of every section and of every objective's hyperparameters (one flag per key).

    Values stay text here; :func:`resolve` checks them with the same code as config files.
    """
    import argparse  # noqa: PLC0415
    from ..settings import add_flags  # noqa: PLC0415
    titles = {"data": "data", "model": "model", "optim": "optimisation", "run": "run"}
    for section, cls in SECTIONS.items():
        add_flags(parser.add_argument_group(titles[section]), cls)
    group = parser.add_argument_group("objective", "the objective and its hyperparameters (each flag names "
                                      "the objectives that use it)")
    group.add_argument("--objective", dest="objective", metavar="NAME", default=argparse.SUPPRESS,
                       help=f"{' | '.join(objective_names())} [default: balanced]")
    owners, seen = objective_param_owners(), set()
    for name, cls in sorted(REGISTRY.items()):
        for f in dataclasses.fields(cls.Params):
            if f.name in seen:
                continue
            seen.add(f.name)
            meta = f.metadata
            text = f"{', '.join(owners[f.name])}: {meta['help']}"
            if meta.get("choices"):
                text += f" ({' | '.join(meta['choices'])})"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if "(default" not in meta["help"]:
                text += f" [default: {'automatic' if default is None else _fmt(default)}]"
            group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, metavar=f.name.upper(),
                               default=argparse.SUPPRESS, help=text)
    group.add_argument("--max-steps", dest="max_steps", metavar="N", default=argparse.SUPPRESS,
                       help="stop after this many optimiser steps in total (checkpoint written; --resume "
                            "continues)")
    return parser


__all__ = ["CONFIG_FORMAT", "ConfigError", "DataConfig", "EXTENDABLE", "ModelConfig", "OptimConfig", "RunConfig",
           "RunSettings", "SECTIONS", "add_config_flags", "dataset_base_name", "default_run_name", "flatten",
           "load_config_file", "resolve"]
