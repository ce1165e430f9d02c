"""benchmarks/gpu_acceptance.py: the chain holds every step issue 13 asks for, and the figures
are read from the benchmarks' own output lines (formats copied here from their print calls).
Running the chain itself is CI's job (``--dry-run``, about a minute)."""
import argparse
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def acceptance():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", os.path.join(ROOT, "benchmarks",
                                                                                  "gpu_acceptance.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chain(acceptance, tmp_path, dry, data_dir=None):
    args = argparse.Namespace(dry_run=dry, data_dir=data_dir)
    steps, data = acceptance._chain(args, str(tmp_path))
    return {name: cmd for name, cmd, _ in steps}, data


def test_the_chain_has_every_step_on_cupy(acceptance, tmp_path):
    for dry in (True, False):
        steps, _ = _chain(acceptance, tmp_path, dry, data_dir=str(tmp_path / "nothing"))
        assert list(steps) == ["env", "tests", "parity", "bench_dense", "bench_conv", "bench_conv_winograd",
                               "bench_fixedpoint", "train", "stage2", "sample", "classifier", "evaluate"]
        assert steps["bench_conv_winograd"][steps["bench_conv_winograd"].index("--algorithm") + 1] == "winograd"
        for name in ("bench_dense", "bench_conv", "bench_conv_winograd", "bench_fixedpoint", "train", "stage2", "sample", "classifier",
                     "evaluate"):
            cmd = steps[name]
            assert cmd[cmd.index("--backend") + 1] == "cupy", name
        assert "tests/test_cupy_parity.py" in steps["parity"]
    full, _ = _chain(acceptance, tmp_path, False)
    assert not any(a.startswith("tests/") for a in full["tests"])        # the whole suite, not a subset


def test_full_run_trains_mnist_dense_for_one_epoch_when_mnist_is_there(acceptance, tmp_path):
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "train-images-idx3-ubyte.gz").write_bytes(b"")
    steps, info = _chain(acceptance, tmp_path, False, data_dir=str(data))
    train = " ".join(steps["train"])
    assert "--dataset mnist --preset mnist-dense" in train and "--epochs 1" in train and "--n-train" not in train
    assert info["mnist_found"] is True
    steps, info = _chain(acceptance, tmp_path, False, data_dir=str(tmp_path / "none"))
    assert "--dataset sprites" in " ".join(steps["train"]) and info["mnist_found"] is False


def test_figures_are_read_from_the_benchmarks_output(acceptance):
    dense = (f"minivae (cupy): {1.25:.3f} ms/step  -> {0.59:.2f} s per 60k-image epoch\n"
             f"PyTorch 2.13.0 (cuda, 16 threads): {1.0:.3f} ms/step  -> {0.47:.2f} s per 60k-image epoch\n"
             f"ratio minivae / PyTorch = {1.25:.2f}  (target <= 1.5)\n")
    assert acceptance._figures("bench_dense", dense) == {"minivae_ms_per_step": 1.25, "torch_ms_per_step": 1.0,
                                                         "ratio": 1.25}
    conv = (f"{'conv   1->32  28x28':22s} {0.5:9.2f} {0.4:9.2f} {1.25:7.2f}\n"
            f"{'total':22s} {2.0:9.2f} {1.6:9.2f} {1.25:7.2f}\n")
    layers = acceptance._figures("bench_conv", conv)["layers_ms"]
    assert layers["conv   1->32  28x28"] == {"minivae": 0.5, "torch": 0.4, "ratio": 1.25}
    assert layers["total"] == {"minivae": 2.0, "torch": 1.6, "ratio": 1.25}
    sweep = f"cupy  float32: {2.4:6.1f} s wall, {0.1:6.1f} s CPU, 9000 β-iterations"
    assert acceptance._figures("bench_fixedpoint", sweep) == {"sweeps": [{"dtype": "float32", "wall_s": 2.4}]}
    tests = "SKIPPED [1] tests/x.py:3: why\n680 passed, 1 skipped in 100.0s\n"
    assert acceptance._figures("tests", tests) == {"counts": {"passed": 680, "skipped": 1},
                                                   "skipped": ["SKIPPED [1] tests/x.py:3: why"]}
