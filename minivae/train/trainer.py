"""The training loop behind ``python -m minivae.train``.

One run = one folder: ``config.json``, ``metrics.jsonl``, ``checkpoint.npz``
(atomic, every epoch end and on Ctrl-C), ``samples.png``, ``reconstructions.png``
and ``report.json``. ``--resume`` restores parameters, optimiser moments, the
objective's state (γ, λ, C_ma), the data order and the RNG, so a resumed run
reproduces a straight-through run exactly (NumPy backend).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy

from .. import backend
from ..autograd import Tensor, no_grad
from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import BatchIterator, load_dataset
from ..imageio import atomic_write_bytes, save_grid
from ..optim import Adam
from ..vae.diagnostics import model_latent_statistics
from ..vae.models import build_model
from ..vae.objectives import build_objective
from ..plots import write_training_plots
from .progress import Progress

OBJECTIVE_KEYS = ("likelihood", "gamma", "beta", "kl_weight", "gamma_min", "constraint", "kappa",
                  "geco_alpha", "geco_eta", "geco_scale", "lambda_init", "lambda_min", "lambda_max",
                  "classifier")
# keys that may change on --resume without making it a different run
EXTENDABLE = ("epochs", "max_steps", "log_every", "checkpoint_every", "backend", "out", "n_samples")


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a folder holding another run, ...)."""


def _atomic_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def load_data(config):
    common = dict(data_dir=config["data_dir"], image_size=config["image_size"], seed=config["seed"])
    train = load_dataset(config["dataset"], split="train", n=config["n_train"], **common)
    test = load_dataset(config["dataset"], split="test", n=config["n_test"], **common)
    return train, test


def make_model(config, input_shape):
    overrides = {"latent_dim": config["latent_dim"], "activation": config["activation"],
                 "output": config["output"]}
    if config["hidden"]:
        overrides["hidden"] = tuple(config["hidden"])
    if config["channels"]:
        overrides["channels"] = tuple(config["channels"])
    if config["batchnorm"] is not None:
        overrides["batchnorm"] = config["batchnorm"]
    if config["preset"] is None:
        overrides["kind"] = config["model"]
    return build_model(config["preset"], input_shape=input_shape, **overrides)


def make_objective(config, train=None):
    params = {k: config[k] for k in OBJECTIVE_KEYS if config.get(k) is not None}
    if config["objective"] == "geco":
        params["dataset"] = train
    return build_objective(config["objective"], **params)


