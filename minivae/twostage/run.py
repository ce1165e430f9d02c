"""Rebuilding a trained run from its folder: stage 1 (``config.json`` + ``checkpoint.npz``)
and, when present, stage 2 (``stage2.json`` + ``stage2.npz``).

Shared by ``python -m minivae.sample | diagnose | evaluate`` and the stage-2 trainer.
The backend and dtype come from the run's config (``--backend`` may override).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

from .. import backend
from ..checkpoint import Checkpoint, load_checkpoint
from .model import SecondStageVAE
from .renormalise import LatentMoments

STAGE2_CHECKPOINT = "stage2.npz"
STAGE2_CONFIG = "stage2.json"


class TwoStageError(ValueError):
    """A run folder cannot be used as asked (the message says why and what to do)."""


def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as exc:
        raise TwoStageError(f"{what} {path} is not valid JSON ({exc}); the run folder is damaged") from None


@dataclass
class Stage1Run:
    """A trained first stage, rebuilt and loaded (model in eval mode)."""
    run_dir: str
    config: dict
    model: object
    checkpoint: Checkpoint
    input_shape: tuple
    likelihood: str            # "gaussian" | "bernoulli"
    gamma: float | None        # the decoder variance γ of a Gaussian run; None when the run has none (GECO)
    gamma_source: str

    @property
    def checkpoint_path(self):
        return os.path.join(self.run_dir, "checkpoint.npz")

    def load_data(self, data_dir=None):
        """(train, test) Datasets of the run (``data_dir`` overrides the run's data folder)."""
        from ..train.trainer import load_data  # noqa: PLC0415  (CLI layer)
        config = dict(self.config)
        if data_dir is not None:
            config["data_dir"] = data_dir
        train, test = load_data(config)
        if tuple(train.shape) != tuple(self.input_shape):
            raise TwoStageError(f"the data now load with image shape {train.shape}, but the run was trained "
                                f"on {self.input_shape}; pass the run's data set (--data-dir)")
        return train, test


def _input_shape(run_dir, config):
    report = os.path.join(run_dir, "report.json")
    if os.path.isfile(report):
        shape = (read_json(report, "report").get("dataset") or {}).get("shape")
        if shape:
            return tuple(int(s) for s in shape)
    from ..vae.models import PRESETS  # noqa: PLC0415
    preset = PRESETS.get(config.get("preset") or "", {})
    if preset and not preset.get("any_shape") and config.get("image_size") is None:
        return tuple(preset["input_shape"])
    from ..train.trainer import load_data  # noqa: PLC0415  (last resort: load the data to see)
    return tuple(load_data(config)[1].shape)


def _likelihood_and_gamma(config, objective_state):
    objective = config.get("objective")
    state = objective_state or {}
    if objective == "bernoulli" or config.get("likelihood") == "bernoulli":
        return "bernoulli", None, "bernoulli likelihood"
    if objective == "balanced" and "gamma" in state:
        return "gaussian", float(state["gamma"]), "balanced γ from the checkpoint"
    if objective == "learned-gamma" and "log_gamma" in state:
        gamma = max(math.exp(float(state["log_gamma"])), float(config.get("gamma_min") or 0.0))
        return "gaussian", gamma, "learned γ = exp(log γ) from the checkpoint"
    if objective in ("elbo", "beta-vae"):
        return "gaussian", float(config.get("gamma") or 1.0), "fixed γ from the config"
    return "gaussian", None, f"objective {objective!r} has no decoder variance"


def use_run_backend(config, backend_name=None):
    backend.use(backend_name or config.get("backend") or os.environ.get("MINIVAE_BACKEND", "numpy"),
                dtype=config.get("dtype") or "float32", seed=int(config.get("seed") or 0))


def load_stage1(run_dir, backend_name=None) -> Stage1Run:
    """Rebuild the first stage of ``run_dir``; one clear error for a folder that is not a run."""
    from ..train.trainer import make_model  # noqa: PLC0415  (CLI layer)
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run folder {run_dir!r} does not exist")
    config_path = os.path.join(run_dir, "config.json")
    ckpt_path = os.path.join(run_dir, "checkpoint.npz")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{run_dir!r} has no config.json: it is not a minivae run folder "
                                "(train one with python -m minivae.train --out RUN_DIR)")
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"{run_dir!r} has no stage-1 checkpoint (checkpoint.npz); train or finish "
                                "the run first (python -m minivae.train --out RUN_DIR [--resume])")
    config = read_json(config_path, "config")
    use_run_backend(config, backend_name)
    shape = _input_shape(run_dir, config)
    try:
        model = make_model(config, shape)
    except (ValueError, KeyError, TypeError) as exc:
        raise TwoStageError(f"cannot rebuild the model of {run_dir!r} from its config.json ({exc})") from None
    ckpt = load_checkpoint(ckpt_path, model)
    model.eval()
    likelihood, gamma, source = _likelihood_and_gamma(config, ckpt.objective_state)
    return Stage1Run(run_dir, config, model, ckpt, shape, likelihood, gamma, source)


@dataclass
class Stage2:
    """A trained second stage: the model (eval mode), its config and the renormalisation moments."""
    model: SecondStageVAE
    config: dict
    moments: LatentMoments
    gamma_z: float
    checkpoint: Checkpoint


def has_stage2(run_dir) -> bool:
    return os.path.isfile(os.path.join(run_dir, STAGE2_CHECKPOINT))


def load_stage2(stage1: Stage1Run) -> Stage2:
    """The second stage of ``stage1``'s folder, refused if it was trained on another stage-1 checkpoint."""
    path = os.path.join(stage1.run_dir, STAGE2_CHECKPOINT)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{stage1.run_dir!r} has no second stage ({STAGE2_CHECKPOINT}); train it with "
                                f"python -m minivae.train --stage2 {stage1.run_dir}")
    head = load_checkpoint(path)  # config first, to build the model
    config = head.config
    k = int(config.get("latent_dim", -1))
    if k != stage1.model.latent_dim:
        raise TwoStageError(f"the second stage in {stage1.run_dir!r} has latent size {k} but stage 1 has "
                            f"{stage1.model.latent_dim}; retrain it (python -m minivae.train --stage2 RUN_DIR)")
    extra = head.extra_json or {}
    if extra.get("stage1_sha256") and extra["stage1_sha256"] != sha256_file(stage1.checkpoint_path):
        raise TwoStageError(f"the second stage in {stage1.run_dir!r} was trained on another stage-1 checkpoint "
                            f"(step {extra.get('stage1_step')}; the current one is step {stage1.checkpoint.step}); "
                            f"delete {STAGE2_CHECKPOINT} and {STAGE2_CONFIG} and retrain it")
    model = SecondStageVAE(k, hidden=config["hidden"], activation=config.get("activation", "relu"))
    ckpt = load_checkpoint(path, model)
    model.eval()
    moments = LatentMoments.from_json(extra["moments"])
    state = ckpt.objective_state or {}
    if "log_gamma" in state:
        gamma_z = math.exp(float(state["log_gamma"]))
    else:
        gamma_z = float(state.get("gamma", 1.0))
    return Stage2(model, config, moments, gamma_z, ckpt)
