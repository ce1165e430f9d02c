"""``python -m minivae.fixedpoint``: a β sweep of the high-capacity fixed points
(math.md §7; Taming VAEs §3.1–3.3, Fig. 2 and 7).

Writes to ``--out``: ``fixedpoint.json`` (the configuration, E(β), its log-β
derivatives, the critical β — each flagged ``uncertain`` with the reason when a
non-converged β enters its finite differences — and per β the iteration count,
``converged`` and the last step), ``fixed_points.npz`` (β, the fixed points μ and
``converged``, loadable with ``allow_pickle=False``), and, when matplotlib imports,
``trajectories.png`` (Fig. 2 top / Fig. 7 rows, cold starts) and ``energy.png``
(Fig. 2 bottom, non-converged β marked). Progress (β done, ETA) goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy

from .. import backend
from ..fileio import atomic_file
from ..run.cli import CommandParser, command_main, positive_int
from ..run.folder import RunFolder, check_output_path
from . import datasets, figures
from .lipschitz import MODES, LipschitzConstraint
from .solver import BOX, ETA, INIT_NOISE, INITS, MAX_ITER, TOL, solve
from .sweep import DEFAULT_SPAN, sweep


def build_parser():
    p = CommandParser(
        prog="python -m minivae.fixedpoint",
        description="Fixed points of a high-capacity β-VAE with a Gaussian decoder over a β "
                    "sweep (math.md §7): E(β), its second derivative in log β, the critical "
                    "temperatures, and the trajectories of the reconstruction vectors μ_k.")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="lines",
                   help="built-in data set (lines, circles, gaussians, two-points) or a path to "
                        "an (N, 2) array in .npy or .csv/.txt (default: lines)")
    g.add_argument("--n-points", type=int, default=1000,
                   help="number of points of a built-in data set (default: 1000)")
    g.add_argument("--data-seed", type=int, default=0,
                   help="seed of the built-in data set generator (default: 0)")
    g = p.add_argument_group("model and β grid")
    g.add_argument("--sigma", type=float, default=1.0,
                   help="decoder standard deviation σ, > 0; only βσ² matters (default: 1)")
    g.add_argument("--beta-min", type=float, default=None,
                   help=f"smallest β of the log-spaced grid (default: {DEFAULT_SPAN[0]:g}·β_c, "
                        "β_c = λ_max(C)/σ²)")
    g.add_argument("--beta-max", type=float, default=None,
                   help=f"largest β of the grid (default: {DEFAULT_SPAN[1]:g}·β_c)")
    g.add_argument("--n-beta", type=int, default=100, help="number of β values (default: 100)")
    g.add_argument("--betas", type=_float_list, default=None,
                   help="explicit comma-separated β values instead of the log-spaced grid")
    g.add_argument("--top", type=int, default=3,
                   help="how many critical temperatures (highest peaks of |d²E/dlogβ²|) to "
                        "report (default: 3)")
    g = p.add_argument_group("iteration (App. A protocol)")
    g.add_argument("--grid-size", type=int, default=32,
                   help="cells per side of the latent grid, >= 2 (default: 32, i.e. 1024 cells)")
    g.add_argument("--eta", type=float, default=ETA,
                   help=f"smoothing η of μ ← (1−η)μ + η·T(μ), in (0, 1] (default: {ETA})")
    g.add_argument("--max-iter", type=int, default=MAX_ITER,
                   help=f"iteration cap per β. A β that reaches it before its step falls below "
                        f"--tol has no fixed point: it is counted as not converged in the "
                        f"summary line, written with converged: false in the JSON, drawn as an "
                        f"open marker in energy.png, and a critical β whose finite differences "
                        f"use it is flagged uncertain. Raise it (or use --init down) when many "
                        f"β do not converge (default: {MAX_ITER})")
    g.add_argument("--tol", type=float, default=TOL,
                   help=f"stop a β when the Frobenius norm of the step of μ is below this "
                        f"(default: {TOL:g})")
    g.add_argument("--init-noise", type=float, default=INIT_NOISE,
                   help=f"uniform noise added to the cell centres at the start, and with "
                        f"--init down/up to each β's start (default: {INIT_NOISE})")
    g.add_argument("--seed", type=int, default=0, help="seed of that noise (default: 0)")
    g.add_argument("--init", choices=INITS, default="cold",
                   help="how each β starts: cold = from the noisy grid (the paper's protocol, β "
                        "solved in parallel); down = continuation by deterministic annealing "
                        "(Rose 1998): from the largest β down, each β starts from the fixed "
                        "point of the next larger β plus fresh ±--init-noise noise (so that "
                        "clusters can split); up = the same from the smallest β up. "
                        "Continuation is sequential, one thread (default: cold)")
    g = p.add_argument_group("Lipschitz constraint (App. B)")
    g.add_argument("--lipschitz", choices=MODES, default="none",
                   help="penalise ‖μ_k − μ_l‖² for cells within a radius (local) or for all "
                        "pairs (global); local adds a sparse conjugate-gradient solve per "
                        "iteration, a few times slower (default: none)")
    g.add_argument("--lipschitz-strength", type=float, default=None,
                   help="penalty weight ρ >= 0 (default: 1e-3 local, 1e-7 global; choice)")
    g.add_argument("--lipschitz-radius", type=float, default=None,
                   help="local radius in latent-box units (default: 1.5 cell spacings)")
    g = p.add_argument_group("computation and output")
    g.add_argument("--backend", choices=backend.BACKENDS, default=None,
                   help="array backend (default: $MINIVAE_BACKEND or numpy)")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="precision of the iteration; float32 is ~2x faster on CPUs, with "
                        "logits accurate to ~1e-7·‖x‖²/τ (default: float64)")
    g.add_argument("--chunk-size", type=positive_int, default=None,
                   help="β advanced together as one array (default: 4 on numpy, all on cupy)")
    g.add_argument("--workers", type=positive_int, default=None,
                   help="threads, each advancing its own chunk (default: min(2, CPUs) on numpy, "
                        "1 on cupy)")
    g.add_argument("--plot-betas", type=_float_list, default=None,
                   help="β values of the trajectory figure (default: one per phase between "
                        "the critical β)")
    g.add_argument("--out", default="fixedpoint-out",
                   help="output folder (default: fixedpoint-out)")
    g.add_argument("--no-figures", action="store_true",
                   help="skip the figures even with matplotlib")
    return p


def _float_list(text):
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def load_data(name, n_points=1000, seed=0):
    """A built-in data set or an (N, 2) array from .npy/.csv/.txt, checked for the figures."""
    if name in datasets.DATASETS:
        x = datasets.make(name, n=n_points, seed=seed)
    else:
        if not os.path.isfile(name):
            raise FileNotFoundError(f"--data {name!r} is neither a built-in data set "
                                    f"({', '.join(datasets.DATASETS)}) nor a file")
        try:
            if name.endswith(".npy"):
                x = numpy.load(name, allow_pickle=False)
            else:
                x = numpy.loadtxt(name, delimiter="," if name.endswith(".csv") else None, ndmin=2)
        except (ValueError, OSError) as exc:
            raise ValueError(f"could not read {name!r} as a numeric array: {exc}") from None
    x = numpy.asarray(x)
    if x.size == 0:
        raise ValueError(f"the data set {name!r} is empty; give at least one point")
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"the figures need 2-D points, an array of shape (N, 2); the data set "
                         f"{name!r} has shape {x.shape}")
    if not numpy.issubdtype(x.dtype, numpy.number) or not numpy.all(numpy.isfinite(x)):
        raise ValueError(f"the data set {name!r} must hold finite numbers")
    return x.astype(float)


def _ranges(betas, mask):
    """The β where ``mask`` holds, as runs of neighbouring grid points: '0.1–0.3, 2'."""
    runs, start = [], None
    for j, flag in enumerate(list(mask) + [False]):
        if flag and start is None:
            start = j
        elif not flag and start is not None:
            a, b = betas[start], betas[j - 1]
            runs.append(f"{a:.3g}" if start == j - 1 else f"{a:.3g}–{b:.3g}")
            start = None
    return ", ".join(runs)


def report(result, seconds, max_iter):
    """The summary lines: convergence count first, then the critical β with their flags."""
    n, ok = len(result.betas), result.n_converged
    init = result.fixed_points.init
    lines = [f"{n} β in {seconds:.1f} s ({'cold start' if init == 'cold' else 'continuation ' + init}):"
             f" {ok} of {n} converged"]
    if ok < n:
        lines[0] += (f"; {n - ok} stopped at --max-iter {max_iter} without converging, "
                     f"β = {_ranges(result.betas, ~result.converged)}")
    crit = []
    for b, uncertain in zip(result.critical_betas, result.critical_uncertain):
        crit.append(f"{b:.4g}" + (" (uncertain: a non-converged β enters its d²E)" if uncertain
                                     else ""))
    lines.append(f"critical β: {', '.join(crit) or 'none'}; "
                 f"β_c = λ_max(C)/σ² = {result.beta_collapse:.4g}")
    return "\n".join(lines)


def phase_betas(result):
    """One β per phase: geometric midpoints between the sorted critical β and the ends."""
    edges = numpy.concatenate([[result.betas[0]], numpy.sort(result.critical_betas),
                               [result.betas[-1]]])
    return numpy.unique(numpy.sqrt(edges[:-1] * edges[1:]))


class SweepProgress:
    """β done / total, converged so far, elapsed and ETA on stderr: one updating line on
    a terminal, a plain line at most every ``every`` seconds otherwise. The ETA is the
    remaining β at the average time per β so far (β differ in cost: small β take the
    most iterations), so it is a rough guide."""

    def __init__(self, stream=None, every=10.0):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every if not self.tty else 0.5
        self.t0 = time.perf_counter()
        self.last = self.t0
        self.shown = False

    def __call__(self, done, total, converged):
        now = time.perf_counter()
        if done < total and now - self.last < self.every:
            return
        if done == total and not self.shown:     # a quick sweep: no progress needed
            return
        self.last = now
        elapsed = now - self.t0
        eta = elapsed / done * (total - done)
        line = (f"β {done}/{total} done, {converged} converged, {elapsed:.0f} s elapsed, "
                f"ETA ≈ {eta:.0f} s")
        if self.tty:
            self.stream.write("\r" + line.ljust(79))
            if done == total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True


def main(argv=None):
    return command_main(build_parser, run, argv)


def run(args):
    folder = RunFolder(check_output_path(args.out))
    entries = [n for n in (os.listdir(args.out) if os.path.isdir(args.out) else []) if not n.startswith(".")]
    if entries and "fixedpoint.json" not in entries:
        raise ValueError(f"--out {args.out!r} is not empty and holds no fixed-point sweep "
                         f"({', '.join(entries[:3])}); choose a new or empty folder (nothing was written)")
    if args.backend is not None:
        backend.use(args.backend)
    x = load_data(args.data, args.n_points, args.data_seed)
    if not (args.sigma > 0 and numpy.isfinite(args.sigma)):
        raise ValueError(f"--sigma (the decoder standard deviation) must be > 0, got {args.sigma}")
    created = not os.path.isdir(args.out)
    folder.lock("python -m minivae.fixedpoint")
    try:
        return _sweep_into(folder, args, x)
    except BaseException:
        folder.unlock()
        if created and os.path.isdir(args.out) and not os.listdir(args.out):
            os.rmdir(args.out)
        raise
    finally:
        folder.unlock()


def _sweep_into(folder, args, x):
    strength = args.lipschitz_strength
    if strength is None:
        strength = {"local": 1e-3, "global": 1e-7}.get(args.lipschitz, 0.0)
    constraint = LipschitzConstraint(args.lipschitz, strength, args.lipschitz_radius)
    options = dict(grid_size=args.grid_size, eta=args.eta, max_iter=args.max_iter, tol=args.tol,
                   init_noise=args.init_noise, seed=args.seed, dtype=args.dtype,
                   chunk_size=args.chunk_size, workers=args.workers, box=BOX)
    started = time.perf_counter()
    result = sweep(x, args.betas, args.sigma, beta_min=args.beta_min, beta_max=args.beta_max,
                   n_beta=args.n_beta, top=args.top, lipschitz=constraint, init=args.init,
                   progress=SweepProgress(), **options)
    seconds = time.perf_counter() - started
    summary = {"data": args.data, "n_points": len(x), "grid_size": args.grid_size,
               "eta": args.eta, "max_iter": args.max_iter, "tol": args.tol,
               "init_noise": args.init_noise, "seed": args.seed,
               "lipschitz": {"mode": constraint.mode, "strength": constraint.strength,
                             "radius": constraint.radius},
               "backend": backend.name(), "dtype": args.dtype, "seconds": seconds,
               **result.summary()}
    folder.write_json("fixedpoint.json", summary)
    with atomic_file(folder.file("fixed_points.npz")) as f:
        numpy.savez(f, beta=result.betas, mu=result.fixed_points.mu, energy=result.energy,
                    converged=result.converged, data=x)
    print(report(result, seconds, args.max_iter))
    print(f"wrote {args.out}/fixedpoint.json")
    if args.no_figures:
        return 0
    if not figures.matplotlib_available():
        print("matplotlib is not installed: no figures (pip install matplotlib)")
        return 0
    plot_betas = args.plot_betas if args.plot_betas is not None else phase_betas(result)
    # the trajectories are always from the grid (cold), as in the paper's figures
    cold = "" if args.init == "cold" else "cold start "
    settings = [(cold, LipschitzConstraint())]
    if constraint.active:
        settings.append((cold + constraint.mode, constraint))
    rows = []
    for label, setting in settings:
        fp = solve(x, plot_betas, args.sigma, lipschitz=setting,
                   record=range(len(plot_betas)), **options)
        rows.append((label, fp))
    figures.trajectory_figure(os.path.join(args.out, "trajectories.png"), x, rows)
    figures.energy_figure(os.path.join(args.out, "energy.png"), result)
    print(f"wrote {args.out}/trajectories.png and {args.out}/energy.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
