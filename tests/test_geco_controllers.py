"""GECO's dual controllers (math.md §3 "Dual controllers"; minivae/vae/geco_control.py).

Each controller's update is checked step by step against its equations written out
here; the β-VAE-equivalent λ₀ against the ELBO's own gradient; and on a convex toy
problem with a closed-form multiplier λ* every controller converges to λ*, while
``alg1`` from the paper's λ₀ = 1 sits on the bound λ_max for a while and ``warm`` /
``pid`` never touch it. GECO counts the steps at a bound and logs ``lambda_at_bound``.

The toy problem: minimise f(θ) = ½‖θ‖² ("KL") subject to E[C(θ)] ≤ 0 with
C_batch(θ) = Σ_j b_j e^{−θ_j} − κ², b_j = b·u_j, u_j ~ U(0.5, 1.5) fresh every step
(a stochastic batch), θ ∈ R^m. C/s = Σ b e^{−θ}/κ² − 1 ≥ −1 like RE's. KKT:
θ_j = λ b e^{−θ_j} and m b e^{−θ} = κ², so θ* = log(m b / κ²), λ* = θ* e^{θ*} / b = θ* m / κ².
The primal takes gradient steps on the normalised Lagrangian (f + λ C_t)/(1 + λ) with
GECO's C_t (its gradient is C_batch's), so one step size serves every λ.
"""
import json
import math

import numpy as np
import pytest

from minivae import Tensor, backend
from minivae.vae import ELBO, DenseVAE
from minivae.vae import constraints as C
from minivae.vae.geco import GECO
from minivae.vae.geco_control import (PID, Alg1, Controller, Warm, at_bound, beta_vae_lambda, bound_warning,
                                      lambda_bracket, make_controller)
from minivae.vae.models import VAEOutput

LOG_MIN, LOG_MAX = math.log(1e-6), math.log(1e6)
M, B, KAPPA2 = 4, 0.25, 0.05
THETA_STAR = math.log(M * B / KAPPA2)
LAMBDA_STAR = THETA_STAR * M / KAPPA2          # 239.66


def _bound(controller, n=1, scale=0.04, log_min=LOG_MIN, log_max=LOG_MAX):
    controller.bind(n, scale, log_min, log_max)
    return controller


def _clip(v, lo=LOG_MIN, hi=LOG_MAX):
    return min(max(v, lo), hi)


# --------------------------------------------------------------------------- the equations, step by step

def test_alg1_is_algorithm_1_step_by_step():
    ctl = _bound(Alg1(eta=0.05), n=2, scale=[0.04, 0.2])
    rng = np.random.default_rng(0)
    log_lam, ours, hit = [0.0, 1.0], np.array([0.0, 1.0]), False
    for step in range(300):
        c_ma = rng.normal([0.3, -0.05], 0.2) * (100 if step == 50 else 1)   # one huge violation: the clip
        ours = ctl.update(ours, c_ma)
        log_lam = [_clip(log_lam[0] + 0.05 * c_ma[0] / 0.04), _clip(log_lam[1] + 0.05 * c_ma[1] / 0.2)]
        np.testing.assert_allclose(ours, log_lam, rtol=1e-13, atol=1e-13)
        hit = hit or log_lam[0] == LOG_MAX
    assert hit


def test_warm_takes_a_symmetric_clipped_step():
    ctl = _bound(Warm(eta=0.02), scale=0.01)
    log_lam, ours = 3.0, np.array([3.0])
    for c_ma in [0.5, 0.011, 0.009, -0.004, -0.01, -0.02, 0.0, 1e9, -1e9]:
        ours = ctl.update(ours, [c_ma])
        e = max(-1.0, min(1.0, c_ma / 0.01))
        log_lam = _clip(log_lam + 0.02 * e)
        assert ours[0] == pytest.approx(log_lam, rel=1e-13, abs=1e-13)
    up, down = _bound(Warm(eta=0.02), scale=0.01), _bound(Warm(eta=0.02), scale=0.01)
    assert up.update([0.0], [5.0])[0] == pytest.approx(-down.update([0.0], [-5.0])[0]) == pytest.approx(0.02)


def _pid_by_hand(log_ref, errors, kp, ki, kd, lo=LOG_MIN, hi=LOG_MAX):
    """The PI(D) of math.md §3 on one multiplier, written from its equations."""
    integral, e_prev, out = 0.0, None, []
    for e in errors:
        e = max(-1.0, min(1.0, e))
        if e_prev is None:
            e_prev = e
        fixed = log_ref + kp * e + kd * max(e - e_prev, 0.0)
        integral = min(max(integral + e, (lo - fixed) / ki), (hi - fixed) / ki)
        e_prev = e
        out.append(min(max(fixed + ki * integral, lo), hi))
    return out


