"""The two figures of ``python -m minivae.reproduce``: sparsity.png (inactive latents
against the effective KL weight, dense and conv, the papers' 8/16 and 3/16 marked)
and geco-vs-elbo.png (average-KL curves over training; end points on the fixed-γ
frontier; GECO's information plane). matplotlib is optional: without it the functions
return None and the caller says so."""
from __future__ import annotations

import os

COLOURS = {"dense": "tab:blue", "conv": "tab:orange"}


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def sparsity_figure(sweeps, paper_counts, path, dataset="mnist"):
    """``sweeps``: {kind: {objective: [run summaries]}}."""
    plt = _pyplot()
    if plt is None or not sweeps:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for kind, sweep in sweeps.items():
        c = COLOURS.get(kind, "k")
        pts = sorted((r["effective_kl_weight"], r["inactive"], obj) for obj, runs in sweep.items() for r in runs)
        for w, n, obj in pts:
            marker = "s" if obj == "bernoulli" else "^" if obj.startswith("balanced") else "o"
            ax.scatter(w, n, color=c, marker=marker, alpha=0.8)
        means = {}
        for w, n, obj in pts:
            if obj.startswith("gamma-"):
                means.setdefault(w, []).append(n)
        if means:
            ws = sorted(means)
            ax.plot(ws, [sum(means[w]) / len(means[w]) for w in ws], color=c, alpha=0.5,
                    label=f"{kind}: fixed γ (mean over seeds)")
        ax.axhline(paper_counts[kind], color=c, linestyle="--", linewidth=1,
                   label=f"{kind}: paper, about {paper_counts[kind]:g} of 16")
    ax.scatter([], [], color="gray", marker="s", label="Bernoulli ELBO, KL weight 1 (at w = its MSE)")
    ax.scatter([], [], color="gray", marker="^", label="balanced γ (k = 1 and the authors' k)")
    ax.scatter([], [], color="gray", marker="o", label="fixed γ")
    ax.set_xscale("log")
    ax.set_xlabel("effective KL weight w (loss = Σ(x − x̂)²/2 + w·KL)")
    ax.set_ylabel("inactive latents (Var μ_j < 0.05) of 16")
    ax.set_ylim(-0.5, 16.5)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"Sparsity against the objective ({dataset})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def geco_figure(pairs, frontier, curves, path):
    """``pairs``: rows of geco.claim_geco_kl; ``frontier``: {kind: [{test_mse, test_kl}]};
    ``curves``: [{label, steps, kl}] average-KL curves; plus the information plane."""
    plt = _pyplot()
    if plt is None or not pairs:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    for c in curves:
        ax.plot(c["steps"], c["kl"], label=c["label"], linestyle="-" if c["label"].startswith("GECO") else "--")
    ax.set_xlabel("step")
    ax.set_ylabel("training KL (nats, logged batches)")
    ax.set_yscale("log")
    ax.set_title("average KL over training")
    ax.legend(fontsize=7)
    ax = axes[1]
    for kind, pts in frontier.items():
        pts = sorted((p["test_mse"], p["test_kl"]) for p in pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="gray", alpha=0.6,
                label=f"{kind}: fixed-γ ELBO frontier (sweep)")
    for p in pairs:
        ax.scatter(p["elbo_test_mse"], p["elbo_test_kl"], marker="s", color=COLOURS.get(p["net"], "k"))
        ax.scatter(p["geco_test_mse"], p["geco_test_kl"], marker="*", s=90, color=COLOURS.get(p["net"], "k"))
        ax.annotate(f"{p['elbo']}/{p['controller']}", (p["geco_test_mse"], p["geco_test_kl"]), fontsize=6)
    ax.scatter([], [], marker="s", color="gray", label="ELBO end point")
    ax.scatter([], [], marker="*", color="gray", label="GECO end point (κ² = ELBO's training MSE)")
    ax.set_xlabel("test MSE per pixel")
    ax.set_ylabel("test KL (nats)")
    ax.set_title("end points (lower KL at equal MSE is better)")
    ax.legend(fontsize=7)
    ax = axes[2]
    sc = None
    for c in curves:
        if c["label"].startswith("GECO") and c.get("mse"):
            sc = ax.scatter(c["mse"], c["kl"], c=c["steps"], s=6, cmap="viridis")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="step")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training MSE per pixel")
    ax.set_ylabel("training KL (nats)")
    ax.set_title("GECO in the information plane (Fig. 3)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def copy_if_exists(src, dst_dir):
    if src and os.path.exists(src):
        import shutil
        os.makedirs(dst_dir, exist_ok=True)
        dst = os.path.join(dst_dir, os.path.basename(src))
        shutil.copyfile(src, dst)
        return dst
    return None
