"""``python -m minivae.evaluate RUN_DIR``: the likelihood and sample-quality metrics of math.md §6.

* IWAE NLL (Burda et al. 2015) on test images with K importance samples, in nats
  and bits/dim, next to the single-sample ELBO (K = 1);
* the β-independent NLL of Taming VAEs (App. D): σ* re-fitted on training data,
  quantised normal with δ = 1/255, bins centred on the 8-bit levels k/255;
* Fréchet distances between test images and generated images on the features of
  minivae's own classifier (``python -m minivae.classifier``): stage-1 prior
  samples, and -- when the run has a second stage -- stage 2 with renormalisation
  off, scalar and per-dim (plus reconstructions and train-vs-test as references).
  NOT comparable with Inception-based FIDs: another network, another feature space.

Writes ``metrics`` into RUN_DIR/report.json and a grid of each way's samples
(``fd-samples-<way>.png``).
"""
from __future__ import annotations

import os
import sys
import time

import numpy

from .run.cli import CommandParser, command_main, common_flags, finite_float, positive_int

FD_NOTE = ("Fréchet distance on features of minivae's own classifier: not comparable with "
           "Inception-based FID values published elsewhere")


def build_parser():
    p = CommandParser(prog="python -m minivae.evaluate", description=__doc__.split("\n\n")[0], epilog=FD_NOTE)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by python -m minivae.train")
    p.add_argument("--k", type=positive_int, default=100, help="importance samples K of the IWAE bound [default: 100]")
    p.add_argument("--n-iwae", type=positive_int, default=1000, help="test images scored by IWAE [default: 1000]")
    p.add_argument("--n-refit", type=positive_int, default=10000,
                   help="training images used to re-fit σ* of the β-independent NLL [default: 10000]")
    p.add_argument("--n-nll", type=positive_int, default=10000,
                   help="test images scored by the β-independent NLL [default: 10000]")
    p.add_argument("--gamma", type=finite_float, default=None,
                   help="decoder variance γ for IWAE [default: the run's γ; σ*² for runs without one (GECO)]")
    p.add_argument("--classifier", default=None,
                   help="folder or .npz of a classifier from python -m minivae.classifier "
                        "[default: runs/classifier-<dataset>]")
    p.add_argument("--n-fd", type=positive_int, default=10000,
                   help="real and generated images per Fréchet distance [default: 10000]")
    p.add_argument("--no-fd", action="store_true", help="skip the Fréchet distances (no classifier needed)")
    common_flags(p, seed_help="random seed of every draw")
    return p


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def load_feature_classifier(path, dataset, image_shape):
    """The classifier at ``path`` (default ``runs/classifier-<dataset>``), checked against the image shape."""
    from .vae.metrics import MetricError  # noqa: PLC0415
    name = os.path.splitext(os.path.basename(str(dataset)))[0]
    path = path or os.path.join("runs", f"classifier-{name}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no classifier at {path!r} for the Fréchet distances; train one with "
                                f"python -m minivae.classifier --dataset {dataset} --out {path} "
                                "(or pass --classifier PATH, or --no-fd to skip them)")
    try:
        from .classifier import load_classifier  # noqa: PLC0415
    except ImportError as exc:
        raise FileNotFoundError(f"minivae.classifier is not available ({exc}); use --no-fd") from None
    classifier = load_classifier(path)
    shape = tuple(classifier.input_shape)
    if shape != tuple(image_shape):
        raise MetricError(f"the classifier at {path!r} was trained on images of shape {shape}, but this run's "
                          f"images have shape {tuple(image_shape)}; train a classifier on {dataset} "
                          f"(python -m minivae.classifier --dataset {dataset})")
    return classifier, path


def frechet_section(stage1, train, test, classifier, n_fd, seed, out_dir=None):
    """Fréchet distances of every sampling way (and references) against the test images."""
    from .imageio import save_grid  # noqa: PLC0415
    from .run.load import has_stage2, load_stage2  # noqa: PLC0415
    from .twostage import generate  # noqa: PLC0415
    from .vae.diagnostics import encode_dataset  # noqa: PLC0415
    from .vae.metrics import classifier_features, frechet_distance_features  # noqa: PLC0415
    real = test.images[:n_fd]
    n = len(real)
    real_f = classifier_features(classifier, real)
    ways = {"stage1_prior": generate(stage1.model, n, seed=seed)}
    if has_stage2(stage1.run_dir):
        stage2 = load_stage2(stage1)
        for renorm in ("off", "scalar", "per-dim"):
            ways[f"stage2_{renorm}"] = generate(stage1.model, n, stage2=stage2, renorm=renorm, seed=seed)
    mu, _ = encode_dataset(stage1.model, real)
    from .nn.evaluation import batched_map, evaluating  # noqa: PLC0415
    with evaluating(stage1.model):
        recon = batched_map(stage1.model.decode, mu, batch_size=1000)
    refs = {"reconstructions": recon, "train_images": train.images[:n]}
    out = {"n": n, "feature_dim": int(real_f.shape[1]), "note": FD_NOTE, "samples": {}, "references": {}}
    for group, items in (("samples", ways), ("references", refs)):
        for name, images in items.items():
            t0 = time.perf_counter()
            images = numpy.clip(images, 0.0, 1.0).astype(numpy.float32)
            out[group][name] = frechet_distance_features(real_f, classifier_features(classifier, images))
            _log(f"  Fréchet distance {name}: {out[group][name]:.4f}  ({time.perf_counter() - t0:.1f}s)")
            if out_dir and group == "samples":
                save_grid(os.path.join(out_dir, f"fd-samples-{name}.png"), images[:100], nrow=10)
    if "stage2_scalar" in ways:
        out["scalar_renormalisation_applied"] = bool(load_stage2(stage1).moments.apply_scalar)
    return out