def test_pid_follows_its_equations_step_by_step():
    rng = np.random.default_rng(1)
    c_ma = np.concatenate([rng.normal(0.02, 0.01, 100), rng.normal(-0.01, 0.01, 100), [5.0, -5.0, 0.0]])
    ctl = _bound(PID(kp=0.7, ki=0.03, kd=2.0), scale=0.04, log_min=-3.0, log_max=3.0)
    ours = [ctl.update([1.5], [c])[0] for c in c_ma]
    expected = _pid_by_hand(1.5, c_ma / 0.04, 0.7, 0.03, 2.0, lo=-3.0, hi=3.0)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
    assert max(ours) == 3.0       # the violations drive it to the bound: the clamp is exercised


def test_pid_without_p_d_and_error_clip_is_algorithm_1():
    rng = np.random.default_rng(2)
    pid = _bound(PID(kp=0.0, ki=0.01, kd=0.0, clip_error=None), scale=0.04, log_min=-2.0, log_max=2.0)
    alg1 = _bound(Alg1(eta=0.01), scale=0.04, log_min=-2.0, log_max=2.0)
    a = p = np.array([0.0])
    for c in rng.normal(0.01, 0.05, 500):
        a, p = alg1.update(a, [c]), pid.update(p, [c])
        np.testing.assert_allclose(p, a, rtol=0, atol=1e-12)


def test_pid_anti_windup_leaves_the_bound_as_soon_as_the_violation_turns():
    pid = _bound(PID(kp=0.5, ki=0.05), scale=1.0, log_min=-2.0, log_max=2.0)
    log_lam = np.array([0.0])
    for _ in range(2000):              # a long violation no λ could cure
        log_lam = pid.update(log_lam, [1.0])
    assert log_lam[0] == 2.0
    log_lam = pid.update(log_lam, [-0.2])
    # without the clamp the integral would hold 2000 and λ would sit on the bound for ~10,000 steps;
    # with it, I = (2 − 0.5)/0.05 = 30 before the turn, so the first step gives 0.5·(−0.2) + 0.05·(30 − 0.2)
    assert log_lam[0] == pytest.approx(-0.1 + 0.05 * 29.8, rel=1e-12)


def test_controller_state_round_trip_continues_the_same_trajectory():
    rng = np.random.default_rng(3)
    values = rng.normal(0.01, 0.03, (80, 2))
    straight = GECO([C.RE(0.2), C.PNCC(0.8)], controller="pid", lambda_init=50.0)
    for v in values:
        straight.after_step({"c_batch": list(v)})
    first = GECO([C.RE(0.2), C.PNCC(0.8)], controller="pid", lambda_init=50.0)
    for v in values[:30]:
        first.after_step({"c_batch": list(v)})
    state = json.loads(json.dumps(first.state_dict()))
    assert state["controller"]["name"] == "pid" and len(state["controller"]["integral"]) == 2
    resumed = GECO([C.RE(0.2), C.PNCC(0.8)], controller="pid", lambda_init=50.0)
    resumed.load_state_dict(state)
    for v in values[30:]:
        resumed.after_step({"c_batch": list(v)})
    np.testing.assert_array_equal(resumed.log_lambda, straight.log_lambda)
    with pytest.raises(ValueError, match="'pid' controller, this run has 'warm'"):
        GECO([C.RE(0.2), C.PNCC(0.8)], controller="warm").load_state_dict(state)


def test_an_old_checkpoint_without_controller_state_loads_as_alg1():
    old = {"log_lambda": [2.0], "c_ma": [0.01], "step": 40, "constraints": ["re"], "lambda": [math.exp(2.0)]}
    geco = GECO(C.RE(0.1))
    geco.load_state_dict(old)
    assert geco.step == 40 and geco.steps_at_bound.tolist() == [0]
    geco.after_step({"c_batch": 0.01})
    assert geco.log_lambda[0] == pytest.approx(2.0 + 0.01 * 0.01 / 0.01)
    with pytest.raises(ValueError, match="'alg1' controller"):
        GECO(C.RE(0.1), controller="pid").load_state_dict(old)


@pytest.mark.parametrize("call,match", [
    (lambda: make_controller("bang-bang"), "unknown geco controller 'bang-bang'; choose from: alg1, warm, pid"),
    (lambda: Alg1(eta=0.0), "eta must be a positive number"),
    (lambda: PID(ki=0.0), "ki must be a positive number"),
    (lambda: PID(kp=-1.0), "kp must be a non-negative number"),
    (lambda: Warm(lambda0=-3.0), "lambda0 must be a positive number"),
    (lambda: GECO(C.RE(0.1), controller="pi"), "unknown geco controller 'pi'"),
])
def test_bad_controllers_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- λ₀ from the β-VAE

