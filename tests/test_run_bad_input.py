"""Every command refuses bad input in one line, exit 2, no traceback, and changes nothing
(issue: the run layer). Each case runs the command's ``main`` in-process (fast) and compares
the folders it could touch byte for byte, before and after."""
import json
import shutil

import numpy as np
import pytest

from minivae.classifier.__main__ import main as classifier_main
from minivae.diagnose import main as diagnose_main
from minivae.evaluate import main as evaluate_main
from minivae.fixedpoint.__main__ import main as fixedpoint_main
from minivae.sample import main as sample_main
from minivae.train.__main__ import main as train_main

from run_helpers import TINY, snapshot

COMMANDS = {"train": train_main, "sample": sample_main, "diagnose": diagnose_main, "evaluate": evaluate_main,
            "classifier": classifier_main, "fixedpoint": fixedpoint_main}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (kept pristine: each case works on a copy)."""
    out = str(tmp_path_factory.mktemp("bad-input") / "run")
    assert train_main(TINY + ["--epochs", "1", "--out", out]) == 0
    return out


@pytest.fixture
def world(tmp_path, trained):
    """A scratch folder: RUN (a copy of the trained run), FILE (a plain file), FOREIGN (someone's folder),
    NOCKPT (a run that stopped before its first checkpoint), NANRUN (a run whose checkpoint holds NaN)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (tmp_path / "file.txt").write_text("not a folder\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my thesis\n")
    nockpt = tmp_path / "nockpt"
    nockpt.mkdir()
    shutil.copy(run / "config.json", nockpt / "config.json")
    nanrun = tmp_path / "nanrun"
    shutil.copytree(trained, nanrun)
    data = dict(np.load(nanrun / "checkpoint.npz"))
    key = next(k for k in data if k.startswith("model/"))
    data[key] = np.full_like(data[key], np.nan)
    np.savez(nanrun / "checkpoint.npz", **data)
    cfg = json.load(open(run / "config.json"))
    for name, change in {"null_lr": {"lr": None}, "str_dataset": {"dataset": 5}, "huge_epochs": {"epochs": 1e400},
                         "list_objective": {"objective": ["elbo"]}, "int_out": {"out": 5},
                         "frac_epochs": {"epochs": 1.7}, "bool_epochs": {"epochs": True},
                         "unknown_key": {"learning_rate": 0.1}, "nan_lr": {"lr": float("nan")},
                         "section_bad": {"optim": {"lr": -1}}}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(change).replace("Infinity", "1e400"))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.toml").write_text("lr = [")
    (tmp_path / "fixed.npy").write_bytes(b"not an array")
    np.save(tmp_path / "points3d.npy", np.zeros((10, 3)))
    assert cfg["format"] == "minivae-run"
    return tmp_path


T = TINY + ["--epochs", "1"]
# (command, arguments with {W} = the scratch folder, text the one line must contain)
CASES = [
    # -- train: values ------------------------------------------------------------------------------
    ("train", T + ["--lr", "inf", "--out", "{W}/new"], "lr must be a finite number"),
    ("train", T + ["--lr", "1e39", "--out", "{W}/new"], "lr must lie in (0, 1]"),
    ("train", T + ["--lr", "0", "--out", "{W}/new"], "lr must lie in (0, 1]"),
    ("train", T + ["--lr", "-1", "--out", "{W}/new"], "lr must lie in (0, 1]"),
    ("train", T + ["--lr", "abc", "--out", "{W}/new"], "lr must be a number"),
    ("train", T + ["--lr", "nan", "--out", "{W}/new"], "lr must be a finite number"),
    ("train", T + ["--hidden", "0", "--out", "{W}/new"], "hidden must be positive widths"),
    ("train", T + ["--hidden", "a,b", "--out", "{W}/new"], "hidden must be an integer"),
    ("train", T + ["--latent-dim", "0", "--out", "{W}/new"], "latent_dim must be >= 1"),
    ("train", T + ["--latent-dim", "2.5", "--out", "{W}/new"], "latent_dim must be an integer"),
    ("train", T + ["--epochs", "0", "--out", "{W}/new"], "epochs must be >= 1"),
    ("train", T + ["--epochs", "1.7", "--out", "{W}/new"], "epochs must be an integer"),
    ("train", T + ["--batch-size", "0", "--out", "{W}/new"], "batch_size must be >= 1"),
    ("train", T + ["--batch-size", "1000", "--out", "{W}/new"], "no batch"),
    ("train", T + ["--seed", "-1", "--out", "{W}/new"], "seed must be >= 0"),
    ("train", T + ["--log-every", "0", "--out", "{W}/new"], "log_every must be >= 1"),
    ("train", T + ["--checkpoint-every", "-2", "--out", "{W}/new"], "checkpoint_every must be >= 0"),
    ("train", T + ["--checkpoint-minutes", "-1", "--out", "{W}/new"], "checkpoint_minutes must be >= 0"),
    ("train", T + ["--n-samples", "0", "--out", "{W}/new"], "n_samples must lie in [1, 10000]"),
    ("train", T + ["--n-samples", "100000000", "--out", "{W}/new"], "n_samples must lie in [1, 10000]"),
    ("train", T + ["--n-train", "0", "--out", "{W}/new"], "n_train must be >= 1"),
    ("train", T + ["--image-size", "2", "--out", "{W}/new"], "image_size must be >= 4"),
    ("train", T + ["--weight-decay", "-0.1", "--out", "{W}/new"], "weight_decay must be >= 0"),
    ("train", T + ["--dtype", "float16", "--out", "{W}/new"], "dtype: unknown value 'float16'"),
    ("train", T + ["--output", "tanh", "--out", "{W}/new"], "output: unknown value 'tanh'"),
    ("train", T + ["--activation", "gelu", "--out", "{W}/new"], "activation: unknown value 'gelu'"),
    ("train", T + ["--batchnorm", "maybe", "--out", "{W}/new"], "batchnorm must be true or false"),
    ("train", T + ["--backend", "torch", "--out", "{W}/new"], "backend: unknown value 'torch'"),
    ("train", T + ["--dataset", "nope", "--out", "{W}/new"], "unknown dataset 'nope'"),
    ("train", T + ["--dataset", "{W}/file.txt", "--out", "{W}/new"], "file.txt"),
    ("train", T + ["--dataset", "{W}/fixed.npy", "--out", "{W}/new"], "fixed.npy"),
    ("train", T + ["--preset", "nope", "--out", "{W}/new"], "preset: unknown value 'nope'"),
    ("train", T + ["--preset", "mnist-dense", "--hidden", "8", "--out", "{W}/new"],
     "preset 'mnist-dense' takes images of shape (1, 28, 28)"),
    ("train", T + ["--model", "conv", "--out", "{W}/new"], "contradicts preset"),
    ("train", T + ["--channels", "8", "--out", "{W}/new"], "a dense network has no --channels"),
    ("train", ["--model", "conv", "--n-train", "64", "--n-test", "32", "--image-size", "18", "--channels", "4,4",
               "--out", "{W}/new"], "cannot build the conv network"),
    # -- train: objectives -------------------------------------------------------------------------
    ("train", T + ["--objective", "nope", "--out", "{W}/new"], "unknown objective 'nope'"),
    ("train", T + ["--kl-weight", "-1", "--out", "{W}/new"], "kl_weight must be >= 0"),
    ("train", T + ["--objective", "learned-gamma", "--beta", "-1", "--out", "{W}/new"], "beta must be >= 0"),
    ("train", T + ["--objective", "learned-gamma", "--gamma-min", "-1", "--out", "{W}/new"],
     "gamma_min must be >= 0"),
    ("train", T + ["--objective", "elbo", "--gamma", "0", "--out", "{W}/new"], "gamma must be > 0"),
    ("train", T + ["--objective", "elbo", "--beta", "-2", "--out", "{W}/new"], "beta must be >= 0"),
    ("train", T + ["--objective", "elbo", "--likelihood", "poisson", "--out", "{W}/new"],
     "likelihood: unknown value 'poisson'"),
    ("train", T + ["--objective", "bernoulli", "--likelihood", "gaussian", "--out", "{W}/new"], "fixes likelihood"),
    ("train", T + ["--objective", "bernoulli", "--output", "linear", "--out", "{W}/new"], "sigmoid output"),
    ("train", T + ["--gamma", "0.1", "--out", "{W}/new"], "does not use --gamma (used by elbo)"),
    ("train", T + ["--objective", "elbo", "--kl-weight", "2", "--out", "{W}/new"], "--kl-weight (used by balanced)"),
    ("train", T + ["--objective", "geco", "--out", "{W}/new"], "needs a tolerance --kappa"),
    ("train", T + ["--objective", "geco", "--kappa", "-0.1", "--out", "{W}/new"], "must be positive"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1,0.2", "--out", "{W}/new"], "one kappa per constraint"),
    ("train", T + ["--objective", "geco", "--constraint", "ssim", "--kappa", "0.1", "--out", "{W}/new"],
     "constraint: unknown value 'ssim'"),
    ("train", T + ["--objective", "geco", "--constraint", "pncc", "--kappa", "1.5", "--out", "{W}/new"], "(0, 1)"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1", "--geco-alpha", "1", "--out", "{W}/new"],
     "geco_alpha must lie in [0, 1)"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1", "--geco-eta", "0", "--out", "{W}/new"],
     "geco_eta must be > 0"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1", "--geco-scale", "-1", "--out", "{W}/new"],
     "geco_scale every value must be > 0"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1", "--lambda-min", "10", "--out", "{W}/new"],
     "lambda_min <= lambda_init"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1", "--lambda-max", "0", "--out", "{W}/new"],
     "lambda_max must be > 0"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1", "--classifier", "x", "--out", "{W}/new"],
     "only by the cla constraint"),
    ("train", T + ["--objective", "geco", "--constraint", "cla", "--kappa", "0.9", "--classifier", "{W}/nowhere",
                   "--out", "{W}/new"], "found none at"),
    ("train", T + ["--objective", "geco", "--constraint", "cla", "--kappa", "0.9", "--classifier", "{W}/run",
                   "--out", "{W}/new"], "no classifier.npz"),
    ("train", T + ["--objective", "geco", "--kappa", "0.1", "--beta", "4", "--out", "{W}/new"],
     "does not use --beta"),
    # -- train: config files -------------------------------------------------------------------------
    *[("train", ["--n-train", "64", "--n-test", "32", "--config", "{W}/" + name + ".json"]
       + ([] if name == "int_out" else ["--out", "{W}/new"]), text) for name, text in [
        ("null_lr", "lr must be a number, got null"), ("str_dataset", "dataset must be a non-empty string"),
        ("huge_epochs", "epochs must be an integer, got inf"), ("list_objective", "objective must be a non-empty"),
        ("int_out", "out must be a non-empty string"), ("frac_epochs", "epochs must be an integer, got 1.7"),
        ("bool_epochs", "epochs must be an integer, got True"), ("unknown_key", "unknown key(s) learning_rate"),
        ("nan_lr", "lr must be a finite number"), ("section_bad", "lr must lie in (0, 1]"),
        ("broken", "cannot read config file"), ("list", "must hold a table/object")]],
    ("train", T + ["--config", "{W}/bad.toml", "--out", "{W}/new"], "cannot read config file"),
    ("train", T + ["--config", "{W}/missing.json", "--out", "{W}/new"], "does not exist"),
    ("train", T + ["--config", "{W}/foreign", "--out", "{W}/new"], "is a folder"),
    # -- train: folders --------------------------------------------------------------------------------
    ("train", T + ["--out", "{W}/file.txt"], "is a file, not a folder"),
    ("train", T + ["--out", "{W}/file.txt/run"], "lies under"),
    ("train", T + ["--out", "{W}/foreign"], "holds no minivae run"),
    ("train", T + ["--out", "{W}/foreign", "--overwrite"], "holds no minivae run"),
    ("train", T + ["--out", "{W}/run"], "already holds a run; continue it with --resume"),
    ("train", T + ["--out", "{W}/nockpt"], "before its first checkpoint"),
    ("train", T + ["--out", "{W}/run", "--resume", "--latent-dim", "5"], "holds a different run"),
    ("train", ["--out", "{W}/run", "--resume", "--lr", "0.01"], "holds a different run (lr: run has 0.001"),
    ("train", ["--out", "{W}/run", "--resume", "--overwrite"], "contradict each other"),
    ("train", ["--out", "{W}/new", "--resume"], "holds no run to resume"),
    ("train", ["--out", "{W}/foreign", "--resume"], "holds no run to resume"),
    ("train", ["--resume"], "--resume needs --out"),
    ("train", ["--nope"], "unrecognized arguments: --nope"),
    ("train", ["--lr"], "expected one argument"),
    # -- train --stage2 -------------------------------------------------------------------------------
    ("train", ["--stage2", "{W}/nowhere"], "does not exist"),
    ("train", ["--stage2", "{W}/file.txt"], "is a file, not a run folder"),
    ("train", ["--stage2", "{W}/foreign"], "no config.json"),
    ("train", ["--stage2", "{W}/nockpt"], "no stage-1 checkpoint"),
    ("train", ["--stage2", "{W}/nanrun"], "non-finite"),
    ("train", ["--stage2", "{W}/run", "--objective", "elbo"], "choose from: learned-gamma, balanced"),
    ("train", ["--stage2", "{W}/run", "--hidden", "0"], "hidden must be positive widths"),
    ("train", ["--stage2", "{W}/run", "--lr", "inf"], "lr must be a finite number"),
    ("train", ["--stage2", "{W}/run", "--epochs", "0"], "epochs must be >= 1"),
    ("train", ["--stage2", "{W}/run", "--kl-weight", "1", "--objective", "learned-gamma"], "does not use --kl-weight"),
    ("train", ["--stage2", "{W}/run", "--preset", "mnist-dense"], "do not apply to --stage2: --preset"),
    ("train", ["--stage2", "{W}/run", "--latent-dim", "7"], "--latent-dim 7"),
    ("train", ["--stage2", "{W}/run", "--resume"], "--resume"),
    # -- sample -------------------------------------------------------------------------------------------
    ("sample", ["{W}/nowhere"], "does not exist"),
    ("sample", ["{W}/file.txt"], "is a file"),
    ("sample", ["{W}/foreign"], "no config.json"),
    ("sample", ["{W}/nockpt"], "no stage-1 checkpoint"),
    ("sample", ["{W}/nanrun"], "non-finite (NaN/inf) parameters"),
    ("sample", ["{W}/run", "--n", "0"], "expected a positive integer"),
    ("sample", ["{W}/run", "--n", "-5"], "expected a positive integer"),
    ("sample", ["{W}/run", "--n", "100000000"], "GiB of images"),
    ("sample", ["{W}/run", "--out", "{W}/foreign"], "is a folder"),
    ("sample", ["{W}/run", "--npy", "{W}/foreign"], "is a folder"),
    ("sample", ["{W}/run", "--out", "{W}/missing/x.png"], "does not exist"),
    ("sample", ["{W}/run", "--stage", "2"], "no second stage"),
    ("sample", ["{W}/run", "--stage", "1", "--renorm", "scalar"], "apply to samples through the second stage"),
    ("sample", ["{W}/run", "--renorm", "nope"], "invalid choice"),
    ("sample", ["{W}/run", "--batch-size", "0"], "expected a positive integer"),
    ("sample", ["{W}/run", "--seed", "-1"], "expected a non-negative integer"),
    ("sample", ["{W}/run", "--backend", "torch"], "invalid choice"),
    ("sample", [], "the following arguments are required"),
    # -- diagnose ------------------------------------------------------------------------------------------
    ("diagnose", ["{W}/nowhere"], "does not exist"),
    ("diagnose", ["{W}/foreign"], "no config.json"),
    ("diagnose", ["{W}/nanrun"], "non-finite"),
    ("diagnose", ["{W}/run", "--threshold", "nan"], "expected a finite number"),
    ("diagnose", ["{W}/run", "--threshold", "-1"], "expected a positive variance threshold"),
    ("diagnose", ["{W}/run", "--threshold", "0"], "expected a positive variance threshold"),
    ("diagnose", ["{W}/run", "--n", "0"], "expected a positive integer"),
    ("diagnose", ["{W}/run", "--n-gain", "x"], "expected a positive integer"),
    ("diagnose", ["{W}/run", "--marginal-samples", "0"], "expected a positive integer"),
    ("diagnose", ["{W}/run", "--split", "valid"], "invalid choice"),
    # -- evaluate ----------------------------------------------------------------------------------------
    ("evaluate", ["{W}/nowhere"], "does not exist"),
    ("evaluate", ["{W}/nanrun", "--no-fd"], "non-finite"),
    ("evaluate", ["{W}/run", "--k", "0", "--no-fd"], "expected a positive integer"),
    ("evaluate", ["{W}/run", "--gamma", "-1", "--no-fd"], "must be > 0"),
    ("evaluate", ["{W}/run", "--gamma", "inf", "--no-fd"], "expected a finite number"),
    ("evaluate", ["{W}/run", "--classifier", "{W}/none"], "python -m minivae.classifier"),
    ("evaluate", ["{W}/run", "--n-fd", "0"], "expected a positive integer"),
    # -- classifier ----------------------------------------------------------------------------------------
    ("classifier", ["--dataset", "sprites", "--n-train", "64", "--out", "{W}/file.txt"], "is a file"),
    ("classifier", ["--dataset", "sprites", "--n-train", "64", "--out", "{W}/file.txt/c"], "lies under"),
    ("classifier", ["--dataset", "sprites", "--n-train", "64", "--out", "{W}/foreign"], "holds no classifier"),
    ("classifier", ["--dataset", "sprites", "--epochs", "0", "--out", "{W}/c"], "expected a positive integer"),
    ("classifier", ["--dataset", "sprites", "--lr", "inf", "--out", "{W}/c"], "expected a finite number"),
    ("classifier", ["--dataset", "sprites", "--lr", "5", "--out", "{W}/c"], "--lr must lie in (0, 1]"),
    ("classifier", ["--dataset", "nope", "--out", "{W}/c"], "unknown dataset 'nope'"),
    # -- fixedpoint ------------------------------------------------------------------------------------------
    ("fixedpoint", ["--out", "{W}/file.txt", "--n-beta", "3"], "is a file"),
    ("fixedpoint", ["--out", "{W}/file.txt/fp", "--n-beta", "3"], "lies under"),
    ("fixedpoint", ["--out", "{W}/foreign", "--n-beta", "3"], "holds no"),
    ("fixedpoint", ["--workers", "0", "--out", "{W}/fp"], "positive integer"),
    ("fixedpoint", ["--chunk-size", "-1", "--out", "{W}/fp"], "positive integer"),
    ("fixedpoint", ["--data", "{W}/points3d.npy", "--out", "{W}/fp"], "shape (N, 2)"),
    ("fixedpoint", ["--data", "nope", "--out", "{W}/fp"], "neither a built-in data set"),
    ("fixedpoint", ["--sigma", "0", "--out", "{W}/fp"], "sigma"),
]


def _fill(args, world):
    return [a.replace("{W}", str(world)) for a in args]


@pytest.mark.parametrize("command,args,text", CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(command, args, text, world, capsys, monkeypatch):
    monkeypatch.chdir(world)
    monkeypatch.delenv("MINIVAE_DEBUG", raising=False)
    before = snapshot(world)
    capsys.readouterr()
    code = COMMANDS[command](_fill(args, world))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert _fill([text], world)[0] in lines[0], lines[0]
    assert snapshot(world) == before, "the refusal changed files"


def test_the_suite_has_more_than_a_hundred_cases():
    assert len(CASES) >= 100
    assert {c for c, _, _ in CASES} == set(COMMANDS)
