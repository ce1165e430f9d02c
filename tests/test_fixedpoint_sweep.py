"""β sweeps, critical temperatures and the 2-D data sets (math.md §7; Taming VAEs Fig. 2, 7)."""
import numpy
import pytest

from minivae.fixedpoint import datasets
from minivae.fixedpoint.sweep import (beta_grid, collapse_beta, critical_points,
                                      log_derivatives, sweep)


def test_log_derivatives_of_a_known_curve():
    betas = numpy.geomspace(1e-2, 1e2, 321)   # log-step 0.029: O(h²) errors ~1e-3
    s = numpy.log(betas)
    d1, d2 = log_derivatives(betas, numpy.tanh(s))
    inner = slice(3, -3)
    numpy.testing.assert_allclose(d1[inner], 1 - numpy.tanh(s[inner]) ** 2, atol=1e-3)
    exact_d2 = -2 * numpy.tanh(s) * (1 - numpy.tanh(s) ** 2)
    numpy.testing.assert_allclose(d2[inner], exact_d2[inner], atol=2e-3)


def test_critical_points_are_the_highest_interior_peaks():
    curve = numpy.array([9.0, 1, 3, 1, 0, 5, 0, 2, 2, 1, 4, 0])   # ends never count
    idx = critical_points(numpy.arange(1, 13.0), curve, top=3)
    numpy.testing.assert_array_equal(idx, [5, 10, 2])
    numpy.testing.assert_array_equal(critical_points(numpy.arange(12.0), -curve, 1), [5])
    assert len(critical_points(numpy.arange(3.0), [0, 0, 0])) == 0


def test_two_point_sweep_finds_beta_c_as_its_highest_critical_point():
    A, sigma = 0.4, 1.0
    x = datasets.two_points((A, 0.0))
    beta_c = collapse_beta(x, sigma)
    assert beta_c == pytest.approx(A ** 2)
    result = sweep(x, None, sigma, beta_min=0.2 * beta_c, beta_max=3 * beta_c, n_beta=41,
                   grid_size=4, tol=1e-10, max_iter=20000)
    top = result.critical_betas[0]
    step = result.betas[1] / result.betas[0]
    assert beta_c / step <= top <= beta_c * step
    assert numpy.all(result.energy[result.betas > beta_c * 1.01] == pytest.approx(A ** 2))
    summary = result.summary()
    assert summary["critical_betas"][0] == top and len(summary["energy"]) == 41


def test_default_grid_spans_the_collapse():
    x = datasets.gaussians(n=200, seed=0)
    beta_c = collapse_beta(x, 0.5)
    centred = x - x.mean(axis=0)      # β_c = λ_max(C)/σ², C the population covariance (math.md §7)
    assert beta_c == pytest.approx(numpy.linalg.eigvalsh(centred.T @ centred / len(x)).max() / 0.25, rel=1e-12)
    result = sweep(x, None, 0.5, n_beta=12, grid_size=4, max_iter=30)
    assert result.betas[0] == pytest.approx(1e-3 * beta_c)
    assert result.betas[-1] == pytest.approx(10 * beta_c)
    assert numpy.all(numpy.diff(numpy.log(result.betas)) == pytest.approx(numpy.log(1e4) / 11))


@pytest.mark.parametrize("args, message", [
    ((0.0, 1.0), "beta_min"), ((1.0, -1.0), "beta_max"), ((2.0, 1.0), "below"),
    ((1.0, 2.0, 0), "n_beta"),
])
def test_bad_grids_raise(args, message):
    with pytest.raises(ValueError, match=message):
        beta_grid(*args)


@pytest.mark.parametrize("name", ["lines", "circles", "gaussians"])
def test_datasets_are_seeded_2d_and_inside_the_box(name):
    a = datasets.make(name, n=301, seed=5)
    b = datasets.make(name, n=301, seed=5)
    c = datasets.make(name, n=301, seed=6)
    assert a.shape == (301, 2) and a.dtype == numpy.float64
    numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(a, c)
    assert numpy.abs(a).max() <= 0.95


def test_lines_and_circles_have_the_stated_geometry():
    x = datasets.lines(n=600, n_lines=1, noise=0.0, seed=2)
    centred = x - x.mean(axis=0)
    assert numpy.linalg.svd(centred, compute_uv=False)[1] < 1e-9     # one straight line
    x = datasets.circles(n=500, n_circles=1, noise=0.0, seed=2)
    radius = numpy.linalg.norm(x - x.mean(axis=0), axis=1)
    assert radius.std() < 0.05 * radius.mean()                       # one ring
    numpy.testing.assert_array_equal(datasets.two_points((0.3, 0.1)), [[0.3, 0.1], [-0.3, -0.1]])


@pytest.mark.parametrize("call, message", [
    (lambda: datasets.make("spirals"), "unknown data set"),
    (lambda: datasets.lines(n=0), "positive integer"),
    (lambda: datasets.circles(noise=-1), "noise"),
    (lambda: datasets.gaussians(std=0), "std"),
    (lambda: datasets.two_points((1, 2, 3)), "2-vector"),
])
def test_bad_dataset_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
