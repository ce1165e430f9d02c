"""Figures of the fixed-point experiments (Taming VAEs Fig. 2 and Fig. 7), drawn only
when matplotlib can be imported (it is an optional dependency: ``minivae[plot]``).

* :func:`trajectory_figure` — the paths of the μ_k from the noisy grid to their fixed
  points over the data, one column per β and one row per setting (e.g. no / local /
  global Lipschitz constraint): Fig. 2 top and the rows of Fig. 7.
* :func:`energy_figure` — E(β) and |d²E/d(log β)²| with the detected critical
  temperatures and β_c = λ_max(C)/σ²: Fig. 2 bottom. β that did not converge
  (stopped at the iteration cap) are open red circles; critical β flagged uncertain
  are dotted lines, the others dashed.
"""
from __future__ import annotations

import numpy


def matplotlib_available():
    """Whether matplotlib imports here (figures are skipped otherwise)."""
    try:
        import matplotlib  # noqa: F401,PLC0415  (optional dependency, imported lazily)
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")            # files only: no display needed
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def trajectory_figure(path, x, rows, max_cells=1024):
    """Write the trajectory panels to ``path``.

    x: (N, 2) data; rows: list of ``(label, FixedPoints)`` whose ``trajectories`` hold
    every β of that result (one column per β). At most ``max_cells`` paths are drawn
    per panel (evenly chosen cells) to keep the file small.
    """
    plt = _pyplot()
    from matplotlib.collections import LineCollection  # noqa: PLC0415
    x = numpy.asarray(x)
    n_cols = max(len(fp.betas) for _, fp in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(3.2 * n_cols, 3.2 * len(rows)),
                             squeeze=False)
    for r, (label, fp) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(fp.betas) or c not in fp.trajectories:
                ax.axis("off")
                continue
            path_kd = fp.trajectories[c]                      # (T+1, K, 2)
            cells = numpy.linspace(0, path_kd.shape[1] - 1,
                                   min(max_cells, path_kd.shape[1])).astype(int)
            ax.scatter(x[:, 0], x[:, 1], s=2, c="0.75", lw=0, zorder=1)
            lines = numpy.transpose(path_kd[:, cells], (1, 0, 2))
            ax.add_collection(LineCollection(lines, colors="tab:blue", linewidths=0.3,
                                             alpha=0.5, zorder=2))
            ax.scatter(path_kd[-1, cells, 0], path_kd[-1, cells, 1], s=3, c="tab:red",
                       lw=0, zorder=3)
            reach = 1.05 * max(1.0, float(numpy.abs(x).max()), float(numpy.abs(path_kd).max()))
            ax.set_xlim(-reach, reach)
            ax.set_ylim(-reach, reach)
            ax.set_aspect("equal")
            state = "" if fp.converged[c] else ", NOT converged"
            ax.set_title(f"{label}  β={fp.betas[c]:.3g}  ({fp.n_iter[c]} it{state})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def energy_figure(path, sweep):
    """Write E(β) and |d²E/d(log β)²| with the critical temperatures to ``path``."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    bad = ~numpy.asarray(sweep.converged, dtype=bool)
    d2 = numpy.abs(sweep.d2_energy)
    top.semilogx(sweep.betas, sweep.energy, ".-", ms=3)
    top.set_ylabel("E(β)")
    bottom.semilogx(sweep.betas, d2, ".-", ms=3, c="tab:green")
    bottom.set_ylabel("|d²E / d(log β)²|")
    bottom.set_xlabel("β")
    for ax, y in ((top, sweep.energy), (bottom, d2)):
        if bad.any():
            ax.scatter(sweep.betas[bad], y[bad], s=22, facecolors="none", edgecolors="tab:red",
                       lw=0.8, zorder=3, label="not converged (iteration cap)")
        for beta, uncertain in zip(sweep.critical_betas, sweep.critical_uncertain):
            ax.axvline(beta, c="tab:red", lw=0.8, ls=":" if uncertain else "--")
        if sweep.beta_collapse > 0:
            ax.axvline(sweep.beta_collapse, c="0.4", lw=0.8, ls=(0, (1, 3)))
    if bad.any():
        top.legend(fontsize=7, loc="lower right")
    crit = ", ".join(f"{b:.3g}{'?' if u else ''}"
                     for b, u in zip(sweep.critical_betas, sweep.critical_uncertain))
    init = sweep.fixed_points.init
    top.set_title(f"{sweep.n_converged}/{len(sweep.betas)} β converged ({init} start); "
                  f"critical β (red; ? dotted = uncertain): {crit};\n"
                  f"β_c = λmax(C)/σ² (grey) = {sweep.beta_collapse:.3g}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
