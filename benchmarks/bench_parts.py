"""One batch part or one per core: where handing an op to the CPU workers starts to pay.

``minivae.ops._parallel`` runs an op on one part of the batch per core, but handing a
part to a worker thread and waiting for it costs two thread wake-ups. Memory-bound ops
(ReLU, BatchNorm, copying reshapes) on fewer than ``MIN_PARALLEL_BYTES`` run as one part
instead. This benchmark measures that break-even, in one process, with the two settings
interleaved round by round (so that drifts of the machine's speed hit both alike):

* the bare hand-off: ``map_parts`` of parts that do nothing, against a plain call;
* ReLU and BatchNorm2d (training, affine) forward + vjp on channels-last activations of
  1-16 MiB (batch 128), forced to one part and to one part per worker.

    python benchmarks/bench_parts.py
    python benchmarks/bench_parts.py --rounds 9 --sizes 2,4,8

Prints microseconds (median over rounds of each round's median) and, per size, which
setting was faster; the threshold the ops use is printed alongside.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

from minivae.autograd import Tensor  # noqa: E402
from minivae.ops import _parallel  # noqa: E402
from minivae.ops.activation import ReLU  # noqa: E402
from minivae.ops.batchnorm import batch_norm  # noqa: E402

ONE_PART, PER_WORKER = 1 << 62, 0   # values of MIN_PARALLEL_BYTES that force each setting


def _median_us(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _channels_last(shape, gen):
    a = gen.standard_normal(shape).astype(numpy.float32)
    return numpy.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _ops(mib, gen):
    """fwd + vjp closures of ReLU and BatchNorm2d on a (128, C, 8, 8) activation of ``mib`` MiB."""
    channels = max(1, int(mib * 2 ** 20) // (4 * 128 * 64))
    shape = (128, channels, 8, 8)
    x = Tensor(_channels_last(shape, gen), requires_grad=True)
    g = _channels_last(shape, gen)
    weight = Tensor(numpy.ones(channels, numpy.float32), requires_grad=True)
    bias = Tensor(numpy.zeros(channels, numpy.float32), requires_grad=True)
    stats = [numpy.zeros(channels, numpy.float32), numpy.ones(channels, numpy.float32)]

    def relu():
        ReLU.apply(x)._fn.backward(g)

    def bn():
        batch_norm(x, weight, bias, *stats, training=True)._fn.backward(g)
    return {"relu": relu, "batchnorm": bn}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1,2,4,6,8,16", help="comma-separated activation sizes in MiB")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per setting and round (median)")
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
        handoff["plain call"].append(_median_us(lambda: (lambda s: None)(two[0]), 200))
        handoff["map_parts"].append(_median_us(lambda: _parallel.map_parts(lambda s: None, two), 200))
    print("hand-off of empty parts: " + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in handoff.items()))
    gen = numpy.random.default_rng(0)
    print(f"{'op':10s} {'MiB':>5s} {'one part':>9s} {'per worker':>11s} {'faster':>11s}")
    saved = _parallel.MIN_PARALLEL_BYTES
    try:
        for mib in (float(s) for s in args.sizes.split(",")):
            for name, fn in _ops(mib, gen).items():
                times = {ONE_PART: [], PER_WORKER: []}
                for _ in range(args.rounds):
                    for setting in times:
                        _parallel.MIN_PARALLEL_BYTES = setting
                        times[setting].append(_median_us(fn, args.repeats))
                one, per = (statistics.median(times[s]) for s in (ONE_PART, PER_WORKER))
                print(f"{name:10s} {mib:5g} {one:9.0f} {per:11.0f} {'one part' if one < per else 'per worker':>11s}")
    finally:
        _parallel.MIN_PARALLEL_BYTES = saved


if __name__ == "__main__":
    main()