def test_lambda0_gives_the_gradient_of_the_beta_vae_at_gamma_kappa_squared_or_kappa():
    """KL + λ₀·C_RE with λ₀ = D/(2γ) has the gradient of the ELBO at γ, β = 1 (math.md §3):
    warm starts at γ = κ² (λ_β), pid at γ = κ (√(λ_lo λ_hi) with λ_lo = D/2)."""
    backend.use("numpy", dtype="float64")
    model = DenseVAE((1, 4, 5), hidden=(7,), latent_dim=3, activation="tanh")
    rng = np.random.default_rng(0)
    x, eps = Tensor(rng.random((6, 1, 4, 5))), rng.standard_normal((6, 3))
    kappa = 0.3
    for controller, gamma in (("warm", kappa ** 2), ("pid", kappa)):    # pid: the bracket's midpoint D/(2κ)
        geco = GECO(C.RE(kappa), controller=controller)
        loss, terms = geco.loss(x, model(x, eps=eps))
        assert terms["lambda"] == pytest.approx(20 / (2 * gamma), rel=1e-12)   # D = 20 pixels
        grads = []
        for objective_loss in (loss, ELBO(gamma=gamma).loss(x, model(x, eps=eps))[0]):
            for p in model.parameters():
                p.grad = None
            if objective_loss is not loss:
                objective_loss.backward()
            else:
                loss.backward()
            grads.append([backend.to_host(p.grad).copy() for p in model.parameters()])
        for g_geco, g_elbo in zip(*grads):
            np.testing.assert_allclose(g_geco, g_elbo, rtol=1e-10, atol=1e-13)
    assert GECO(C.RE(kappa)).loss(x, model(x, eps=eps))[1]["lambda"] == 1.0      # alg1 keeps λ₀ = 1
    for controller in ("alg1", "warm", "pid"):                                     # an explicit λ₀ wins
        assert GECO(C.RE(kappa), controller=controller, lambda_init=50.0).loss(
            x, model(x, eps=eps))[1]["lambda"] == pytest.approx(50.0, rel=1e-14)
    capped = GECO(C.RE(kappa), controller="warm", lambda_max=100.0).loss(x, model(x, eps=eps))[1]
    assert capped["lambda"] == pytest.approx(100.0) and capped["lambda_at_bound"] is True


def test_beta_vae_lambda_of_each_constraint():
    assert beta_vae_lambda(C.RE(0.15), 784) == pytest.approx(784 / (2 * 0.0225))
    assert beta_vae_lambda(C.FRE(0.1), 100) == pytest.approx(100 / (2 * 0.01))
    assert beta_vae_lambda(C.PNCC(0.9), 784) == pytest.approx(784 / (2 * 0.1))
    assert lambda_bracket(C.CLA(0.75, lambda t: t), 784) == pytest.approx((392.0, 784 / 0.5))
    pid = _bound(PID(), n=2)
    np.testing.assert_allclose(pid.initial_log_lambda([C.RE(0.15), C.PNCC(0.84)], 784),
                               np.log([784 / (2 * 0.15), 784 / (2 * 0.4)]), rtol=1e-14)   # D/(2√s)
    warm = _bound(Warm(), n=2, log_max=math.log(1e4))
    np.testing.assert_allclose(warm.initial_log_lambda([C.RE(0.15), C.PNCC(0.8)], 784),
                               [math.log(1e4), math.log(784 / 0.4)])          # clipped to λ_max
    assert _bound(Warm(lambda0=7.0)).initial_log_lambda([C.RE(0.1)], 784)[0] == pytest.approx(math.log(7.0))
    with pytest.raises(ValueError, match="D"):
        beta_vae_lambda(C.RE(0.1), 0)


# --------------------------------------------------------------------------- the toy problem

def toy(controller, steps, lambda_init=1.0, seed=0, lr=1.0):
    """Run GECO's dual loop on the toy problem; returns (λ per step, the GECO object)."""
    geco = GECO(C.RE(math.sqrt(KAPPA2)), controller=controller, lambda_init=lambda_init)
    initial = geco.controller.initial_log_lambda(geco.constraints, 1)   # what GECO.loss does at step 0
    if initial is not None:
        geco.log_lambda = initial
    rng = np.random.default_rng(seed)
    theta, lambdas = np.zeros(M), []
    for _ in range(steps):
        b = B * rng.uniform(0.5, 1.5, M)
        lam = geco.lambdas[0]
        lambdas.append(lam)
        grad = theta - lam * b * np.exp(-theta)          # ∇(f + λ C_t): C_t has C_batch's gradient
        geco.after_step({"c_batch": float(np.sum(b * np.exp(-theta)) - KAPPA2)})
        theta = theta - lr * grad / (1.0 + lam)
    return np.array(lambdas), geco


