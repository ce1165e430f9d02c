"""Training the second stage on the latent codes of a trained first stage (Dai & Wipf 2019, §4;
math.md §4).

The stage-1 encoder runs **once** over the training set, frozen and in eval
mode, giving μ(x_i) and σ(x_i); every batch then draws **fresh** ε:
z = μ + σ·ε. The second stage is trained on z with its own γ_z (learned through
log γ_z, or balanced with the rule of math.md §2.3). At the end the
renormalisation moments (stage-1 aggregate-posterior moments, the stage-2 MSE and
latent variance loss) are computed and stored with the checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import numpy

from .. import backend
from ..autograd import Tensor
from ..checkpoint import save_checkpoint
from ..data import BatchIterator
from ..fileio import jsonable, sha256_file
from ..imageio import save_grid
from ..optim import Adam
from ..settings import SettingError, at_least, between, check_value, non_negative, setting
from ..twostage.model import SecondStageVAE
from ..twostage.renormalise import LatentMoments
from ..twostage.sampling import generate, stage2_reconstruction
from ..vae.diagnostics import encode_dataset, latent_statistics, model_latent_statistics
from ..vae.objective import build_objective
from .folder import RunFolder
from .load import STAGE2_CHECKPOINT, STAGE2_CONFIG, Run, RunLoadError, load_stage2
from .progress import Progress

STAGE2_OBJECTIVES = ("learned-gamma", "balanced")


class TwoStageError(RunLoadError):
    """The second stage cannot be trained as asked."""


@dataclasses.dataclass
class Stage2Config:
    """The second stage's settings (Dai & Wipf 2019 §4; math.md §4)."""
    hidden: list = setting([1024, 1024, 1024], "widths of its ReLU layers", kind="ints",
                           check=lambda v: None if v and min(v) >= 1 else "must be positive widths")
    activation: str = setting("relu", "hidden activation", kind="str",
                              choices=("relu", "leaky_relu", "elu", "tanh", "softplus"))
    objective: str = setting(None, "learned-gamma | balanced (default: stage 1's if one of them, else "
                             "learned-gamma)", kind="str", choices=STAGE2_OBJECTIVES, optional=True)
    kl_weight: float = setting(None, "balanced: KL multiplier", kind="float", check=non_negative, optional=True)
    gamma_min: float = setting(None, "learned-gamma: lower bound on γ_z", kind="float", check=non_negative,
                               optional=True)
    epochs: int = setting(20, "passes over the codes", kind="int", check=at_least(1))
    batch_size: int = setting(128, "minibatch size", kind="int", check=at_least(1))
    lr: float = setting(1e-3, "Adam learning rate (Dai & Wipf use 1e-4 for hundreds of epochs)", kind="float",
                        check=between(0, 1, open_lo=True))
    seed: int = setting(0, "random seed", kind="int", check=non_negative)
    max_steps: int = setting(None, "stop after this many steps", kind="int", check=at_least(1), optional=True)
    log_every: int = setting(100, "log every N steps", kind="int", check=at_least(1))
    n_samples: int = setting(64, "samples in stage2_samples.png", kind="int", check=between(1, 10000))


def stage2_objective(config):
    params = {"kl_weight": config.get("kl_weight")} if config["objective"] == "balanced" else \
        {"gamma_min": config.get("gamma_min")}
    return build_objective(config["objective"], **{k: v for k, v in params.items() if v is not None})


