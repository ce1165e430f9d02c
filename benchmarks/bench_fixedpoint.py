"""Benchmark: a 100-value β sweep of the high-capacity fixed points (math.md §7).

Workload (design.md, performance targets): 1,000 points of the ``lines`` data set,
a 32×32 grid of cells, 100 log-spaced β from 1e-3·β_c to 10·β_c (the CLI's default
grid), at most 400 iterations per β, η = 0.5, tol = 1e-3. Target: < 30 s on 2 CPU cores.

    python benchmarks/bench_fixedpoint.py                      # numpy, float32 and float64
    python benchmarks/bench_fixedpoint.py --dtype float32 --workers 2
    python benchmarks/bench_fixedpoint.py --backend cupy       # on a GPU

Cold start against continuation (issue 11; ``--init`` takes a comma-separated list):

    python benchmarks/bench_fixedpoint.py --dtype float64 --data lines --init cold,down,up
    python benchmarks/bench_fixedpoint.py --dtype float64 --data circles --lipschitz local \
        --init cold,down,up

Prints wall time, CPU time of this process (on a shared machine the CPU time is the
steadier number), iterations summed over β, how many β converged, and the critical β
found (``?`` marks one flagged uncertain: a non-converged β in its stencil). With
several inits, ``E vs cold`` is the largest |E − E_cold| / E_cold over the β that
converged in both runs. Timings are measured here, never asserted in tests. Cold
starts run ``workers`` threads (2 on 2 cores); a continuation chain is sequential
(one β after the other) and runs on one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivae import backend  # noqa: E402
import numpy  # noqa: E402

from minivae.fixedpoint import LipschitzConstraint, datasets  # noqa: E402
from minivae.fixedpoint.__main__ import _ranges  # noqa: E402
from minivae.fixedpoint.solver import INITS  # noqa: E402
from minivae.fixedpoint.sweep import sweep  # noqa: E402

LIPSCHITZ_DEFAULTS = {"none": 0.0, "local": 1e-3, "global": 1e-7}   # the CLI's defaults


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
    p.add_argument("--data", default="lines", choices=tuple(datasets.DATASETS),
                   help="built-in data set, seed 0 (default: lines)")
    p.add_argument("--lipschitz", choices=tuple(LIPSCHITZ_DEFAULTS), default="none",
                   help="Lipschitz constraint with the CLI's default strength (default: none)")
    p.add_argument("--init", default="cold",
                   help=f"comma-separated starts to compare, of {', '.join(INITS)} "
                        "(default: cold)")
    p.add_argument("--n-points", type=int, default=1000, help="data points (default: 1000)")
    p.add_argument("--grid-size", type=int, default=32, help="cells per side (default: 32)")
    p.add_argument("--n-beta", type=int, default=100, help="β values (default: 100)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs; the best is kept")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    inits = [v.strip() for v in args.init.split(",") if v.strip()]
    if not inits or any(v not in INITS for v in inits):
        p.error(f"--init takes a comma-separated list of {', '.join(INITS)}, got {args.init!r}")
    backend.use(args.backend)
    x = datasets.make(args.data, n=args.n_points, seed=0)
    constraint = LipschitzConstraint(args.lipschitz, LIPSCHITZ_DEFAULTS[args.lipschitz])
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    results = []
    for dtype in dtypes:
        if args.backend == "cupy":   # warm-up: CUDA context and kernel compilation
            sweep(x, None, 1.0, n_beta=2, grid_size=args.grid_size, max_iter=2, dtype=dtype)
        cold = None
        for init in inits:
            row, out = _measure(args, x, constraint, dtype, init)
            if init == "cold":
                cold = out
            elif cold is not None:
                both = cold.converged & out.converged
                rel = numpy.abs(out.energy - cold.energy) / cold.energy
                row["max_rel_E_vs_cold"] = float(rel[both].max()) if both.any() else None
            results.append(row)
            crit = ", ".join(f"{b:.4g}{'?' if u else ''}" for b, u in
                             zip(row["critical_betas"], row["critical_uncertain"]))
            extra = ("" if row.get("max_rel_E_vs_cold") is None
                     else f", E vs cold {row['max_rel_E_vs_cold']:.2g}")
            print(f"{args.backend:5s} {dtype} {args.data} lipschitz={args.lipschitz} {init:4s}: "
                  f"{row['wall_s']:6.1f} s wall, {row['cpu_s']:6.1f} s CPU, "
                  f"{row['iterations']} β-iterations ({row['ms_per_beta_iteration']} ms each), "
                  f"{row['n_converged']}/{row['n_beta']} converged, critical β {crit}{extra}; "
                  f"not converged: β = {row['not_converged_betas'] or 'none'}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _measure(args, x, constraint, dtype, init):
    """Best of ``--repeats`` timed sweeps: (row of numbers, the Sweep)."""
    best = None
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = sweep(x, None, 1.0, n_beta=args.n_beta, grid_size=args.grid_size, dtype=dtype,
                    workers=args.workers, chunk_size=args.chunk_size, lipschitz=constraint,
                    init=init)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if best is None or wall < best[0]:
            best = (wall, cpu, out)
    wall, cpu, out = best
    iters = int(out.fixed_points.n_iter.sum())
    row = {"backend": args.backend, "dtype": dtype, "data": args.data,
           "lipschitz": args.lipschitz, "init": init, "wall_s": round(wall, 2),
           "cpu_s": round(cpu, 2), "iterations": iters,
           "ms_per_beta_iteration": round(1e3 * wall / iters, 3),
           "n_beta": len(out.betas), "n_converged": out.n_converged,
           "critical_betas": [round(float(b), 5) for b in out.critical_betas],
           "critical_uncertain": [bool(u) for u in out.critical_uncertain],
           "beta_collapse": round(out.beta_collapse, 5), "cpu_count": os.cpu_count(),
           "not_converged_betas": _ranges(out.betas, ~out.converged),
           "beta": out.betas.tolist(), "energy": out.energy.tolist(),
           "converged": out.converged.tolist()}
    return row, out


if __name__ == "__main__":
    sys.exit(main())
