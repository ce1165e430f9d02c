"""Host↔device transfers per training step, counted on the CuPy stand-in.

The budget (design.md: data stays on the device, only what is printed comes back):

* host → device: one copy per step, the batch of images (plus its labels when the
  objective needs them, e.g. GECO's CLA constraint);
* device → host: one scalar (a single float32, reduced on the device) per logged term:
  ``kl``, ``mse``, ``loss``, ``rec`` (``nll`` and ``neg_elbo`` are derived from them
  on the host), plus γ itself when it is a learned parameter. The balanced γ update
  (Dai & Wipf) needs only ``mse``, already among them;
* a logged step (``metrics.jsonl`` line, progress line) costs nothing more: the log
  is written from those host floats.

The counts are exact (``==``), so a new per-step crossing fails here and must be
either removed or added to the budget above with its reason. Runs on the stand-in on
every machine (real CuPy offers no hook to count copies); ids say ``standin``.
"""
import os

import numpy as np
import pytest

from minivae import backend

from minivae.train import Trainer, build_parser, resolve

pytestmark = pytest.mark.standin

# objective -> (host→device, device→host) per step
BUDGET = {"balanced": (1, 4), "elbo": (1, 4), "learned-gamma": (1, 5)}


def _trainer(tmp_path, objective, log_every):
    args = build_parser().parse_args(
        ["--n-train", "96", "--n-test", "32", "--batch-size", "16", "--preset", "sprites-dense",
         "--hidden", "16", "--latent-dim", "3", "--backend", "cupy", "--objective", objective,
         "--max-steps", "4", "--log-every", str(log_every), "--checkpoint-every", "0",
         "--out", str(tmp_path / f"{objective}-{log_every}")])
    return Trainer(resolve(vars(args)), log=lambda *a: None)


def _per_step_events(trainer, log):
    """Run the trainer's own loop for its 4 steps; the events between one step's start and
    the next one's (what the loop does after the step, logging included, belongs to it)."""
    marks = []
    step = trainer.train_step

    def marked_step(*args, **kwargs):
        marks.append(len(log.events))
        return step(*args, **kwargs)

    trainer.train_step = marked_step
    trainer.save = lambda: None          # checkpoints and the final report are not steps
    trainer.finish = lambda: None
    trainer.run()
    marks.append(len(log.events))
    return [log.events[a:b] for a, b in zip(marks, marks[1:])]


@pytest.mark.parametrize("objective", sorted(BUDGET))
@pytest.mark.parametrize("log_every", [1000, 1], ids=["training-step", "logged-step"])
def test_transfers_per_step_hold_the_budget(standin, tmp_path, objective, log_every):
    trainer = _trainer(tmp_path, objective, log_every)
    standin.LOG.clear()
    steps = _per_step_events(trainer, standin.LOG)
    assert len(steps) == 4
    h2d, d2h = BUDGET[objective]
    batch_bytes = 16 * trainer.train_set.images[0].nbytes
    for i, events in enumerate(steps, 1):
        up = [e for e in events if e[0] == "h2d"]
        down = [e for e in events if e[0] == "d2h"]
        assert len(up) == h2d and len(down) == d2h, f"step {i}: {events}"
        assert up[0][1] == batch_bytes, up               # the batch itself (float32 on both sides)
        assert all(n == 4 for _, n, _ in down), down     # each a single float32: reduced on the device
    # the last step is logged in both runs (step == total); with log_every=1 every step is
    with open(os.path.join(trainer.out, "metrics.jsonl")) as f:
        assert len(f.readlines()) == (4 if log_every == 1 else 1)


def test_the_counter_sees_what_it_should(standin):
    """The log is not vacuous: each allowed crossing is recorded once, with its size."""
    backend.use("cupy", dtype="float32")
    d = backend.to_device(np.zeros((3, 4)))
    x = float(d.sum())
    h = backend.to_host(d)
    assert x == 0.0 and h.shape == (3, 4)
    assert [(k, n) for k, n, _ in standin.LOG.events] == [("h2d", 48), ("d2h", 4), ("d2h", 48)]
    assert [where.split(":")[0] for _, _, where in standin.LOG.events] == [
        "minivae/backend.py", "tests/test_transfers.py", "minivae/backend.py"]
