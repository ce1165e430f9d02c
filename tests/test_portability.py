"""Checkpoint portability: a run trained on one backend resumes, samples and evaluates
on the other (CuPy stand-in ↔ NumPy), and its arrays cross bit-identically.

Runs on the stand-in on every machine (ids say ``standin``): the claim is about the
checkpoint format and the host/device copies, which the stand-in performs through the
same ``backend.to_host`` / ``to_device`` calls as CuPy."""
import json
import os

import numpy as np
import pytest

from minivae import backend
from minivae.checkpoint import load_checkpoint
from minivae.evaluate import main as evaluate_main
from minivae.sample import main as sample_main
from minivae.train.__main__ import main as train_main
from minivae.run import load_run as load_stage1

pytestmark = pytest.mark.standin

SMALL = ["--n-train", "96", "--n-test", "48", "--batch-size", "16", "--preset", "sprites-dense",
         "--hidden", "16", "--latent-dim", "3", "--log-every", "2"]
EVAL = ["--k", "4", "--n-iwae", "16", "--n-refit", "48", "--n-nll", "16", "--no-fd", "--seed", "3"]


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k.startswith(("model/", "optim/"))}


def _model_on(backend_name, run):
    """The run's model rebuilt on ``backend_name`` and loaded, as sample/evaluate do it."""
    return load_stage1(run, backend_name).model


@pytest.mark.parametrize("first, then", [("numpy", "cupy"), ("cupy", "numpy")])
def test_a_run_moves_between_backends(standin, tmp_path, first, then):
    run = str(tmp_path / "run")
    assert train_main([*SMALL, "--backend", first, "--max-steps", "4", "--out", run]) == 0
    saved = _arrays(os.path.join(run, "checkpoint.npz"))

    # the checkpoint's arrays arrive bit-identical on the other backend ...
    model = _model_on(then, run)
    for name, value in [(n, p.data) for n, p in model.named_parameters()] + list(model.named_buffers()):
        assert backend.get_array_module(value).__name__ == ("cupy" if then == "cupy" else "numpy")
        host = backend.to_host(value)
        ref = saved["model/" + name.replace(".", "/")]
        assert host.dtype == ref.dtype and np.array_equal(host, ref), name

    # ... the run resumes there (same config, only --backend differs) and goes on
    assert train_main(["--out", run, "--resume", "--backend", then, "--max-steps", "6"]) == 0
    resumed = load_checkpoint(os.path.join(run, "checkpoint.npz"))
    assert resumed.step == 6 and resumed.config["run"]["backend"] == then
    assert all(np.all(np.isfinite(v)) for v in resumed.model_state.values())
    moved = sum(not np.array_equal(resumed.model_state[k], saved["model/" + k.replace(".", "/")])
                for k in resumed.model_state)
    assert moved > 0                                     # it trained, it did not just copy

    # ... and samples and evaluates on both backends with the same numbers
    images = {}
    for name in (first, then):
        npy = str(tmp_path / f"samples-{name}.npy")
        assert sample_main([run, "--n", "8", "--seed", "1", "--backend", name, "--out",
                            str(tmp_path / f"s-{name}.png"), "--npy", npy]) == 0
        images[name] = np.load(npy)
    assert images[first].shape == (8, 1, 28, 28)
    # same host-seeded draws, same arithmetic (the stand-in computes with NumPy); on a GPU
    # the parity tests bound the difference instead
    assert np.array_equal(images[first], images[then])

    metrics = {}
    for name in (first, then):
        assert evaluate_main([run, *EVAL, "--backend", name]) == 0
        with open(os.path.join(run, "report.json")) as f:
            metrics[name] = json.load(f)["metrics"]
    assert metrics[first] == metrics[then]
    assert np.isfinite(metrics[then]["iwae"]["iwae_k4"]["nll_nats"])


def test_checkpoint_written_on_the_device_holds_host_arrays(standin, tmp_path):
    """Saving from CuPy copies each array to the host once; the file equals the device values."""
    run = str(tmp_path / "run")
    assert train_main([*SMALL, "--backend", "cupy", "--max-steps", "2", "--out", run]) == 0
    model = _model_on("cupy", run)
    from minivae.checkpoint import save_checkpoint
    again = str(tmp_path / "again.npz")
    n_arrays = len(list(model.named_parameters()) + list(model.named_buffers()))
    standin.LOG.clear()
    save_checkpoint(again, model)
    assert standin.LOG.count("h2d") == 0 and standin.LOG.count("d2h") == n_arrays
    a, b = _arrays(os.path.join(run, "checkpoint.npz")), _arrays(again)
    for key, value in b.items():
        assert np.array_equal(value, a[key]) and value.dtype == a[key].dtype, key


def test_the_command_line_runs_on_the_standin_and_says_so(standin, tmp_path):
    """``python -m minivae.train --backend cupy`` in a fresh process, as the acceptance dry run
    starts it: the stand-in is found as ``cupy`` and announces itself on stderr."""
    import subprocess
    import sys

    from conftest import standin_env
    run = str(tmp_path / "run")
    proc = subprocess.run([sys.executable, "-m", "minivae.train", *SMALL, "--backend", "cupy", "--max-steps", "2",
                           "--out", run], capture_output=True, text=True, env=standin_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("note: 'cupy' is minivae's CPU stand-in") and "no GPU is used" in proc.stderr
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["run"]["backend"] == "cupy"
