"""Two-stage VAE (math.md §4): renormalisation formulas, the second stage's gradients,
deterministic sampling, training on fresh codes, and the CLI with its bad input."""
import json
import math
import os

import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck
from minivae.checkpoint import save_checkpoint
from minivae.train.__main__ import main as train_main
from minivae.run.load import Stage2, load_stage2
from minivae.run.load import load_run as load_stage1
from minivae.run.stage2 import Stage2Trainer, TwoStageError, check_stage2_config
from minivae.twostage import (LatentMoments, SecondStageVAE, generate, per_dim_renormalise, renormalise,
                              scalar_renormalise)
from minivae.vae import DenseVAE, build_objective


def moments(k=3, mse2=1.0, var_loss2=1.0):
    rng = np.random.default_rng(0)
    return LatentMoments(rng.normal(size=k), rng.uniform(0.2, 1.5, k), rng.uniform(0.05, 0.9, k), mse2, var_loss2)


# ----------------------------------------------------------------------------- renormalisation

def test_per_dim_output_has_the_target_mean_and_variance_per_dimension():
    m = moments(4)
    z = np.random.default_rng(1).normal(3.0, [0.1, 2.0, 0.5, 7.0], size=(500, 4))
    out = renormalise(z, "per-dim", m)
    np.testing.assert_allclose(out.mean(0), m.mean_mu, atol=1e-12)
    np.testing.assert_allclose(out.var(0), m.var_mu + m.mean_sigma2, rtol=1e-12)
    # an affine map per dimension: correlations with the input are exactly 1
    for j in range(4):
        assert np.isclose(np.corrcoef(z[:, j], out[:, j])[0, 1], 1.0)


def test_scalar_matches_its_formula_when_the_variance_loss_is_evident():
    m = moments(3, mse2=1.0, var_loss2=0.3)          # 0.3 > 0.25 · 1.0: applied
    assert m.apply_scalar
    z = np.random.default_rng(2).normal(0, [0.5, 0.6, 0.7], size=(200, 3))
    t = math.sqrt(np.mean(m.var_mu + m.mean_sigma2))
    expected = z * t / np.mean(np.std(z, axis=0))
    np.testing.assert_allclose(renormalise(z, "scalar", m), expected, rtol=1e-14)
    np.testing.assert_allclose(scalar_renormalise(z, t), expected, rtol=1e-14)
    # after it, the mean per-dimension spread equals the variance-law target t
    assert np.isclose(np.mean(np.std(renormalise(z, "scalar", m), axis=0)), t)


def test_scalar_is_skipped_without_an_evident_variance_loss_and_off_is_the_identity():
    z = np.random.default_rng(3).normal(size=(50, 3))
    quiet = moments(3, mse2=1.0, var_loss2=0.2)      # 0.2 ≤ 0.25: left alone (the authors' rule)
    assert not quiet.apply_scalar
    assert renormalise(z, "scalar", quiet) is z
    assert renormalise(z, "off", None) is z
    assert renormalise(z, "off", moments(3)) is z


def test_renormalisation_bad_input():
    m = moments(3)
    with pytest.raises(ValueError, match="unknown renormalisation"):
        renormalise(np.zeros((4, 3)), "global", m)
    with pytest.raises(ValueError, match="at least 2"):
        renormalise(np.zeros((1, 3)), "per-dim", m)
    with pytest.raises(ValueError, match="zero spread"):
        per_dim_renormalise(np.ones((5, 3)), m.mean_mu, m.var_mu)
    with pytest.raises(ValueError, match="needs the stage-1 latent moments"):
        renormalise(np.zeros((4, 3)), "scalar", None)
    with pytest.raises(ValueError, match="5 dimensions but the moments describe 3"):
        renormalise(np.ones((4, 5)), "per-dim", m)
    assert LatentMoments.from_json(m.to_json()).to_json() == m.to_json()


# ----------------------------------------------------------------------------- the second-stage model

@pytest.mark.parametrize("name", ["learned-gamma", "balanced"])
def test_stage2_end_to_end_gradient_check(xp, name):
    model = SecondStageVAE(3, hidden=(5, 4, 6))
    objective = build_objective(name)
    rng = np.random.default_rng(0)
    z = Tensor(xp.asarray(rng.normal(size=(4, 3))))
    eps = xp.asarray(rng.standard_normal((4, 3)))
    gradcheck.check(lambda *_: objective.loss(z, model(z, eps=eps))[0], model.parameters() + objective.parameters(),
                    mode="directional", n_directions=3)


