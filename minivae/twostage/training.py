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

import json
import math
import os
import time

import numpy

from .. import backend
from ..autograd import Tensor
from ..checkpoint import save_checkpoint
from ..data import BatchIterator
from ..imageio import atomic_write_bytes, save_grid
from ..optim import Adam
from ..vae.diagnostics import encode_dataset, latent_statistics, model_latent_statistics
from ..vae.objectives import build_objective
from .model import SecondStageVAE
from .renormalise import LatentMoments
from .run import STAGE2_CHECKPOINT, STAGE2_CONFIG, Stage1Run, TwoStageError, sha256_file
from .sampling import generate, stage2_reconstruction

STAGE2_OBJECTIVES = ("learned-gamma", "balanced")
STAGE2_DEFAULTS = {"hidden": [1024, 1024, 1024], "activation": "relu", "objective": None, "kl_weight": None,
                   "gamma_min": None, "epochs": 20, "batch_size": 128, "lr": 1e-3, "seed": 0,
                   "log_every": 100, "max_steps": None, "n_samples": 64}


def atomic_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def stage2_objective(config):
    params = {k: config[k] for k in ("kl_weight", "gamma_min") if config.get(k) is not None}
    if config["objective"] == "learned-gamma":
        params.pop("kl_weight", None)
    else:
        params.pop("gamma_min", None)
    return build_objective(config["objective"], **params)


class Stage2Trainer:
    """Trains :class:`SecondStageVAE` on the codes of ``stage1`` and writes it into the run folder."""

    def __init__(self, stage1: Stage1Run, config: dict, train_images, log=print):
        self.stage1, self.config, self.log = stage1, config, log
        self.out = stage1.run_dir
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
        with open(metrics_path, "w") as metrics:
            while self.step < total:
                indices = self.batches.next_batch()
                terms = self.train_step(indices)
                if self.step % self.config["log_every"] == 0 or self.step == total:
                    rate = self.step * self.config["batch_size"] / max(time.perf_counter() - t0, 1e-9)
                    record = {"step": self.step, "epoch": self.batches.epoch, **terms, "codes_per_s": rate}
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    eta = (total - self.step) * self.config["batch_size"] / max(rate, 1e-9)
                    self.log(f"stage 2 step {self.step}/{total}  loss {terms['loss']:.4g}  "
                             f"mse {terms['mse']:.4g}  kl {terms['kl']:.4g}  gamma_z {terms['gamma']:.4g}  "
                             f"{rate:.0f} codes/s  ETA {eta:.0f}s")
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
        atomic_json(os.path.join(self.out, STAGE2_CONFIG), {"config": self.config, "summary": summary})
        report_path = os.path.join(self.out, "report.json")
        report = {}
        if os.path.isfile(report_path):
            with open(report_path) as f:
                report = json.load(f)
        report["stage2"] = summary
        atomic_json(report_path, report)
        from .run import load_stage2  # noqa: PLC0415
        stage2 = load_stage2(self.stage1)
        images = generate(self.stage1.model, self.config["n_samples"], stage2=stage2, renorm="off",
                          seed=self.config["seed"])
        save_grid(os.path.join(self.out, "stage2_samples.png"), numpy.clip(images, 0, 1))
        return summary


def check_stage2_config(config: dict, stage1: Stage1Run) -> dict:
    """Fill defaults and validate; the objective defaults to stage 1's when it is one of
    learned-gamma / balanced (so a balanced run gets a balanced second stage), else learned-gamma."""
    config = {**STAGE2_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if config["objective"] is None:
        first = stage1.config.get("objective")
        config["objective"] = first if first in STAGE2_OBJECTIVES else "learned-gamma"
    if config["objective"] not in STAGE2_OBJECTIVES:
        raise TwoStageError(f"the second stage trains with γ_z learned or balanced: --objective "
                            f"{' or '.join(STAGE2_OBJECTIVES)}, not {config['objective']!r}")
    hidden = config["hidden"]
    if isinstance(hidden, str):
        hidden = [int(h) for h in hidden.split(",") if h.strip()]
    config["hidden"] = [int(h) for h in hidden]
    if not config["hidden"] or min(config["hidden"]) < 1:
        raise TwoStageError(f"--hidden for the second stage must be positive widths, got {hidden}")
    for key in ("epochs", "batch_size", "log_every", "n_samples"):
        if int(config[key]) < 1:
            raise TwoStageError(f"{key} must be a positive integer, got {config[key]}")
    if not float(config["lr"]) > 0:
        raise TwoStageError(f"lr must be positive, got {config['lr']}")
    config["latent_dim"] = stage1.model.latent_dim
    config["stage1_run"] = os.path.abspath(stage1.run_dir)
    return config
