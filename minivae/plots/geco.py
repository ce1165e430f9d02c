"""Figures of a GECO run (math.md §3; Rezende & Viola 2018, Fig. 3 -- the "information plane").

From the run's ``config.json`` (constraints and κ) and ``metrics.jsonl`` (per logged
step: KL, C_batch, C_ma, λ):

* ``geco-information-plane.png`` -- per constraint, its underlying measure against the
  KL, one point per logged step coloured by step, the moving average as a line and the
  threshold drawn: the reconstruction error (MSE for RE, mean squared local-statistics
  error for FRE, must end *below* κ²) or the similarity (mean patch correlation for
  pNCC, soft accuracy for CLA, must end *above* κ).
* ``geco-lambda.png`` -- λ over the steps (log scale, one line per constraint) and the
  relative violation C_ma / s that drives it (λ rises while it is positive).

Called by :func:`minivae.plots.write_training_plots` (matplotlib required there); a
run of another objective gets no figure.
"""
from __future__ import annotations

import json
import os

import numpy

from ..vae.constraints import CONSTRAINTS

YLABEL = {"re": "MSE per pixel", "fre": "local-statistics error (mean squared)",
          "pncc": "mean patch correlation", "cla": "classifier probability of the true class"}


def _as_list(value, n=None):
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    value = list(value) if isinstance(value, (list, tuple)) else [value]
    return value if n is None or len(value) == n else value * n if len(value) == 1 else value


def read_geco_run(run_dir):
    """(names, kappas, scales, records) of a GECO run folder, or None for another objective."""
    config_path, metrics_path = (os.path.join(run_dir, n) for n in ("config.json", "metrics.jsonl"))
    if not (os.path.isfile(config_path) and os.path.isfile(metrics_path)):
        return None
    with open(config_path) as f:
        config = json.load(f)
    if isinstance(config.get("objective"), dict):  # the sectioned record (config version 2)
        config = {**config["objective"], "objective": config["objective"].get("name")}
    if config.get("objective") != "geco":
        return None
    names = [str(n).strip().lower() for n in _as_list(config.get("constraint") or "re")]
    kappas = [float(k) for k in _as_list(config.get("kappa"), len(names))]
    with open(metrics_path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if "lambda" in r and "c_batch" in r]
    if not records or len(kappas) != len(names):
        return None
    scale = config.get("geco_scale")
    if isinstance(scale, list):
        scale = scale * len(names) if len(scale) == 1 else scale
    scales = ([float(s) for s in scale] if isinstance(scale, list) else [float(scale)] * len(names)) \
        if scale is not None else \
        [k * k if CONSTRAINTS[n].kind == "error" else 1.0 - k for n, k in zip(names, kappas)]
    return names, kappas, scales, records


def _column(records, key, n):
    """(T, n) float array of a per-constraint term (a number when n == 1, else a list)."""
    return numpy.array([numpy.atleast_1d(numpy.asarray(r[key], dtype=float))[:n] for r in records])


def measure(name, kappa, c):
    """The underlying error (C + κ²) or similarity (κ − C) of constraint values C."""
    return c + kappa ** 2 if CONSTRAINTS[name].kind == "error" else kappa - c


def write(run_dir) -> list:
    data = read_geco_run(run_dir)
    if data is None:
        return []
    import matplotlib.pyplot as plt  # noqa: PLC0415  (optional dependency)
    names, kappas, scales, records = data
    n = len(names)
    steps = numpy.array([r["step"] for r in records], dtype=float)
    kl = numpy.array([float(r["kl"]) for r in records])
    c_batch, c_ma, lam = _column(records, "c_batch", n), _column(records, "c_ma", n), _column(records, "lambda", n)
    written = []

    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.3), squeeze=False)
    for j, (name, kappa) in enumerate(zip(names, kappas)):
        ax = axes[0, j]
        points = ax.scatter(kl, measure(name, kappa, c_batch[:, j]), c=steps, cmap="viridis", s=9,
                            label="batch (C_batch)")
        ax.plot(kl, measure(name, kappa, c_ma[:, j]), color="black", lw=0.8, alpha=0.7,
                label="moving average (C_ma)")
        error = CONSTRAINTS[name].kind == "error"
        threshold = kappa ** 2 if error else kappa
        ax.axhline(threshold, color="tab:red", ls="--", lw=1.2,
                   label=f"threshold {'κ²' if error else 'κ'} = {threshold:.4g}")
        ax.scatter(kl[-1:], measure(name, kappa, c_ma[-1:, j]), marker="*", s=140, color="tab:red",
                   zorder=3, label="end")
        if error and numpy.all(measure(name, kappa, c_batch[:, j]) > 0):
            ax.set_yscale("log")
        ax.set_xlabel("KL(q(z|x) || p(z))  [nats]")
        ax.set_ylabel(YLABEL.get(name, name))
        ax.set_title(f"{name.upper()}, κ = {kappa:g}")
        ax.legend(fontsize=7, loc="best")
        fig.colorbar(points, ax=ax, label="step")
    fig.suptitle("GECO information plane (Taming VAEs, Fig. 3)")
    fig.tight_layout()
    path = os.path.join(run_dir, "geco-information-plane.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, (ax_l, ax_c) = plt.subplots(1, 2, figsize=(11, 4))
    for j, name in enumerate(names):
        ax_l.plot(steps, lam[:, j], label=f"λ {name}")
        ax_c.plot(steps, c_ma[:, j] / scales[j], label=f"C_ma / s, {name} (s = {scales[j]:.3g})")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("λ")
    ax_l.set_title("Lagrange multiplier")
    ax_c.axhline(0.0, color="grey", lw=0.8)
    ax_c.set_xlabel("step")
    ax_c.set_ylabel("relative violation")
    ax_c.set_title("constraint moving average (λ rises while > 0)")
    if numpy.nanmax(numpy.abs(c_ma / numpy.asarray(scales))) > 50:
        ax_c.set_yscale("symlog", linthresh=1.0)
    for ax in (ax_l, ax_c):
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(run_dir, "geco-lambda.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
