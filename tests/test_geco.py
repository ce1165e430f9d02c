"""GECO (math.md §3; Rezende & Viola 2018, Algorithm 1): the stop-gradient estimate C_t, the
multiplicative λ update step by step, vector λ, checkpointed state and exact resume, the
refusals before training, and a short sprites run that ends with the constraint met."""
import json
import math

import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck
from minivae.data import Dataset
from minivae.train import Trainer, TrainingError, resolve
from minivae.train.__main__ import main
from minivae.vae import DenseVAE, build_objective
from minivae.vae import constraints as C
from minivae.vae.geco import GECO, moving_average_estimate, update_log_lambda
from minivae.vae.models import VAEOutput

SMALL = ["--n-train", "600", "--n-test", "200", "--batch-size", "64", "--log-every", "1",
         "--preset", "sprites-dense", "--hidden", "32,16", "--latent-dim", "4"]


def _fake_output(x_hat, k=2):
    zeros = Tensor(np.zeros((x_hat.shape[0], k)))
    return VAEOutput(zeros, zeros, zeros, Tensor(x_hat), Tensor(x_hat))


# --------------------------------------------------------------------------- C_t

def test_c_t_has_the_value_of_c_ma_and_the_gradient_of_c_batch(xp):
    x = Tensor(xp.asarray(np.random.default_rng(0).random((3, 1, 4, 4))))
    x_hat = Tensor(xp.asarray(np.random.default_rng(1).random((3, 1, 4, 4))), requires_grad=True)
    c_batch = lambda y: C.reconstruction_error(x, y, 0.1).mean()  # noqa: E731
    gradcheck.check(c_batch, [x_hat], mode="directional", n_directions=4)   # C_batch's own gradient is right
    c_t = moving_average_estimate(c_batch(x_hat), 0.37)
    assert c_t.item() == pytest.approx(0.37, abs=1e-15)
    x_hat.grad = None
    c_t.backward()
    grad_t = backend.to_host(x_hat.grad).copy()
    x_hat.grad = None
    c_batch(x_hat).backward()
    np.testing.assert_array_equal(grad_t, backend.to_host(x_hat.grad))


def test_geco_loss_is_kl_plus_lambda_c_ma_with_the_gradient_of_kl_plus_lambda_c_batch(xp):
    model = DenseVAE((1, 4, 4), hidden=(6,), latent_dim=2, activation="tanh")
    rng = np.random.default_rng(0)
    x = Tensor(xp.asarray(rng.random((5, 1, 4, 4))))
    eps = xp.asarray(rng.standard_normal((5, 2)))
    geco = GECO([C.RE(0.2), C.PNCC(0.5, window=2)], alpha=0.9)
    geco.step, geco.c_ma, geco.log_lambda = 7, np.array([0.03, -0.1]), np.log([2.5, 0.7])
    out = model(x, eps=eps)
    loss, terms = geco.loss(x, out)
    c_batch = [C.reconstruction_error(x, out.x_hat, 0.2).mean().item(),
               C.pncc_constraint(x, out.x_hat, 0.5, window=2).mean().item()]
    c_ma = [0.9 * 0.03 + 0.1 * c_batch[0], 0.9 * -0.1 + 0.1 * c_batch[1]]
    kl = 0.5 * (out.mu.numpy() ** 2 + np.exp(out.logvar.numpy()) - out.logvar.numpy() - 1).sum(1).mean()
    assert loss.item() == pytest.approx(kl + 2.5 * c_ma[0] + 0.7 * c_ma[1], rel=1e-12)
    np.testing.assert_allclose(terms["c_batch"], c_batch, rtol=1e-12)
    np.testing.assert_allclose(terms["c_ma"], c_ma, rtol=1e-12)
    np.testing.assert_allclose(terms["lambda"], [2.5, 0.7], rtol=1e-12)
    assert terms["kl"] == pytest.approx(kl) and terms["mse"] == pytest.approx(c_batch[0] + 0.04)

    def lagrangian(*_):   # the function whose gradient GECO's loss must carry
        o = model(x, eps=eps)
        kl_t = C.ops.mean((o.mu * o.mu + C.ops.exp(o.logvar) - o.logvar - 1.0) * 0.5 * 2.0) * 1.0
        return kl_t + C.reconstruction_error(x, o.x_hat, 0.2).mean() * 2.5 \
            + C.pncc_constraint(x, o.x_hat, 0.5, window=2).mean() * 0.7

    params = model.parameters()
    gradcheck.check(lagrangian, params, mode="directional", n_directions=3)
    for p in params:
        p.grad = None
    loss.backward()
    geco_grads = [backend.to_host(p.grad).copy() for p in params]
    for p in params:
        p.grad = None
    lagrangian().backward()
    for g, p in zip(geco_grads, params):
        np.testing.assert_allclose(g, backend.to_host(p.grad), rtol=1e-9, atol=1e-12)


