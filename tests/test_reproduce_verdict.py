"""The verdict rules of python -m minivae.reproduce, on constructed numbers, and the
closed forms the fixed-point claims compare with (checked against brute force)."""
import math

import numpy
import pytest

from minivae.reproduce import fixedpoints, verdict
from minivae.reproduce.verdict import DIFFERS, PARTIAL, REPRODUCED


def test_spread_is_the_sample_mean_and_standard_deviation():
    s = verdict.spread([1.0, 2.0, 6.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(3.0)
    assert s["sd"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))
    assert (s["min"], s["max"]) == (1.0, 6.0)
    assert verdict.spread([4.0])["sd"] is None


def test_spread_refuses_nothing_and_nan():
    with pytest.raises(ValueError, match="no measured values"):
        verdict.spread([])
    with pytest.raises(ValueError, match="non-finite"):
        verdict.spread([1.0, float("nan")])


@pytest.mark.parametrize("values, expected", [
    ([8, 7, 9], REPRODUCED),        # mean 8
    ([7, 6, 6], PARTIAL),           # mean 6.33 is 1.67 off; the seed at 7 is within 1.5
    ([9.5], REPRODUCED),            # exactly at the edge
    ([5, 5, 7], PARTIAL),           # mean 5.67 off, but one seed (7) within 1.5
    ([0, 0, 1], DIFFERS),
    ([10, 10, 10], DIFFERS),        # 2 above: the rule is two-sided
])
def test_near_value(values, expected):
    v = verdict.near_value(values, 8.0, 1.5, what="count")
    assert v.verdict == expected
    assert "8" in v.tolerance and "1.5" in v.tolerance
    assert str(values[0]) in v.why


def test_groups_near_one():
    good = verdict.groups_near_one({"active": [0.95, 1.05], "inactive": [1.0, 1.02]}, 0.1)
    assert good.verdict == REPRODUCED
    one_bad = verdict.groups_near_one({"active": [1.3, 1.2], "inactive": [1.0]}, 0.1)
    assert one_bad.verdict == PARTIAL and "active" in one_bad.why
    empty = verdict.groups_near_one({"active": [1.0], "inactive": []}, 0.1)
    assert empty.verdict == PARTIAL and "no variables" in empty.why
    assert verdict.groups_near_one({"active": [1.5], "inactive": [0.5, 0.6]}, 0.1).verdict == DIFFERS


def test_ratios_near_one():
    assert verdict.ratios_near_one([0.95, 1.08], 0.1).verdict == REPRODUCED
    assert verdict.ratios_near_one([0.85, 1.1], 0.1).verdict == PARTIAL  # mean 0.975, one out
    assert verdict.ratios_near_one([1.3, 1.2], 0.1).verdict == DIFFERS


def test_improves_needs_every_seed_and_the_factor():
    assert verdict.improves([245.0, 247.0], [66.0, 65.0], 1.1).verdict == REPRODUCED
    # means improve by a factor 1.05 < 1.1
    assert verdict.improves([105.0, 105.0], [100.0, 100.0], 1.1).verdict == PARTIAL
    # one seed worse though the mean improves
    assert verdict.improves([200.0, 50.0], [60.0, 55.0], 1.1).verdict == PARTIAL
    assert verdict.improves([60.0], [65.0], 1.1).verdict == DIFFERS
    with pytest.raises(ValueError, match="2 values before but 1 after"):
        verdict.improves([1.0, 2.0], [1.0], 1.1)


def test_lower_at_matched():
    # the measured case of docs/results.md: GECO 22.1 nats at MSE 0.02195, ELBO 15.5 at 0.02179
    v = verdict.lower_at_matched([22.09], [15.46], [0.02195], [0.02179], 0.05)
    assert v.verdict == DIFFERS
    assert verdict.lower_at_matched([10.0, 11.0], [15.0, 14.0], [0.020, 0.0204], [0.0205, 0.0200],
                                    0.05).verdict == REPRODUCED
    # lower KL but a 20 % worse reconstruction: not matched
    unmatched = verdict.lower_at_matched([10.0], [15.0], [0.024], [0.020], 0.05)
    assert unmatched.verdict == PARTIAL and "not matched" in unmatched.why
    # matched, lower in one pair of two, mean lower
    assert verdict.lower_at_matched([10.0, 16.0], [15.0, 15.5], [0.02, 0.02], [0.02, 0.02],
                                    0.05).verdict == PARTIAL
    assert verdict.lower_at_matched([20.0], [15.0], [0.03], [0.02], 0.05).verdict == DIFFERS


def test_much_lower():
    assert verdict.much_lower([45.0], [725.0], 2.0).verdict == REPRODUCED
    assert verdict.much_lower([40.0], [60.0], 2.0).verdict == PARTIAL
    assert verdict.much_lower([60.0], [40.0], 2.0).verdict == DIFFERS


def test_rise_then_fall():
    assert verdict.rise_then_fall(176.0, 22.0, -0.007, 1.5, 0.05).verdict == REPRODUCED
    assert verdict.rise_then_fall(176.0, 22.0, 0.3, 1.5, 0.05).verdict == PARTIAL  # constraint not met
    assert verdict.rise_then_fall(23.0, 22.0, 0.0, 1.5, 0.05).verdict == PARTIAL  # no fall
    assert verdict.rise_then_fall(23.0, 22.0, 0.3, 1.5, 0.05).verdict == DIFFERS


def test_relative_error_and_max_abs_error():
    assert verdict.relative_error(1.04, 1.0, 0.05).verdict == REPRODUCED
    assert verdict.relative_error(1.12, 1.0, 0.05).verdict == PARTIAL
    assert verdict.relative_error(1.2, 1.0, 0.05).verdict == DIFFERS
    assert verdict.max_abs_error([1e-7, -2e-6], 1e-5).verdict == REPRODUCED
    assert verdict.max_abs_error([1e-7, 1e-7, 1e-3], 1e-5).verdict == PARTIAL
    assert verdict.max_abs_error([1e-3, 1e-3, 1e-7], 1e-5).verdict == DIFFERS


def test_staircase():
    betas = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    assert verdict.staircase(betas, [40, 12, 12, 5, 1, 1, 1], 0.15).verdict == REPRODUCED
    # not collapsed above β_c
    assert verdict.staircase(betas, [40, 12, 12, 5, 3, 2, 2], 0.15).verdict == PARTIAL
    # a local optimum out of line (12 → 14) still falls with β: ρ = −0.96
    assert verdict.staircase(betas, [40, 12, 14, 5, 1, 1, 1], 0.15).verdict == REPRODUCED
    # no trend and only two levels
    v = verdict.staircase(betas, [1, 2, 1, 2, 1, 2, 1], 0.15)
    assert v.verdict == DIFFERS and "falls with β" in v.why
    # unsorted input is sorted by β first
    assert verdict.staircase(betas[::-1], [1, 1, 1, 5, 12, 12, 40], 0.15).verdict == REPRODUCED


def test_spearman_against_the_textbook_formula():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 6.0, 7.0, 8.0, 7.0]
    # no ties in a; ties in b: ranks of b are 1, 2, 3.5, 5, 3.5
    rb = [1, 2, 3.5, 5, 3.5]
    mb = sum(rb) / 5
    num = sum((i + 1 - 3) * (r - mb) for i, r in enumerate(rb))
    den = math.sqrt(sum((i + 1 - 3) ** 2 for i in range(5)) * sum((r - mb) ** 2 for r in rb))
    assert verdict.spearman(a, b) == pytest.approx(num / den)
    assert verdict.spearman(a, a[::-1]) == pytest.approx(-1.0)
    # without ties: 1 − 6 Σd²/(n(n²−1))
    x, y = [3.0, 1.0, 4.0, 2.0, 5.0], [2.0, 1.0, 5.0, 3.0, 4.0]
    d2 = sum((p - q) ** 2 for p, q in zip(x, y))
    assert verdict.spearman(x, y) == pytest.approx(1 - 6 * d2 / (5 * 24))


