"""Two settings of minivae's internals compared inside one process, round by round.

Whole-step timings of separate processes (``bench_step.py``) move by 10-30 % when the
host is busy, more than most changes to a threshold or a block size. This runs the
trainer's step (see ``bench_step.py``) of one preset in a single process and switches
between setting A and setting B every ``--steps`` steps, ``--rounds`` times (A, B, B, A,
A, B, ...), so that drifts of the machine's speed hit both alike. It prints the median
over rounds of each round's median step time and how many rounds each won.

A setting is ``module.attribute=expression``; several are separated by ``;``. The
expression is Python, evaluated with the module's names available:

    python benchmarks/bench_ab.py --preset mnist-conv \\
        --a "minivae.ops._parallel.MIN_PARALLEL_BYTES=1 << 20" \\
        --b "minivae.ops._parallel.MIN_PARALLEL_BYTES=4 << 20"
    python benchmarks/bench_ab.py --preset mnist-conv \\
        --a "minivae.ops.winograd.used_fraction=lambda size, padding: 1.0" --b ""   # "auto" before the tile rule

``--a ""`` or ``--b ""`` leaves everything as it is. Only settings read at call time
take effect (module constants the ops read on each call do; a layer's ``algorithm``
attribute does; values copied at import do not).
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_step  # noqa: E402


def parse_setting(text):
    """``[(module, attribute, value), ...]`` from ``"pkg.mod.NAME=expr; ..."``."""
    changes = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        target, sep, expression = item.partition("=")
        module_name, _, attribute = target.strip().rpartition(".")
        if not sep or not module_name:
            raise SystemExit(f"bench_ab: a setting is module.attribute=expression, got {item!r}")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise SystemExit(f"bench_ab: cannot import {module_name!r} ({err})") from None
        if not hasattr(module, attribute):
            raise SystemExit(f"bench_ab: {module_name} has no attribute {attribute!r}")
        changes.append((module, attribute, eval(expression, vars(module))))  # noqa: S307 (a developer's own input)
    return changes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=bench_step.PRESETS, default="mnist-conv")
    p.add_argument("--a", default="", help="setting A (default: as is)")
    p.add_argument("--b", default="", help="setting B (default: as is)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="timed steps per setting and round (median)")
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args(argv)

    import numpy  # noqa: PLC0415
    from _steps import vae_training_step  # noqa: PLC0415
    from minivae import backend  # noqa: PLC0415
    from minivae.optim import Adam  # noqa: PLC0415
    from minivae.vae import build_model, build_objective  # noqa: PLC0415

    settings = {"A": parse_setting(args.a), "B": parse_setting(args.b)}
    defaults = {(m, a): getattr(m, a) for changes in settings.values() for m, a, _ in changes}
    spec = bench_step.model_spec(args.preset)
    backend.use("numpy", dtype="float32", seed=0)
    model = build_model(None, **spec)
    opt = Adam(model.parameters(), lr=1e-3)
    gen = numpy.random.default_rng(1)
    eps = [gen.standard_normal((args.batch, spec["latent_dim"])).astype(numpy.float32) for _ in range(4)]
    step = vae_training_step(model, build_objective("balanced"), opt, bench_step._data(spec, args.batch), eps)

    def apply(name):
        for (module, attribute), value in defaults.items():
            setattr(module, attribute, value)
        for module, attribute, value in settings[name]:
            setattr(module, attribute, value)

    times = {"A": [], "B": []}
    try:
        for _ in range(3):
            step()
        for r in range(args.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                apply(name)
                # one untimed step first: caches and pools settle on the setting
                times[name].append(bench_step.median_ms(step, args.steps))
    finally:
        apply("A")
        for (module, attribute), value in defaults.items():
            setattr(module, attribute, value)
    wins_b = sum(b < a for a, b in zip(times["A"], times["B"]))
    print(f"{args.preset}, batch {args.batch}: median ms/step over {args.rounds} rounds of {args.steps} steps")
    for name, text in (("A", args.a), ("B", args.b)):
        print(f"  {name} {statistics.median(times[name]):8.2f}  {text or '(as is)'}")
        print("     " + " ".join(f"{v:.1f}" for v in times[name]))
    print(f"  B faster in {wins_b} of {args.rounds} rounds")


if __name__ == "__main__":
    main()
