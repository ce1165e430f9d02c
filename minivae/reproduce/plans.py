"""The sizes of each experiment in the three modes, and their estimated cost.

``quick`` subsets the data and shortens training so that ``all --quick`` fits in about
15 minutes on two idle CPU cores; ``full`` is the papers' scale (all 60,000 MNIST
images, ≥ 3 seeds, the seeds' epoch counts); ``tiny`` only checks the plumbing (the
test suite runs it on generated sprites) and its numbers mean nothing.

Costs are *estimates* from the image counts and throughputs measured in
docs/results.md on two idle cores; claim.json records the seconds actually taken.
"""
from __future__ import annotations

MODES = ("tiny", "quick", "full")

DENSE_IMAGES_PER_S = 17000.0  # mnist-dense training, 2 idle cores (docs/results.md)
CONV_IMAGES_PER_S = 2800.0  # mnist-conv, fwd+bwd of its four conv layers ≈ 65 ms / 128 images
RUN_OVERHEAD_S = 6.0  # process start, data loading, test-set evaluation, report.json

IMAGE_SIDE, LATENT_DIM = 28, 16
# Asperti & Trentin's balancing code multiplies the KL by (2H / latent size)² (math.md §2.3)
AUTHORS_KL_WEIGHT = (2 * IMAGE_SIDE / LATENT_DIM) ** 2
FIXED_GAMMAS = (0.01, 0.02, 0.03, 0.06, 0.1)


def objective_args(name):
    """Training flags of each objective of the sparsity study, by name."""
    if name == "bernoulli":  # Asperti 2018 / the Keras examples: Bernoulli ELBO, KL weight 1
        return ["--objective", "bernoulli"]
    if name == "balanced":
        return ["--objective", "balanced"]
    if name == "balanced-authors":
        return ["--objective", "balanced", "--kl-weight", f"{AUTHORS_KL_WEIGHT:g}"]
    if name == "learned-gamma":
        return ["--objective", "learned-gamma"]
    if name.startswith("gamma-"):
        return ["--objective", "elbo", "--gamma", name[len("gamma-"):]]
    raise ValueError(f"unknown objective {name!r} in a reproduce plan")


ALL_OBJECTIVES = ["bernoulli", "balanced", "balanced-authors"] + [f"gamma-{g:g}" for g in FIXED_GAMMAS]

NETWORKS = {
    "dense": ["--preset", "mnist-dense"],  # 784-256-64-32-16, the seeds' network
    # Asperti 2018 does not describe its conv network in its text; the substitute is
    # minivae's mnist-conv preset (two stride-2 convs of 32 and 64 channels, 256 dense)
    "conv": ["--preset", "mnist-conv"],
    "conv-tiny": ["--model", "conv", "--channels", "8,16", "--latent-dim", str(LATENT_DIM)],
}

PLANS = {
    "tiny": {
        "seeds": 1,
        "sparsity": {"dense": {"net": "dense", "n_train": 256, "n_test": 160, "epochs": 1,
                               "objectives": ["bernoulli", "balanced", "gamma-0.1"]},
                     "conv": {"net": "conv-tiny", "n_train": 128, "n_test": 32, "epochs": 1,
                              "objectives": ["bernoulli", "balanced"]}},
        "geco": {"nets": {"dense": {"net": "dense", "n_train": 256, "n_test": 64, "max_epochs": 2}},
                 "elbo": ["gamma-0.06", "learned-gamma"], "chunk_epochs": 1,
                 "controllers": ["alg1"], "diagnose_n": 64, "marginal_samples": 50},
        "twostage": {"classifier_n_train": 256, "classifier_epochs": 1, "stage2_hidden": "32,32,32",
                     "stage2_epochs": 1, "n_fd": 150, "k": 2, "n_iwae": 16, "n_refit": 64, "n_nll": 64},
        "fixedpoint": {"grid_size": 6, "n_points": 100, "n_beta": 12, "critical_steps": 9,
                       "max_iter": 400},
    },
    "quick": {
        "seeds": 1,
        # dense: 60,000 images × 5 epochs = 2,345 steps, past the collapse (~2,000 steps)
        "sparsity": {"dense": {"net": "dense", "n_train": 60000, "n_test": 5000, "epochs": 5,
                               "objectives": ALL_OBJECTIVES},
                     "conv": {"net": "conv", "n_train": 20000, "n_test": 2000, "epochs": 3,
                              "objectives": ["bernoulli", "balanced", "gamma-0.03", "gamma-0.1"]}},
        "geco": {"nets": {"dense": {"net": "dense", "n_train": 60000, "n_test": 5000, "max_epochs": 8}},
                 "elbo": ["gamma-0.06", "learned-gamma"], "chunk_epochs": 2,
                 "controllers": ["alg1", "pid"], "diagnose_n": 2000, "marginal_samples": 500},
        "twostage": {"classifier_n_train": 10000, "classifier_epochs": 1,
                     "stage2_hidden": "256,256,256", "stage2_epochs": 20, "n_fd": 2000, "k": 10,
                     "n_iwae": 100, "n_refit": 2000, "n_nll": 1000},
        "fixedpoint": {"grid_size": 16, "n_points": 500, "n_beta": 40, "critical_steps": 41,
                       "max_iter": 2000},
    },
    "full": {
        "seeds": 3,
        "sparsity": {"dense": {"net": "dense", "n_train": 60000, "n_test": 10000, "epochs": 20,
                               "objectives": ALL_OBJECTIVES},
                     "conv": {"net": "conv", "n_train": 60000, "n_test": 10000, "epochs": 10,
                              "objectives": ALL_OBJECTIVES}},
        "geco": {"nets": {"dense": {"net": "dense", "n_train": 60000, "n_test": 10000, "max_epochs": 100},
                          "conv": {"net": "conv", "n_train": 60000, "n_test": 10000, "max_epochs": 30}},
                 "elbo": ["gamma-0.06", "learned-gamma"], "chunk_epochs": 5,
                 "controllers": ["alg1", "warm", "pid"], "diagnose_n": 10000,
                 "marginal_samples": 2000},
        "twostage": {"classifier_n_train": 60000, "classifier_epochs": 2,
                     "stage2_hidden": "1024,1024,1024", "stage2_epochs": 40, "n_fd": 10000, "k": 100,
                     "n_iwae": 1000, "n_refit": 10000, "n_nll": 10000},
        "fixedpoint": {"grid_size": 32, "n_points": 1000, "n_beta": 100, "critical_steps": 81,
                       "max_iter": 4000},
    },
}


