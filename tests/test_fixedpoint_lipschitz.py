"""The Lipschitz constraint as the projection μ = P·T(μ) (math.md §7, Taming VAEs App. B)."""
import numpy
import pytest

from minivae import backend
from minivae.fixedpoint import (LipschitzConstraint, datasets, laplacian, log_posterior,
                                penalised_objective, projection_matrix, solve, transition)
from minivae.fixedpoint.solver import cell_centres


def _setup(seed=0, grid=5, n=40):
    rng = numpy.random.default_rng(seed)
    centres = cell_centres(grid)
    x = rng.uniform(-1, 1, (n, 2))
    mu = centres + 0.1 * rng.normal(size=centres.shape)
    tau = numpy.array([0.08])
    weights = numpy.exp(log_posterior(x, mu[None], tau))[0]       # W (N, K)
    return x, mu, weights, centres


@pytest.mark.parametrize("mode", ["local", "global"])
def test_projection_has_unit_row_sums_and_zeroes_the_gradient_of_the_penalty(mode):
    x, mu, weights, centres = _setup()
    sigma = 0.6
    constraint = LipschitzConstraint(mode, 0.02 if mode == "local" else 5e-4)
    s = constraint.coupling(centres)
    w = weights.sum(axis=0) / len(x)
    p = projection_matrix(w, laplacian(s), sigma)
    numpy.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    t = (weights.T @ x) / weights.sum(axis=0)[:, None]              # T(μ) for these W
    mu_star = p @ t
    assert numpy.abs(mu_star - t).max() > 1e-3                      # it does move things
    # central differences of F(μ) = (1/2σ²N) Σ W‖x−μ‖² + Σ s‖μ_k−μ_l‖², at μ = P·T
    h = 1e-5
    grad = numpy.empty_like(mu_star)
    for k in range(mu_star.shape[0]):
        for d in range(2):
            e = numpy.zeros_like(mu_star)
            e[k, d] = h
            grad[k, d] = (penalised_objective(x, weights, mu_star + e, s, sigma)
                          - penalised_objective(x, weights, mu_star - e, s, sigma)) / (2 * h)
    assert numpy.abs(grad).max() < 1e-8
    # and T itself is not a stationary point of the penalised objective
    e = numpy.zeros_like(t)
    e[0, 0] = h
    slope = (penalised_objective(x, weights, t + e, s, sigma)
             - penalised_objective(x, weights, t - e, s, sigma)) / (2 * h)
    assert abs(slope) > 1e-6


@pytest.mark.parametrize("mode", ["local", "global"])
def test_projector_applies_p_without_forming_it(mode):
    backend.use("numpy", dtype="float64")
    rng = numpy.random.default_rng(4)
    centres = cell_centres(6)
    w = rng.dirichlet(numpy.ones(36), size=3)
    w[0, 5] = 0.0                                   # an empty cell is fine
    t = rng.normal(size=(3, 36, 2))
    constraint = LipschitzConstraint(mode, 0.05)
    p = projection_matrix(w, laplacian(constraint.coupling(centres)), 0.7)
    numpy.testing.assert_allclose(constraint.bind(centres, 0.7)(t, w), p @ t, atol=1e-9)


def test_zero_strength_is_the_identity():
    _, _, weights, centres = _setup(seed=1)
    w = weights.sum(axis=0) / len(weights)
    for mode in ("local", "global"):
        s = LipschitzConstraint(mode, 0.0).coupling(centres)
        numpy.testing.assert_allclose(projection_matrix(w, laplacian(s), 1.0),
                                      numpy.eye(len(w)), atol=1e-15)
        assert not LipschitzConstraint(mode, 0.0).active
    t = numpy.ones((1, len(w), 2))
    assert LipschitzConstraint("global", 0.0).bind(centres, 1.0)(t, w[None]) is t


def test_local_coupling_links_the_eight_neighbours_by_default():
    centres = cell_centres(4)
    s = LipschitzConstraint("local", 0.3).coupling(centres)
    degree = (s > 0).sum(axis=1).reshape(4, 4)
    assert degree[0, 0] == 3 and degree[0, 1] == 5 and degree[1, 1] == 8
    numpy.testing.assert_array_equal(s, s.T)
    assert numpy.all(numpy.diag(s) == 0) and s.max() == 0.3
    s4 = LipschitzConstraint("local", 0.3, radius=0.5).coupling(centres)   # spacing 0.5
    assert (s4 > 0).sum(axis=1).reshape(4, 4)[1, 1] == 4


def test_solver_with_a_strong_global_constraint_pulls_the_decoder_together():
    x = datasets.lines(n=200, seed=0)
    free = solve(x, [0.01], 1.0, grid_size=6, max_iter=60)
    tied = solve(x, [0.01], 1.0, grid_size=6, max_iter=60,
                 lipschitz=LipschitzConstraint("global", 10.0))
    local = solve(x, [0.01], 1.0, grid_size=6, max_iter=60,
                  lipschitz=LipschitzConstraint("local", 1e-3))
    spread = lambda mu: numpy.linalg.norm(mu - mu.mean(axis=0), axis=1).max()  # noqa: E731
    assert spread(tied.mu[0]) < 1e-3 < spread(free.mu[0])
    assert 1e-3 < spread(local.mu[0]) and not numpy.allclose(local.mu[0], free.mu[0], atol=1e-3)


def test_fixed_point_with_constraint_satisfies_mu_equals_p_t():
    x = datasets.circles(n=150, seed=0)
    sigma, beta = 1.0, 0.02
    constraint = LipschitzConstraint("local", 2e-3)
    fp = solve(x, [beta], sigma, grid_size=6, max_iter=3000, tol=1e-10, lipschitz=constraint)
    assert fp.converged[0]
    tau = numpy.array([2 * beta * sigma ** 2])
    t, mass = transition(x, fp.mu, tau)
    p = projection_matrix(mass[0] / len(x), laplacian(constraint.coupling(fp.centres)), sigma)
    numpy.testing.assert_allclose(p @ t[0], fp.mu[0], atol=1e-8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="lokal"), "unknown Lipschitz mode"),
    (dict(mode="local", strength=-1.0), "strength"),
    (dict(mode="local", strength=float("inf")), "strength"),
    (dict(mode="local", strength=1.0, radius=0.0), "radius"),
])
def test_bad_constraints_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LipschitzConstraint(**kwargs)


def test_radius_below_the_cell_spacing_is_an_error():
    with pytest.raises(ValueError, match="radius"):
        LipschitzConstraint("local", 1.0, radius=0.01).coupling(cell_centres(4))
