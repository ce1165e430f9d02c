"""Convergence reporting and continuation of the fixed-point sweeps (issue 11; math.md §7,
deterministic annealing as in Rose 1998)."""
import io
import json

import numpy
import pytest

from minivae.fixedpoint import __main__ as cli
from minivae.fixedpoint import datasets, solve, sweep
from minivae.fixedpoint.sweep import log_derivatives, stencil, uncertainty

INITS = ("cold", "down", "up")


def _two_point_energy(A, tau):
    """E = A² − u², u the positive root of u = A·tanh(2Au/τ) (0 for τ ≥ 2A²), by
    bisection (the root is the only sign change of f(u) = A·tanh(2Au/τ) − u on (0, A])."""
    f = lambda u: A * numpy.tanh(2 * A * u / tau) - u  # noqa: E731
    lo, hi = 1e-12, A
    if f(lo) <= 0:
        return A * A
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return A * A - lo * lo


# ----------------------------------------------------------------------------- continuation

def test_cold_and_continuation_agree_where_both_converge_away_from_beta_c():
    """Two points ±a have one fixed point per β (two symmetric groups below β_c, the
    collapsed state above), so every start must find it: E = A² − u² of math.md §7."""
    A = 0.4
    x = datasets.two_points((A, 0.0))
    beta_c = A * A
    runs = {init: sweep(x, None, 1.0, beta_min=0.05 * beta_c, beta_max=5 * beta_c, n_beta=25,
                        grid_size=4, tol=1e-10, max_iter=20000, init=init) for init in INITS}
    betas = runs["cold"].betas
    step = betas[1] / betas[0]
    away = (betas < beta_c / step ** 2) | (betas > beta_c * step ** 2)
    exact = numpy.array([_two_point_energy(A, 2 * b) for b in betas])
    for init, run in runs.items():
        numpy.testing.assert_array_equal(run.betas, betas)
        ok = away & run.converged & runs["cold"].converged
        assert ok.sum() >= 20, init
        numpy.testing.assert_allclose(run.energy[ok], exact[ok], rtol=0, atol=1e-8, err_msg=init)
        numpy.testing.assert_allclose(run.energy[ok], runs["cold"].energy[ok], rtol=0, atol=1e-8)


@pytest.mark.parametrize("init", ["down", "up"])
def test_each_beta_of_a_chain_starts_from_its_neighbours_fixed_point_plus_fresh_noise(init):
    x = datasets.lines(n=120, seed=4)
    betas = numpy.geomspace(0.01, 1.0, 6)
    fp = solve(x, betas, 1.0, grid_size=5, max_iter=60, init=init, record=range(6), seed=3)
    cold = solve(x, betas, 1.0, grid_size=5, max_iter=60, record=[0], seed=3)
    order = list(range(6))[::-1] if init == "down" else list(range(6))
    # the first β of the chain starts exactly like a cold start: the noisy grid
    numpy.testing.assert_array_equal(fp.trajectories[order[0]][0], cold.trajectories[0][0])
    for before, j in zip(order[:-1], order[1:]):
        start = fp.trajectories[j][0]
        noise = start - fp.mu[before]
        assert numpy.abs(noise).max() <= 0.01 + 1e-12
        assert numpy.abs(noise).max() > 0.005          # fresh noise is there
        numpy.testing.assert_allclose(fp.trajectories[j][-1], fp.mu[j])
    again = solve(x, betas, 1.0, grid_size=5, max_iter=60, init=init, seed=3)
    numpy.testing.assert_array_equal(again.mu, fp.mu)
    assert fp.init == init


def test_annealing_down_leaves_the_collapsed_state_at_beta_c():
    """Cooling from the collapsed state: E stays tr C above β_c and drops below it once
    the re-injected noise has let the cells split (the noise is needed: identical μ_k
    stay identical under T)."""
    x = datasets.gaussians(n=300, seed=1)
    cov = numpy.cov(x.T, bias=True)
    beta_c = numpy.linalg.eigvalsh(cov).max()            # σ = 1
    betas = beta_c * numpy.array([0.5, 0.8, 1.1, 1.5, 2.0])
    fp = solve(x, betas, 1.0, grid_size=4, init="down", tol=1e-7, max_iter=1500)
    assert fp.converged[2:].all()
    numpy.testing.assert_allclose(fp.energy[2:], numpy.trace(cov), rtol=1e-7)
    assert numpy.all(fp.energy[:2] < numpy.trace(cov) * 0.95)
    # without fresh noise the chain stays on the collapsed state below β_c: a fixed point
    # of T (so the step test passes at once) but an unstable one
    quiet = solve(x, betas, 1.0, grid_size=4, init="down", tol=1e-7, max_iter=1500,
                  init_noise=0.0)
    numpy.testing.assert_allclose(quiet.energy[1:], numpy.trace(cov), rtol=1e-7)
    assert quiet.converged[1] and quiet.n_iter[1] < 5


# ----------------------------------------------------------------------------- critical β

