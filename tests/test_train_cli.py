"""python -m minivae.train: the run folder, exact resume, and the refusals."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minivae.train import Trainer, TrainingError, resolve
from minivae.train.__main__ import main

SMALL = ["--n-train", "600", "--n-test", "200", "--batch-size", "64", "--log-every", "2",
         "--preset", "sprites-dense", "--hidden", "32,16", "--latent-dim", "4"]
RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.npz", "samples.png", "reconstructions.png", "report.json")


def run_cli(*args, cwd=None):
    env = dict(os.environ, MINIVAE_OFFLINE="1", PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    return subprocess.run([sys.executable, "-m", "minivae.train", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_cli_writes_every_file(tmp_path):
    out = tmp_path / "run"
    result = run_cli(*SMALL, "--epochs", "1", "--out", str(out), "--diagnose-every", "3")
    assert result.returncode == 0, result.stderr
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 9]
    for r in records:
        assert {"loss", "rec", "kl", "mse", "gamma", "images_per_s"} <= set(r)
        assert np.isfinite(r["loss"])
    report = json.loads((out / "report.json").read_text())
    assert report["latents"]["latent_dim"] == 4 and len(report["latents"]["per_variable"]["variance_law"]) == 4
    assert {"loss", "mse", "kl"} <= set(report["test"])
    assert report["dataset"]["true_factors"] == ["shape", "scale", "rotation", "x", "y"]
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "latents.jsonl").read_text().splitlines()) == 3
    assert "step 9/9" in result.stderr and "images/s" in result.stderr


def test_help_explains_every_flag():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--dataset", "--objective", "--kl-weight", "--backend", "--resume", "--max-steps", "--kappa"):
        assert flag in result.stdout


@pytest.mark.parametrize("objective", ["elbo", "balanced", "learned-gamma"])
def test_resume_reproduces_a_straight_run(tmp_path, objective):
    common = SMALL + ["--epochs", "2", "--objective", objective]
    assert main(common + ["--out", str(tmp_path / "straight")]) == 0
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "13"]) == 0  # stops mid-epoch 2
    assert main(["--out", str(tmp_path / "split"), "--resume"]) == 0
    a, b = np.load(tmp_path / "straight" / "checkpoint.npz"), np.load(tmp_path / "split" / "checkpoint.npz")
    assert int(a["step"]) == int(b["step"]) == 18
    for key in a.files:
        if key.startswith(("model/", "optim/", "objective/")):
            assert np.array_equal(a[key], b[key]), key
    lines = lambda p: [json.loads(x)["step"] for x in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    # the interrupted run also logged its stopping step, 13
    assert [s for s in lines(tmp_path / "split") if s != 13] == lines(tmp_path / "straight")


def test_refusals(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(SMALL + ["--epochs", "1", "--out", out]) == 0
    before = {n: os.path.getmtime(os.path.join(out, n)) for n in RUN_FILES}
    assert main(SMALL + ["--epochs", "1", "--out", out]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    assert main(SMALL + ["--epochs", "1", "--out", out, "--resume", "--latent-dim", "5"]) == 2
    assert "holds a different run (latent_dim: run has 4, now 5)" in capsys.readouterr().err
    assert {n: os.path.getmtime(os.path.join(out, n)) for n in RUN_FILES} == before  # nothing overwritten
    for args, message in [(["--dataset", "nope"], "unknown dataset 'nope'"),
                          (["--objective", "nope"], "unknown objective 'nope'"),
                          (["--preset", "nope"], "preset: unknown value 'nope'"),
                          (["--dataset", "sprites", "--image-size", "32", "--preset", "mnist-dense"],
                           "preset 'mnist-dense' takes images of shape (1, 28, 28)"),
                          (["--resume"], "holds no run to resume")]:
        assert main(["--out", str(tmp_path / "fresh"), "--n-train", "100", *args]) == 2
        assert message in capsys.readouterr().err


def test_corrupt_checkpoint_is_refused_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(SMALL + ["--epochs", "1", "--out", str(out)]) == 0
    (out / "checkpoint.npz").write_bytes((out / "checkpoint.npz").read_bytes()[:500])
    assert main(["--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "checkpoint" in err.lower()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = resolve({"out": str(tmp_path / "run"), "n_train": "600", "n_test": "200", "batch_size": 64,
                      "epochs": 3, "hidden": "32,16", "latent_dim": 4, "preset": "sprites-dense",
                      "objective": "elbo"})
    trainer = Trainer(config, log=lambda *_: None)
    original = trainer.objective.loss
    calls = {"n": 0}

    def poisoned(x, out, labels=None):
        calls["n"] += 1
        loss, terms = original(x, out, labels)
        if calls["n"] == 12:  # in the second epoch, after the epoch-1 checkpoint (step 9)
            terms["kl"] = float("nan")
        return loss, terms

    trainer.objective.loss = poisoned
    with pytest.raises(TrainingError, match=r"non-finite kl \(nan\) at step 12; the last good checkpoint \(step 9\)"):
        trainer.run()
    assert int(np.load(tmp_path / "run" / "checkpoint.npz")["step"]) == 9


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    env = dict(os.environ, MINIVAE_OFFLINE="1", PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "minivae.train", *SMALL, "--epochs", "1000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint written at step" in err
    step = int(np.load(out / "checkpoint.npz")["step"])
    assert step >= 6
    assert main(["--out", str(out), "--resume", "--max-steps", str(step + 2)]) == 0
    assert int(np.load(out / "checkpoint.npz")["step"]) == step + 2
