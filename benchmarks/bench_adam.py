"""The Adam step alone, on the presets' parameter counts, against its block size.

On NumPy, ``Optimizer`` runs the update's dozen in-place ufuncs on blocks of
``minivae.optim.optimizer.CPU_BLOCK`` values of the flat buffers, the blocks shared
among threads. Smaller blocks stay in a smaller cache; larger ones pay each ufunc's
fixed cost less often. This times ``Adam.step`` for each block size, interleaved round
by round in one process (machine drift hits all alike), on the flat buffers of
``mnist-dense``, ``mnist-conv`` and ``cifar-conv`` (random gradients), with PyTorch's
``torch.optim.Adam`` on the same number of parameters (one flat tensor) when installed
(timed after minivae's rounds: PyTorch's OpenMP threads keep spinning after each step
and would slow the NumPy threads interleaved with them).

Alone, the buffers stay in the shared cache between steps and larger blocks win; inside
a training step the rest of the step evicts them, and the default (2^16, L2-sized
blocks) held up there (see ``minivae/optim/optimizer.py``): read these as the
optimiser's own cost, not as the block size to use.

    python benchmarks/bench_adam.py
    python benchmarks/bench_adam.py --blocks 16,18 --rounds 9

Prints milliseconds per step (median over rounds of each round's median).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402

import bench_step  # noqa: E402
from minivae import backend  # noqa: E402
from minivae.optim import Adam  # noqa: E402
from minivae.optim import optimizer as optimizer_module  # noqa: E402
from minivae.vae import build_model  # noqa: E402


def _torch_step(size, seed):
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    param = torch.nn.Parameter(torch.zeros(size))
    param.grad = torch.from_numpy(numpy.random.default_rng(seed).standard_normal(size).astype(numpy.float32) * 1e-3)
    opt = torch.optim.Adam([param], lr=1e-3)
    return opt.step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", default="16,17,18,19", help="comma-separated log2 block sizes")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    exponents = [int(b) for b in args.blocks.split(",")]
    saved = optimizer_module.CPU_BLOCK
    print(f"Adam.step on NumPy float32, ms (median over {args.rounds} interleaved rounds of {args.repeats} steps); "
          f"CPU_BLOCK in use: 2^{saved.bit_length() - 1}")
    print(f"{'preset':12s} {'params':>9s} " + " ".join(f"{'2^' + str(e):>7s}" for e in exponents)
          + ("" if args.no_torch else f" {'torch':>7s}"))
    try:
        for preset in bench_step.PRESETS:
            backend.use("numpy", dtype="float32", seed=0)
            opt = Adam(build_model(None, **bench_step.model_spec(preset)).parameters(), lr=1e-3)
            size = opt.flat_params.size
            opt.flat_grads[...] = numpy.random.default_rng(0).standard_normal(size).astype(numpy.float32) * 1e-3
            torch_step = None if args.no_torch else _torch_step(size, 0)
            times = {e: [] for e in exponents}
            times["torch"] = []
            for _ in range(args.rounds):
                for e in exponents:
                    optimizer_module.CPU_BLOCK = 1 << e
                    times[e].append(bench_step.median_ms(opt.step, args.repeats))
            for _ in range(args.rounds if torch_step is not None else 0):   # after minivae's rounds:
                times["torch"].append(bench_step.median_ms(torch_step, args.repeats))  # its OpenMP threads spin on
            row = " ".join(f"{statistics.median(times[e]):7.2f}" for e in exponents)
            if not args.no_torch:
                row += f" {statistics.median(times['torch']):7.2f}" if times["torch"] else f" {'-':>7s}"
            print(f"{preset:12s} {size:9d} {row}")
    finally:
        optimizer_module.CPU_BLOCK = saved


if __name__ == "__main__":
    main()
