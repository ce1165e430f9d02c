"""The GPU acceptance run: one command that checks minivae on real CuPy and records the figures.

    python benchmarks/gpu_acceptance.py --out DIR            # on a CUDA GPU (H100/H200: < 8 min)
    python benchmarks/gpu_acceptance.py --out DIR --dry-run  # the same chain on the CPU stand-in, tiny

Steps, each a subprocess with its own time limit, its output in ``DIR/<step>.log``:

 1. ``env``          the device as minivae's backend reports it, CuPy / PyTorch versions
 2. ``tests``        the whole test suite on real CuPy (no skips expected; each listed)
 3. ``parity``       the CPU/GPU parity tests, verbose (tests/test_cupy_parity.py and the
                     fixed-point CuPy test)
 4. ``bench_dense``  ``benchmarks/bench_dense.py --backend cupy`` (vs PyTorch CUDA when installed)
 5. ``bench_conv``   ``benchmarks/bench_conv.py --backend cupy`` (im2col: what "auto" picks on CuPy),
                     and ``bench_conv_winograd``: the same with ``--algorithm winograd`` (measured on
                     a GPU, it decides whether "auto" should pick Winograd there too)
 6. ``bench_fixedpoint`` ``benchmarks/bench_fixedpoint.py --backend cupy`` (100 β, 1,000 points, 32×32)
 7. ``train``        ``python -m minivae.train --backend cupy --dataset mnist --preset mnist-dense --epochs 1``
 8. ``stage2``, ``sample``, ``classifier``, ``evaluate``  the two-stage chain on that run, on the GPU

``DIR/summary.json`` holds per step: the command, exit status, seconds, and the figures parsed
from its output (ms/step, ratios against PyTorch, sweep seconds, pass/skip counts), next to the
targets of design.md (dense step and conv layers ≤ 1.5× PyTorch CUDA, the sweep < 3 s). The exit
status is 0 only when every step succeeded. Targets are reported, not enforced.

``--dry-run`` puts the stand-in (``tests/standin``) first on ``PYTHONPATH``: every command above
then runs its CuPy code path on the CPU, at a tiny size, so the script is known to work before a
GPU is lent. Its timings are CPU timings of the stand-in and mean nothing about a GPU; the
summary says ``"device": "...stand-in..."``.

MNIST is read from ``--data-dir`` (default: ``$MINIVAE_DATA``, else ``../shared/data/mnist`` next
to the repository); a machine without it trains on generated sprites instead and says so.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN = os.path.join(ROOT, "tests", "standin")
PY = sys.executable
TARGETS = {"bench_dense": "minivae/PyTorch CUDA ≤ 1.5 per training step",
           "bench_conv": "minivae/PyTorch CUDA ≤ 1.5 per layer",
           "bench_conv_winograd": "Winograd against bench_conv's im2col, per layer (no target)",
           "bench_fixedpoint": "100-β sweep (1,000 points, 32×32) < 3 s"}


def _figures(step, text):
    """The numbers a step printed, by the patterns of each command's own output."""
    def floats(pattern):
        return [float(x) for x in re.findall(pattern, text)]
    if step in ("tests", "parity"):
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", text)}
        return {"counts": counts, "skipped": re.findall(r"^SKIPPED .*$", text, re.M)}
    if step == "bench_dense":
        return {"minivae_ms_per_step": (floats(r"minivae \(cupy\): ([\d.]+) ms/step") or [None])[0],
                "torch_ms_per_step": (floats(r"PyTorch \S+ \(\w+, \d+ threads\): ([\d.]+) ms/step") or [None])[0],
                "ratio": (floats(r"ratio minivae / PyTorch = ([\d.]+)") or [None])[0]}
    if step in ("bench_conv", "bench_conv_winograd"):
        rows = re.findall(r"^(convT?\s+\S+\s+\S+)\s+([\d.]+)\s+(\S+)\s+(\S+)$", text, re.M)
        total = re.findall(r"^total\s+([\d.]+)(?:\s+([\d.]+)\s+([\d.]+))?", text, re.M)
        layers = {name.strip(): {"minivae": float(a), "torch": None if t == "-" else float(t),
                                 "ratio": None if r == "-" else float(r)} for name, a, t, r in rows}
        if total:
            a, t, r = total[0]
            layers["total"] = {"minivae": float(a), "torch": float(t) if t else None, "ratio": float(r) if r else None}
        return {"layers_ms": layers}
    if step == "bench_fixedpoint":
        return {"sweeps": [{"dtype": d, "wall_s": float(w)} for d, w in
                           re.findall(r"^\S+\s+(float\d+):\s+([\d.]+) s wall", text, re.M)]}
    if step in ("train", "evaluate"):
        return {"last_lines": text.strip().splitlines()[-3:]}
    return {}