def test_verdict_refuses_unknown_words():
    with pytest.raises(ValueError, match="verdict must be one of"):
        verdict.Verdict("maybe", "t", "w")


def test_two_point_u_solves_the_tanh_law_and_collapses_above_beta_c():
    A, sigma = 0.5, 1.0
    for beta in (0.05, 0.1, 0.2, 0.24):
        u = fixedpoints.two_point_u(A, beta, sigma)
        tau = 2 * beta * sigma ** 2
        assert u > 0
        assert abs(u - A * numpy.tanh(2 * A * u / tau)) < 1e-12
        # brute force: the largest root on a fine grid of (0, A]
        grid = numpy.linspace(1e-6, A, 200001)
        f = grid - A * numpy.tanh(2 * A * grid / tau)
        root = grid[numpy.flatnonzero(numpy.sign(f[:-1]) != numpy.sign(f[1:]))[-1]]
        assert abs(u - root) < 1e-5
    assert fixedpoints.two_point_u(A, 0.25, sigma) == 0.0  # β_c = A²/σ²
    assert fixedpoints.two_point_u(A, 0.3, sigma) == 0.0


def test_beta_c_is_the_top_covariance_eigenvalue_over_sigma2():
    assert fixedpoints.beta_c([[0.5, 0.0], [-0.5, 0.0]], sigma=1.0) == pytest.approx(0.25)
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(500, 2)) * [0.3, 0.1]
    d = x - x.mean(0)
    c = d.T @ d / len(x)
    tr, det = c[0, 0] + c[1, 1], c[0, 0] * c[1, 1] - c[0, 1] ** 2
    top = tr / 2 + math.sqrt(tr * tr / 4 - det)  # 2×2 closed form
    assert fixedpoints.beta_c(x, sigma=2.0) == pytest.approx(top / 4.0)


def test_count_clusters_against_brute_force():
    rng = numpy.random.default_rng(1)
    centres = numpy.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mu = numpy.concatenate([c + 1e-4 * rng.normal(size=(7, 2)) for c in centres])
    assert fixedpoints.count_clusters(mu, 0.01) == 3
    assert fixedpoints.count_clusters(mu, 2.0) == 1
    # single linkage: a chain of points 0.009 apart is one cluster at tol 0.01
    chain = numpy.stack([numpy.arange(10) * 0.009, numpy.zeros(10)], axis=1)
    assert fixedpoints.count_clusters(chain, 0.01) == 1
    assert fixedpoints.count_clusters(chain, 0.005) == 10
