"""A short run on a small `sprites` set, for every objective, must beat the best
constant reconstruction (the mean training image) by a stated factor.

Baseline: the test MSE of predicting the mean training image, ≈ 0.041 per pixel.
Measured with these settings (seed 0): balanced 0.56, bernoulli 0.60, learned-γ 0.78,
elbo (γ = 0.01) 0.51, β-VAE (β = 4, γ = 0.01) 0.38 of the baseline; the thresholds
below leave a margin for BLAS rounding differences between machines.
"""
import numpy as np
import pytest

from minivae.train import Trainer, resolve

CASES = {
    "balanced": ({}, 0.70),
    "bernoulli": ({}, 0.75),
    "learned-gamma": ({}, 0.90),
    "elbo": ({"gamma": 0.01}, 0.65),
    "beta-vae": ({"beta": 4.0, "gamma": 0.01}, 0.60),
}


def short_run(tmp_path, objective, extra):
    config = resolve({"out": str(tmp_path / objective), "n_train": 2000, "n_test": 500, "batch_size": 64,
                      "lr": 3e-3, "epochs": 6, "objective": objective, "preset": "sprites-dense",
                      "hidden": "128,64", "latent_dim": 6, "log_every": 1000, **extra})
    trainer = Trainer(config, log=lambda *_: None)
    baseline = float(((trainer.test_set.images - trainer.train_set.images.mean(0)) ** 2).mean())
    before = trainer.evaluate(trainer.test_set)
    report = trainer.run()
    return trainer, baseline, before, report["test"]


@pytest.mark.parametrize("objective", list(CASES))
def test_short_run_beats_the_mean_image(tmp_path, objective):
    extra, threshold = CASES[objective]
    trainer, baseline, before, after = short_run(tmp_path, objective, extra)
    assert after["mse"] < threshold * baseline, (after["mse"], baseline)
    assert after["loss"] < before["loss"]
    assert np.isfinite(after["kl"]) and after["kl"] > 0.5  # the latents carry information
    if objective == "learned-gamma":
        assert after["gamma"] < 0.7  # γ left its initial value 1, toward the MSE
    if objective == "balanced":
        assert after["gamma"] < 0.25  # γ only goes down, tracking the MSE from γ₀ = 1