def _chain(args, out):
    """(name, command, timeout s) of every step, full size or dry-run size."""
    dry = args.dry_run
    run = os.path.join(out, "run")
    data = args.data_dir or os.environ.get("MINIVAE_DATA") or os.path.join(ROOT, "..", "shared", "data", "mnist")
    mnist = any(os.path.isfile(os.path.join(data, n)) for n in ("train-images-idx3-ubyte.gz",
                                                                 "train-images-idx3-ubyte"))
    if dry or not mnist:
        train = ["--dataset", "sprites", "--preset", "sprites-dense", "--image-size", "28"]
    else:
        train = ["--dataset", "mnist", "--preset", "mnist-dense", "--data-dir", data]
    tiny = ["--n-train", "256", "--n-test", "160", "--batch-size", "32", "--hidden", "32,16",
            "--latent-dim", "4"] if dry else []
    classifier = os.path.join(out, "classifier")
    data_flags = train[:2] + (["--data-dir", data] if "--data-dir" in train else []) + \
        (["--image-size", "28"] if "--image-size" in train else [])
    env_probe = ("import json, sys; from minivae import backend; backend.use('cupy'); "
                 "info = {'device': backend.describe()}\n"
                 "try:\n import torch; info['torch'] = torch.__version__; "
                 "info['torch_cuda'] = torch.cuda.is_available()\n"
                 "except ImportError: info['torch'] = None\n"
                 "print(json.dumps(info))")
    steps = [
        ("env", [PY, "-c", env_probe], 120),
        ("tests", [PY, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
         + (["tests/test_standin.py", "tests/test_transfers.py", "-k", "balanced or standin"] if dry else []),
         600),
        ("parity", [PY, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "tests/test_cupy_parity.py",
                    "tests/test_fixedpoint.py::test_cupy_matches_numpy"], 300),
        ("bench_dense", [PY, "benchmarks/bench_dense.py", "--backend", "cupy"]
         + (["--steps", "2", "--repeats", "1"] if dry else ["--steps", "100", "--repeats", "5"]), 300),
        ("bench_conv", [PY, "benchmarks/bench_conv.py", "--backend", "cupy"]
         + (["--batch", "4", "--repeats", "1", "--warmup", "1", "--no-torch"] if dry else []), 300),
        ("bench_conv_winograd", [PY, "benchmarks/bench_conv.py", "--backend", "cupy", "--algorithm", "winograd",
                                 "--no-torch", "--rounds", "1"]
         + (["--batch", "4", "--repeats", "1", "--warmup", "1"] if dry else []), 300),
        ("bench_fixedpoint", [PY, "benchmarks/bench_fixedpoint.py", "--backend", "cupy",
                              "--json", os.path.join(out, "bench_fixedpoint.json")]
         + (["--n-points", "100", "--grid-size", "8", "--n-beta", "5", "--dtype", "float32"] if dry
            else ["--repeats", "2"]), 300),
        ("train", [PY, "-m", "minivae.train", "--backend", "cupy", *train, *tiny, "--epochs", "1",
                   "--out", run], 600),
        ("stage2", [PY, "-m", "minivae.train", "--stage2", run, "--backend", "cupy"]
         + (["--epochs", "2", "--hidden", "16,16,16", "--batch-size", "32"] if dry else ["--epochs", "5"]), 600),
        ("sample", [PY, "-m", "minivae.sample", run, "--backend", "cupy", "--stage", "2", "--n", "100",
                    "--renorm", "scalar", "--npy"], 120),
        ("classifier", [PY, "-m", "minivae.classifier", "--backend", "cupy", *data_flags, "--epochs", "1",
                        "--out", classifier] + (["--n-train", "256", "--n-test", "64"] if dry else []), 300),
        ("evaluate", [PY, "-m", "minivae.evaluate", run, "--backend", "cupy", "--classifier", classifier]
         + (["--k", "4", "--n-iwae", "16", "--n-refit", "64", "--n-nll", "16", "--n-fd", "150"] if dry
            else ["--k", "100", "--n-iwae", "1000", "--n-fd", "10000"]), 600),
    ]
    return steps, {"dataset": train[1], "mnist_found": mnist, "data_dir": data}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the logs, the run and summary.json")
    p.add_argument("--dry-run", action="store_true", help="the same chain on the CPU stand-in, tiny sizes")
    p.add_argument("--data-dir", help="folder holding the MNIST IDX files")
    p.add_argument("--only", help="comma-separated step names to run (default: all)")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, MINIVAE_OFFLINE="1", PYTHONUNBUFFERED="1")
    path = [ROOT] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    if args.dry_run:
        path.insert(0, STANDIN)
        env.update(MINIVAE_TEST_STANDIN="1", MINIVAE_STANDIN_QUIET="0")
    env["PYTHONPATH"] = os.pathsep.join(path)
    if not args.dry_run:
        probe = subprocess.run([PY, "-c", "from minivae import backend; backend.use('cupy')"], cwd=ROOT, env=env,
                               capture_output=True, text=True)
        if probe.returncode != 0:
            print(f"error: no usable CuPy GPU here ({probe.stderr.strip().splitlines()[-1:]}); "
                  "run with --dry-run to check the script on the CPU stand-in", file=sys.stderr)
            return 2
    steps, data = _chain(args, out)
    only = set(args.only.split(",")) if args.only else None
    summary = {"dry_run": args.dry_run, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "data": data, "targets": TARGETS, "steps": {}}
    t_all = time.perf_counter()
    for name, cmd, limit in steps:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
            rc, stdout, text = proc.returncode, proc.stdout, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, stdout, text = 124, "", f"{exc.stdout or ''}{exc.stderr or ''}\n[timed out after {limit} s]"
            text = text if isinstance(text, str) else text.decode(errors="replace")
        seconds = time.perf_counter() - t0
        with open(os.path.join(out, f"{name}.log"), "w") as f:
            f.write(f"$ {' '.join(cmd)}\n{text}")
        record = {"command": " ".join(cmd),
                  "returncode": rc, "ok": rc == 0, "seconds": round(seconds, 2), **_figures(name, text)}
        if name == "env" and rc == 0:
            record.update(json.loads(stdout.strip().splitlines()[-1]))
            summary["device"] = record["device"]
        summary["steps"][name] = record
        print(f"{name:17s} {'ok ' if rc == 0 else 'FAILED'} {seconds:7.1f} s", file=sys.stderr, flush=True)
    summary["total_seconds"] = round(time.perf_counter() - t_all, 1)
    summary["ok"] = all(s["ok"] for s in summary["steps"].values())
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"{'all steps passed' if summary['ok'] else 'some steps FAILED'} in {summary['total_seconds']} s "
          f"on {summary.get('device', '?')} -> {os.path.join(out, 'summary.json')}", file=sys.stderr)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
