"""The fixed-point solver against the analytic results of math.md §7 (deterministic
annealing, Rose et al.; Taming VAEs §3.1–3.3, App. A)."""
import numpy
import pytest

from minivae import backend
from minivae.fixedpoint import datasets, kernel, solve, transition
from minivae.fixedpoint.solver import cell_centres


def _two_point_u(A, tau):
    """The positive root of u = A·tanh(2Au/τ) (0 when τ ≥ 2A², i.e. β ≥ β_c)."""
    u = A
    for _ in range(200000):
        new = A * numpy.tanh(2 * A * u / tau)
        if abs(new - u) < 1e-15:
            break
        u = new
    return u


def _reference_log_w(x, mu, tau, log_prior=None):
    """log W_ik = log π_k − ‖x_i − μ_k‖²/τ − log Σ_l π_l exp(−‖x_i − μ_l‖²/τ)  (math.md §7),
    written here from the definition: explicit differences, a max-shifted log-sum-exp."""
    diff = x[None, :, None, :] - mu[:, None, :, :]                   # (B, N, K, D)
    logits = -(diff ** 2).sum(axis=3) / numpy.asarray(tau)[:, None, None]
    if log_prior is not None:
        logits = logits + numpy.asarray(log_prior)[None, None, :]
    top = logits.max(axis=2, keepdims=True)
    return logits - (top + numpy.log(numpy.exp(logits - top).sum(axis=2, keepdims=True)))


def _reference_transition(x, mu, tau, log_prior=None):
    """T(μ)_k = Σ_i W_ik x_i / Σ_i W_ik straight from the definition, float64 (the column
    normalisation in the log domain, so cells with Σ_i W_ik ≈ 1e-300 keep their exact weights)."""
    log_w = _reference_log_w(x, mu, tau, log_prior)
    log_w = log_w - log_w.max(axis=1, keepdims=True)
    w = numpy.exp(log_w)
    w /= w.sum(axis=1, keepdims=True)
    return numpy.einsum("bnk,nd->bkd", w, x)


# ----------------------------------------------------------------------------- kernel

@pytest.mark.parametrize("with_prior", [False, True])
def test_transition_matches_definition_including_empty_cells_and_far_points(with_prior):
    rng = numpy.random.default_rng(1)
    x = rng.uniform(-1, 1, (300, 2))
    x[0] = [3.0, 3.0]                       # a point far from every cell
    mu = rng.uniform(-1, 1, (3, 64, 2))
    mu[:, :5] += 4.0                        # cells no point claims at small τ
    tau = numpy.array([1e-4, 1e-2, 1.0])
    log_prior = numpy.log(rng.uniform(0.5, 2.0, 64)) if with_prior else None
    ref = _reference_transition(x, mu, tau, log_prior)
    assert numpy.exp(_reference_log_w(x, mu, tau, log_prior)).sum(axis=1).min() < 1e-100
    t, mass = transition(x, mu, tau, log_prior, block_rows=37)
    numpy.testing.assert_allclose(t, ref, atol=1e-12)
    mass_ref = numpy.exp(_reference_log_w(x, mu, tau, log_prior)).sum(axis=1)
    numpy.testing.assert_allclose(kernel.log_posterior(x, mu, tau, log_prior), _reference_log_w(x, mu, tau, log_prior),
                                  rtol=1e-10, atol=1e-9)
    numpy.testing.assert_allclose(mass, mass_ref, rtol=1e-10, atol=1e-100)
    t32, _ = transition(x.astype("float32"), mu.astype("float32"), tau.astype("float32"),
                        log_prior, block_rows=37)
    assert t32.dtype == numpy.float32
    # float32 logits come from a GEMM expansion: absolute error ~1e-7·‖x‖²/τ
    numpy.testing.assert_allclose(t32, ref, atol=1e-4)


def test_energy_is_the_posterior_weighted_distortion():
    rng = numpy.random.default_rng(2)
    x = rng.normal(size=(120, 2))
    mu = rng.normal(size=(2, 16, 2))
    tau = numpy.array([0.05, 3.0])
    w = numpy.exp(_reference_log_w(x, mu, tau))
    d2 = ((x[None, :, None, :] - mu[:, None, :, :]) ** 2).sum(axis=3)
    expected = (w * d2).sum(axis=(1, 2)) / len(x)      # E(β) = (1/N) Σ_i Σ_k W_ik ‖x_i − μ_k‖²
    numpy.testing.assert_allclose(kernel.energy(x, mu, tau), expected, rtol=1e-12)


