"""The registry of the papers' claims that ``python -m minivae.reproduce`` checks.

Each claim names its source (paper and section, figure or post), the paper's value
as the paper states it, and the experiment group that measures it (plans.py sizes
the groups; the group modules run them and decide the verdict with verdict.py).
"""
from __future__ import annotations

import dataclasses

from . import plans


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    title: str
    source: str
    paper: str  # the paper's value, as stated
    paper_number: float | None  # the number the verdict compares with, when there is one
    group: str  # experiment group: sparsity | geco | twostage | fixedpoint


ASPERTI_2018 = "Asperti, \"Sparsity in Variational Autoencoders\" (2018; the blog post of the same name)"
ASPERTI_2020 = "Asperti & Trentin, \"Balancing reconstruction error and KL divergence in VAEs\" (2020)"
TAMING = "Rezende & Viola, \"Taming VAEs\" (2018)"

CLAIMS = [
    Claim("dense-sparsity", "dense 784-256-64-32-16 VAE on MNIST: inactive latents", ASPERTI_2018 + ", §IV",
          "about 8 of 16 latent variables inactive", 8.0, "sparsity"),
    Claim("conv-sparsity", "conv VAE on MNIST: inactive latents", ASPERTI_2018 + ", conv figure of the post",
          "about 3 of 16 latent variables inactive", 3.0, "sparsity"),
    Claim("variance-law", "variance law Var μ_j + E σ_j² ≈ 1, active and inactive variables",
          ASPERTI_2018 + "; LOD'19 slides", "≈ 1 for every variable", 1.0, "sparsity"),
    Claim("balanced-gamma", "balanced γ tracks the reconstruction MSE", ASPERTI_2020 + ", §4",
          "γ ≈ the per-pixel MSE during training", 1.0, "sparsity"),
    Claim("two-stage-fd", "a second-stage VAE beats sampling the prior of the first",
          "Dai & Wipf, \"Diagnosing and enhancing VAE models\" (2019), §4; Asperti 2020",
          "FID improves markedly (a 'burst')", None, "twostage"),
    Claim("renorm-fd", "renormalising the second stage's codes improves the samples",
          "Asperti, \"Variance loss in VAEs\" (2020), §5", "FID improves after renormalisation", None,
          "twostage"),
    Claim("geco-kl", "GECO: lower KL than the ELBO at equal reconstruction error", TAMING + ", Fig. 5",
          "GECO's KL lower at the same reconstruction error", None, "geco"),
    Claim("geco-marginal-kl", "GECO: much lower marginal KL(q(z)||p) than the ELBO", TAMING + ", §4.1.1",
          "725 → 45 nats (CIFAR-10, ConvDRAW)", 725.0 / 45.0, "geco"),
    Claim("geco-information-plane", "GECO's path: KL rises while the constraint is violated, then falls "
          "at constant error", TAMING + ", Fig. 3", "KL peaks, then falls along the constraint", None, "geco"),
    Claim("critical-beta", "the collapsed fixed point is stable iff β > λ_max(C)/σ²",
          TAMING + ", §3.2, App. A (deterministic annealing, Rose et al.)", "β_c = λ_max(C)/σ² exactly",
          None, "fixedpoint"),
    Claim("two-point", "two points ±a: u = A·tanh(2Au/τ) and E(β) = A² − u²", TAMING + ", §3.2 (math.md §7)",
          "exact", 0.0, "fixedpoint"),
    Claim("phase-transitions", "distinct fixed-point clusters fall in steps as β grows (lines, circles)",
          TAMING + ", Fig. 2 and 7", "a staircase of cluster counts down to 1 above β_c", None, "fixedpoint"),
]
BY_ID = {c.id: c for c in CLAIMS}
# the order of ``all``: cheapest first, so that an interrupted run has the most claims
# (finished runs are reused when it is started again)
ALL_ORDER = ["two-point", "critical-beta", "phase-transitions", "dense-sparsity", "two-stage-fd", "renorm-fd",
             "geco-kl", "geco-marginal-kl", "geco-information-plane", "balanced-gamma", "variance-law",
             "conv-sparsity"]
assert sorted(ALL_ORDER) == sorted(BY_ID)


def get(claim_id):
    if claim_id not in BY_ID:
        raise KeyError(f"unknown claim {claim_id!r}; choose one of: {', '.join(BY_ID)} "
                       "(or 'all'; --list shows them)")
    return BY_ID[claim_id]


def _needs(claim_id, name, mode):
    """Whether the claim needs the run called ``name`` (plans.estimate's names)."""
    if claim_id in ("dense-sparsity", "conv-sparsity"):
        return name.startswith(claim_id.split("-")[0] + "-")
    if claim_id == "variance-law":
        return any(name.startswith(f"{k}-{o}-s") for k in ("dense", "conv") for o in ("bernoulli", "balanced"))
    if claim_id == "balanced-gamma":
        return any(name.startswith(f"{k}-balanced-s") for k in ("dense", "conv"))
    if claim_id in ("geco-kl", "geco-information-plane"):
        frontier = tuple(f"{k}-gamma-" for k in plans.PLANS[mode]["geco"]["nets"])
        return name.startswith("geco-") or (claim_id == "geco-kl" and name.startswith(frontier))
    if claim_id == "geco-marginal-kl":
        return name.startswith(("geco-", "diagnose-geco-"))
    if claim_id == "critical-beta":
        return name == "fp-critical"
    if claim_id == "two-point":
        return name == "fp-two-point"
    if claim_id == "phase-transitions":
        return name in ("fp-lines", "fp-circles")
    return True  # two-stage-fd, renorm-fd: their whole group


def cost(claim_ids, mode, seeds=None):
    """Estimated seconds (two idle cores) of running these claims together: runs shared
    by several claims are counted once."""
    runs = {}
    for c in claim_ids:
        groups = [BY_ID[c].group] + (["sparsity"] if c == "geco-kl" else [])
        for group in groups:
            runs.update({k: v for k, v in plans.estimate(group, mode, seeds).items() if _needs(c, k, mode)})
    return sum(runs.values())


def listing(seeds=None):
    """The rows of ``--list``: id, source, paper's value, estimated cost quick / full."""
    rows = []
    for c in CLAIMS:
        rows.append({"id": c.id, "title": c.title, "source": c.source, "paper": c.paper,
                     "quick_s": cost([c.id], "quick", seeds), "full_s": cost([c.id], "full", seeds)})
    return rows