class Trainer:
    """Owns the model, objective, optimiser, data iterator and run folder."""

    def __init__(self, config: dict, resume: bool = False, log=None):
        self.config = config
        self.log = log or (lambda *args: print(*args, file=sys.stderr))
        self.out = config["out"]
        backend.use(config["backend"] or os.environ.get("MINIVAE_BACKEND", "numpy"),
                    dtype=config["dtype"], seed=config["seed"])
        self._prepare_folder(resume)
        self.train_set, self.test_set = load_data(config)
        self.model = make_model(config, self.train_set.shape)
        self.objective = make_objective(config, self.train_set)
        self.optimizer = Adam(self.model.parameters() + self.objective.parameters(), lr=config["lr"],
                              weight_decay=config["weight_decay"])
        self.batches = BatchIterator(self.train_set.images, config["batch_size"], shuffle=True,
                                     seed=config["seed"], drop_last=True, return_indices=True)
        # objectives that need labels (GECO's CLA constraint) say so
        self.needs_labels = bool(getattr(self.objective, "needs_labels", False))
        if self.needs_labels and self.train_set.labels is None:
            raise TrainingError(f"objective {config['objective']!r} needs labels, and dataset "
                                f"{config['dataset']!r} has none")
        self.step = 0
        if resume:
            self._restore()
        else:
            _atomic_json(os.path.join(self.out, "config.json"), config)

    # -- the run folder --------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return os.path.join(self.out, "checkpoint.npz")

    def _prepare_folder(self, resume):
        config_path = os.path.join(self.out, "config.json")
        if resume:
            if not os.path.isfile(self.checkpoint_path):
                raise TrainingError(f"--resume: no checkpoint.npz in {self.out!r}; start the run without --resume")
            return
        if os.path.exists(config_path) or os.path.exists(self.checkpoint_path):
            raise TrainingError(f"the output folder {self.out!r} already holds a run; pass --resume to "
                                "continue it, or choose another --out (nothing was overwritten)")
        os.makedirs(self.out, exist_ok=True)

    def _restore(self):
        saved = dict(load_checkpoint(self.checkpoint_path).config)  # compare before touching the model
        differs = sorted(k for k in saved if k not in EXTENDABLE and saved.get(k) != self.config.get(k))
        if differs:
            detail = ", ".join(f"{k}: run has {saved[k]!r}, now {self.config.get(k)!r}" for k in differs)
            raise TrainingError(f"--resume: the folder {self.out!r} holds a different run ({detail}); "
                                "resume with the same settings or choose another --out")
        ckpt = load_checkpoint(self.checkpoint_path, self.model, self.optimizer)
        self.objective.load_state_dict(ckpt.objective_state or {})
        extra = ckpt.extra_json or {}
        self.batches.load_state_dict(extra["batches"])
        if ckpt.rng_state:
            backend.set_rng_state(ckpt.rng_state)
        self.step = ckpt.step
        self._truncate_metrics()
        _atomic_json(os.path.join(self.out, "config.json"), self.config)
        self.log(f"resumed {self.out} at step {self.step} (epoch {self.epoch})")

    def _truncate_metrics(self):
        """Drop logged lines after the checkpoint: they will be logged again."""
        path = os.path.join(self.out, "metrics.jsonl")
        if not os.path.exists(path):
            return
        with open(path) as f:
            lines = [ln for ln in f if ln.strip() and json.loads(ln).get("step", 0) <= self.step]
        atomic_write_bytes(path, "".join(lines).encode())

    def save(self):
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, config=self.config, step=self.step,
                        epoch=self.epoch, objective_state=self.objective.state_dict(),
                        rng_state=backend.rng_state(), extra_json={"batches": self.batches.state_dict()})

    # -- the loop --------------------------------------------------------------------
    def _check_finite(self, terms):
        for name in ("loss", "rec", "kl", "gamma", "lambda", "c_ma", "c_batch"):
            value = terms.get(name)
            if value is not None and not numpy.all(numpy.isfinite(value)):
                raise TrainingError(f"non-finite {name} ({value}) at step {self.step + 1}; the last good "
                                    f"checkpoint (step {self._last_saved}) is intact in {self.checkpoint_path}. "
                                    "Lower --lr, or check the data and the objective's parameters")

    def train_step(self, x_host, indices=None):
        x = Tensor(backend.to_device(x_host))
        self.optimizer.zero_grad()
        out = self.model(x)
        if self.needs_labels:
            labels = backend.to_device(self.train_set.labels[indices])
            loss, terms = self.objective.loss(x, out, labels=labels)
        else:
            loss, terms = self.objective.loss(x, out)
        self._check_finite(terms)
        loss.backward()
        self.optimizer.step()
        self.objective.after_step(terms)
        self.step += 1
        return terms

    @property
    def epoch(self) -> int:
        """Completed passes over the training set (the data iterator's epoch counter)."""
        return self.batches.epoch

    def total_steps(self):
        per_epoch = len(self.batches)
        total = per_epoch * self.config["epochs"]
        return min(total, self.config["max_steps"]) if self.config["max_steps"] else total

    def run(self):
        config = self.config
        metrics = open(os.path.join(self.out, "metrics.jsonl"), "a")
        progress = Progress(self.total_steps(), start=self.step)
        self._last_saved = self.step
        window_start, window_images = time.perf_counter(), 0
        try:
            while self.epoch < config["epochs"] and self.step < self.total_steps():
                for x_host, indices in self.batches:  # the rest of the current epoch
                    terms = self.train_step(x_host, indices)
                    window_images += len(x_host)
                    if self.step % config["log_every"] == 0 or self.step == self.total_steps():
                        elapsed = time.perf_counter() - window_start
                        record = {"step": self.step, "epoch": self.epoch,
                                  **{k: _jsonable(v) for k, v in terms.items()},
                                  "images_per_s": window_images / max(elapsed, 1e-9)}
                        metrics.write(json.dumps(record) + "\n")
                        metrics.flush()
                        progress.update(self.step, record)
                        window_start, window_images = time.perf_counter(), 0
                    if config["diagnose_every"] and self.step % config["diagnose_every"] == 0:
                        self._record_latents()
                    if config["checkpoint_every"] and self.step % config["checkpoint_every"] == 0:
                        self._save_now()
                    if self.step >= self.total_steps():
                        break
                else:
                    self._save_now()  # epoch end
                    continue
                break  # max_steps reached mid-epoch
            self._save_now()
        except KeyboardInterrupt:
            self._save_now()
            progress.close()
            self.log(f"\ninterrupted: checkpoint saved at step {self.step}; continue with "
                     f"python -m minivae.train --out {self.out} --resume")
            raise
        finally:
            metrics.close()
        progress.close()
        return self.finish()

    def _record_latents(self, n=1000):
        """Per-variable Var μ and E σ² on a fixed test subset (latents.jsonl): the
        evolution plot of Asperti's sparsity post (some variances go to 0, some to 1)."""
        stats = model_latent_statistics(self.model, self.test_set.images[:n])
        record = {"step": self.step, "var_mu": stats.var_mu.tolist(), "mean_sigma2": stats.mean_sigma2.tolist()}
        with open(os.path.join(self.out, "latents.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")

    def _save_now(self):
        self.save()
        self._last_saved = self.step

    # -- after training ------------------------------------------------------------------
    def evaluate(self, dataset, batch_size=500):
        """Test-set loss terms (batch means averaged over the set), model in eval mode,
        ε from a fixed seed so the numbers are reproducible."""
        self.model.eval()
        totals, n = {}, 0
        gen = numpy.random.default_rng(12345)
        with no_grad():
            for start in range(0, len(dataset), batch_size):
                xb = dataset.images[start:start + batch_size]
                x = Tensor(backend.to_device(xb))
                eps = backend.to_device(gen.standard_normal((len(xb), self.model.latent_dim)))
                extra = {}
                if self.needs_labels:
                    extra["labels"] = backend.to_device(dataset.labels[start:start + batch_size])
                _, terms = self.objective.loss(x, self.model(x, eps=eps), **extra)
                for k, v in terms.items():
                    if isinstance(v, (int, float)):
                        totals[k] = totals.get(k, 0.0) + float(v) * len(xb)
                n += len(xb)
        self.model.train()
        return {k: v / n for k, v in totals.items()}

    def write_images(self):
        self.model.eval()
        with no_grad():
            z = backend.to_device(numpy.random.default_rng(0).standard_normal(
                (self.config["n_samples"], self.model.latent_dim)))
            samples = backend.to_host(self.model.decode(Tensor(z)).data)
            real = self.test_set.images[:32]
            mu, _ = self.model.encode(Tensor(backend.to_device(real)))
            recon = backend.to_host(self.model.decode(mu).data)
        self.model.train()
        save_grid(os.path.join(self.out, "samples.png"), numpy.clip(samples, 0, 1), scale=2)
        # rows of 16 originals, each followed by the row of their reconstructions
        recon = numpy.clip(recon, 0, 1)
        rows = [part for i in range(0, len(real), 16) for part in (real[i:i + 16], recon[i:i + 16])]
        save_grid(os.path.join(self.out, "reconstructions.png"), numpy.concatenate(rows), nrow=16, scale=2)

    def finish(self):
        test_terms = self.evaluate(self.test_set)
        stats = model_latent_statistics(self.model, self.test_set.images)
        report = {"step": self.step, "epoch": self.epoch, "test": test_terms, "latents": stats.summary(),
                  "objective_state": _jsonable(self.objective.state_dict()),
                  "dataset": {"name": self.config["dataset"], "train": len(self.train_set),
                              "test": len(self.test_set), "shape": list(self.train_set.shape)}}
        if self.train_set.factor_names:
            report["dataset"]["true_factors"] = list(self.train_set.factor_names)
        _atomic_json(os.path.join(self.out, "report.json"), report)
        self.write_images()
        report["plots"] = write_training_plots(self.out)
        return report


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return backend.to_host(value).tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
