"""The quantisation of the β-independent NLL (math.md §6; Taming VAEs App. D): bins of
width δ = 1/255 centred on the 256 levels k/255 of 8-bit data, against Φ written here
from math.erfc."""
import math

import numpy as np
import pytest

from minivae.data import to_images
from minivae.vae.metrics import (MetricError, beta_independent_nll, quantisation_levels,
                                 quantised_normal_log_prob)

LEVELS = np.arange(256) / 255.0


def phi(v):
    """Standard normal CDF from math.erfc (not from the code under test)."""
    return 0.5 * math.erfc(-v / math.sqrt(2.0))


def bin_prob(lo, hi):
    """Φ(hi) − Φ(lo), as a difference of upper tails when both are positive (no cancellation)."""
    if lo > 0:
        return 0.5 * math.erfc(lo / math.sqrt(2.0)) - 0.5 * math.erfc(hi / math.sqrt(2.0))
    return phi(hi) - phi(lo)


@pytest.mark.parametrize("x_hat, sigma", [(0.3, 0.05), (0.0, 0.2), (1.0, 0.01), (0.5, 3.0),
                                          (-0.4, 0.1), (0.999, 1e-3), (0.62, 1e-4)])
def test_open_edge_bin_probabilities_sum_to_one_over_the_256_levels(x_hat, sigma):
    p = np.exp(quantised_normal_log_prob(LEVELS, x_hat, sigma, open_edges=True))
    assert p.shape == (256,)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("x_hat, sigma", [(0.3, 0.05), (0.0, 0.2), (1.0, 0.01), (0.5, 3.0)])
def test_closed_bins_tile_minus_half_delta_to_one_plus_half_delta_without_gaps(x_hat, sigma):
    """Σ_k P(k/255) telescopes to Φ((1 + δ/2 − x̂)/σ) − Φ((−δ/2 − x̂)/σ) only if each bin
    starts where the previous one ends (δ = 1/256 on k/255 leaves 255 gaps of 1/65280)."""
    p = np.exp(quantised_normal_log_prob(LEVELS, x_hat, sigma))
    half = 0.5 / 255
    covered = phi((1 + half - x_hat) / sigma) - phi((-half - x_hat) / sigma)
    assert p.sum() == pytest.approx(covered, abs=1e-12)
    assert p.sum() < 1.0     # the closed edge bins lose the two tails


def test_each_bin_is_centred_on_its_level_with_width_one_over_255():
    rng = np.random.default_rng(0)
    k = rng.integers(0, 256, 50)
    x_hat = rng.uniform(0, 1, 50)
    got = np.exp(quantised_normal_log_prob(k / 255, x_hat, sigma=0.1))
    want = [bin_prob((kk / 255 - 0.5 / 255 - m) / 0.1, (kk / 255 + 0.5 / 255 - m) / 0.1)
            for kk, m in zip(k, x_hat)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # open edges change only the bins of 0 and 1
    x = np.array([0.0, 1.0, 17 / 255])
    s = 0.07
    opened = np.exp(quantised_normal_log_prob(x, 0.4, s, open_edges=True))
    np.testing.assert_allclose(opened, [phi((0.5 / 255 - 0.4) / s),
                                        0.5 * math.erfc((1 - 0.5 / 255 - 0.4) / s / math.sqrt(2)),
                                        bin_prob((16.5 / 255 - 0.4) / s, (17.5 / 255 - 0.4) / s)],
                               rtol=1e-9)


def test_float32_images_as_loaded_are_scored_on_their_exact_levels():
    """minivae's loaders store k/255 in float32 (k/255 rounded); the bins are still the
    exact k/255 ones, so the open-edge probabilities of all 256 levels sum to 1."""
    as_loaded = to_images(np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)).reshape(-1)
    assert as_loaded.dtype == np.float32
    p = np.exp(quantised_normal_log_prob(as_loaded, 0.37, 0.02, open_edges=True))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(quantised_normal_log_prob(as_loaded, 0.37, 0.02),
                                  quantised_normal_log_prob(LEVELS, 0.37, 0.02))


def test_levels_and_bad_steps():
    assert quantisation_levels(1 / 255) == 255 and quantisation_levels(1 / 256) == 256
    for bad in (0.0, -1 / 255, 0.003, float("nan"), 2.0):
        with pytest.raises(MetricError, match="δ"):
            quantisation_levels(bad)
    with pytest.raises(MetricError, match=r"\[0, 1\]"):
        quantised_normal_log_prob(np.array([0.2, 1.5]), 0.5, 0.1)


class _Identity:
    """A 'model' whose reconstruction is its input plus a fixed offset (no latent noise)."""
    latent_dim = 1
    training = False

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def __call__(self, x, eps=None):
        class Out:
            pass
        out = Out()
        out.x_hat = type(x)(x.data * 0 + 0.25)
        return out


def test_beta_independent_nll_states_its_convention_and_uses_one_over_255():
    x = (np.array([0, 1, 64, 128, 200, 255] * 4, dtype=np.float32) / 255).reshape(4, 1, 2, 3)
    res = beta_independent_nll(_Identity(), None, x, sigma=0.1)
    assert res["delta"] == pytest.approx(1 / 255) and res["levels"] == 256
    assert "k/255" in res["bin_centres"] and "∓∞" in res["edge_bins"]
    assert res["max_offset_from_levels"] < 1e-4
    want = -np.mean([math.log(bin_prob((v - 0.5) / 255 / 0.1 - 2.5, (v + 0.5) / 255 / 0.1 - 2.5))
                     for v in [0, 1, 64, 128, 200, 255]])
    assert res["nats_per_dim"] == pytest.approx(want, rel=1e-9)