def test_stage2_input_gradient_and_skip_connection(xp):
    """The input reaches the heads directly (concatenated to the last hidden layer): with every
    hidden layer's output zeroed the heads still see z."""
    model = SecondStageVAE(2, hidden=(3, 3, 3))
    z = Tensor(xp.asarray(np.random.default_rng(1).normal(size=(3, 2))), requires_grad=True)
    gradcheck.check(lambda z: model.encode(z)[0], [z], mode="full")
    for layer in (model.encoder[4],):  # the last Linear of the encoder
        layer.weight.data[...] = 0
        layer.bias.data[...] = -1  # ReLU(−1) = 0: no signal through the hidden path
    mu, _ = model.encode(z)
    w = model.mu_head.weight.numpy()[:, :2]
    np.testing.assert_allclose(mu.numpy(), z.numpy() @ w.T + model.mu_head.bias.numpy(), rtol=1e-12)


def test_stage2_refuses_wrong_shapes():
    model = SecondStageVAE(4, hidden=(8,))
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        model(Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="positive"):
        SecondStageVAE(4, hidden=())


# ----------------------------------------------------------------------------- sampling

def _two_stages():
    backend.use("numpy", dtype="float64", seed=0)
    stage1 = DenseVAE((1, 4, 4), hidden=(8,), latent_dim=3)
    stage2 = Stage2(SecondStageVAE(3, hidden=(8, 8, 8)), {}, moments(3, 1.0, 1.0), gamma_z=0.3, checkpoint=None)
    return stage1, stage2


@pytest.mark.parametrize("renorm,noise", [("off", False), ("scalar", True), ("per-dim", False)])
def test_sampling_through_both_stages_is_deterministic_for_a_fixed_seed(renorm, noise):
    stage1, stage2 = _two_stages()
    kwargs = dict(stage2=stage2, renorm=renorm, gamma_noise=noise, batch_size=7)
    a, za = generate(stage1, 20, seed=5, return_codes=True, **kwargs)
    backend.manual_seed(123)  # the backend generator plays no part
    b, zb = generate(stage1, 20, seed=5, return_codes=True, **kwargs)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(za, zb)
    c = generate(stage1, 20, seed=6, **kwargs)
    assert not np.allclose(a, c)
    assert a.shape == (20, 1, 4, 4) and a.dtype == np.float32
    if renorm == "per-dim":  # each generation batch carries the target moments
        np.testing.assert_allclose(za[:7].mean(0), stage2.moments.mean_mu, atol=1e-10)


def test_gamma_noise_and_renormalisation_need_stage2():
    stage1, stage2 = _two_stages()
    with pytest.raises(ValueError, match="second-stage"):
        generate(stage1, 4, renorm="scalar")
    with pytest.raises(ValueError, match="positive integer"):
        generate(stage1, 0)
    plain = generate(stage1, 10, stage2=stage2, seed=1, return_codes=True)[1]
    noisy = generate(stage1, 10, stage2=stage2, seed=1, gamma_noise=True, return_codes=True)[1]
    assert 0 < np.abs(plain - noisy).max()
    # Dai & Wipf's noise is √γ_z·ε, ε the draw after u from default_rng(seed) (γ_z = 0.3)
    gen = np.random.default_rng(1)
    gen.standard_normal((10, 3))
    np.testing.assert_allclose(noisy - plain, math.sqrt(0.3) * gen.standard_normal((10, 3)), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- a tiny run on disk

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "tiny")
    backend.use("numpy", dtype="float32", seed=0)
    rc = train_main(["--dataset", "sprites", "--n-train", "256", "--n-test", "64", "--image-size", "16",
                     "--preset", "sprites-dense", "--hidden", "32", "--latent-dim", "3", "--epochs", "1",
                     "--batch-size", "64", "--objective", "balanced", "--out", out])
    assert rc == 0
    return out


def _stage2(run, *extra):
    return train_main(["--stage2", run, "--epochs", "2", "--hidden", "16,16,16", "--batch-size", "32",
                       "--lr", "1e-3", "--log-every", "1", "--n-samples", "8", *extra])