def evaluate_run(run_dir, k=100, n_iwae=1000, n_refit=10000, n_nll=10000, gamma=None, classifier=None,
                 n_fd=10000, no_fd=False, seed=0, data_dir=None, backend_name=None, write_grids=True) -> dict:
    from .run.load import load_run  # noqa: PLC0415
    from .vae.metrics import MetricError, beta_independent_nll, iwae_nll, refit_sigma  # noqa: PLC0415
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise MetricError(f"--k (importance samples) must be a positive integer, got {k}")
    for name, value in (("--n-iwae", n_iwae), ("--n-refit", n_refit), ("--n-nll", n_nll), ("--n-fd", n_fd)):
        if value < 1:
            raise MetricError(f"{name} must be a positive integer, got {value}")
    stage1 = load_run(run_dir, backend_name)
    train, test = stage1.load_data(data_dir)
    fd_classifier = None
    if not no_fd:  # fail early, before the slow parts
        fd_classifier, classifier = load_feature_classifier(classifier, stage1.config.data.dataset, stage1.input_shape)
    metrics = {"seed": seed}
    t0 = time.perf_counter()
    sigma_star = refit_sigma(stage1.model, train.images[:n_refit], seed=seed)
    bnll = beta_independent_nll(stage1.model, None, test.images[:n_nll], seed=seed, sigma=sigma_star)
    bnll.update(n_refit=int(min(n_refit, len(train))))
    metrics["beta_independent_nll"] = bnll
    _log(f"β-independent NLL: σ* {sigma_star:.4f}, {bnll['bits_per_dim']:.4f} bits/dim "
         f"({bnll['bits_per_dim_open_edges']:.4f} with open edge bins)  ({time.perf_counter() - t0:.1f}s)")

    if gamma is not None:
        g, source = float(gamma), "--gamma"
    elif stage1.likelihood == "gaussian" and stage1.gamma is None:
        g, source = sigma_star ** 2, "σ*² re-fitted (the run has no decoder variance)"
    else:
        g, source = stage1.gamma, stage1.gamma_source
    common = dict(likelihood=stage1.likelihood, gamma=g if g is not None else 1.0, seed=seed)
    x = test.images[:n_iwae]
    t0 = time.perf_counter()
    iwae = {"likelihood": stage1.likelihood, "gamma": g, "gamma_source": source,
            "elbo_k1": iwae_nll(stage1.model, x, 1, **common), f"iwae_k{k}": iwae_nll(stage1.model, x, k, **common)}
    metrics["iwae"] = iwae
    _log(f"IWAE NLL (K={k}, {len(x)} test images, γ {g}): {iwae[f'iwae_k{k}']['nll_nats']:.3f} nats, "
         f"{iwae[f'iwae_k{k}']['bits_per_dim']:.4f} bits/dim; K=1: {iwae['elbo_k1']['nll_nats']:.3f} nats  "
         f"({time.perf_counter() - t0:.1f}s)")
    if fd_classifier is not None:
        metrics["frechet"] = frechet_section(stage1, train, test, fd_classifier, n_fd, seed,
                                             out_dir=run_dir if write_grids else None)
        metrics["frechet"]["classifier"] = os.path.abspath(classifier)
    return metrics


def evaluate(args) -> int:
    from .fileio import jsonable  # noqa: PLC0415
    from .run.folder import RunFolder  # noqa: PLC0415
    if args.gamma is not None and not args.gamma > 0:
        raise ValueError(f"--gamma is a variance and must be > 0, got {args.gamma}")
    folder = RunFolder(args.run_dir)
    if folder.is_run():
        folder.lock("python -m minivae.evaluate")   # report.json is read-modify-written
    try:
        metrics = evaluate_run(args.run_dir, args.k, args.n_iwae, args.n_refit, args.n_nll, args.gamma,
                               args.classifier, args.n_fd, args.no_fd, args.seed, args.data_dir, args.backend)
        folder.update_report("metrics", metrics)
    finally:
        folder.unlock()
    import json  # noqa: PLC0415
    print(json.dumps(jsonable(metrics), indent=2))
    if "frechet" in metrics:
        print(f"note: {FD_NOTE}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return command_main(build_parser, evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