class Stage2Trainer:
    """Trains :class:`SecondStageVAE` on the codes of ``stage1`` and writes it into the run folder."""

    def __init__(self, stage1: Run, config: dict, train_images, log=print, folder=None):
        self.stage1, self.config, self.log = stage1, config, log
        self.out = stage1.run_dir
        self.folder = folder
        backend.manual_seed(config["seed"])
        self.mu, self.logvar = encode_dataset(stage1.model, train_images)   # stage 1 frozen, eval mode
        xp = backend.xp()
        self.mu_dev = backend.to_device(self.mu)
        self.sd_dev = backend.to_device(numpy.exp(0.5 * self.logvar))
        self._xp = xp
        k = stage1.model.latent_dim
        self.model = SecondStageVAE(k, hidden=config["hidden"], activation=config["activation"])
        self.objective = stage2_objective(config)
        self.optimizer = Adam(self.model.parameters() + self.objective.parameters(), lr=config["lr"])
        self.batches = BatchIterator(numpy.arange(len(self.mu)), config["batch_size"], shuffle=True,
                                     seed=config["seed"], drop_last=True)
        self.step = 0

    def total_steps(self):
        total = len(self.batches) * self.config["epochs"]
        return min(total, self.config["max_steps"]) if self.config.get("max_steps") else total

    def train_step(self, indices):
        idx = backend.to_device(indices)
        mu, sd = self.mu_dev[idx], self.sd_dev[idx]
        eps = backend.rng().standard_normal(mu.shape).astype(mu.dtype)     # fresh ε every batch
        z = Tensor(mu + sd * eps)
        self.optimizer.zero_grad()
        out = self.model(z)
        loss, terms = self.objective.loss(z, out)
        for name in ("loss", "kl", "rec", "gamma"):
            if not math.isfinite(float(terms.get(name, 0.0))):
                raise TwoStageError(f"second stage: non-finite {name} ({terms[name]}) at step {self.step + 1}; "
                                    "nothing was written -- lower --lr or check the first stage")
        loss.backward()
        self.optimizer.step()
        self.objective.after_step(terms)
        self.step += 1
        return terms

    def run(self):
        total = self.total_steps()
        metrics_path = os.path.join(self.out, "stage2_metrics.jsonl")
        t0 = time.perf_counter()
        progress = Progress(total, unit="codes", prefix="stage 2 ")
        with open(metrics_path, "w") as metrics:
            while self.step < total:
                indices = self.batches.next_batch()
                terms = self.train_step(indices)
                if self.step % self.config["log_every"] == 0 or self.step == total:
                    rate = self.step * self.config["batch_size"] / max(time.perf_counter() - t0, 1e-9)
                    record = {"step": self.step, "epoch": self.batches.epoch, **jsonable(terms), "codes_per_s": rate}
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    progress.update(self.step, record)
        progress.close()
        return self.finish()

    def moments(self) -> LatentMoments:
        """Stage-1 aggregate-posterior moments and the stage-2 MSE / latent variance loss on μ
        (the quantities of the authors' renormalisation condition)."""
        stats = latent_statistics(self.mu, self.logvar)
        z_hat = stage2_reconstruction(self.model, self.mu, seed=self.config["seed"])
        mse2 = float(((self.mu - z_hat) ** 2).mean())
        var_loss2 = float(self.mu.var(axis=0).mean() - z_hat.var(axis=0).mean())
        return LatentMoments(stats.mean_mu, stats.var_mu, stats.mean_sigma2, mse2, var_loss2)

    def finish(self) -> dict:
        moments = self.moments()
        u_stats = model_latent_statistics(self.model, self.mu)
        summary = {"step": self.step, "epoch": self.batches.epoch, "gamma_z": self.objective.gamma,
                   "objective_state": self.objective.state_dict(), "renormalisation": moments.to_json(),
                   "stage2_latents": {k: v for k, v in u_stats.summary().items() if k != "per_variable"},
                   "stage1_checkpoint_step": self.stage1.checkpoint.step}
        extra = {"moments": moments.to_json(), "stage1_sha256": sha256_file(self.stage1.checkpoint_path),
                 "stage1_step": self.stage1.checkpoint.step}
        save_checkpoint(os.path.join(self.out, STAGE2_CHECKPOINT), self.model, self.optimizer,
                        config=self.config, step=self.step, epoch=self.batches.epoch,
                        objective_state=self.objective.state_dict(), extra_json=extra)
        self.folder.write_json(STAGE2_CONFIG, {"config": self.config, "summary": summary})
        self.folder.update_report("stage2", summary)
        stage2 = load_stage2(self.stage1)
        images = generate(self.stage1.model, self.config["n_samples"], stage2=stage2, renorm="off",
                          seed=self.config["seed"])
        save_grid(os.path.join(self.out, "stage2_samples.png"), numpy.clip(images, 0, 1))
        return summary


def check_stage2_config(values: dict, stage1: Run) -> dict:
    """Stage-2 settings from flags/keys (text or typed), with defaults; the objective defaults to
    stage 1's when it is learned-gamma / balanced (a balanced run gets a balanced second stage)."""
    try:
        config = dataclasses.asdict(Stage2Config(**{f.name: check_value(f, values[f.name])
                                                    for f in dataclasses.fields(Stage2Config)
                                                    if values.get(f.name) is not None}))
    except SettingError as exc:
        raise TwoStageError(f"second stage: {exc}") from None
    if config["objective"] is None:
        first = stage1.config.objective_name
        config["objective"] = first if first in STAGE2_OBJECTIVES else "learned-gamma"
    wrong = "gamma_min" if config["objective"] == "balanced" else "kl_weight"
    if config[wrong] is not None:
        raise TwoStageError(f"the second stage's objective {config['objective']!r} does not use "
                            f"--{wrong.replace('_', '-')}")
    config["latent_dim"] = stage1.model.latent_dim
    config["stage1_run"] = os.path.abspath(stage1.run_dir)
    return {k: v for k, v in config.items() if v is not None}


def train_stage2(stage1: Run, config: dict, data_dir=None, log=print) -> dict:
    """Train the second stage of ``stage1``'s folder (holding its lock) and write it there."""
    folder = RunFolder(stage1.run_dir)
    for name in (STAGE2_CHECKPOINT, STAGE2_CONFIG):
        if os.path.exists(folder.file(name)):
            raise TwoStageError(f"{stage1.run_dir!r} already holds a second stage ({name}); delete "
                                f"{STAGE2_CHECKPOINT} and {STAGE2_CONFIG} to train it again (nothing was overwritten)")
    folder.lock("python -m minivae.train --stage2", log=log)
    try:
        train, _ = stage1.load_data(data_dir)
        trainer = Stage2Trainer(stage1, config, train.images, log=log, folder=folder)
        log(f"training the second stage ({config['objective']}, hidden {config['hidden']}, "
            f"{trainer.model.num_parameters()} parameters) on the codes of {len(train)} images -> {stage1.run_dir}")
        return trainer.run()
    finally:
        folder.unlock()


__all__ = ["STAGE2_OBJECTIVES", "Stage2Config", "Stage2Trainer", "TwoStageError", "check_stage2_config",
           "train_stage2"]