def _train_seconds(net, images):
    rate = DENSE_IMAGES_PER_S if net == "dense" else CONV_IMAGES_PER_S
    return images / rate + RUN_OVERHEAD_S


def estimate(group, mode, seeds=None):
    """Estimated seconds on two idle cores of one experiment group, as a dict of
    {run name: seconds} so that runs shared by several claims are counted once."""
    plan = PLANS[mode]
    seeds = seeds or plan["seeds"]
    runs = {}
    if group == "sparsity":
        for kind, sp in plan["sparsity"].items():
            for obj in sp["objectives"]:
                for s in range(seeds):
                    runs[f"{kind}-{obj}-s{s}"] = _train_seconds(sp["net"], sp["n_train"] * sp["epochs"])
    elif group == "geco":
        g = plan["geco"]
        for kind, spec in g["nets"].items():
            for s in range(seeds):
                for v in g["elbo"]:  # upper bound: the ELBO runs to its epoch cap
                    chunks = -(-spec["max_epochs"] // g["chunk_epochs"])
                    images = spec["n_train"] * spec["max_epochs"]
                    runs[f"geco-{kind}-{v}-s{s}"] = _train_seconds(spec["net"], images) + (chunks - 1) * RUN_OVERHEAD_S
                    runs[f"diagnose-geco-{kind}-{v}-s{s}"] = RUN_OVERHEAD_S + g["diagnose_n"] / 2000
                    for c in g["controllers"]:
                        runs[f"geco-{kind}-{v}-{c}-s{s}"] = _train_seconds(spec["net"], images) + RUN_OVERHEAD_S
                        runs[f"diagnose-geco-{kind}-{v}-{c}-s{s}"] = RUN_OVERHEAD_S + g["diagnose_n"] / 2000
    elif group == "twostage":
        t, sp = plan["twostage"], plan["sparsity"]["dense"]
        runs.update(estimate("sparsity", mode, seeds))  # stage 1 = the balanced dense runs
        runs = {k: v for k, v in runs.items() if k.startswith("dense-balanced-s")}
        runs["classifier"] = t["classifier_n_train"] * t["classifier_epochs"] / CONV_IMAGES_PER_S + RUN_OVERHEAD_S
        for s in range(seeds):
            runs[f"stage2-s{s}"] = sp["n_train"] * t["stage2_epochs"] / (4 * DENSE_IMAGES_PER_S) + RUN_OVERHEAD_S
            # Fréchet distances: 4 generators + 2 references, n_fd images each, plus IWAE
            runs[f"evaluate-s{s}"] = (6 * t["n_fd"] / CONV_IMAGES_PER_S * 3
                                      + t["n_iwae"] * t["k"] / (3 * DENSE_IMAGES_PER_S) + RUN_OVERHEAD_S)
    elif group == "fixedpoint":
        f = plan["fixedpoint"]
        # 100 β × 1,000 points × 1,024 cells in 26 s (docs/results.md): ~2.5e-10 s per term·iteration
        per_beta = f["n_points"] * f["grid_size"] ** 2 * 100 * 2.5e-9
        runs["fp-lines"] = runs["fp-circles"] = f["n_beta"] * per_beta + 2
        runs["fp-critical"] = f["critical_steps"] * per_beta * 4 + 2
        runs["fp-two-point"] = 3.0
    else:
        raise ValueError(f"unknown experiment group {group!r}")
    return runs