def test_the_toy_problem_has_the_closed_form_saddle_point():
    # at (θ*, λ*): ∇_θ (f + λ* E[C]) = 0 and E[C] = 0
    theta = np.full(M, THETA_STAR)
    np.testing.assert_allclose(theta - LAMBDA_STAR * B * np.exp(-theta), 0.0, atol=1e-12)
    assert np.sum(B * np.exp(-theta)) - KAPPA2 == pytest.approx(0.0, abs=1e-15)
    assert LAMBDA_STAR == pytest.approx(239.6586, rel=1e-6)


CASES = [("alg1", Alg1(), 1.0), ("warm from 4λ*", Warm(lambda0=4 * LAMBDA_STAR), 1.0),
         ("warm from λ*/4", Warm(lambda0=LAMBDA_STAR / 4), 1.0), ("pid from 4λ*", PID(lambda0=4 * LAMBDA_STAR), 1.0),
         ("pid from λ*/4", PID(lambda0=LAMBDA_STAR / 4), 1.0)]


@pytest.mark.parametrize("name,controller,lambda_init", CASES, ids=[c[0] for c in CASES])
def test_each_controller_converges_to_the_closed_form_multiplier(name, controller, lambda_init):
    lambdas, geco = toy(controller, 8000, lambda_init)
    tail = lambdas[-1500:]
    assert tail.mean() == pytest.approx(LAMBDA_STAR, rel=0.03), (name, tail.mean())
    assert tail.std() < 0.03 * LAMBDA_STAR
    assert abs(geco.c_ma[0]) < 0.05 * KAPPA2


def test_alg1_sits_on_the_bound_where_warm_and_pid_never_touch_it():
    lambdas, geco = toy(Alg1(), 3000)
    assert geco.steps_at_bound[0] == np.sum(lambdas >= 1e6 * (1 - 1e-12)) > 50
    for _, controller, _ in CASES[1:]:
        lambdas, geco = toy(controller, 3000)
        assert geco.steps_at_bound[0] == 0 and lambdas.max() < 1e5, (controller, lambdas.max())


# --------------------------------------------------------------------------- GECO's bookkeeping

def test_steps_at_bound_count_the_logged_lambda_at_bound_flags():
    backend.use("numpy", dtype="float64")
    x = np.full((4, 1, 3, 3), 0.5)
    geco = GECO([C.RE(0.1), C.RE(0.5)], eta=1.0, lambda_max=30.0)
    flags = []
    for step in range(40):
        x_hat = np.full_like(x, 0.9 if step < 25 else 0.5)      # violated, then met exactly (C = −κ²)
        zeros = Tensor(np.zeros((4, 2)))
        _, terms = geco.loss(Tensor(x), VAEOutput(zeros, zeros, zeros, Tensor(x_hat), Tensor(x_hat)))
        flags.append(terms["lambda_at_bound"])
        assert terms["lambda_at_bound"] == [bool(v) for v in at_bound(np.log(terms["lambda"]), LOG_MIN, math.log(30))]
        geco.after_step(terms)
    assert geco.steps_at_bound.tolist() == np.sum(flags, axis=0).tolist()
    assert geco.steps_at_bound[0] > 0 and geco.state_dict()["steps_at_bound"] == geco.steps_at_bound.tolist()
    single = GECO(C.RE(0.1))
    zeros = Tensor(np.zeros((4, 2)))
    assert single.loss(Tensor(x), VAEOutput(zeros, zeros, zeros, Tensor(x), Tensor(x)))[1]["lambda_at_bound"] is False


def test_a_custom_controller_object_is_used_as_given():
    class Halve(Controller):
        name = "halve"

        def update(self, log_lambda, c_ma):
            return self._clip(np.asarray(log_lambda) - math.log(2.0))

    geco = GECO(C.RE(0.1), controller=Halve(), lambda_init=8.0)
    geco.after_step({"c_batch": 0.5})
    assert geco.lambdas[0] == pytest.approx(4.0)
    assert geco.state_dict()["controller"] == {"name": "halve"}


def test_the_bound_warning_names_each_constraint_and_its_count():
    assert bound_warning(["re", "cla"], [0, 0], 100, 1e-6, 1e6) is None
    line = bound_warning(["re", "cla"], [0, 37], 100, 1e-6, 1e6)
    assert line.startswith("warning: geco λ sat on its bound [1e-06, 1e+06] (cla 37 of 100 steps)")