def test_loss_does_not_change_the_state():
    backend.use("numpy", dtype="float64")
    geco = GECO(C.RE(0.1))
    x = Tensor(np.full((4, 1, 3, 3), 0.5))
    for _ in range(3):   # e.g. the test-set evaluation
        _, terms = geco.loss(x, _fake_output(np.full((4, 1, 3, 3), 0.9)))
    assert geco.step == 0 and geco.lambdas[0] == 1.0 and geco.c_ma[0] == 0.0
    assert terms["c_ma"] == pytest.approx(0.16 - 0.01)   # the first batch initialises C_ma


# --------------------------------------------------------------------------- the λ update

def test_first_step_initialises_c_ma_then_the_moving_average_follows_alpha():
    geco = GECO(C.RE(0.1), alpha=0.99, eta=0.01)
    geco.after_step({"c_batch": 0.3})
    assert geco.c_ma[0] == 0.3 and geco.step == 1
    assert geco.lambdas[0] == pytest.approx(math.exp(0.01 * 0.3 / 0.01))
    geco.after_step({"c_batch": -0.7})
    assert geco.c_ma[0] == pytest.approx(0.99 * 0.3 + 0.01 * -0.7)


def test_lambda_follows_the_update_rule_step_by_step():
    eta, s, alpha = 0.05, 0.04, 0.9
    geco = GECO(C.FRE(0.2), alpha=alpha, eta=eta, lambda_init=3.0)
    rng = np.random.default_rng(0)
    log_lam, c_ma = math.log(3.0), None
    for step in range(200):
        c = float(rng.normal(0.02 if step < 100 else -0.03, 0.05))
        geco.after_step({"c_batch": c})
        c_ma = c if c_ma is None else alpha * c_ma + (1 - alpha) * c
        log_lam = min(max(log_lam + eta * c_ma / s, math.log(1e-6)), math.log(1e6))
        assert geco.c_ma[0] == pytest.approx(c_ma, rel=1e-12, abs=1e-15)
        assert geco.log_lambda[0] == pytest.approx(log_lam, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("c,direction", [(0.05, 1), (-0.05, -1), (0.0, 0)])
def test_lambda_grows_above_zero_shrinks_below_and_stays_at_zero(c, direction):
    geco = GECO(C.RE(0.1), lambda_init=10.0)
    previous = geco.lambdas[0]
    for _ in range(20):
        geco.after_step({"c_batch": c})
        now = geco.lambdas[0]
        assert np.sign(now - previous) == direction
        if direction == 0:
            assert now == previous == pytest.approx(10.0, rel=1e-15)
        previous = now


def test_lambda_stays_inside_its_bounds():
    geco = GECO(C.RE(0.1), eta=1.0, lambda_min=1e-3, lambda_max=1e3)
    for _ in range(50):
        geco.after_step({"c_batch": 1e6})      # a huge violation: log λ is clipped, no overflow
        assert 1e-3 <= geco.lambdas[0] <= 1e3 + 1e-9
    assert geco.lambdas[0] == pytest.approx(1e3)
    for _ in range(50000 // 100):
        geco.after_step({"c_batch": -1e6})
    assert geco.lambdas[0] == pytest.approx(1e-3)
    np.testing.assert_allclose(update_log_lambda([0.0, 0.0], [1e300, -1e300], 1.0, [1e-300, 1e-300], -2, 2), [2, -2])


def test_vector_lambda_moves_each_multiplier_by_its_own_constraint():
    backend.use("numpy", dtype="float64")
    geco = GECO([C.RE(0.1), C.PNCC(0.5, window=2)])
    x = np.random.default_rng(0).random((4, 1, 5, 5))
    _, terms = geco.loss(Tensor(x), _fake_output(np.clip(x + 0.3, 0, 1)))   # RE violated, pNCC met
    assert isinstance(terms["lambda"], list) and len(terms["c_batch"]) == len(terms["c_ma"]) == 2
    assert terms["c_batch"][0] > 0 > terms["c_batch"][1]
    geco.after_step(terms)
    assert geco.lambdas[0] > 1.0 > geco.lambdas[1]
    assert geco.scale.tolist() == pytest.approx([0.01, 0.5])


def test_state_dict_round_trip_continues_the_same_trajectory():
    rng = np.random.default_rng(3)
    values = [[float(a), float(b)] for a, b in rng.normal(0, 0.1, size=(60, 2))]
    straight = GECO([C.RE(0.1), C.PNCC(0.8)])
    for v in values:
        straight.after_step({"c_batch": v})
    first = GECO([C.RE(0.1), C.PNCC(0.8)])
    for v in values[:25]:
        first.after_step({"c_batch": v})
    state = json.loads(json.dumps(first.state_dict()))       # as the checkpoint stores it
    resumed = GECO([C.RE(0.1), C.PNCC(0.8)])
    resumed.load_state_dict(state)
    for v in values[25:]:
        resumed.after_step({"c_batch": v})
    assert resumed.step == straight.step == 60
    np.testing.assert_array_equal(resumed.log_lambda, straight.log_lambda)
    np.testing.assert_array_equal(resumed.c_ma, straight.c_ma)
    with pytest.raises(ValueError, match="constraints"):
        GECO(C.RE(0.1)).load_state_dict(state)


# --------------------------------------------------------------------------- construction and refusals

def test_from_params_parses_the_cli_values():
    geco = build_objective("geco", constraint="re,pncc", kappa="0.1, 0.9", geco_alpha=0.95, geco_eta=0.02,
                           lambda_init=5.0, lambda_min=0.01, lambda_max=100.0, dataset=None)
    assert [c.name for c in geco.constraints] == ["re", "pncc"] and [c.kappa for c in geco.constraints] == [0.1, 0.9]
    assert geco.alpha == 0.95 and geco.eta == 0.02 and geco.lambdas.tolist() == pytest.approx([5.0, 5.0])
    assert not geco.needs_labels
    assert build_objective("geco", kappa=0.1, geco_scale=0.5).scale.tolist() == [0.5]   # constraint defaults to re


@pytest.mark.parametrize("params,match", [
    ({"constraint": "ssim", "kappa": "0.1"}, "constraint: unknown value 'ssim'"),
    ({"constraint": "re", "kappa": "-0.1"}, "must be positive"),
    ({"constraint": "pncc", "kappa": "1.0"}, r"\(0, 1\)"),
    ({"constraint": "re"}, "needs a tolerance --kappa"),
    ({"constraint": "re,fre", "kappa": "0.1"}, "one kappa per constraint"),
    ({"constraint": "re", "kappa": "0.1", "beta": 4.0}, "does not use --beta"),
    ({"constraint": "re", "kappa": "0.1", "geco_alpha": 1.0}, "alpha"),
    ({"constraint": "re", "kappa": "0.1", "lambda_min": 10.0}, "lambda_min"),
    ({"constraint": "re", "kappa": "0.1", "classifier": "runs/x"}, "only by the cla"),
])
def test_bad_parameters_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        build_objective("geco", **params)


def test_cla_refuses_unlabelled_data_and_a_missing_classifier(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = np.zeros((4, 1, 8, 8), dtype=np.float32)
    from minivae.run.build import load_classifier_for
    with pytest.raises(ValueError, match="needs labels"):
        load_classifier_for(None, "blank", Dataset(images, name="blank"))
    labelled = Dataset(images, labels=np.array([0, 1, 0, 1]), name="blank")
    with pytest.raises(ValueError, match=r"python -m minivae.classifier --dataset blank"):
        load_classifier_for(None, "blank", labelled)
    with pytest.raises(ValueError, match="found none at 'nowhere.npz'"):
        load_classifier_for("nowhere.npz", "blank", labelled)
    with pytest.raises(ValueError, match="needs a trained classifier model"):
        build_objective("geco", constraint="cla", kappa="0.9")


def test_cli_refuses_bad_geco_input_before_training(tmp_path, capsys):
    for i, flags in enumerate((["--constraint", "bogus", "--kappa", "0.1"], ["--kappa", "-1"],
                               ["--constraint", "pncc", "--kappa", "1.2"], ["--constraint", "cla", "--kappa", "0.9"])):
        out = tmp_path / f"run{i}"
        assert main(SMALL + ["--objective", "geco", "--out", str(out), "--epochs", "1"] + flags) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
        assert not (out / "metrics.jsonl").exists() and not (out / "checkpoint.npz").exists()


# --------------------------------------------------------------------------- with the trainer

def test_resume_continues_the_same_dual_trajectory(tmp_path):
    common = SMALL + ["--epochs", "2", "--objective", "geco", "--kappa", "0.2", "--geco-alpha", "0.9"]
    assert main(common + ["--out", str(tmp_path / "straight")]) == 0
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "13"]) == 0
    assert main(["--out", str(tmp_path / "split"), "--resume"]) == 0
    read = lambda run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = read("straight"), read("split")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 19))
    for key in ("lambda", "c_ma", "c_batch", "kl", "loss"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    # the dual trajectory replayed from the logged C_batch alone (Algorithm 1, α = 0.9, η = 0.01,
    # s = κ² = 0.04, λ₀ = 1): each step logs the λ it used and the C_ma it committed
    log_lam, c_ma = 0.0, None
    for r in a:
        c_ma = r["c_batch"] if c_ma is None else 0.9 * c_ma + 0.1 * r["c_batch"]
        assert r["c_ma"] == pytest.approx(c_ma, rel=1e-9, abs=1e-12)
        assert r["lambda"] == pytest.approx(math.exp(log_lam), rel=1e-9)
        log_lam = min(max(log_lam + 0.01 * c_ma / 0.04, math.log(1e-6)), math.log(1e6))
    state = json.loads((tmp_path / "split" / "report.json").read_text())["objective_state"]
    assert state["step"] == 18 and state["lambda"][0] == pytest.approx(math.exp(log_lam), rel=1e-9)
    assert abs(log_lam) > 1e-3    # λ moved, so the replay tests the update


def test_a_non_finite_constraint_stops_the_run(tmp_path, monkeypatch):
    config = resolve({"objective": "geco", "kappa": "0.2", "out": str(tmp_path / "nan"), "epochs": 1,
                      **{k.lstrip("-").replace("-", "_"): v for k, v in zip(SMALL[::2], SMALL[1::2])}})
    trainer = Trainer(config, log=lambda *_: None)
    original = C.RE.__call__
    calls = {"n": 0}

    def sometimes_nan(self, x, x_hat, labels=None):
        calls["n"] += 1
        value = original(self, x, x_hat, labels)
        return value * float("nan") if calls["n"] == 4 else value

    monkeypatch.setattr(C.RE, "__call__", sometimes_nan)
    with pytest.raises(TrainingError, match=r"non-finite (loss|c_batch).* at step 4"):
        trainer.run()


@pytest.mark.slow
def test_short_sprites_run_meets_a_reachable_re_tolerance(tmp_path):
    """κ = 0.2 (MSE ≤ 0.04) is reachable by a small dense VAE on sprites in a few hundred steps;
    GECO must end with C_ma ≤ 0 (to 10 % of κ²) and λ settled (its last 60 steps change it < 20 %)."""
    out = tmp_path / "geco"
    flags = ["--n-train", "3000", "--n-test", "300", "--batch-size", "64", "--epochs", "8", "--log-every", "5",
             "--preset", "sprites-dense", "--hidden", "64,32", "--latent-dim", "6", "--objective", "geco",
             "--kappa", "0.2", "--lambda-init", "100", "--geco-alpha", "0.95", "--out", str(out)]
    assert main(flags) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    assert last["c_ma"] <= 0.1 * 0.04, last
    tail = [r["lambda"] for r in records if r["step"] >= last["step"] - 60]
    assert max(tail) / min(tail) < 1.2, tail
    assert all(1e-6 <= r["lambda"] <= 1e6 for r in records)
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["mse"] < 0.04 * 1.15      # held-out data: the tolerance, nearly


@pytest.mark.plot
def test_plots_of_a_geco_run(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    from minivae.plots import geco as geco_plots
    (tmp_path / "config.json").write_text(json.dumps({"objective": "geco", "constraint": "re,pncc",
                                                      "kappa": "0.1,0.9"}))
    lines = [json.dumps({"step": s, "kl": 0.1 * s, "c_batch": [0.1 / s, 0.05 - 0.01 * s],
                         "c_ma": [0.1 / s, 0.05 - 0.01 * s], "lambda": [1.0 + s, 1.0 / s]}) for s in range(1, 30)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    paths = geco_plots.write(str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["geco-information-plane.png", "geco-lambda.png"]
    for p in paths:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert geco_plots.measure("re", 0.1, -0.002) == pytest.approx(0.008)
    assert geco_plots.measure("pncc", 0.9, -0.05) == pytest.approx(0.95)
    (tmp_path / "config.json").write_text(json.dumps({"objective": "balanced"}))
    assert geco_plots.write(str(tmp_path)) == []
