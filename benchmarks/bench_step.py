"""Time one whole training step (forward, backward, Adam) of a minivae preset against the
same model in PyTorch, with each process's peak memory.

The minivae model is ``minivae.vae.build_model(preset)`` with the default objective of
``python -m minivae.train`` (balanced, Asperti & Trentin 2020) and Adam (lr 1e-3), exactly
the trainer's step (``Trainer.train_step``); the PyTorch model below is layer for layer
the same network with the same loss (one host read per step for the γ update, as
minivae's logging needs). Data are uniform random images of the preset's shape.

Each measurement is a fresh process (``--worker``) that builds the model, warms up,
times ``--steps`` steps and reports the median ms/step, its peak resident memory and
the peak growth over the memory it had before the first step. The parent alternates
minivae and PyTorch processes ``--rounds`` times (minivae, torch, minivae, torch, ...)
so that load from other processes hits both alike, and prints medians over rounds.
One process per framework also keeps PyTorch's OpenMP threads from competing with
OpenBLAS's.

    python benchmarks/bench_step.py                                # all presets, NumPy vs PyTorch CPU
    python benchmarks/bench_step.py --preset cifar-conv --rounds 7
    python benchmarks/bench_step.py --backend cupy                 # CuPy vs PyTorch CUDA (peak = device memory)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.environ.get("MINIVAE_BENCH_ROOT", ROOT))   # --baseline-root: another checkout

PRESETS = ("mnist-dense", "mnist-conv", "cifar-conv")


def _rss_mib() -> float:
    """Current resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError):
        return 0.0


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def model_spec(preset, side=None):
    """The preset's architecture as a dict (``input_shape`` replaced when ``side`` is given)."""
    from minivae.vae.models import PRESETS as SPECS
    spec = dict(SPECS[preset])
    spec.pop("any_shape", None)
    if side is not None:
        spec["input_shape"] = (spec["input_shape"][0], side, side)
    return spec


def _data(spec, batch, seed=0):
    import numpy
    gen = numpy.random.default_rng(seed)
    return [gen.random((batch,) + tuple(spec["input_shape"]), dtype=numpy.float32) for _ in range(4)]


CLOCK = [time.perf_counter]   # time.process_time with --cpu-time


def _time_steps(step, steps, warmup, sync):
    for _ in range(warmup):
        step()
    sync()
    times = []
    clock = CLOCK[0]
    for _ in range(steps):
        t0 = clock()
        step()
        sync()
        times.append(clock() - t0)
    return times