# ----------------------------------------------------------------------------- analytic results

def test_two_points_collapse_exactly_above_beta_c_and_match_tanh_below(xp):
    A, sigma = 0.5, 0.5
    x = datasets.two_points((A, 0.0))
    beta_c = A ** 2 / sigma ** 2
    ratios = numpy.array([0.3, 0.6, 0.9, 0.97, 1.03, 1.5])
    fp = solve(x, ratios * beta_c, sigma, grid_size=8, tol=1e-11, max_iter=20000)
    assert fp.converged.all()
    for j, ratio in enumerate(ratios):
        tau = 2 * ratio * beta_c * sigma ** 2
        u = _two_point_u(A, tau)
        mu = fp.mu[j]
        if ratio > 1:
            assert numpy.abs(mu).max() < 1e-6                       # collapsed onto the mean
            assert fp.energy[j] == pytest.approx(A ** 2, abs=1e-10)
        else:
            assert u > 0.25 * A * numpy.sqrt(1 - ratio)               # clearly separated
            # every cell sits at ±u·a/‖a‖, the columns x<0 and x>0 on opposite sides
            numpy.testing.assert_allclose(numpy.abs(mu[:, 0]), u, atol=1e-5)
            numpy.testing.assert_allclose(mu[:, 1], 0.0, atol=1e-5)
            assert numpy.all(numpy.sign(mu[:, 0]) == numpy.sign(fp.centres[:, 0]))
            assert fp.energy[j] == pytest.approx(A ** 2 - u ** 2, abs=1e-5)


@pytest.mark.parametrize("ratio", [0.4, 2.5])
def test_jacobian_at_the_collapsed_state_has_top_eigenvalue_lambda_max_over_beta_sigma2(ratio):
    rng = numpy.random.default_rng(3)
    x = rng.normal(size=(50, 2)) @ numpy.array([[0.5, 0.2], [0.0, 0.3]]) + 0.1
    K = 9
    prior = rng.uniform(0.2, 1.0, K)                    # unequal cell masses
    log_prior = numpy.log(prior / prior.sum())
    sigma = 0.7
    cov = numpy.cov(x.T, bias=True)
    lam = numpy.linalg.eigvalsh(cov).max()
    beta = ratio * lam / sigma ** 2
    tau = numpy.array([2 * beta * sigma ** 2])
    mu = numpy.tile(x.mean(axis=0), (1, K, 1))
    # the collapsed state is a fixed point of the solver's own map
    t0, _ = transition(x, mu, tau, log_prior)
    numpy.testing.assert_allclose(t0, mu, atol=1e-12)
    h = 1e-6
    jac = numpy.empty((2 * K, 2 * K))
    for j in range(2 * K):
        e = numpy.zeros(2 * K)
        e[j] = h
        e = e.reshape(1, K, 2)
        plus, _ = transition(x, mu + e, tau, log_prior)
        minus, _ = transition(x, mu - e, tau, log_prior)
        jac[:, j] = ((plus - minus) / (2 * h)).reshape(-1)
    top = numpy.linalg.eigvals(jac).real.max()
    assert top == pytest.approx(lam / (beta * sigma ** 2), rel=1e-6)
    assert top == pytest.approx(1 / ratio, rel=1e-6)


def test_gaussian_cluster_separated_below_and_collapsed_above_beta_c():
    x = datasets.gaussians(n=400, seed=1)
    sigma = 1.0
    cov = numpy.cov(x.T, bias=True)
    lam = numpy.linalg.eigvalsh(cov).max()
    beta_c = lam / sigma ** 2
    fp = solve(x, [0.95 * beta_c, 1.05 * beta_c], sigma, grid_size=8, tol=1e-7, max_iter=3000)
    below, above = fp.mu
    # collapsed: every μ_k at the data mean and E = tr C (the total variance)
    assert numpy.abs(above - x.mean(axis=0)).max() < 1e-4 * numpy.sqrt(lam)
    assert fp.energy[1] == pytest.approx(numpy.trace(cov), rel=1e-8)
    # separated: μ spread out along the first principal axis, E clearly below tr C
    assert numpy.abs(below - x.mean(axis=0)).max() > 0.2 * numpy.sqrt(lam)
    assert fp.energy[0] < numpy.trace(cov) - 0.01 * lam


# ----------------------------------------------------------------------------- batching, stopping