@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("a, sigma", [((0.4, 0.0), 1.0), ((0.3, -0.2), 0.5)])
def test_two_point_sweep_detects_beta_c_within_one_grid_step(init, a, sigma):
    """β_c = ‖a‖²/σ² (math.md §7), with the App. A protocol (tol 1e-3, 400 iterations)."""
    x = datasets.two_points(a)
    beta_c = float(numpy.dot(a, a)) / sigma ** 2
    result = sweep(x, None, sigma, beta_min=0.1 * beta_c, beta_max=4 * beta_c, n_beta=31,
                   grid_size=4, init=init)
    assert result.n_converged == 31
    top = result.critical_betas[0]
    step = result.betas[1] / result.betas[0]
    assert beta_c / step <= top <= beta_c * step
    assert not result.critical_uncertain[0] and result.critical_reasons[0] is None


def test_the_stencil_is_where_e_enters_the_second_derivative():
    """Perturb E at one β at a time: d²E/dlogβ² changes exactly on the stencils that hold it."""
    betas = numpy.geomspace(0.1, 10, 9) * numpy.exp(numpy.linspace(0, 0.05, 9) ** 2)
    energy = numpy.sin(numpy.arange(9.0))
    _, base = log_derivatives(betas, energy)
    for j in range(9):
        bumped = energy.copy()
        bumped[j] += 1e-3
        _, d2 = log_derivatives(betas, bumped)
        touched = {i for i in range(9) if abs(d2[i] - base[i]) > 1e-12}
        assert touched == {i for i in range(9) if j in stencil(i, 9)}


def test_critical_beta_next_to_a_non_converged_beta_is_flagged_with_the_reason():
    betas = numpy.geomspace(0.01, 1.0, 12)
    converged = numpy.ones(12, dtype=bool)
    converged[[2, 9]] = False
    flags, reasons = uncertainty(betas, converged, [4, 6, 10, 1], n_iter=numpy.full(12, 400))
    assert flags.tolist() == [True, False, True, True]
    assert reasons[1] is None
    assert f"{betas[2]:.4g} (400 it)" in reasons[0] and f"{betas[9]:.4g}" not in reasons[0]
    assert f"{betas[9]:.4g} (400 it)" in reasons[2]


def test_a_capped_sweep_counts_and_flags_its_non_converged_betas():
    x = datasets.lines(n=150, seed=0)
    result = sweep(x, None, 1.0, n_beta=16, grid_size=5, max_iter=25)
    fp = result.fixed_points
    assert result.n_converged == int((fp.n_iter < 25).sum()) < 16
    summary = result.summary()
    assert summary["n_converged"] == result.n_converged and summary["n_beta"] == 16
    assert summary["init"] == "cold" and len(summary["last_step"]) == 16
    for entry in summary["critical"]:
        i = int(numpy.flatnonzero(result.betas == entry["beta"])[0])
        bad = [j for j in range(max(0, i - 2), min(16, i + 3)) if fp.n_iter[j] == 25]
        assert entry["uncertain"] == bool(bad)
        assert (entry["reason"] is None) == (not bad)


# ----------------------------------------------------------------------------- command line

def test_cli_states_the_convergence_count_and_records_the_init(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["--data", "lines", "--n-points", "150", "--grid-size", "5", "--n-beta", "12",
                     "--max-iter", "25", "--init", "down", "--out", str(out), "--no-figures"]) == 0
    summary = json.loads((out / "fixedpoint.json").read_text())
    text = capsys.readouterr().out
    n_ok = sum(summary["converged"])
    assert summary["n_converged"] == n_ok and summary["init"] == "down"
    assert f"{n_ok} of 12 converged" in text and "continuation down" in text
    if n_ok < 12:
        assert f"{12 - n_ok} stopped at --max-iter 25" in text
    flagged = [c for c in summary["critical"] if c["uncertain"]]
    assert text.count("(uncertain") == len(flagged)
    with numpy.load(out / "fixed_points.npz", allow_pickle=False) as z:
        numpy.testing.assert_array_equal(z["converged"], summary["converged"])


def test_progress_lines_show_betas_done_and_an_eta(monkeypatch):
    clock = iter([100.0, 104.0, 108.0, 130.0])
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = cli.SweepProgress(stream, every=1.0)       # starts at t = 100
    progress(1, 4, 1)                                     # t = 104: 4 s per β, 3 left
    progress(2, 4, 1)                                     # t = 108
    progress(4, 4, 3)                                     # t = 130
    lines = stream.getvalue().splitlines()
    assert lines[0] == "β 1/4 done, 1 converged, 4 s elapsed, ETA ≈ 12 s"
    assert lines[1] == "β 2/4 done, 1 converged, 8 s elapsed, ETA ≈ 8 s"
    assert lines[2] == "β 4/4 done, 3 converged, 30 s elapsed, ETA ≈ 0 s"


def test_bad_init_is_one_clear_error():
    with pytest.raises(ValueError, match="init must be one of cold, down, up"):
        solve(datasets.two_points(), [0.5], 1.0, init="warm")