def median_ms(fn, repeats, warmup=1):
    """Median milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    return statistics.median(_time_steps(fn, repeats, warmup, lambda: None)) * 1e3


# -- minivae -------------------------------------------------------------------------------

def minivae_worker(spec, batch, steps, warmup, backend_name):
    import numpy
    from _steps import vae_training_step
    from minivae import backend
    from minivae.optim import Adam
    from minivae.vae import build_model, build_objective

    backend.use(backend_name, dtype="float32", seed=0)
    kwargs = dict(spec)
    model = build_model(None, **kwargs)
    objective = build_objective("balanced")
    opt = Adam(model.parameters(), lr=1e-3)
    batches = [backend.to_device(b) for b in _data(spec, batch)]
    gen = numpy.random.default_rng(1)
    eps = [backend.to_device(gen.standard_normal((batch, spec["latent_dim"])).astype(numpy.float32))
           for _ in range(4)]
    step = vae_training_step(model, objective, opt, batches, eps)   # Trainer.train_step, ε drawn up front

    if backend_name == "cupy":
        import cupy  # noqa: PLC0415
        sync, pool = cupy.cuda.Device().synchronize, cupy.get_default_memory_pool()
    else:
        sync, pool = (lambda: None), None
    before = _rss_mib()
    times = _time_steps(step, steps, warmup, sync)
    if pool is not None:
        return times, {"device_mib": pool.total_bytes() / 2 ** 20}
    return times, {"peak_rss_mib": _peak_rss_mib(), "step_growth_mib": _peak_rss_mib() - before}


# -- PyTorch -------------------------------------------------------------------------------

def torch_model(torch, spec):
    """The PyTorch twin of ``minivae.vae.build_model`` for ``spec``: (encoder, heads, decoder)."""
    nn = torch.nn
    c, h, w = spec["input_shape"]
    latent = spec["latent_dim"]
    if spec["kind"] == "dense":
        widths = (c * h * w,) + tuple(spec["hidden"])
        enc = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        back = (latent,) + tuple(spec["hidden"][::-1])
        dec = []
        for a, b in zip(back[:-1], back[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec += [nn.Linear(back[-1], c * h * w)]
        return nn.Sequential(*enc), nn.Linear(widths[-1], 2 * latent), nn.Sequential(*dec)
    channels, dense, bn = tuple(spec["channels"]), spec["dense"], spec.get("batchnorm", False)
    hs, ws = h // 2 ** len(channels), w // 2 ** len(channels)
    enc, prev = [], c
    for ch in channels:
        enc += [nn.Conv2d(prev, ch, 4, 2, 1)] + ([nn.BatchNorm2d(ch)] if bn else []) + [nn.ReLU()]
        prev = ch
    flat = prev * hs * ws
    enc += [nn.Flatten(), nn.Linear(flat, dense)] + ([nn.BatchNorm1d(dense)] if bn else []) + [nn.ReLU()]
    dec = [nn.Linear(latent, dense), nn.ReLU(), nn.Linear(dense, flat), nn.ReLU(), nn.Unflatten(1, (prev, hs, ws))]
    rev = list(channels[::-1][1:]) + [c]
    for i, ch in enumerate(rev):
        dec += [nn.ConvTranspose2d(prev, ch, 4, 2, 1)]
        if i < len(rev) - 1:
            dec += ([nn.BatchNorm2d(ch)] if bn else []) + [nn.ReLU()]
        prev = ch
    return nn.Sequential(*enc), nn.Linear(dense, 2 * latent), nn.Sequential(*dec)


def torch_worker(spec, batch, steps, warmup, device, threads):
    import torch
    from _steps import torch_training_step
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    enc, heads, dec = (m.to(device) for m in torch_model(torch, spec))
    params = list(enc.parameters()) + list(heads.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    batches = [torch.from_numpy(b).to(device) for b in _data(spec, batch)]
    eps = [torch.randn(batch, spec["latent_dim"], device=device) for _ in range(4)]
    step = torch_training_step(torch, enc, heads, dec, opt, batches, eps)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    before = _rss_mib()
    times = _time_steps(step, steps, warmup, sync)
    if device == "cuda":
        return times, {"device_mib": torch.cuda.max_memory_allocated() / 2 ** 20}
    return times, {"peak_rss_mib": _peak_rss_mib(), "step_growth_mib": _peak_rss_mib() - before}


# -- the parent: interleaved rounds --------------------------------------------------------

def run_worker(framework, preset, args, side=None, batch=None, steps=None, root=ROOT):
    """One fresh process timing ``framework`` (minivae imported from ``root``); returns its
    JSON report (or None if it failed)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--preset", preset,
           "--batch", str(batch or args.batch), "--steps", str(steps or args.steps), "--warmup", str(args.warmup),
           "--backend", args.backend, "--threads", str(args.threads)]
    if side is not None:
        cmd += ["--side", str(side)]
    if getattr(args, "cpu_time", False):
        cmd += ["--cpu-time"]
    env = dict(os.environ, MINIVAE_BENCH_ROOT=os.path.abspath(root))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"  ({framework} worker failed: {proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_available(args) -> bool:
    if args.no_torch:
        return False
    probe = "import torch, sys; sys.exit(0 if (sys.argv[1] != 'cupy' or torch.cuda.is_available()) else 1)"
    return subprocess.run([sys.executable, "-c", probe, args.backend], capture_output=True).returncode == 0


