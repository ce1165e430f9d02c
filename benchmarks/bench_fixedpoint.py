"""Benchmark: a 100-value β sweep of the high-capacity fixed points (math.md §7).

Workload (design.md, performance targets): 1,000 points of the ``lines`` data set,
a 32×32 grid of cells, 100 log-spaced β from 1e-3·β_c to 10·β_c (the CLI's default
grid), at most 400 iterations per β, η = 0.5, tol = 1e-3. Target: < 30 s on 2 CPU cores.

    python benchmarks/bench_fixedpoint.py                      # numpy, float32 and float64
    python benchmarks/bench_fixedpoint.py --dtype float32 --workers 2
    python benchmarks/bench_fixedpoint.py --backend cupy       # on a GPU

Prints wall time, CPU time of this process (on a shared machine the CPU time is the
steadier number), iterations summed over β, and the critical β found. Timings are
measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivae import backend  # noqa: E402
from minivae.fixedpoint import datasets  # noqa: E402
from minivae.fixedpoint.sweep import sweep  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=backend.BACKENDS, default="numpy",
                   help="array backend (default: numpy)")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="both",
                   help="precision of the iteration (default: both, one after the other)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads (default: the solver's, min(2, CPUs) on numpy)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="β per batch (default: the solver's, 4 on numpy, all on cupy)")
    p.add_argument("--n-points", type=int, default=1000, help="data points (default: 1000)")
    p.add_argument("--grid-size", type=int, default=32, help="cells per side (default: 32)")
    p.add_argument("--n-beta", type=int, default=100, help="β values (default: 100)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs; the best is kept")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    backend.use(args.backend)
    x = datasets.make("lines", n=args.n_points, seed=0)
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    results = []
    for dtype in dtypes:
        if args.backend == "cupy":   # warm-up: CUDA context and kernel compilation
            sweep(x, None, 1.0, n_beta=2, grid_size=args.grid_size, max_iter=2, dtype=dtype)
        best = None
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            out = sweep(x, None, 1.0, n_beta=args.n_beta, grid_size=args.grid_size, dtype=dtype,
                        workers=args.workers, chunk_size=args.chunk_size)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if best is None or wall < best[0]:
                best = (wall, cpu, out)
        wall, cpu, out = best
        iters = int(out.fixed_points.n_iter.sum())
        row = {"backend": args.backend, "dtype": dtype, "wall_s": round(wall, 2),
               "cpu_s": round(cpu, 2), "iterations": iters,
               "ms_per_beta_iteration": round(1e3 * wall / iters, 3),
               "critical_betas": [round(float(b), 5) for b in out.critical_betas],
               "cpu_count": os.cpu_count()}
        results.append(row)
        print(f"{args.backend:5s} {dtype}: {wall:6.1f} s wall, {cpu:6.1f} s CPU, "
              f"{iters} β-iterations ({row['ms_per_beta_iteration']} ms each), "
              f"critical β {row['critical_betas']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
