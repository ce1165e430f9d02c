"""One batch part or one per core: where handing an op to the CPU workers starts to pay.

``minivae.ops._parallel`` runs an op on one part of the batch per core, but handing a
part to a worker thread and waiting for it costs two thread wake-ups. Memory-bound ops
(ReLU, BatchNorm, copying reshapes) on fewer than ``MIN_PARALLEL_BYTES`` run as one part
instead. This benchmark measures the ops' own break-even, in one process, with the two
settings interleaved round by round (so that drifts of the machine's speed hit both
alike). It is a lower bound on where splitting pays: in whole training steps splitting
paid from 1 MiB, where the ops alone still ran faster whole (see ``_parallel``).

* the bare hand-off: ``map_parts`` of parts that do nothing, against a plain call;
* ReLU and BatchNorm2d (training, affine) forward + vjp on channels-last activations of
  1-16 MiB (batch 128), forced to one part and to one part per worker. Each call takes
  the next of several inputs (96 MiB in all), so that it starts from memory as in a
  training step; ``--hot`` reuses one input, which stays in cache and flatters one part
  (measured: one part looked faster up to 4 MiB hot, while in whole training steps the
  split parts were faster from 1 MiB).

* ``--cores``: what the second core adds on this machine, for compute-bound work (a
  64×64 GEMM looped in L1) and memory-bound work (a 32 MiB copy per thread): one thread
  alone against the same work on each of two workers at once. 2.0× is two independent
  cores; on the project's 2-vCPU VM memory copies gained nothing (one thread already
  takes the bandwidth) and the GEMM loop 1.2-1.7×, so memory passes and, in part,
  GEMMs do not halve when split.

    python benchmarks/bench_parts.py
    python benchmarks/bench_parts.py --rounds 9 --sizes 2,4,8
    python benchmarks/bench_parts.py --cores --sizes ""

Prints microseconds (median over rounds of each round's median) and, per size, which
setting was faster; the threshold the ops use is printed alongside.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402

from bench_step import blas_line, median_ms  # noqa: E402

from minivae.autograd import Tensor  # noqa: E402
from minivae.ops import _parallel  # noqa: E402
from minivae.ops.activation import ReLU  # noqa: E402
from minivae.ops.batchnorm import batch_norm  # noqa: E402

ONE_PART, PER_WORKER = 1 << 62, 0   # values of MIN_PARALLEL_BYTES that force each setting


def _channels_last(shape, gen):
    a = gen.standard_normal(shape).astype(numpy.float32)
    return numpy.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


COLD_BYTES = 96 << 20   # inputs cycled through per size: more than the caches hold


def _ops(mib, gen, cold=True):
    """fwd + vjp closures of ReLU and BatchNorm2d on (128, C, 8, 8) activations of ``mib`` MiB;
    each call takes the next of several input/gradient pairs (cache-cold, as in a training
    step, where an activation was last touched a whole layer ago) unless ``cold`` is False."""
    channels = max(1, int(mib * 2 ** 20) // (4 * 128 * 64))
    shape = (128, channels, 8, 8)
    copies = max(1, COLD_BYTES // (2 * 4 * 128 * 64 * channels)) if cold else 1
    pairs = [(Tensor(_channels_last(shape, gen), requires_grad=True), _channels_last(shape, gen))
             for _ in range(copies)]
    weight = Tensor(numpy.ones(channels, numpy.float32), requires_grad=True)
    bias = Tensor(numpy.zeros(channels, numpy.float32), requires_grad=True)
    stats = [numpy.zeros(channels, numpy.float32), numpy.ones(channels, numpy.float32)]
    turn = [0]

    def next_pair():
        turn[0] += 1
        return pairs[turn[0] % len(pairs)]

    def relu():
        x, g = next_pair()
        ReLU.apply(x)._fn.backward(g)

    def bn():
        x, g = next_pair()
        batch_norm(x, weight, bias, *stats, training=True)._fn.backward(g)
    return {"relu": relu, "batchnorm": bn}


def core_scaling(rounds):
    """Throughput of two workers at once over one thread alone, for compute- and memory-bound work."""
    small = numpy.ones((64, 64), numpy.float32)
    gemm_out = [numpy.empty((64, 64), numpy.float32) for _ in range(2)]
    big = [numpy.ones(8 << 20, numpy.float32) for _ in range(2)]   # 32 MiB each, past the caches
    copy_out = [numpy.empty(8 << 20, numpy.float32) for _ in range(2)]
    work = {"GEMM 64x64 in L1 (x2000)": lambda k: [numpy.matmul(small, small, out=gemm_out[k]) for _ in range(2000)],
            "copy 32 MiB": lambda k: numpy.copyto(copy_out[k], big[k])}
    print(f"{'work per thread':26s} {'1 thread ms':>12s} {'2 at once ms':>13s} {'speed-up':>9s}")
    for name, fn in work.items():
        one, two = [], []
        for _ in range(rounds):
            one.append(median_ms(lambda: fn(0), 10))
            two.append(median_ms(lambda: _parallel.map_parts(fn, [0, 1]), 10))
        t1, t2 = statistics.median(one), statistics.median(two)
        print(f"{name:26s} {t1:12.2f} {t2:13.2f} {2 * t1 / t2:8.2f}x")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1,2,4,6,8,16", help="comma-separated activation sizes in MiB")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per setting and round (median)")
    p.add_argument("--hot", action="store_true", help="reuse one input (cache-hot): flatters one part")
    p.add_argument("--cores", action="store_true", help="also time what the second core adds (compute, memory)")
    args = p.parse_args(argv)
    workers = _parallel.cpu_workers()
    print(f"{workers} CPU workers; MIN_PARALLEL_BYTES = {_parallel.MIN_PARALLEL_BYTES / 2 ** 20:g} MiB; "
          f"median over {args.rounds} interleaved rounds of the median of {args.repeats} calls (us)")
    if workers < 2:
        print("one worker (MINIVAE_CPU_THREADS=1, or no OpenBLAS thread control): nothing to compare")
        return
    two = _parallel.parts(numpy, 128)
    handoff = {"plain call": [], "map_parts": []}
    for _ in range(args.rounds):
        handoff["plain call"].append(1e3 * median_ms(lambda: (lambda s: None)(two[0]), 200))
        handoff["map_parts"].append(1e3 * median_ms(lambda: _parallel.map_parts(lambda s: None, two), 200))
    print("hand-off of empty parts: " + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in handoff.items()))
    if args.cores:
        print(blas_line())
        core_scaling(args.rounds)
    sizes = [float(s) for s in args.sizes.split(",") if s]
    if not sizes:
        return
    gen = numpy.random.default_rng(0)
    print(f"{'op':10s} {'MiB':>5s} {'one part':>9s} {'per worker':>11s} {'faster':>11s}")
    saved = _parallel.MIN_PARALLEL_BYTES
    try:
        for mib in sizes:
            for name, fn in _ops(mib, gen, cold=not args.hot).items():
                times = {ONE_PART: [], PER_WORKER: []}
                for _ in range(args.rounds):
                    for setting in times:
                        _parallel.MIN_PARALLEL_BYTES = setting
                        times[setting].append(1e3 * median_ms(fn, args.repeats))
                one, per = (statistics.median(times[s]) for s in (ONE_PART, PER_WORKER))
                print(f"{name:10s} {mib:5g} {one:9.0f} {per:11.0f} {'one part' if one < per else 'per worker':>11s}")
    finally:
        _parallel.MIN_PARALLEL_BYTES = saved


if __name__ == "__main__":
    main()
