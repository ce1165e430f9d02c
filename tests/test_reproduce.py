"""python -m minivae.reproduce: the registry, --list, refusals, the claim.json schema,
the generated docs table, the run cache, and every claim's plumbing at a tiny size
(generated sprites: no files needed; the training claims are marked slow)."""
import json
import os

import pytest

from minivae.reproduce import claims, plans, record
from minivae.reproduce.__main__ import main
from minivae.reproduce.run import EXPERIMENTS, make_context, run_claim
from minivae.reproduce.runner import Runner, per_epoch_means

REQUIRED_IDS = ["dense-sparsity", "conv-sparsity", "variance-law", "balanced-gamma", "two-stage-fd",
                "renorm-fd", "geco-kl", "geco-marginal-kl", "geco-information-plane", "critical-beta",
                "two-point", "phase-transitions"]
FAST = ["two-point", "critical-beta", "phase-transitions"]


def test_registry_has_every_claim_of_the_issue_with_an_experiment():
    assert [c.id for c in claims.CLAIMS] == REQUIRED_IDS
    assert set(EXPERIMENTS) == set(REQUIRED_IDS)
    for c in claims.CLAIMS:
        assert c.source and c.paper and c.title
        assert c.group in ("sparsity", "geco", "twostage", "fixedpoint")


