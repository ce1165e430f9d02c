"""Latent diagnostics (math.md §5): the variance law on an encoder built to satisfy it,
the marginal KL against exact values, the reconstruction gain against its closed form,
and the diagnose / evaluate commands on a tiny run."""
import json
import math
import os
import sys
import types

import numpy as np
import pytest

from minivae import Tensor, backend, nn
from minivae.vae.diagnostics import (encode_dataset, latent_statistics, log_aggregate_posterior, marginal_kl,
                                     model_latent_statistics, reconstruction_gain)


class SyntheticVAE(nn.Module):
    """μ_j(x) = c_j · x_j on data standardised per dimension, σ_j² = 1 − c_j²: then
    Var_X μ_j + E_X σ_j² = c_j² + 1 − c_j² = 1 exactly. The decoder is linear, x̂ = z Aᵀ."""

    def __init__(self, c, a):
        super().__init__()
        self.c, self.a = np.asarray(c, float), np.asarray(a, float)
        self.latent_dim = len(c)

    def encode(self, x):
        xf = x.numpy().reshape(len(x), -1)
        mu = xf * self.c
        return Tensor(mu), Tensor(np.broadcast_to(np.log1p(-self.c ** 2), mu.shape).copy())

    def decode(self, z):
        return Tensor((z.numpy() @ self.a.T).reshape(len(z), 1, 1, -1))


def standardised(n, k, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, k))
    x = (x - x.mean(0)) / x.std(0)  # population moments exactly 0 and 1
    return x.reshape(n, 1, 1, k)


@pytest.fixture
def f64():
    backend.use("numpy", dtype="float64")


def test_variance_law_holds_exactly_for_an_encoder_built_to_satisfy_it(f64):
    c = np.array([0.0, 0.1, 0.5, 0.9, 0.99])
    model = SyntheticVAE(c, np.eye(5))
    x = standardised(400, 5)
    stats = model_latent_statistics(model, x, batch_size=64)
    np.testing.assert_allclose(stats.variance_law, 1.0, atol=1e-12)
    np.testing.assert_allclose(stats.var_mu, c ** 2, atol=1e-12)
    np.testing.assert_allclose(stats.mean_sigma2, 1 - c ** 2, atol=1e-12)
    # Var μ < 0.05 is inactive: c = 0 and c = 0.1 (Var μ = 0.01)
    assert stats.active.tolist() == [False, False, True, True, True]
    s = stats.summary()
    assert s["active_count"] == 3 and s["variance_law_mean"] == pytest.approx(1.0)
    # KL per variable: E[½(μ² + σ² − log σ² − 1)] = −½ log(1 − c²) when Var μ + E σ² = 1, E μ = 0
    np.testing.assert_allclose(stats.kl_per_dim, -0.5 * np.log1p(-c ** 2), atol=1e-12)