def blas_line() -> str:
    """Which BLAS kernels NumPy runs (OpenBLAS picks them per CPU; OPENBLAS_CORETYPE overrides)."""
    import ctypes
    import numpy  # noqa: F401  (loads the BLAS)
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
        for path in paths:
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
                if hasattr(lib, name):
                    fn = getattr(lib, name)
                    fn.restype = ctypes.c_char_p
                    return (f"NumPy BLAS: OpenBLAS, {fn().decode()} kernels"
                            f" (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    except OSError:
        pass
    return "NumPy BLAS: not OpenBLAS, or not found"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", choices=PRESETS,
                   help="preset to time (repeatable; default: all three)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                   help="minivae backend; PyTorch runs on the CPU for numpy and on CUDA for cupy")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--steps", type=int, default=0, help="timed steps per process (default: 40 dense, 20 conv, "
                                                       "8 cifar-conv)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="minivae/PyTorch process pairs (median reported)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="PyTorch CPU threads")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--baseline-root", metavar="DIR",
                   help="also time the minivae of another checkout (e.g. `git worktree add /tmp/base "
                        "<commit>`), interleaved: before, after, PyTorch, before, after, ...")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with each process's CPU time instead of wall-clock time: the work done, "
                        "steadier on a loaded machine; compare single-threaded runs (OPENBLAS_NUM_THREADS=1 "
                        "MINIVAE_CPU_THREADS=1 --threads 1)")
    p.add_argument("--worker", choices=("minivae", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--side", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


DEFAULT_STEPS = {"mnist-dense": 40, "mnist-conv": 20, "cifar-conv": 8}


def main(argv=None):
    args = parse_args(argv)
    if args.cpu_time:
        if args.backend != "numpy":
            sys.exit("bench_step: --cpu-time measures CPU work; use wall-clock time with --backend cupy")
        CLOCK[0] = time.process_time
    if args.worker:
        spec = model_spec(args.preset[0], args.side)
        if args.worker == "minivae":
            times, mem = minivae_worker(spec, args.batch, args.steps, args.warmup, args.backend)
        else:
            device = "cuda" if args.backend == "cupy" else "cpu"
            times, mem = torch_worker(spec, args.batch, args.steps, args.warmup, device, args.threads)
        print(json.dumps({"ms": 1e3 * statistics.median(times), **mem}))
        return
    with_torch = torch_available(args)
    print(blas_line())
    mem_key = "device_mib" if args.backend == "cupy" else "peak_rss_mib"
    print(f"whole training step (forward, backward, Adam), batch {args.batch}, float32; minivae {args.backend} "
          f"vs PyTorch {'CUDA' if args.backend == 'cupy' else 'CPU'}; median over {args.rounds} interleaved "
          f"process pairs; {'CPU' if args.cpu_time else 'wall'} time; {os.cpu_count()} CPU cores")
    print(f"{'preset':12s} {'minivae ms':>11s} {'torch ms':>9s} {'ratio':>6s} {'mv MiB':>7s} {'torch MiB':>9s}"
          + ("" if args.backend == "cupy" else f" {'mv +step':>8s} {'torch +step':>11s}"))
    for preset in args.preset or PRESETS:
        steps = args.steps or DEFAULT_STEPS[preset]
        ours, theirs, base = [], [], []
        for _ in range(args.rounds):
            if args.baseline_root:
                base.append(run_worker("minivae", preset, args, steps=steps, root=args.baseline_root))
            ours.append(run_worker("minivae", preset, args, steps=steps))
            if with_torch:
                theirs.append(run_worker("torch", preset, args, steps=steps))
        ours, theirs, base = [r for r in ours if r], [r for r in theirs if r], [r for r in base if r]
        if not ours:
            continue

        def med(rows, key):
            return statistics.median(r[key] for r in rows) if rows else float("nan")
        m, t = med(ours, "ms"), med(theirs, "ms")
        line = f"{preset:12s} {m:11.1f} {t:9.1f} {m / t:6.2f} {med(ours, mem_key):7.0f} {med(theirs, mem_key):9.0f}"
        if args.backend != "cupy":
            line += f" {med(ours, 'step_growth_mib'):8.0f} {med(theirs, 'step_growth_mib'):11.0f}"
        print(line, flush=True)
        if base:
            b = med(base, "ms")
            line = f"{'  baseline':12s} {b:11.1f} {t:9.1f} {b / t:6.2f} {med(base, mem_key):7.0f} {'':9s}"
            if args.backend != "cupy":
                line += f" {med(base, 'step_growth_mib'):8.0f}"
            print(line, flush=True)
    print("(MiB: peak resident memory of the whole process; +step: its growth during the steps)"
          if args.backend != "cupy" else "(MiB: peak device memory held by the memory pool / allocated by PyTorch)")


if __name__ == "__main__":
    main()