def test_stage2_cli_writes_its_files_and_sampling_is_reproducible(tiny_run, tmp_path, capsys):
    before = open(os.path.join(tiny_run, "checkpoint.npz"), "rb").read()
    assert _stage2(tiny_run) == 0
    for name in ("stage2.npz", "stage2.json", "stage2_metrics.jsonl", "stage2_samples.png"):
        assert os.path.isfile(os.path.join(tiny_run, name)), name
    # stage 1 stays frozen: its checkpoint is untouched
    assert open(os.path.join(tiny_run, "checkpoint.npz"), "rb").read() == before
    report = json.load(open(os.path.join(tiny_run, "report.json")))
    assert report["stage2"]["step"] == 2 * (256 // 32)
    saved = json.load(open(os.path.join(tiny_run, "stage2.json")))
    assert saved["config"]["objective"] == "balanced"  # inherited from the balanced stage 1
    assert saved["config"]["latent_dim"] == 3
    stage2 = load_stage2(load_stage1(tiny_run))
    assert stage2.model.hidden == (16, 16, 16)
    # γ_z replayed from the logged per-step MSE with the balanced rule (math.md §2.3), γ₀ = 1
    records = [json.loads(line) for line in open(os.path.join(tiny_run, "stage2_metrics.jsonl"))]
    assert [r["step"] for r in records] == list(range(1, 17))
    gamma = 1.0
    for r in records:
        assert r["gamma"] == pytest.approx(gamma, rel=1e-6)
        gamma = min(gamma, 0.99 * gamma + 0.01 * r["mse"])
    assert gamma < 0.99
    assert stage2.gamma_z == pytest.approx(gamma, rel=1e-6)
    assert report["stage2"]["gamma_z"] == pytest.approx(gamma, rel=1e-6)

    from minivae.sample import main as sample_main
    paths = [str(tmp_path / f"s{i}.png") for i in range(2)]
    for p in paths:
        assert sample_main([tiny_run, "--n", "12", "--renorm", "per-dim", "--seed", "3", "--out", p, "--npy"]) == 0
    a, b = (np.load(p[:-4] + ".npy") for p in paths)
    assert a.shape == (12, 1, 16, 16)
    np.testing.assert_array_equal(a, b)
    assert open(paths[0], "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second request on the same folder is refused, nothing overwritten
    capsys.readouterr()
    assert _stage2(tiny_run) == 2
    assert "already holds a second stage" in capsys.readouterr().err


def test_stage2_refused_after_stage1_changed(tiny_run, tmp_path):
    import shutil
    run = str(tmp_path / "copy")
    shutil.copytree(tiny_run, run)
    for name in ("stage2.npz", "stage2.json"):
        if os.path.exists(os.path.join(run, name)):
            os.remove(os.path.join(run, name))
    assert _stage2(run, "--max-steps", "2") == 0
    stage1 = load_stage1(run)
    stage1.model.parameters()[0].data[...] += 0.1  # "stage 1 trained further"
    save_checkpoint(os.path.join(run, "checkpoint.npz"), stage1.model, config=stage1.config.to_json(), step=99,
                    objective_state=stage1.checkpoint.objective_state)
    with pytest.raises(ValueError, match="another stage-1 checkpoint"):
        load_stage2(load_stage1(run))


@pytest.mark.parametrize("extra,message", [
    (["--objective", "elbo"], "choose from: learned-gamma, balanced"),
    (["--latent-dim", "5"], "--latent-dim 5 (the stage-1 run has"),
    (["--preset", "mnist-dense"], "--preset"),
    (["--dataset", "mnist"], "--dataset mnist"),
])
def test_stage2_request_incompatible_with_the_run(tiny_run, capsys, extra, message):
    capsys.readouterr()
    assert _stage2(tiny_run, *extra) == 2
    assert message in capsys.readouterr().err


def test_stage2_on_a_folder_without_a_stage1_checkpoint(tiny_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(open(os.path.join(tiny_run, "config.json")).read())
    assert _stage2(str(empty)) == 2
    assert "no stage-1 checkpoint" in capsys.readouterr().err
    from minivae.sample import main as sample_main
    assert sample_main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no second stage"):
        run = tmp_path / "nostage2"
        import shutil
        shutil.copytree(tiny_run, run)
        for name in ("stage2.npz", "stage2.json"):
            if (run / name).exists():
                (run / name).unlink()
        load_stage2(load_stage1(str(run)))


def test_stage2_batches_draw_fresh_eps_every_time(tiny_run):
    stage1 = load_stage1(tiny_run)
    train, _ = stage1.load_data()
    config = check_stage2_config({"hidden": [8], "batch_size": 16, "epochs": 1}, stage1)
    trainer = Stage2Trainer(stage1, config, train.images, log=lambda *_: None)
    seen = []
    forward = trainer.model.forward
    trainer.model.forward = lambda z, eps=None: (seen.append(z.numpy().copy()), forward(z, eps))[1]
    idx = np.arange(16)
    trainer.train_step(idx)
    trainer.train_step(idx)
    assert not np.allclose(seen[0], seen[1])               # same examples, new ε
    assert not stage1.model.training                         # stage 1 frozen in eval mode


def _stage1_codes(stage1, images):
    """μ and log σ² of stage 1 straight from its encoder (eval mode), float64."""
    stage1.model.eval()
    mu, logvar = stage1.model.encode(Tensor(images))
    return mu.numpy().astype(np.float64), logvar.numpy().astype(np.float64)


def test_stage2_codes_are_mu_plus_sigma_eps_for_an_injected_eps(tiny_run, monkeypatch):
    """With the draws of ε recorded, every training code must be exactly μ + σ·ε, σ = exp(½ log σ²)."""
    stage1 = load_stage1(tiny_run)
    train, _ = stage1.load_data()
    config = check_stage2_config({"hidden": [8], "batch_size": 16, "epochs": 1}, stage1)
    trainer = Stage2Trainer(stage1, config, train.images, log=lambda *_: None)
    draws, gen = [], np.random.default_rng(5)

    class Recorder:
        def standard_normal(self, shape):
            draws.append(gen.standard_normal(shape))
            return draws[-1]

    monkeypatch.setattr(backend, "rng", lambda: Recorder())
    seen = []
    forward = trainer.model.forward
    trainer.model.forward = lambda z, eps=None: (seen.append(z.numpy().copy()), forward(z, eps))[1]
    idx = np.array([3, 17, 40, 41, 200, 255, 0, 9])
    trainer.train_step(idx)
    mu, logvar = _stage1_codes(stage1, train.images[idx])
    np.testing.assert_allclose(seen[0], mu + np.exp(0.5 * logvar) * draws[0], rtol=1e-5, atol=1e-6)
    assert np.exp(0.5 * logvar).std() > 1e-3 and np.abs(np.exp(0.5 * logvar) - 1).min() > 1e-3  # σ ≠ σ², ≠ 1


def test_stage2_moments_match_their_definitions(tiny_run):
    """The numbers that decide scalar renormalisation, from their definitions (math.md §4):
    stage-1 aggregate moments, mse2 = mean (μ − ẑ)², var_loss2 = mean_j Var μ_j − mean_j Var ẑ_j."""
    stage1 = load_stage1(tiny_run)
    train, _ = stage1.load_data()
    config = check_stage2_config({"hidden": [8], "batch_size": 32, "epochs": 1,
                                  "seed": 3}, stage1)
    trainer = Stage2Trainer(stage1, config, train.images, log=lambda *_: None)
    for _ in range(3):
        trainer.train_step(np.arange(32))
    m = trainer.moments()
    mu, logvar = _stage1_codes(stage1, train.images)
    np.testing.assert_allclose(m.mean_mu, mu.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.var_mu, ((mu - mu.mean(0)) ** 2).mean(0), rtol=1e-5)
    np.testing.assert_allclose(m.mean_sigma2, np.exp(logvar).mean(0), rtol=1e-5)
    trainer.model.eval()   # ẑ = decoder₂(u), u ~ q(u|μ) with ε from default_rng(seed), one batch
    eps = np.random.default_rng(3).standard_normal(mu.shape)
    z_hat = trainer.model(Tensor(backend.to_device(trainer.mu)), eps=backend.to_device(eps)).x_hat.numpy()
    z_hat = z_hat.astype(np.float64)
    assert m.mse2 == pytest.approx(((mu - z_hat) ** 2).mean(), rel=1e-5)
    var_loss = ((mu - mu.mean(0)) ** 2).mean(0).mean() - ((z_hat - z_hat.mean(0)) ** 2).mean(0).mean()
    assert m.var_loss2 == pytest.approx(var_loss, rel=1e-5)
    assert abs(var_loss) > 1e-2       # far from 0, so a flipped sign cannot pass
    assert m.apply_scalar == (var_loss > 0.25 * ((mu - z_hat) ** 2).mean())