def test_batched_betas_give_the_fixed_points_of_each_beta_alone():
    x = datasets.lines(n=200, seed=3)
    betas = numpy.geomspace(1e-3, 0.5, 7)
    options = dict(grid_size=8, max_iter=150, dtype="float64")
    batched = solve(x, betas, 1.0, chunk_size=3, workers=2, **options)
    for j, beta in enumerate(betas):
        alone = solve(x, [beta], 1.0, chunk_size=3, workers=1, **options)
        assert alone.n_iter[0] == batched.n_iter[j]
        numpy.testing.assert_allclose(alone.mu[0], batched.mu[j], rtol=0, atol=1e-12)
        assert alone.energy[0] == pytest.approx(batched.energy[j], rel=1e-12)
    # the stopping rule is per β: some stopped on ‖Δμ‖ < tol, some ran to the cap
    assert batched.converged.any() and (batched.n_iter == 150).any()
    assert numpy.all(batched.last_step[batched.converged] < 1e-3)


def test_stopping_rule_and_recorded_trajectories():
    x = datasets.circles(n=150, seed=2)
    fp = solve(x, [0.01, 10.0], 1.0, grid_size=6, max_iter=20, record=[0, 1])
    assert fp.n_iter[0] == 20 and not fp.converged[0]     # capped
    assert fp.n_iter[1] < 20 and fp.converged[1]          # collapses fast at large β
    for j in (0, 1):
        path = fp.trajectories[j]
        assert path.shape == (fp.n_iter[j] + 1, 36, 2)
        numpy.testing.assert_allclose(path[0], fp.mu0)
        numpy.testing.assert_allclose(path[-1], fp.mu[j])
        step = numpy.linalg.norm(path[-1] - path[-2])
        assert step == pytest.approx(fp.last_step[j], rel=1e-6)
    # the start: cell centres plus uniform noise of at most 0.01, seeded
    assert numpy.abs(fp.mu0 - cell_centres(6)).max() <= 0.01
    again = solve(x, [0.01], 1.0, grid_size=6, max_iter=20)
    numpy.testing.assert_array_equal(again.mu[0], fp.mu[0])
    other = solve(x, [0.01], 1.0, grid_size=6, max_iter=20, seed=1)
    assert not numpy.array_equal(other.mu0, fp.mu0)


def test_float32_sweep_agrees_with_float64():
    from minivae.fixedpoint.sweep import sweep
    x = datasets.lines(n=300, seed=1)
    kw = dict(n_beta=24, grid_size=10, max_iter=150)
    s64 = sweep(x, None, 1.0, dtype="float64", **kw)
    s32 = sweep(x, None, 1.0, dtype="float32", **kw)
    numpy.testing.assert_allclose(s32.energy, s64.energy, rtol=1e-4, atol=1e-7)
    numpy.testing.assert_array_equal(s32.critical_indices, s64.critical_indices)


def test_cupy_matches_numpy(cupy_backend):
    x = datasets.lines(n=300, seed=0)
    betas = numpy.geomspace(1e-3, 0.5, 6)
    backend.use("numpy")
    ref = solve(x, betas, 1.0, grid_size=10, max_iter=100)
    backend.use("cupy")
    got = solve(x, betas, 1.0, grid_size=10, max_iter=100)
    numpy.testing.assert_array_equal(got.n_iter, ref.n_iter)
    numpy.testing.assert_allclose(got.mu, ref.mu, atol=1e-9)
    numpy.testing.assert_allclose(got.energy, ref.energy, rtol=1e-9)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, message", [
    (dict(sigma=0.0), "sigma"),
    (dict(sigma=-1.0), "sigma"),
    (dict(betas=[0.1, 0.0]), "β"),
    (dict(betas=[-0.1]), "β"),
    (dict(betas=[float("nan")]), "β"),
    (dict(betas=[]), "betas"),
    (dict(grid_size=1), "grid_size"),
    (dict(x=numpy.zeros((0, 2))), "non-empty"),
    (dict(x=numpy.zeros(5)), "shape"),
    (dict(x=numpy.zeros((5, 3))), "2-D"),
    (dict(x=numpy.array([[0.0, numpy.nan]])), "NaN"),
    (dict(eta=0.0), "eta"),
    (dict(max_iter=0), "max_iter"),
    (dict(dtype="float16"), "dtype"),
])
def test_bad_input_raises_one_clear_error(kwargs, message):
    args = dict(x=datasets.two_points(), betas=[0.5], sigma=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        solve(args.pop("x"), args.pop("betas"), **args)
