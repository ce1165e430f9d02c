"""Figures of the latent diagnostics (math.md §5; Asperti's sparsity post, Fig. 1).

* ``latents.png`` -- from ``latents.jsonl`` (``--diagnose-every N``): the evolution of
  Var_X μ_j (left) and E_X σ_j² (right) for every latent variable j during training;
  inactive variables end with Var μ_j → 0 and E σ_j² → 1, active ones the reverse.
* ``latents-variance-law.png`` -- from ``diagnostics.json`` (``python -m minivae.diagnose``):
  per variable, Var μ_j and E σ_j² stacked, so each bar's height is the variance law
  value (≈ 1), with the inactivity threshold marked.

Called by :func:`minivae.plots.write_training_plots` (matplotlib required there).
"""
from __future__ import annotations

import json
import os

import numpy

from ..vae.diagnostics import INACTIVE_THRESHOLD


def read_latents(run_dir):
    """(steps, var_mu (T, k), mean_sigma2 (T, k)) from latents.jsonl, or None when absent/empty."""
    path = os.path.join(run_dir, "latents.jsonl")
    if not os.path.isfile(path):
        return None
    steps, var_mu, sigma2 = [], [], []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            steps.append(rec["step"])
            var_mu.append(rec["var_mu"])
            sigma2.append(rec["mean_sigma2"])
    if not steps:
        return None
    return numpy.asarray(steps), numpy.asarray(var_mu, float), numpy.asarray(sigma2, float)


def _evolution(run_dir, plt):
    data = read_latents(run_dir)
    if data is None:
        return []
    steps, var_mu, sigma2 = data
    active = var_mu[-1] >= INACTIVE_THRESHOLD
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, values, title in ((axes[0], var_mu, "Var$_X$ μ$_j$"), (axes[1], sigma2, "E$_X$ σ$_j^2$")):
        for j in range(values.shape[1]):
            ax.plot(steps, values[:, j], color="tab:blue" if active[j] else "tab:red", lw=1, alpha=0.8)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0].axhline(INACTIVE_THRESHOLD, color="black", lw=0.8, ls="--", label=f"threshold {INACTIVE_THRESHOLD}")
    axes[0].plot([], [], color="tab:blue", label=f"active at the end ({int(active.sum())})")
    axes[0].plot([], [], color="tab:red", label=f"inactive at the end ({int((~active).sum())})")
    axes[0].legend(fontsize=8)
    fig.suptitle("latent variables during training (on a fixed test subset)")
    fig.tight_layout()
    path = os.path.join(run_dir, "latents.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _variance_law(run_dir, plt):
    path = os.path.join(run_dir, "diagnostics.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        d = json.load(f)
    pv = d["per_variable"]
    var_mu, sigma2 = numpy.asarray(pv["var_mu"]), numpy.asarray(pv["mean_sigma2"])
    j = numpy.arange(len(var_mu))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(j) + 2), 4))
    ax.bar(j, var_mu, color="tab:blue", label="Var$_X$ μ$_j$")
    ax.bar(j, sigma2, bottom=var_mu, color="tab:orange", label="E$_X$ σ$_j^2$")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.axhline(d.get("inactive_threshold", INACTIVE_THRESHOLD), color="black", lw=0.8, ls="--")
    ax.set_xticks(j)
    ax.set_xlabel("latent variable j")
    ax.set_title(f"variance law per variable: {d['active_count']}/{d['latent_dim']} active, "
                 f"mean {d['variance_law_mean']:.3f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = os.path.join(run_dir, "latents-variance-law.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out]


def write(run_dir) -> list:
    """Write the figures that the run's files allow; returns their paths."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return _evolution(run_dir, plt) + _variance_law(run_dir, plt)
