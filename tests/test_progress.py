"""Progress lines mean the same for every objective (issue 11, item 2), and a GECO λ on its bound is
said everywhere a user looks: the progress line, stderr, metrics.jsonl, report.json."""
import io
import json

import pytest

from minivae.run.progress import Progress, format_seconds, state_parts
from minivae.train.__main__ import main as train_main

from run_helpers import TINY


def test_one_eta_format():
    assert format_seconds(59) == "0:59" and format_seconds(61) == "1:01"
    assert format_seconds(3725) == "1:02:05" and format_seconds(float("nan")) == "--:--"


def test_the_line_shows_neg_elbo_mse_kl_and_the_state_never_the_raw_loss():
    stream = io.StringIO()
    record = {"loss": 421.0, "neg_elbo": 26.5, "mse": 0.0125, "kl": 3.25, "gamma": 0.0123, "images_per_s": 100.0}
    Progress(10, stream=stream).update(5, record)
    line = stream.getvalue()
    assert "-ELBO 26.5 nats" in line and "MSE 0.0125" in line and "KL 3.25" in line and "γ 0.0123" in line
    assert "421" not in line and "loss" not in line


def test_every_geco_constraint_shows_its_lambda_and_its_measure_against_the_threshold():
    # RE: error = C_ma + κ² against κ²; pNCC: similarity = κ − C_ma against κ
    parts = state_parts({"lambda": [2.0, 0.5], "c_ma": [0.01, -0.05], "lambda_at_bound": [False, True]},
                        [("re", 0.1, "error"), ("pncc", 0.8, "similarity")])
    assert parts[0] == "re: λ 2, error 0.02 (target <= 0.01, violated)"
    assert parts[1] == "pncc: λ 0.5, similarity 0.85 (target >= 0.8, met)"
    assert parts[2] == "WARNING λ at its bound"
    assert "γ" not in " ".join(parts)                      # GECO has no decoder variance to show


def test_a_lambda_on_its_bound_is_said_everywhere(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(TINY + ["--epochs", "1", "--log-every", "2", "--objective", "geco", "--kappa", "0.01",
                              "--lambda-max", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("GECO's λ reached its bound") == 1            # once, when it first happens
    assert "WARNING λ at its bound" in err                           # and on the progress lines
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r["lambda_at_bound"] for r in records)
    report = json.load(open(out / "report.json"))
    steps = report["objective_state"]["steps_at_bound"]
    assert steps[0] > 0 and any("sat on its bound" in w for w in report["warnings"])
    assert "sat on its bound" in err.splitlines()[-1]                # the last word of the run
    assert "lambda_at_bound" not in report["test"]                   # a flag is not averaged into test terms


def test_a_run_whose_lambda_stays_inside_has_no_warning(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(TINY + ["--max-steps", "4", "--objective", "geco", "--kappa", "0.4", "--out", str(out)]) == 0
    assert "bound" not in capsys.readouterr().err
    assert "warnings" not in json.load(open(out / "report.json"))


@pytest.mark.parametrize("objective", [["--objective", "balanced"], ["--objective", "learned-gamma"]])
def test_the_final_summary_says_what_to_expect(tmp_path, capsys, objective):
    assert train_main(TINY + ["--max-steps", "3", "--out", str(tmp_path / "r"), *objective]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "test -ELBO" in last and "variance law mean" in last and "(expected ≈ 1)" in last
    assert "Var μ_j >= 0.05" in last
