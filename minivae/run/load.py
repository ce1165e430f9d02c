"""Loading a trained run folder: stage 1 (``config.json`` + ``checkpoint.npz``) and, when
present, stage 2 (``stage2.json`` + ``stage2.npz``) -- :func:`load_run`.

Used by ``python -m minivae.sample | diagnose | evaluate``, the second-stage trainer and
Python code (``minivae.load_run(DIR)``). The backend and dtype come from the run's
config (``backend=`` may override). A checkpoint whose parameters hold NaN/inf is refused.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..checkpoint import Checkpoint, load_checkpoint
from ..fileio import sha256_file
from ..twostage.model import SecondStageVAE
from ..twostage.renormalise import LatentMoments
from . import build
from .config import RunConfig, flatten, resolve
from .folder import CHECKPOINT, CONFIG, REPORT, RunFolder, RunFolderError

STAGE2_CHECKPOINT = "stage2.npz"
STAGE2_CONFIG = "stage2.json"


class RunLoadError(RunFolderError):
    """A run folder cannot be used as asked (the message says why and what to do)."""


@dataclass
class Run:
    """A trained first stage, rebuilt and loaded (model in eval mode), with its objective."""
    run_dir: str
    config: RunConfig
    model: object
    objective: object
    checkpoint: Checkpoint
    input_shape: tuple

    @property
    def checkpoint_path(self):
        return os.path.join(self.run_dir, CHECKPOINT)

    @property
    def likelihood(self) -> str:
        return getattr(self.config.objective, "likelihood", "gaussian")

    @property
    def gamma(self):
        """The decoder variance γ the run trained with, or None when it has none (GECO, Bernoulli)."""
        return self.objective.decoder_variance()

    @property
    def gamma_source(self) -> str:
        if self.likelihood == "bernoulli":
            return "bernoulli likelihood"
        if self.gamma is None:
            return f"objective {self.config.objective_name!r} has no decoder variance"
        return f"γ of the {self.config.objective_name} objective, from the checkpoint"

    def load_data(self, data_dir=None):
        """(train, test) of the run (``data_dir`` overrides the run's data folder)."""
        train, test = build.load_data(self.config, data_dir)
        if tuple(train.shape) != tuple(self.input_shape):
            raise RunLoadError(f"the data now load with image shape {train.shape}, but the run was trained on "
                               f"{self.input_shape}; pass the run's data set (--data-dir)")
        return train, test


def read_run_config(run_dir) -> RunConfig:
    folder = RunFolder(run_dir)
    raw = folder.read_json(CONFIG)
    if not isinstance(raw, dict):
        raise RunLoadError(f"{run_dir}/config.json does not hold a configuration; the run folder is damaged")
    try:
        return resolve(flatten(raw, where=f"{run_dir}/config.json"))
    except ValueError as exc:
        raise RunLoadError(f"{run_dir}/config.json cannot be read as a run configuration ({exc})") from None


def _input_shape(folder: RunFolder, config: RunConfig):
    shape = ((folder.read_json(REPORT, {}) or {}).get("dataset") or {}).get("shape")
    if shape:
        return tuple(int(s) for s in shape)
    return tuple(build.load_data(config)[1].shape)  # older runs: load the data to see


def check_finite_checkpoint(ckpt: Checkpoint) -> None:
    import numpy  # noqa: PLC0415
    bad = [k for k, v in ckpt.model_state.items()
           if getattr(v, "dtype", None) is not None and v.dtype.kind == "f" and not numpy.isfinite(v).all()]
    if bad:
        raise RunLoadError(f"{ckpt.path} holds non-finite (NaN/inf) parameters ({', '.join(bad[:3])}); it is not "
                           "a usable model -- retrain, or resume from an earlier copy")


def load_run(run_dir, backend_name=None) -> Run:
    """Rebuild the first stage of ``run_dir`` (model in eval mode, objective state restored)."""
    run_dir = os.fspath(run_dir)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunLoadError(f"{run_dir!r} is a file, not a run folder")
    if not os.path.isdir(run_dir):
        raise RunLoadError(f"run folder {run_dir!r} does not exist")
    folder = RunFolder(run_dir)
    if not os.path.isfile(folder.file(CONFIG)):
        raise RunLoadError(f"{run_dir!r} has no config.json: it is not a minivae run folder "
                           "(train one with python -m minivae.train --out RUN_DIR)")
    if not folder.has_checkpoint():
        raise RunLoadError(f"{run_dir!r} has no stage-1 checkpoint (checkpoint.npz); train or finish the run "
                           "first (python -m minivae.train --out RUN_DIR [--resume])")
    config = read_run_config(run_dir)
    build.use_backend(config, backend_name)
    shape = _input_shape(folder, config)
    model = build.build_model(config, shape)
    ckpt = load_checkpoint(folder.file(CHECKPOINT), model)
    check_finite_checkpoint(ckpt)
    objective = _objective_for_reading(config)
    objective.load_state(ckpt.objective_state or {})
    model.eval()
    return Run(run_dir, config, model, objective, ckpt, shape)


def _objective_for_reading(config):
    """The run's objective without its classifier (reading a run needs γ / λ, not CLA's network)."""
    from ..vae import objective_class  # noqa: PLC0415
    cls, _ = objective_class(config.objective_name)
    if "cla" in getattr(config.objective, "constraint", ()):
        class _Unused:  # stands for the classifier: never called when a run is only read
            def __call__(self, *a):
                raise RunLoadError("the CLA classifier is not loaded when a run is read")
        return cls.from_params(config.objective, classifier=_Unused())
    return cls.from_params(config.objective)


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


def load_stage2(stage1: Run) -> Stage2:
    """The second stage of ``stage1``'s folder, refused if it was trained on another stage-1 checkpoint."""
    path = os.path.join(stage1.run_dir, STAGE2_CHECKPOINT)
    if not os.path.isfile(path):
        raise RunLoadError(f"{stage1.run_dir!r} has no second stage ({STAGE2_CHECKPOINT}); train it with "
                           f"python -m minivae.train --stage2 {stage1.run_dir}")
    head = load_checkpoint(path)  # config first, to build the model
    config = head.config if isinstance(head.config, dict) else {}
    k = int(config.get("latent_dim", -1))
    if k != stage1.model.latent_dim:
        raise RunLoadError(f"the second stage in {stage1.run_dir!r} has latent size {k} but stage 1 has "
                           f"{stage1.model.latent_dim}; retrain it (python -m minivae.train --stage2 RUN_DIR)")
    extra = head.extra_json if isinstance(head.extra_json, dict) else {}
    if extra.get("stage1_sha256") and extra["stage1_sha256"] != sha256_file(stage1.checkpoint_path):
        raise RunLoadError(f"the second stage in {stage1.run_dir!r} was trained on another stage-1 checkpoint "
                           f"(step {extra.get('stage1_step')}; the current one is step {stage1.checkpoint.step}); "
                           f"delete {STAGE2_CHECKPOINT} and {STAGE2_CONFIG} and retrain it")
    if "moments" not in extra:
        raise RunLoadError(f"{path} holds no renormalisation moments; it was not written by minivae's stage-2 "
                           "trainer -- delete it and retrain the second stage")
    model = SecondStageVAE(k, hidden=config["hidden"], activation=config.get("activation", "relu"))
    ckpt = load_checkpoint(path, model)
    check_finite_checkpoint(ckpt)
    model.eval()
    moments = LatentMoments.from_json(extra["moments"])
    state = ckpt.objective_state or {}
    gamma_z = math.exp(float(state["log_gamma"])) if "log_gamma" in state else float(state.get("gamma", 1.0))
    return Stage2(model, config, moments, gamma_z, ckpt)


__all__ = ["Run", "RunLoadError", "STAGE2_CHECKPOINT", "STAGE2_CONFIG", "Stage2", "has_stage2", "load_run",
           "load_stage2", "read_run_config"]
