"""Images per second of a whole training step against batch size and image side.

The conv presets' architectures (``mnist-conv``: 1 channel, convs 32/64;
``cifar-conv``: 3 channels, convs 64/128/256 with BatchNorm, dense 512) at image sides
28, 32 and 64 (channels as in the preset) and batches 32, 128 and 512, each a fresh
process running the trainer's step (see ``bench_step.py``); with ``--torch`` the same
model in PyTorch alongside. The work of a step grows with batch × side², so at constant
efficiency images/s falls 4× from side 32 to 64 and stays flat across batches; what
a row loses against that is overhead (per-op Python, copies, threads with too little
work each). cifar-conv's three stride-2 layers need a side divisible by 8 (no 28).

    python benchmarks/bench_scaling.py                  # minivae on NumPy
    python benchmarks/bench_scaling.py --torch          # and PyTorch CPU
    python benchmarks/bench_scaling.py --backend cupy --torch
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_step  # noqa: E402

BATCHES = (32, 128, 512)
SIDES = (28, 32, 64)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", choices=("mnist-conv", "cifar-conv"),
                   help="architecture (repeatable; default both)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--batches", default=",".join(map(str, BATCHES)), help="comma-separated batch sizes")
    p.add_argument("--sides", default=",".join(map(str, SIDES)), help="comma-separated image sides")
    p.add_argument("--steps", type=int, default=3, help="timed steps per process (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1, help="processes per cell (median)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="PyTorch CPU threads")
    p.add_argument("--torch", action="store_true", help="also time PyTorch (same model)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    sides = [int(s) for s in args.sides.split(",")]
    frameworks = ["minivae"] + (["torch"] if args.torch else [])
    print(bench_step.blas_line())
    print(f"images/s of a whole training step (forward, backward, Adam), float32, minivae {args.backend}"
          f"{' and PyTorch' if args.torch else ''}; median of {args.steps} steps x {args.rounds} process(es); "
          f"{os.cpu_count()} CPU cores")
    print(f"{'model':11s} {'side':>4s} {'who':>7s} " + " ".join(f"{'batch ' + str(b):>10s}" for b in batches))
    worker_args = argparse.Namespace(warmup=args.warmup, backend=args.backend, threads=args.threads)
    for preset in args.preset or ("mnist-conv", "cifar-conv"):
        depth = len(bench_step.model_spec(preset)["channels"])
        for side in sides:
            if side % 2 ** depth:
                print(f"{preset:11s} {side:4d}  (side not divisible by {2 ** depth}: no such model)")
                continue
            rows = {who: [] for who in frameworks}
            for batch in batches:
                results = {who: [] for who in frameworks}
                for _ in range(args.rounds):   # interleaved per cell
                    for who in frameworks:
                        r = bench_step.run_worker(who, preset, worker_args, side=side, batch=batch, steps=args.steps)
                        if r:
                            results[who].append(r["ms"])
                for who in frameworks:
                    ms = statistics.median(results[who]) if results[who] else float("nan")
                    rows[who].append(1e3 * batch / ms)
            for who in frameworks:
                print(f"{preset:11s} {side:4d} {who:>7s} " + " ".join(f"{v:10.0f}" for v in rows[who]), flush=True)


if __name__ == "__main__":
    main()