def test_reconstruction_gain_matches_its_closed_form(f64):
    """With a linear decoder x̂ = μ Aᵀ, zeroing μ_j changes x̂ by −μ_j a_j: the gain is
    E‖x − x̂ + μ_j a_j‖²/D − E‖x − x̂‖²/D -- exactly 0 for an inactive (μ_j ≡ 0) variable,
    and larger for the variables that carry more of the data."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 3))
    mu = rng.normal(size=(300, 3)) * np.array([0.0, 0.3, 2.0])
    x = (mu @ a.T + 0.01 * rng.normal(size=(300, 4))).reshape(300, 1, 1, 4)
    gain = reconstruction_gain(_Adapter(SyntheticVAE([0.5] * 3, a)), x, mu=mu, batch_size=70)
    xf = x.reshape(300, 4)
    base = ((xf - mu @ a.T) ** 2).mean()
    expected = [((xf - mu @ a.T + np.outer(mu[:, j], a[:, j])) ** 2).mean() - base for j in range(3)]
    np.testing.assert_allclose(gain, expected, rtol=1e-10, atol=1e-15)
    assert gain[0] == 0.0 and 0 < gain[1] < gain[2]


class _Adapter(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def decode(self, z):
        return self.inner.decode(z)


def test_marginal_kl_is_zero_for_standard_normal_posteriors():
    mu, logvar = np.zeros((500, 4)), np.zeros((500, 4))
    res = marginal_kl(mu, logvar, n_samples=300, seed=0)
    assert abs(res["marginal_kl"]) < 1e-10 and res["n_data"] == 500 and res["n_samples"] == 300
    # and the average KL of such an encoder is 0 as well
    assert latent_statistics(mu, logvar).summary()["average_kl"] == 0.0


def test_marginal_kl_of_one_posterior_is_its_closed_form_kl():
    mu, logvar = np.array([[0.7, -1.2]]), np.array([[-0.5, 0.8]])
    exact = 0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1).sum()
    res = marginal_kl(mu, logvar, n_samples=20000, seed=1)
    assert abs(res["marginal_kl"] - exact) < 4 * res["marginal_kl_stderr"]


def test_marginal_kl_is_below_the_average_kl_by_at_most_log_n():
    """E_X KL(q(z|x)||p) = I(x; z) + KL(q(z)||p) with 0 ≤ I ≤ log N."""
    rng = np.random.default_rng(2)
    mu, logvar = rng.normal(0, 1.5, (200, 3)), rng.normal(-1, 0.3, (200, 3))
    avg = latent_statistics(mu, logvar).summary()["average_kl"]
    res = marginal_kl(mu, logvar, n_samples=4000, seed=3)
    assert avg - math.log(200) - 0.1 < res["marginal_kl"] < avg
    sub = marginal_kl(mu, logvar, n_samples=100, n_data=50, seed=3)
    assert sub["n_data"] == 50


def test_log_aggregate_posterior_matches_the_brute_force_mixture():
    rng = np.random.default_rng(4)
    mu, logvar, z = rng.normal(size=(30, 3)), rng.normal(-1, 0.5, (30, 3)), rng.normal(size=(7, 3))
    comp = -0.5 * (((z[:, None] - mu[None]) ** 2) / np.exp(logvar)[None] + logvar[None]
                   + math.log(2 * math.pi)).sum(-1)
    expected = np.log(np.exp(comp).mean(1))
    np.testing.assert_allclose(log_aggregate_posterior(z, mu, logvar, chunk=3), expected, rtol=1e-12)


def test_encode_dataset_keeps_the_training_flag(f64):
    model = SyntheticVAE([0.5], np.eye(1))
    model.train()
    mu, logvar = encode_dataset(model, standardised(10, 1))
    assert model.training and mu.dtype == np.float64 and mu.shape == (10, 1)


# ----------------------------------------------------------------------------- the commands on a tiny run

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from minivae.train.__main__ import main as train_main
    out = str(tmp_path_factory.mktemp("runs") / "tiny")
    backend.use("numpy", dtype="float32", seed=0)
    assert train_main(["--dataset", "sprites", "--n-train", "256", "--n-test", "64", "--image-size", "16",
                       "--preset", "sprites-dense", "--hidden", "32", "--latent-dim", "3", "--epochs", "1",
                       "--batch-size", "64", "--objective", "balanced", "--diagnose-every", "2",
                       "--out", out]) == 0
    return out


def test_diagnose_command_prints_and_saves_every_quantity(tiny_run, capsys):
    from minivae.diagnose import main as diagnose_main
    assert diagnose_main([tiny_run, "--n-gain", "32", "--marginal-samples", "200"]) == 0
    printed = capsys.readouterr().out
    for text in ("Var mu", "variance law mean", "average KL", "marginal KL", "N = 64", "variance loss"):
        assert text in printed
    d = json.load(open(os.path.join(tiny_run, "diagnostics.json")))
    pv = d["per_variable"]
    assert set(pv) >= {"var_mu", "mean_sigma2", "variance_law", "kl", "reconstruction_gain", "active"}
    assert len(pv["reconstruction_gain"]) == 3 and d["marginal_kl"]["n_data"] == 64
    assert set(d["variance_loss"]) >= {"pixel_reconstructions", "pixel_prior_samples"}
    assert json.load(open(os.path.join(tiny_run, "report.json")))["diagnostics"]["active_count"] == d["active_count"]
    # the training run recorded the per-variable evolution (latents.jsonl) that the plot reads
    from minivae.plots.latents import read_latents
    steps, var_mu, sigma2 = read_latents(tiny_run)
    assert steps.tolist() == [2, 4] and var_mu.shape == (2, 3) == sigma2.shape


@pytest.mark.plot
def test_latent_plots_when_matplotlib_is_installed(tiny_run):
    pytest.importorskip("matplotlib")
    from minivae.plots import latents
    paths = latents.write(tiny_run)
    assert any(p.endswith("latents.png") for p in paths)
    assert all(open(p, "rb").read()[:4] == b"\x89PNG" for p in paths)


def test_diagnose_bad_input(tmp_path, capsys, tiny_run):
    from minivae.diagnose import main as diagnose_main
    assert diagnose_main([str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert diagnose_main([tiny_run, "--n", "0"]) == 2
    assert "positive" in capsys.readouterr().err


def test_evaluate_command_without_and_with_a_classifier(tiny_run, tmp_path, capsys, monkeypatch):
    from minivae import evaluate
    assert evaluate.main([tiny_run, "--no-fd", "--k", "4", "--n-iwae", "16", "--n-refit", "64",
                          "--n-nll", "32"]) == 0
    metrics = json.load(open(os.path.join(tiny_run, "report.json")))["metrics"]
    iwae = metrics["iwae"]
    assert iwae["iwae_k4"]["nll_nats"] <= iwae["elbo_k1"]["nll_nats"] + 5 * iwae["elbo_k1"]["nll_nats_stderr"]
    assert metrics["beta_independent_nll"]["sigma_star"] > 0
    capsys.readouterr()
    assert evaluate.main([tiny_run, "--k", "0", "--no-fd"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert evaluate.main([tiny_run, "--classifier", str(tmp_path / "none")]) == 2
    assert "python -m minivae.classifier" in capsys.readouterr().err

    class Fake:
        def __init__(self, shape):
            self.input_shape = shape

        def features(self, x):  # mean intensity per row, a 16-feature map
            return x.reshape((len(x), x.shape[2], -1)).mean(axis=2)

    fake = types.ModuleType("minivae.classifier")
    fake.load_classifier = lambda path: Fake(tuple(int(v) for v in open(path).read().split(",")))
    monkeypatch.setitem(sys.modules, "minivae.classifier", fake)
    wrong, right = tmp_path / "wrong", tmp_path / "right"
    wrong.write_text("1,28,28")
    right.write_text("1,16,16")
    assert evaluate.main([tiny_run, "--classifier", str(wrong), "--k", "2", "--n-iwae", "4"]) == 2
    assert "trained on images of shape (1, 28, 28)" in capsys.readouterr().err
    assert evaluate.main([tiny_run, "--classifier", str(right), "--k", "2", "--n-iwae", "4", "--n-fd", "10"]) == 2
    assert "at least 17 are needed" in capsys.readouterr().err   # 16 features need 17 samples
    assert evaluate.main([tiny_run, "--classifier", str(right), "--k", "2", "--n-iwae", "4", "--n-fd", "64"]) == 0
    fd = json.load(open(os.path.join(tiny_run, "report.json")))["metrics"]["frechet"]
    assert fd["n"] == 64 and fd["feature_dim"] == 16 and "not comparable" in fd["note"]
    assert set(fd["samples"]) == {"stage1_prior"} and fd["samples"]["stage1_prior"] > 0
    assert set(fd["references"]) == {"reconstructions", "train_images"}
    assert os.path.isfile(os.path.join(tiny_run, "fd-samples-stage1_prior.png"))
