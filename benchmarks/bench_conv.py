"""Time conv2d / conv_transpose2d / batch_norm forward+backward at the conv presets' shapes,
against PyTorch.

Shapes are every convolution, transposed convolution and BatchNorm of the presets
``mnist-conv`` (28×28×1, channels 32/64) and ``cifar-conv`` (32×32×3, channels
64/128/256 with BatchNorm, dense 512) at batch 128 (kernel 4, stride 2, padding 1).
The first layer's input is data (no input gradient), as in training. Each framework
runs in a process of its own (``--worker``), on the same arrays and weights (same seed):
in one process, PyTorch's OpenMP threads keep spinning after each of its ops and take
the cores from minivae's workers (measured: +30–80 % on minivae's wide layers). The
processes alternate ``--rounds`` times (minivae, torch, minivae, ...) so that load from
other processes hits both alike; the median over rounds of each process's median is
reported. ``--algorithm`` picks minivae's convolution algorithm (im2col, Winograd, or
"auto", the default the layers use).

Memory layouts: minivae's convolutions hand out channels-last arrays (NCHW-shaped
views) and BatchNorm and the activations keep the layout, so in a minivae VAE most
inputs and output gradients of these layers are channels-last in memory; the others
are plain NCHW (data, a reshape of a Linear's output, a flatten's gradient, the
loss's gradient). By default each layer gets the layouts it gets in that model (the
flags in ``LAYERS``, read off a traced training step); ``--nchw`` feeds every array
as plain NCHW (the pessimistic case). PyTorch always gets contiguous NCHW tensors,
its native layout.

    python benchmarks/bench_conv.py                            # both presets, NumPy vs PyTorch CPU
    python benchmarks/bench_conv.py --preset cifar-conv
    python benchmarks/bench_conv.py --backend cupy             # CuPy vs PyTorch CUDA

Prints milliseconds per forward+backward and the ratio minivae / PyTorch (issue 14's
target: <= 1.0 for each layer on the CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivae import backend  # noqa: E402
from minivae.autograd import Tensor  # noqa: E402
from minivae.ops.batchnorm import batch_norm  # noqa: E402
from minivae.ops.conv import conv2d, conv_transpose2d  # noqa: E402

# conv: (label, transposed, in_channels, out_channels, input side, kernel, stride, padding,
#        input needs grad, input channels-last, output gradient channels-last)
# bn:   (label, "bn", channels, side or None for BatchNorm1d, input and gradient channels-last)
LAYERS = {
    "mnist-conv": [
        ("conv   1->32  28x28", False, 1, 32, 28, 4, 2, 1, False, False, True),
        ("conv  32->64  14x14", False, 32, 64, 14, 4, 2, 1, True, True, False),
        ("convT 64->32   7x7 ", True, 64, 32, 7, 4, 2, 1, True, False, True),
        ("convT 32->1   14x14", True, 32, 1, 14, 4, 2, 1, True, True, False),
    ],
    "cifar-conv": [
        ("conv   3->64  32x32", False, 3, 64, 32, 4, 2, 1, False, False, True),
        ("conv  64->128 16x16", False, 64, 128, 16, 4, 2, 1, True, True, True),
        ("conv 128->256  8x8 ", False, 128, 256, 8, 4, 2, 1, True, True, True),
        ("convT 256->128 4x4 ", True, 256, 128, 4, 4, 2, 1, True, False, True),
        ("convT 128->64  8x8 ", True, 128, 64, 8, 4, 2, 1, True, True, True),
        ("convT 64->3   16x16", True, 64, 3, 16, 4, 2, 1, True, True, False),
        ("bn2d  64      16x16", "bn", 64, 16, True),
        ("bn2d 128       8x8 ", "bn", 128, 8, True),
        ("bn2d 256       4x4 ", "bn", 256, 4, True),
        ("bn1d 512           ", "bn", 512, None, False),
    ],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=backend.BACKENDS, default="numpy",
                   help="minivae backend; PyTorch runs on the CPU for numpy and on CUDA for cupy")
    p.add_argument("--preset", choices=tuple(LAYERS) + ("all",), default="all",
                   help="whose layers to time (default: all)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats per layer (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repeats per layer first")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="PyTorch CPU threads (default: the core count; NumPy's BLAS uses its own default)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--nchw", action="store_true",
                   help="give minivae plain NCHW inputs and gradients everywhere (default: the "
                        "layouts its own neighbouring layers produce, see above)")
    p.add_argument("--algorithm", choices=("auto", "im2col", "winograd"), default="auto",
                   help="minivae's convolution algorithm (default: auto, as the layers use)")
    p.add_argument("--rounds", type=int, default=3, help="alternating process pairs (default 3)")
    p.add_argument("--worker", choices=("minivae", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--cpu-time", action="store_true",
                   help="time with the process's CPU time instead of wall-clock time: steadier on a "
                        "shared machine, but meaningful only single-threaded (OPENBLAS_NUM_THREADS=1 "
                        "--threads 1) and on the CPU")
    return p.parse_args(argv)


def _synchronizer(args):
    """A function that waits for the device, so wall-clock times cover the work itself."""
    if args.backend == "cupy":
        import cupy  # noqa: PLC0415  (only for --backend cupy)
        return cupy.cuda.Device().synchronize
    return lambda: None


def _torch(args):
    if args.no_torch:
        return None, None
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        print("(PyTorch not installed: minivae timings only)")
        return None, None
    if args.backend == "cupy":
        if not torch.cuda.is_available():
            print("(PyTorch has no CUDA here: minivae timings only)")
            return None, None
        return torch, "cuda"
    torch.set_num_threads(args.threads)
    return torch, "cpu"


def _channels_last(a, yes):
    """The same values as an NCHW-shaped view of a channels-last array (or ``a`` itself)."""
    return numpy.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if yes else a


def _make_layer(spec, batch, dtype, gen):
    if spec[1] == "bn":
        _, _, c, side, _ = spec
        shape = (batch, c) if side is None else (batch, c, side, side)
        x = (gen.standard_normal(shape) * 2 + 0.5).astype(dtype)
        w, b = gen.uniform(0.5, 1.5, c).astype(dtype), gen.uniform(-0.1, 0.1, c).astype(dtype)
        return x, w, b, gen.standard_normal(shape).astype(dtype)
    label, transposed, cin, cout, side, k, s, p, *_ = spec
    wshape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    x = gen.standard_normal((batch, cin, side, side)).astype(dtype)
    w = (gen.uniform(-1, 1, wshape) / numpy.sqrt(wshape[1] * k * k)).astype(dtype)
    b = gen.uniform(-0.1, 0.1, cout).astype(dtype)
    out_side = (side - 1) * s - 2 * p + k if transposed else (side + 2 * p - k) // s + 1
    g = gen.standard_normal((batch, cout, out_side, out_side)).astype(dtype)
    return x, w, b, g


def _minivae_bn_step(spec, x, w, b, g, nchw):
    last = spec[4] and not nchw
    xt = Tensor(backend.to_device(_channels_last(x, last)), requires_grad=True)
    wt, bt = Tensor(backend.to_device(w), requires_grad=True), Tensor(backend.to_device(b), requires_grad=True)
    gt = backend.to_device(_channels_last(g, last))
    stats = [backend.xp().zeros(len(w), dtype=x.dtype), backend.xp().ones(len(w), dtype=x.dtype)]

    def step():   # the op's forward and vjp (no accumulation into leaves' .grad, see _vjp)
        _vjp(batch_norm(xt, wt, bt, *stats, training=True), gt)
    return step


def _minivae_step(spec, x, w, b, g, nchw, algorithm="auto"):
    if spec[1] == "bn":
        return _minivae_bn_step(spec, x, w, b, g, nchw)
    _, transposed, *_, k, s, p, input_grad, x_last, g_last = spec
    xt = Tensor(backend.to_device(_channels_last(x, x_last and not nchw)), requires_grad=input_grad)
    wt, bt = Tensor(backend.to_device(w), requires_grad=True), Tensor(backend.to_device(b), requires_grad=True)
    gt = backend.to_device(_channels_last(g, g_last and not nchw))
    op = conv_transpose2d if transposed else conv2d

    def step():
        _vjp(op(xt, wt, bt, stride=s, padding=p, algorithm=algorithm), gt)
    return step


def _vjp(y, g):
    """The vector-Jacobian product of the op that made ``y``, without the autograd's copy of
    each gradient into a leaf's ``.grad`` (in a model the input is no leaf; PyTorch's
    ``autograd.grad`` below skips accumulation likewise)."""
    return y._fn.backward(g)


def _torch_step(torch, device, spec, x, w, b, g):
    bn = spec[1] == "bn"
    _, transposed, *_, k, s, p, input_grad, _, _ = spec if not bn else (None,) * 11
    xt = torch.tensor(x, device=device, requires_grad=input_grad or bn)
    wt = torch.tensor(w, device=device, requires_grad=True)
    bt = torch.tensor(b, device=device, requires_grad=True)
    gt = torch.tensor(g, device=device)
    if bn:
        stats = [torch.zeros(len(w), device=device), torch.ones(len(w), device=device)]

        def bn_step():
            y = torch.nn.functional.batch_norm(xt, *stats, wt, bt, training=True)
            torch.autograd.grad(y, [xt, wt, bt], gt)
        return bn_step
    op = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d

    def step():
        y = op(xt, wt, bt, stride=s, padding=p)
        torch.autograd.grad(y, [xt, wt, bt] if input_grad else [wt, bt], gt)
    return step


def _time(step, sync, clock=time.perf_counter):
    sync()
    start = clock()
    step()
    sync()
    return clock() - start


def _layers(args):
    return [spec for name in (LAYERS if args.preset == "all" else [args.preset]) for spec in LAYERS[name]]


def worker(args):
    """Time every layer for one framework in this process; print {label: median ms} as JSON."""
    clock = time.process_time if args.cpu_time else time.perf_counter
    try:
        backend.use(args.backend, dtype=args.dtype, seed=0)
    except backend.BackendError as exc:
        sys.exit(f"bench_conv: {exc}")
    if args.worker == "torch":
        torch, device = _torch(args)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    else:
        sync = _synchronizer(args)
    gen = numpy.random.default_rng(0)
    medians = {}
    for spec in _layers(args):
        arrays = _make_layer(spec, args.batch, numpy.dtype(args.dtype), gen)
        if args.worker == "torch":
            step = _torch_step(torch, device, spec, *arrays)
        else:
            step = _minivae_step(spec, *arrays, nchw=args.nchw, algorithm=args.algorithm)
        for _ in range(args.warmup):
            step()
        medians[spec[0]] = 1e3 * statistics.median(_time(step, sync, clock) for _ in range(args.repeats))
    print(json.dumps(medians))


def _run_worker(framework, argv):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", framework] + argv,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"bench_conv: the {framework} worker failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.cpu_time and args.backend != "numpy":
        sys.exit("--cpu-time measures CPU work; use wall-clock time (the default) with --backend cupy")
    if args.worker:
        return worker(args)
    torch, device = _torch(args)
    frameworks = ["minivae"] + (["torch"] if torch else [])
    runs = {f: [] for f in frameworks}
    for _ in range(args.rounds):   # alternating processes: background load hits both alike
        for f in frameworks:
            runs[f].append(_run_worker(f, argv))
    print(f"minivae {args.backend} (algorithm {args.algorithm}) vs PyTorch {device or '-'}: batch {args.batch}, "
          f"{args.dtype}, forward+backward, median of {args.repeats} repeats, median over {args.rounds} "
          f"process rounds (ms, {'CPU' if args.cpu_time else 'wall'} time); {os.cpu_count()} CPU cores")
    if args.backend == "numpy":   # the GEMM kernels move these figures by up to 2x (docs/results.md)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_step import blas_line  # noqa: PLC0415
        print(blas_line())
    print(f"{'layer':22s} {'minivae':>9s} {'torch':>9s} {'ratio':>7s}")
    totals = [0.0, 0.0]
    for spec in _layers(args):
        label = spec[0]
        m_ours = statistics.median(r[label] for r in runs["minivae"])
        totals[0] += m_ours
        if torch:
            m_ref = statistics.median(r[label] for r in runs["torch"])
            totals[1] += m_ref
            print(f"{label:22s} {m_ours:9.2f} {m_ref:9.2f} {m_ours / m_ref:7.2f}")
        else:
            print(f"{label:22s} {m_ours:9.2f} {'-':>9s} {'-':>7s}")
    if torch:
        print(f"{'total':22s} {totals[0]:9.2f} {totals[1]:9.2f} {totals[0] / totals[1]:7.2f}")
    else:
        print(f"{'total':22s} {totals[0]:9.2f}")


if __name__ == "__main__":
    main()
