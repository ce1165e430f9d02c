"""The training loop of a run folder (stage 1), behind ``python -m minivae.train``.

One run = one folder (:mod:`minivae.run.folder`): ``config.json`` (the resolved
configuration and its provenance), ``metrics.jsonl``, ``checkpoint.npz`` (atomic),
``samples.png``, ``reconstructions.png``, ``report.json``. Guarantees:

* checkpoints at epoch ends, every ``checkpoint_every`` steps and every
  ``checkpoint_minutes`` minutes, always at a step boundary; Ctrl-C and SIGTERM let the
  current step finish, write a checkpoint and exit (130 / 143); a second Ctrl-C abandons
  the step and keeps the last checkpoint;
* ``--resume`` restores parameters, optimiser moments, the objective's state (γ, λ, C_ma),
  the data position and the RNG: a resumed run equals a straight run bit for bit (NumPy);
* parameters with NaN/inf are never written; the message names the term and says
  truthfully which checkpoint (if any) is intact.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy

from .. import backend
from ..autograd import Tensor
from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import BatchIterator
from ..fileio import atomic_write_bytes, jsonable
from ..imageio import save_grid
from ..nn.evaluation import batched_map, evaluating
from ..optim import Adam
from ..plots import write_training_plots
from ..vae.diagnostics import model_latent_statistics
from . import build
from .cli import Terminated
from .config import RunConfig, flatten, resolve
from .folder import CHECKPOINT, CONFIG, METRICS, REPORT, RunError, RunFolder
from .progress import Progress

RUN_FILES = (CONFIG, CHECKPOINT, METRICS, REPORT, "samples.png", "reconstructions.png", "latents.jsonl",
             "diagnostics.json", "stage2.npz", "stage2.json", "stage2_metrics.jsonl", "stage2_samples.png")
EXPECT = {"variance_law": "Var μ_j + E σ_j² ≈ 1 for every latent variable, active or inactive (math.md §5)",
          "inactive": "a variable is inactive when Var_X μ_j < the threshold: its code ignores x and it "
                      "carries no information (its E σ_j² is then ≈ 1)"}


class TrainingError(RunError, RuntimeError):
    """Training cannot go on (non-finite values, a folder holding another run, ...)."""


def _finite_parameters(parameters) -> bool:
    xp = backend.xp()
    return all(bool(xp.isfinite(p.data).all()) for p in parameters)


class Trainer:
    """Owns the model, objective, optimiser, data iterator and the locked run folder."""

    def __init__(self, config: RunConfig, resume: bool = False, overwrite: bool = False, log=None, argv=None):
        if isinstance(config, dict):
            config = resolve(config)
        self.config, self.argv = config, argv
        self.log = log or (lambda *args: print(*args, file=sys.stderr, flush=True))
        self.folder = RunFolder(config.run.out)
        self.out = self.folder.path
        created = not self.folder.exists()
        self.folder.refuse_foreign()
        self.folder.lock("python -m minivae.train", log=self.log)
        try:
            self._setup(resume, overwrite)
        except BaseException:
            self.folder.unlock()
            if created and os.path.isdir(self.out) and not os.listdir(self.out):
                os.rmdir(self.out)  # a refused start leaves nothing behind
            raise

    # -- setting up ------------------------------------------------------------------------
    def _setup(self, resume, overwrite):
        config, folder = self.config, self.folder
        restart_from_config = False
        if folder.is_run():
            if overwrite:
                self._clear_run()
            elif not resume:
                hint = ("continue it with --resume" if folder.has_checkpoint() else
                        "it stopped before its first checkpoint: start it again from step 0 with --resume")
                raise TrainingError(f"the folder {self.out!r} already holds a run; {hint}, replace it with "
                                    "--overwrite, or choose another --out (nothing was changed)")
            elif not folder.has_checkpoint():
                restart_from_config = True
        elif resume:
            raise TrainingError(f"--resume: {self.out!r} holds no run to resume; start it without --resume")
        if resume and not overwrite:
            self._check_same_run()
        config.run.backend = build.use_backend(config)
        self.train_set, self.test_set = build.load_data(config)
        build.complete_config(config, self.train_set, self.test_set)
        self.model = build.build_model(config, self.train_set.shape)
        self.objective = build.build_objective(config, self.train_set)
        self.optimizer = Adam(self.model.parameters() + self.objective.parameters(), lr=config.optim.lr,
                              weight_decay=config.optim.weight_decay)
        self.batches = BatchIterator(self.train_set.images, config.optim.batch_size, shuffle=True,
                                     seed=config.run.seed, drop_last=True, return_indices=True)
        self.needs_labels = bool(self.objective.needs_labels)
        self.step, self._last_saved, self._stop, self._warned_bound = 0, None, None, False
        if resume and folder.has_checkpoint() and not overwrite:
            self._restore()
        else:
            if restart_from_config:
                self.log(f"note: {self.out!r} stopped before its first checkpoint; starting it again from step 0")
                for name in (METRICS, REPORT, "latents.jsonl"):
                    if os.path.exists(folder.file(name)):
                        os.unlink(folder.file(name))
            config.provenance = build.provenance(config, self.train_set, self.test_set, argv=self.argv)
            folder.write_json(CONFIG, config.to_json())

    def _clear_run(self):
        for name in RUN_FILES:
            path = self.folder.file(name)
            if os.path.isfile(path):
                os.unlink(path)
        self.log(f"note: --overwrite: removed the previous run's files from {self.out!r}")

    def _check_same_run(self):
        """Before anything changes: the folder's run must be this configuration (flags given now may
        only extend it: epochs, logging, checkpoints, backend)."""
        saved_json = self.folder.read_json(CONFIG)
        if saved_json is None:
            raise TrainingError(f"--resume: {self.out!r} has no config.json; it is not a run minivae can resume")
        saved = resolve(flatten(saved_json, where=f"{self.out}/config.json"))
        now, before = self.config.comparable(), saved.comparable()
        diffs = []
        for section in before:
            if isinstance(before[section], dict):
                for key in sorted(set(before[section]) | set(now.get(section, {}))):
                    a, b = before[section].get(key), now.get(section, {}).get(key)
                    if a != b and not (key in ("image_size", "n_train", "n_test", "hidden", "channels", "dense",
                                                "latent_dim", "batchnorm", "activation", "model", "classifier")
                                       and b is None):
                        diffs.append(f"{key}: run has {a!r}, now {b!r}")
            elif before[section] != now.get(section):
                diffs.append(f"{section}: run has {before[section]!r}, now {now.get(section)!r}")
        if diffs:
            raise TrainingError(f"--resume: the folder {self.out!r} holds a different run ({'; '.join(diffs)}); "
                                "resume with the same settings (only --epochs and the logging/checkpoint flags "
                                "may change) or choose another --out")

    def _restore(self):
        ckpt = load_checkpoint(self.folder.file(CHECKPOINT), self.model, self.optimizer)
        extra = ckpt.extra_json if isinstance(ckpt.extra_json, dict) else {}
        if "batches" not in extra:
            raise TrainingError(f"--resume: {self.folder.file(CHECKPOINT)} holds no data position (it was not "
                                "written by python -m minivae.train); start a new run with --overwrite")
        self.objective.load_state(ckpt.objective_state or {})
        self.batches.load_state_dict(extra["batches"])
        if ckpt.rng_state:
            backend.set_rng_state(ckpt.rng_state)
        self.step = self._last_saved = ckpt.step
        self._truncate_metrics()
        saved = self.folder.read_json(CONFIG)
        self.config.provenance = dict(saved.get("provenance") or {})
        self.config.provenance.setdefault("resumed", []).append(
            {"step": self.step, "command": " ".join(["python -m minivae.train", *(self.argv or sys.argv[1:])]),
             "backend": backend.name()})
        self.folder.write_json(CONFIG, self.config.to_json())
        self.log(f"resumed {self.out} at step {self.step} (epoch {self.epoch})")

    def _truncate_metrics(self):
        """Drop logged lines after the checkpoint: they will be logged again."""
        path = self.folder.file(METRICS)
        if not os.path.exists(path):
            return
        with open(path) as f:
            lines = [ln for ln in f if ln.strip() and json.loads(ln).get("step", 0) <= self.step]
        atomic_write_bytes(path, "".join(lines).encode())

    def close(self):
        """Release the run folder's lock (``run`` does it when it ends)."""
        self.folder.unlock()

    def __del__(self):
        folder = getattr(self, "folder", None)
        if folder is not None:
            folder.unlock()

    # -- checkpoints -------------------------------------------------------------------------
    def save(self):
        """Write the checkpoint at the current step boundary, never with non-finite parameters."""
        if not _finite_parameters(self.model.parameters() + self.objective.parameters()):
            raise TrainingError(f"the parameters became non-finite (NaN/inf) by step {self.step}; "
                                f"{self._intact()}. Lower --lr, or check the data and the objective's parameters")
        save_checkpoint(self.folder.file(CHECKPOINT), self.model, self.optimizer, config=self.config.to_json(),
                        step=self.step, epoch=self.epoch, objective_state=self.objective.state(),
                        rng_state=backend.rng_state(), extra_json={"batches": self.batches.state_dict()})
        self._last_saved, self._last_save_time = self.step, time.monotonic()

    def _intact(self):
        if self._last_saved is None:
            return (f"no checkpoint was written yet, so nothing was kept; start again with --overwrite "
                    f"(the folder {self.out!r} holds only config.json)")
        return f"the last good checkpoint (step {self._last_saved}) is intact in {self.folder.file(CHECKPOINT)}"

    def _check_finite(self, terms):
        for name in ("loss", "neg_elbo", "nll", "rec", "kl", "gamma", "lambda", "c_ma", "c_batch"):
            value = terms.get(name)
            if value is not None and not numpy.all(numpy.isfinite(value)):
                raise TrainingError(f"non-finite {name} ({value}) at step {self.step + 1}; {self._intact()}. "
                                    "Lower --lr, or check the data and the objective's parameters")

    # -- the loop ------------------------------------------------------------------------------
    def train_step(self, x_host, indices=None):
        x = Tensor(backend.to_device(x_host))
        self.optimizer.zero_grad()
        out = self.model(x)
        labels = backend.to_device(self.train_set.labels[indices]) if self.needs_labels else None
        loss, terms = self.objective.loss(x, out, labels=labels)
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
        total = len(self.batches) * self.config.optim.epochs
        return min(total, self.config.max_steps) if self.config.max_steps else total

    def _on_signal(self, signum, frame):
        if signum == signal.SIGINT and self._stop == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: abandon the step, keep the last checkpoint
        self._stop = signum
        self.log(f"\n{'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}: finishing step {self.step + 1}, "
                 "then writing a checkpoint (Ctrl-C again abandons the step)")

    def _due_checkpoint(self):
        run = self.config.run
        if run.checkpoint_every and self.step % run.checkpoint_every == 0:
            return True
        return bool(run.checkpoint_minutes) and time.monotonic() - self._last_save_time >= 60 * run.checkpoint_minutes

    def run(self):
        """Train to the end (or ``max_steps``), then evaluate and write the report; returns it."""
        try:
            previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: signals stay as they are
            previous = {}
        try:
            self._loop()
            return self.finish()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.folder.unlock()

    def _constraints(self):
        return [(c.name, c.kappa, c.kind) for c in getattr(self.objective, "constraints", [])] or None

    def _loop(self):
        config = self.config
        progress = Progress(self.total_steps(), start=self.step, constraints=self._constraints())
        self._last_save_time = time.monotonic()
        window_start, window_images = time.perf_counter(), 0
        with open(self.folder.file(METRICS), "a") as metrics:
            while self.step < self.total_steps():
                epoch_before = self.epoch
                x_host, indices = self.batches.next_batch()
                terms = self.train_step(x_host, indices)
                window_images += len(x_host)
                if self.step % config.run.log_every == 0 or self.step == self.total_steps():
                    elapsed = time.perf_counter() - window_start
                    record = {"step": self.step, "epoch": self.epoch, **jsonable(terms),
                              "images_per_s": window_images / max(elapsed, 1e-9)}
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    progress.update(self.step, record)
                    self._warn_once_at_bound(record)
                    window_start, window_images = time.perf_counter(), 0
                if config.run.diagnose_every and self.step % config.run.diagnose_every == 0:
                    self._record_latents()
                if self.epoch != epoch_before or self._due_checkpoint():
                    self.save()
                if self._stop is not None:
                    self.save()
                    progress.close()
                    self.log(f"checkpoint written at step {self.step}; continue with "
                             f"python -m minivae.train --out {self.out} --resume")
                    raise KeyboardInterrupt if self._stop == signal.SIGINT else Terminated()
        if self._last_saved != self.step:
            self.save()
        progress.close()

    def _bound_warning(self):
        """GECO: the one-line warning when any λ sat on its bound so far, else None."""
        counts = getattr(self.objective, "steps_at_bound", None)
        if counts is None or not numpy.any(counts):
            return None
        from ..vae.geco_control import bound_warning  # noqa: PLC0415
        return bound_warning([c.name for c in self.objective.constraints], counts, self.step,
                             numpy.exp(self.objective.log_min), numpy.exp(self.objective.log_max))

    def _warn_once_at_bound(self, record):
        at_bound = record.get("lambda_at_bound")
        if at_bound and any(at_bound if isinstance(at_bound, list) else [at_bound]) and not self._warned_bound:
            self._warned_bound = True
            self.log(f"\nwarning: at step {self.step} GECO's λ reached its bound: it no longer follows the "
                     "constraint (see the final summary; --geco-controller pid avoids this)")

    def _record_latents(self, n=1000):
        """Per-variable Var μ and E σ² on a fixed test subset (latents.jsonl): the evolution plot of
        Asperti's sparsity post (some variances go to 0, some to 1)."""
        stats = model_latent_statistics(self.model, self.test_set.images[:n])
        record = {"step": self.step, "var_mu": stats.var_mu.tolist(), "mean_sigma2": stats.mean_sigma2.tolist()}
        with open(self.folder.file("latents.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- after training ----------------------------------------------------------------------------
    def evaluate(self, dataset, batch_size=500):
        """Test-set terms (batch means averaged over the set), model in eval mode, ε from a fixed seed."""
        totals, n = {}, 0
        eps = numpy.random.default_rng(12345).standard_normal((len(dataset), self.model.latent_dim))
        labels = dataset.labels if self.needs_labels else numpy.zeros(len(dataset), dtype=numpy.int64)

        def terms_of(x, e, y):
            _, terms = self.objective.loss(x, self.model(x, eps=e.data), labels=y.data.astype("int64") if self.needs_labels else None)
            count = x.shape[0]
            for k, v in terms.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    totals[k] = totals.get(k, 0.0) + float(v) * count
            return e
        with evaluating(self.model):
            batched_map(terms_of, dataset.images, eps, labels, batch_size=batch_size)
        n = len(dataset)
        return {k: v / n for k, v in totals.items()}

    def write_images(self):
        z = numpy.random.default_rng(0).standard_normal((self.config.run.n_samples, self.model.latent_dim))
        real = self.test_set.images[:32]
        with evaluating(self.model):
            samples = batched_map(self.model.decode, z)
            recon = batched_map(lambda x: self.model.decode(self.model.encode(x)[0]), real)
        save_grid(self.folder.file("samples.png"), numpy.clip(samples, 0, 1), scale=2)
        # rows of 16 originals, each followed by the row of their reconstructions
        recon = numpy.clip(recon, 0, 1)
        rows = [part for i in range(0, len(real), 16) for part in (real[i:i + 16], recon[i:i + 16])]
        save_grid(self.folder.file("reconstructions.png"), numpy.concatenate(rows), nrow=16, scale=2,
                  row_labels=["original", "reconstruction"])

    def finish(self):
        test_terms = self.evaluate(self.test_set)
        stats = model_latent_statistics(self.model, self.test_set.images)
        report = {"step": self.step, "epoch": self.epoch, "test": test_terms, "latents": stats.summary(),
                  "expected": EXPECT, "objective_state": jsonable(self.objective.state()),
                  "dataset": {"name": self.config.data.dataset, "train": len(self.train_set),
                              "test": len(self.test_set), "shape": list(self.train_set.shape)}}
        if self.train_set.factor_names:
            report["dataset"]["true_factors"] = list(self.train_set.factor_names)
        warning = self._bound_warning()
        if warning:
            report["warnings"] = [warning]
        self.folder.write_json(REPORT, report)
        self.write_images()
        report["plots"] = write_training_plots(self.out)
        return report


__all__ = ["Trainer", "TrainingError"]
