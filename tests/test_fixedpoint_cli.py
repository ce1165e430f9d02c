"""``python -m minivae.fixedpoint``: outputs, flags and one clear error per bad input."""
import json
import os

import numpy
import pytest

from minivae.fixedpoint import __main__ as cli
from minivae.fixedpoint import figures

SMALL = ["--n-points", "150", "--grid-size", "5", "--n-beta", "9", "--max-iter", "40"]


def test_help_explains_every_flag(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for action in cli.build_parser()._actions:
        assert action.help, f"{action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in text


@pytest.mark.plot
def test_run_writes_json_npz_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["--data", "circles", *SMALL, "--out", str(out), "--plot-betas", "0.01,0.5",
                     "--lipschitz", "global"]) == 0
    summary = json.loads((out / "fixedpoint.json").read_text())
    assert summary["data"] == "circles" and summary["n_points"] == 150
    assert len(summary["beta"]) == len(summary["energy"]) == len(summary["d2E_dlogbeta2"]) == 9
    assert 1 <= len(summary["critical_betas"]) <= 3
    assert set(summary["critical_betas"]) <= set(summary["beta"])
    assert summary["lipschitz"] == {"mode": "global", "strength": 1e-7, "radius": None}
    with numpy.load(out / "fixed_points.npz", allow_pickle=False) as z:
        assert z["mu"].shape == (9, 25, 2)
        numpy.testing.assert_allclose(z["energy"], summary["energy"])
    text = capsys.readouterr().out
    assert "critical β" in text
    if figures.matplotlib_available():
        assert (out / "trajectories.png").stat().st_size > 0
        assert (out / "energy.png").stat().st_size > 0
    else:
        assert "matplotlib is not installed" in text


def test_without_matplotlib_only_the_json_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(figures, "matplotlib_available", lambda: False)
    out = tmp_path / "run"
    assert cli.main(["--data", "two-points", *SMALL, "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["fixed_points.npz", "fixedpoint.json"]
    assert "matplotlib is not installed" in capsys.readouterr().out


def test_data_from_a_file(tmp_path):
    points = numpy.random.default_rng(0).uniform(-0.5, 0.5, (80, 2))
    numpy.save(tmp_path / "pts.npy", points)
    numpy.savetxt(tmp_path / "pts.csv", points, delimiter=",")
    for name in ("pts.npy", "pts.csv"):
        out = tmp_path / name.replace(".", "_")
        assert cli.main(["--data", str(tmp_path / name), *SMALL, "--out", str(out),
                         "--no-figures"]) == 0
        assert json.loads((out / "fixedpoint.json").read_text())["n_points"] == 80


@pytest.mark.parametrize("setup, flags, message", [
    (None, ["--sigma", "0"], "sigma"),
    (None, ["--sigma", "-2"], "sigma"),
    (None, ["--betas", "0.1,-1"], "β"),
    (None, ["--beta-min", "0"], "beta_min"),
    (None, ["--grid-size", "1"], "grid_size"),
    (None, ["--data", "nowhere.npy"], "neither a built-in data set"),
    ("empty", [], "empty"),
    ("three_d", [], "2-D points"),
    ("text", [], "numeric"),
    (None, ["--lipschitz", "local", "--lipschitz-radius", "0.01"], "radius"),
])
def test_bad_input_is_one_clear_error(tmp_path, capsys, setup, flags, message):
    args = [*SMALL, "--out", str(tmp_path / "o"), "--no-figures"]
    if setup == "empty":
        numpy.save(tmp_path / "d.npy", numpy.zeros((0, 2)))
        args += ["--data", str(tmp_path / "d.npy")]
    elif setup == "three_d":
        numpy.save(tmp_path / "d.npy", numpy.zeros((10, 3)))
        args += ["--data", str(tmp_path / "d.npy")]
    elif setup == "text":
        (tmp_path / "d.csv").write_text("a,b\nc,d\n")
        args += ["--data", str(tmp_path / "d.csv")]
    assert cli.main(args + flags) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err
    assert "Traceback" not in err


def test_cupy_backend_without_a_gpu_is_one_line(tmp_path, capsys, no_cupy):
    assert cli.main([*SMALL, "--backend", "cupy", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cupy" in err and "--backend numpy" in err
