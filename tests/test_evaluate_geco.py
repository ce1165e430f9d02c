"""``python -m minivae.evaluate`` on a run without a decoder variance (GECO, math.md §3, §6):
the IWAE bound must then use γ = σ*², the β-independent re-fit, and say so. Both commands
run as a user runs them (subprocesses, tiny sizes)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from minivae import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MINIVAE_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_evaluate_a_geco_run_uses_the_refitted_sigma_squared(tmp_path):
    run = str(tmp_path / "geco")
    _run("minivae.train", "--dataset", "sprites", "--n-train", "128", "--n-test", "32", "--image-size", "16",
         "--preset", "sprites-dense", "--hidden", "16", "--latent-dim", "2", "--epochs", "1",
         "--batch-size", "32", "--objective", "geco", "--kappa", "0.2", "--out", run, cwd=tmp_path)
    _run("minivae.evaluate", run, "--no-fd", "--k", "3", "--n-iwae", "8", "--n-refit", "64", "--n-nll", "16",
         cwd=tmp_path)
    metrics = json.load(open(os.path.join(run, "report.json")))["metrics"]
    sigma = metrics["beta_independent_nll"]["sigma_star"]
    iwae = metrics["iwae"]
    assert 0 < sigma < 1
    assert iwae["likelihood"] == "gaussian"
    assert iwae["gamma"] == pytest.approx(sigma ** 2, rel=1e-12)          # γ = σ*², not σ*
    assert "no decoder variance" in iwae["gamma_source"]
    # the reported K = 1 bound is the IWAE estimate at that γ, in nats and bits per dimension
    from minivae.run import load_run as load_stage1
    from minivae.vae.metrics import iwae_log_likelihood
    stage1 = load_stage1(run)
    _, test = stage1.load_data()
    backend.use("numpy", dtype=str(stage1.model.parameters()[0].data.dtype))
    log_px = iwae_log_likelihood(stage1.model, test.images[:8], 1, gamma=sigma ** 2, seed=0)
    assert iwae["elbo_k1"]["nll_nats"] == pytest.approx(-log_px.mean(), rel=1e-5)
    d = int(np.prod(test.images.shape[1:]))
    assert iwae["elbo_k1"]["bits_per_dim"] == pytest.approx(-log_px.mean() / (d * math.log(2)), rel=1e-5)
