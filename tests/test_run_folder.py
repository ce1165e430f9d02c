"""The run folder's guarantees (issue: the run layer): one writer at a time, exact resume after
Ctrl-C, SIGTERM and kill -9, no non-finite checkpoint, a complete config.json, file modes,
stale locks and temporary files, runs that failed before their first checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minivae.run import Trainer, TrainingError, resolve
from minivae.run.folder import LOCK_NAME, RunFolder, RunFolderError
from minivae.train.__main__ import main as train_main

from run_helpers import TINY, env, snapshot, tiny_settings

LONG = TINY + ["--epochs", "1000", "--log-every", "1"]


def _arrays(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k.startswith(("model/", "optim/", "objective/"))}


def _same_arrays(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def _start(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "minivae.train", *LONG, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def _wait_for_lines(out, n, proc, timeout=120):
    metrics = out / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1])
        time.sleep(0.05)
    raise AssertionError("the run did not log in time")


def _straight(tmp_path, steps):
    out = tmp_path / f"straight-{steps}"
    assert train_main(LONG + ["--max-steps", str(steps), "--out", str(out)]) == 0
    return _arrays(out / "checkpoint.npz")


@pytest.mark.parametrize("signum,after,code", [(signal.SIGINT, 3, 130), (signal.SIGINT, 9, 130),
                                                (signal.SIGTERM, 4, 143), (signal.SIGTERM, 11, 143)])
def test_a_signal_writes_a_checkpoint_at_a_step_boundary_and_resume_is_exact(tmp_path, signum, after, code):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_lines(out, after, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "checkpoint written at step" in err and "Traceback" not in err
    step = int(np.load(out / "checkpoint.npz")["step"])
    assert step >= after
    assert not (out / LOCK_NAME).exists()                     # a clean exit leaves no lock behind
    target = step + 3
    assert train_main(["--out", str(out), "--resume", "--max-steps", str(target)]) == 0
    _same_arrays(_arrays(out / "checkpoint.npz"), _straight(tmp_path, target))
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, target + 1))                # every step logged once, in order


def test_kill_9_loop_then_resume_equals_a_straight_run(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, "--checkpoint-every", "2")
    _wait_for_lines(out, 5, proc)
    proc.kill()
    proc.communicate()
    rng = np.random.default_rng(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "minivae.train", "--out", str(out), "--resume"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        time.sleep(float(rng.uniform(1.0, 2.5)))
        proc.kill()
        proc.communicate()
    assert (out / "checkpoint.npz").exists()
    step = int(np.load(out / "checkpoint.npz")["step"])
    target = step + 4
    assert train_main(["--out", str(out), "--resume", "--max-steps", str(target)]) == 0
    _same_arrays(_arrays(out / "checkpoint.npz"), _straight(tmp_path, target))
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_a_second_writer_is_refused_and_the_folder_stays_one_run(tmp_path, capsys):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_lines(out, 3, proc)
    capsys.readouterr()
    for argv in (["--out", str(out), "--resume"], ["--out", str(out), "--overwrite"], LONG + ["--out", str(out)]):
        assert train_main(argv) == 2
        err = capsys.readouterr().err
        assert "being written by another minivae process" in err and f"pid {proc.pid}" in err, err
    second = subprocess.run([sys.executable, "-m", "minivae.train", *LONG, "--out", str(out), "--overwrite"],
                            capture_output=True, text=True, env=env(), timeout=120)
    assert second.returncode == 2 and "another minivae process" in second.stderr
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    config = json.load(open(out / "config.json"))
    ckpt = np.load(out / "checkpoint.npz")
    assert json.loads(str(ckpt["config"])) == {**config, "provenance": json.loads(str(ckpt["config"]))["provenance"]}
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))                          # no line written twice


def test_diagnose_and_evaluate_take_the_lock_too(tmp_path, capsys):
    from minivae.diagnose import main as diagnose_main
    from minivae.evaluate import main as evaluate_main
    out = tmp_path / "run"
    assert train_main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    held = RunFolder(out).lock("a test")
    try:
        before = snapshot(out)
        assert diagnose_main([str(out)]) == 2
        assert evaluate_main([str(out), "--no-fd"]) == 2
        assert capsys.readouterr().err.count("being written by another minivae process") == 2
        assert snapshot(out) == before
    finally:
        held.unlock()
    assert diagnose_main([str(out), "--n-gain", "8", "--marginal-samples", "16"]) == 0


def test_a_stale_lock_and_temporary_files_of_a_killed_writer_are_cleaned_up(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    (out / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "gone", "command": "train"}))
    (out / ".checkpoint.npz.abc123xy.tmp").write_bytes(b"half a checkpoint")
    capsys.readouterr()
    assert train_main(["--out", str(out), "--resume", "--epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert "took over the lock" in err and "pid 999999" in err
    assert "removed 1 temporary file" in err
    assert sorted(os.listdir(out)) == sorted(n for n in os.listdir(out) if not n.startswith("."))


def test_a_run_that_failed_before_its_first_checkpoint_can_be_continued_or_replaced(tmp_path, capsys):
    out = tmp_path / "run"
    config = resolve(tiny_settings(out=str(out), epochs=1))
    Trainer(config).close()                     # config.json written, then "the process died"
    assert sorted(os.listdir(out)) == ["config.json"]
    assert train_main(TINY + ["--epochs", "1", "--out", str(out)]) == 2
    assert "before its first checkpoint" in capsys.readouterr().err
    assert train_main(["--out", str(out), "--resume"]) == 0
    assert int(np.load(out / "checkpoint.npz")["step"]) == 8       # 256 images / 32: one whole epoch
    assert train_main(TINY + ["--epochs", "1", "--seed", "3", "--out", str(out), "--overwrite"]) == 0
    assert json.load(open(out / "config.json"))["run"]["seed"] == 3


def test_non_finite_parameters_are_never_written(tmp_path):
    config = resolve(tiny_settings(out=str(tmp_path / "run"), epochs=3,
                      checkpoint_every=3))
    trainer = Trainer(config, log=lambda *_: None)
    step = trainer.optimizer.step

    def poisoned():
        step()
        if trainer.step == 4:                   # after the step-3 checkpoint
            trainer.model.parameters()[0].data[...] = np.nan
    trainer.optimizer.step = poisoned
    with pytest.raises(TrainingError, match=r"non-finite .* at step 6; the last good checkpoint \(step 3\) is intact"):
        trainer.run()
    ckpt = np.load(tmp_path / "run" / "checkpoint.npz")
    assert int(ckpt["step"]) == 3
    assert all(np.isfinite(ckpt[k]).all() for k in ckpt.files if k.startswith("model/"))


def test_non_finite_message_tells_the_truth_when_no_checkpoint_exists(tmp_path):
    config = resolve(tiny_settings(out=str(tmp_path / "run"), epochs=3))
    trainer = Trainer(config, log=lambda *_: None)
    step = trainer.optimizer.step

    def poisoned():
        step()
        trainer.model.parameters()[0].data[...] = np.inf
    trainer.optimizer.step = poisoned
    with pytest.raises(TrainingError, match="no checkpoint was written yet"):
        trainer.run()
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def _nulls(obj, path=""):
    if obj is None:
        return [path]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _nulls(v, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize("objective", [["--objective", "balanced"], ["--objective", "elbo", "--gamma", "0.05"],
                                       ["--objective", "beta-vae", "--beta", "4"], ["--objective", "bernoulli"],
                                       ["--objective", "learned-gamma"],
                                       ["--objective", "geco", "--constraint", "re,pncc", "--kappa", "0.2,0.5"]])
def test_config_json_records_everything_that_ran_and_no_null(tmp_path, objective):
    out = tmp_path / "run"
    assert train_main(TINY + ["--max-steps", "2", "--out", str(out), *objective]) == 0
    record = json.load(open(out / "config.json"))
    assert _nulls(record) == []
    assert record["model"] == {"preset": "sprites-dense", "model": "dense", "hidden": [16], "latent_dim": 3,
                               "activation": "relu", "output": "sigmoid"}
    assert record["data"] == {"dataset": "sprites", "image_size": 16, "n_train": 256, "n_test": 64}
    assert record["optim"] == {"epochs": 10, "batch_size": 32, "lr": 0.001, "weight_decay": 0.0}
    assert record["run"]["backend"] == "numpy" and record["run"]["checkpoint_minutes"] == 5.0
    prov = record["provenance"]
    assert {"minivae", "numpy", "python", "backend", "device", "seed", "command", "data"} <= set(prov)
    assert len(prov["data"]["train_sha256"]) == 64 and "--max-steps 2" in prov["command"]
    params = {k: v for k, v in record["objective"].items() if k != "name"}
    expected = {"balanced": {"kl_weight": 1.0, "gamma_init": 1.0, "gamma_momentum": 0.99},
                "elbo": {"gamma": 0.05, "beta": 1.0, "likelihood": "gaussian"},
                "beta-vae": {"gamma": 1.0, "beta": 4.0, "likelihood": "gaussian"},
                "bernoulli": {"gamma": 1.0, "beta": 1.0, "likelihood": "bernoulli"},
                "learned-gamma": {"beta": 1.0, "gamma_min": 0.0, "log_gamma_init": 0.0},
                "geco": {"constraint": ["re", "pncc"], "kappa": [0.2, 0.5], "geco_alpha": 0.99, "geco_eta": 0.01,
                         "geco_scale": [0.2 ** 2, 1 - 0.5], "lambda_init": 1.0, "lambda_min": 1e-6,
                         "lambda_max": 1e6}}[record["objective"]["name"]]
    assert set(params) >= set(expected)
    for key, value in expected.items():                   # approx for numbers, equality for names
        if isinstance(value, str) or (isinstance(value, list) and isinstance(value[0], str)):
            assert params[key] == value, key
        else:
            assert params[key] == pytest.approx(value), key


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_every_output_respects_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        out = tmp_path / "run"
        assert train_main(TINY + ["--max-steps", "2", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    modes = {n: os.stat(out / n).st_mode & 0o777 for n in os.listdir(out)}
    assert modes and set(modes.values()) == {mode}, modes


def test_default_folder_names_tell_runs_apart(tmp_path):
    names = {resolve({"objective": "geco", "kappa": "0.15", "dataset": "mnist"}).run.out,
             resolve({"objective": "geco", "constraint": "re,cla", "kappa": "0.15,0.9", "dataset": "mnist"}).run.out,
             resolve({"objective": "geco", "constraint": "pncc", "kappa": "0.9", "dataset": "mnist"}).run.out,
             resolve({"objective": "elbo", "gamma": "0.01", "dataset": "mnist"}).run.out,
             resolve({"objective": "elbo", "gamma": "0.01", "beta": 4, "dataset": "mnist"}).run.out,
             resolve({"objective": "balanced", "dataset": "mnist"}).run.out}
    assert len(names) == 6
    assert os.path.join("runs", "mnist-mnist-dense-geco-re0.15+cla0.9") in names


def test_a_foreign_folder_is_never_written(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "metrics.jsonl").write_text("my own metrics\n")
    (foreign / "report.json").write_text("{}")
    before = snapshot(foreign)
    with pytest.raises(RunFolderError, match="holds no minivae run"):
        Trainer(resolve(tiny_settings(out=str(foreign))))
    assert snapshot(foreign) == before