def test_list_prints_every_claim_with_source_value_and_costs(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for c in claims.CLAIMS:
        assert c.id in out and c.paper in out and c.source in out
    assert "quick" in out and "full" in out and out.count(" min") >= 12


def test_costs_count_shared_runs_once_and_grow_with_seeds():
    ids = list(claims.BY_ID)
    total = claims.cost(ids, "quick")
    assert total < sum(claims.cost([i], "quick") for i in ids)  # shared runs counted once
    assert claims.cost(["dense-sparsity"], "quick", seeds=3) == pytest.approx(
        3 * claims.cost(["dense-sparsity"], "quick", seeds=1))
    assert claims.cost(ids, "full") > total


def test_authors_kl_weight_is_2H_over_latent_squared():
    assert plans.AUTHORS_KL_WEIGHT == pytest.approx((2 * 28 / 16) ** 2)
    assert plans.objective_args("balanced-authors")[-1] == "12.25"
    assert plans.objective_args("gamma-0.03") == ["--objective", "elbo", "--gamma", "0.03"]
    with pytest.raises(ValueError, match="unknown objective"):
        plans.objective_args("nonsense")


@pytest.mark.parametrize("argv, message", [
    (["no-such-claim", "--tiny"], "unknown claim 'no-such-claim'"),
    ([], "name a claim id"),
    (["two-point", "--seeds", "0"], "--seeds must be at least 1"),
])
def test_bad_input_is_one_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _doc(**changes):
    doc = {"schema": record.SCHEMA, "id": "two-point", "title": "t", "source": "s",
           "paper": {"value": "exact", "number": 0.0}, "mode": "tiny", "seeds": [0],
           "measured": {"unit": "u", "n": 1, "mean": 1.0, "sd": None, "min": 1.0, "max": 1.0, "values": [1.0]},
           "verdict": {"verdict": "reproduced", "tolerance": "tol", "why": "because"},
           "commands": ["python -m minivae.fixedpoint"], "runs": [], "figures": [], "notes": [],
           "versions": {}, "seconds": 1.0, "created": "now"}
    doc.update(changes)
    return doc


def test_schema_check_names_what_is_wrong():
    record.check(_doc())
    with pytest.raises(ValueError, match="lacks the key 'verdict'"):
        d = _doc()
        del d["verdict"]
        record.check(d)
    with pytest.raises(ValueError, match="verdict must be one of"):
        record.check(_doc(verdict={"verdict": "fine", "tolerance": "t", "why": "w"}))
    with pytest.raises(ValueError, match="lacks its 'why'"):
        record.check(_doc(verdict={"verdict": "differs", "tolerance": "t", "why": ""}))
    with pytest.raises(ValueError, match="lists no command"):
        record.check(_doc(commands=[]))
    with pytest.raises(ValueError, match="should be"):
        record.check(_doc(seeds="0"))


def test_results_table_is_written_between_markers_and_keeps_the_rest(tmp_path):
    md = tmp_path / "results.md"
    md.write_text("# Measured results\n\nhand-written text\n")
    record.update_results(str(md), [_doc()], command="cmd")
    text = md.read_text()
    assert "hand-written text" in text and record.BEGIN in text and record.END in text
    assert "`two-point`" in text and "**reproduced**" in text
    record.update_results(str(md), [_doc(verdict={"verdict": "differs", "tolerance": "t", "why": "w"})],
                          command="cmd")
    again = md.read_text()
    assert again.count(record.BEGIN) == 1 and "**differs**" in again and "**reproduced**" not in again
    assert "hand-written text" in again
    # a '|' inside a cell is escaped: every row has the header's 6 cells
    record.update_results(str(md), [_doc(title="KL(q(z)||p) and |x|")], command="cmd")
    rows = [line for line in md.read_text().splitlines() if line.startswith("| `two-point`")]
    assert len(rows) == 1 and rows[0].replace("\\|", "").count("|") == 7


def test_runner_reuses_a_folder_holding_the_same_command(tmp_path):
    logs = []
    r = Runner(str(tmp_path), log=logs.append)
    folder = r.folder("fp")
    args = ["--data", "two-points", "--grid-size", "4", "--n-beta", "3", "--no-figures", "--out", folder]
    assert r.run("minivae.fixedpoint", args, folder=folder, tag="fixedpoint", fresh=True) > 0
    assert r.run("minivae.fixedpoint", args, folder=folder, tag="fixedpoint", fresh=True) == 0.0
    assert logs[-1].startswith("  reuse")
    commands, folders = r.take_record()
    assert commands == ["python -m minivae.fixedpoint " + " ".join(args)] and folders == [folder]
    # a different command on the same folder runs again
    other = list(args)
    other[other.index("--n-beta") + 1] = "4"
    assert r.run("minivae.fixedpoint", other, folder=folder, tag="fixedpoint", fresh=True) > 0


def test_runner_failure_quotes_the_command_and_its_output(tmp_path):
    from minivae.reproduce.runner import CommandFailed
    r = Runner(str(tmp_path), log=lambda s: None)
    folder = r.folder("bad")
    with pytest.raises(CommandFailed, match="minivae.fixedpoint --data no-such-data"):
        r.run("minivae.fixedpoint", ["--data", "no-such-data", "--out", folder], folder=folder, tag="fp")


def test_per_epoch_means():
    records = [{"step": 1, "epoch": 0, "kl": 1.0, "mse": 0.5}, {"step": 2, "epoch": 0, "kl": 3.0, "mse": 0.3},
               {"step": 3, "epoch": 1, "kl": 5.0, "mse": 0.1}]
    out = per_epoch_means(records)
    assert out == [{"epoch": 0, "step": 2, "kl": 2.0, "mse": 0.4}, {"epoch": 1, "step": 3, "kl": 5.0, "mse": 0.1}]


def _check_claim_file(out, claim_id):
    with open(os.path.join(out, claim_id, "claim.json")) as f:
        doc = record.check(json.load(f))
    assert doc["id"] == claim_id and doc["mode"] == "tiny"
    assert any("tiny mode" in n for n in doc["notes"])
    assert all(c.startswith("python -m minivae.") for c in doc["commands"])
    assert doc["measured"]["n"] == len(doc["measured"]["values"])
    return doc


@pytest.mark.parametrize("claim_id", FAST)
def test_fixed_point_claims_run_at_a_tiny_size(tmp_path, claim_id):
    ctx = make_context(mode="tiny", out=str(tmp_path), dataset="sprites", log=lambda s: None)
    doc = run_claim(ctx, claim_id, log=lambda s: None)
    _check_claim_file(str(tmp_path), claim_id)
    if claim_id == "two-point":  # exact law: reproduced even at a tiny size
        assert doc["verdict"]["verdict"] == "reproduced"


@pytest.fixture(scope="module")
def tiny_all(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reproduce-tiny"))
    assert main(["all", "--tiny", "--dataset", "sprites", "--out", out]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("claim_id", REQUIRED_IDS)
def test_every_claim_runs_at_a_tiny_size_and_writes_a_valid_claim_json(tiny_all, claim_id):
    doc = _check_claim_file(tiny_all, claim_id)
    assert doc["commands"], claim_id


@pytest.mark.slow
def test_write_docs_collects_claims_figures_and_the_table(tiny_all, tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text("# Measured results\n")
    assert main(["--write-docs", "--out", tiny_all, "--docs", str(docs)]) == 0
    assert sorted(p.name for p in (docs / "claims").iterdir()) == sorted(f"{i}.json" for i in REQUIRED_IDS)
    text = (docs / "results.md").read_text()
    assert all(f"`{i}`" in text for i in REQUIRED_IDS)
    try:
        import matplotlib  # noqa: F401
        assert (docs / "sparsity.png").exists() and (docs / "geco-vs-elbo.png").exists()
    except ImportError:
        pass
