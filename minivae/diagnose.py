"""``python -m minivae.diagnose RUN_DIR``: the latent-space diagnostics of math.md §5.

Per latent variable j: Var_X μ_j, E_X σ_j², their sum (the variance law, ≈ 1),
the KL term, the reconstruction gain and the active flag (Var μ_j ≥ 0.05). Totals:
the active count, the mean variance law, the average KL E_X KL(q(z|x)||p), the
marginal KL KL(q(z)||p) with the N it used, and the variance loss
V(real) − V(generated) in pixel space (reconstructions, prior samples, stage-2
samples) and in latent space. Printed as a table, saved to RUN_DIR/diagnostics.json
and under "diagnostics" in report.json; figures when matplotlib is installed.
"""
from __future__ import annotations

import argparse
import sys

import numpy

from .nn.evaluation import batched_map, evaluating
from .run.cli import CommandParser, command_main, common_flags, finite_float, positive_int
from .vae.diagnostics import INACTIVE_THRESHOLD


def threshold_value(text):
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive variance threshold, got {text!r}")
    return value


def build_parser():
    p = CommandParser(prog="python -m minivae.diagnose", description=__doc__.split("\n\n")[1],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by python -m minivae.train")
    p.add_argument("--split", choices=("test", "train"), default="test", help="data split to encode [default: test]")
    p.add_argument("--n", type=positive_int, default=None, help="use the first N images of the split [default: all]")
    p.add_argument("--n-gain", type=positive_int, default=2000,
                   help="images for the reconstruction gain (k + 1 decoder passes each) [default: 2000]")
    p.add_argument("--marginal-n", type=positive_int, default=10000,
                   help="encoded examples N defining q(z) for the marginal KL [default: 10000]")
    p.add_argument("--marginal-samples", type=positive_int, default=2000,
                   help="Monte-Carlo draws z ~ q(z) for the marginal KL [default: 2000]")
    p.add_argument("--threshold", type=threshold_value, default=INACTIVE_THRESHOLD,
                   help=f"a variable is inactive when Var μ_j < threshold (> 0) [default: {INACTIVE_THRESHOLD}]")
    common_flags(p, seed_help="random seed of the Monte-Carlo draws")
    p.add_argument("--no-save", action="store_true", help="print only; write nothing")
    return p


def diagnose_run(run_dir, split="test", n=None, n_gain=2000, marginal_n=10000, marginal_samples=2000,
                 threshold=INACTIVE_THRESHOLD, seed=0, data_dir=None, backend_name=None) -> dict:
    """All diagnostics of ``run_dir`` as a JSON-ready dict."""
    from .run.load import has_stage2, load_run, load_stage2  # noqa: PLC0415
    from .twostage import generate  # noqa: PLC0415
    from .vae.diagnostics import encode_dataset, latent_statistics, marginal_kl, reconstruction_gain  # noqa: PLC0415
    from .vae.metrics import variance_loss  # noqa: PLC0415
    for name, value in (("--n", n), ("--n-gain", n_gain), ("--marginal-n", marginal_n),
                        ("--marginal-samples", marginal_samples)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    stage1 = load_run(run_dir, backend_name)
    train, test = stage1.load_data(data_dir)
    images = (test if split == "test" else train).images
    images = images[:n] if n else images
    model = stage1.model
    mu, logvar = encode_dataset(model, images)
    stats = latent_statistics(mu, logvar, threshold=threshold)
    gain = reconstruction_gain(model, images[:n_gain], mu=mu[:n_gain])
    mkl = marginal_kl(mu, logvar, n_samples=marginal_samples, n_data=marginal_n, seed=seed)

    # variance loss V(real) − V(generated) (Asperti 2020), pixel and latent space
    m = len(images)
    recon = _decode(model, mu)
    prior = generate(model, m, seed=seed)
    z_real = mu + numpy.exp(0.5 * logvar) * numpy.random.default_rng(seed).standard_normal(mu.shape)
    vloss = {"pixel_reconstructions": variance_loss(images, recon),
             "pixel_prior_samples": variance_loss(images, prior),
             "latent_aggregate_posterior_vs_prior": variance_loss(z_real, numpy.random.default_rng(seed + 1)
                                                                  .standard_normal(mu.shape)),
             "n": int(m)}
    if has_stage2(run_dir):
        stage2 = load_stage2(stage1)
        x2, z2 = generate(model, m, stage2=stage2, seed=seed, return_codes=True)
        vloss["pixel_stage2_samples"] = variance_loss(images, x2)
        vloss["latent_stage2_samples"] = variance_loss(z_real, z2)
    summary = stats.summary()
    summary["per_variable"]["reconstruction_gain"] = gain.tolist()
    summary.update({"split": split, "n_gain": int(min(n_gain, m)), "marginal_kl": mkl, "variance_loss": vloss})
    return summary


def _decode(model, z, batch_size=1000):
    with evaluating(model):
        return batched_map(model.decode, z, batch_size=batch_size)


def format_table(d: dict) -> str:
    pv = d["per_variable"]
    lines = [f"{'j':>3} {'Var mu':>9} {'E s2':>9} {'sum':>7} {'KL':>8} {'gain':>10}  active"]
    for j in range(len(pv["var_mu"])):
        lines.append(f"{j:>3} {pv['var_mu'][j]:>9.4f} {pv['mean_sigma2'][j]:>9.4f} {pv['variance_law'][j]:>7.3f} "
                     f"{pv['kl'][j]:>8.3f} {pv['reconstruction_gain'][j]:>10.5f}  {'yes' if pv['active'][j] else 'no'}")
    mk, vl = d["marginal_kl"], d["variance_loss"]
    lines += [
        f"active latents: {d['active_count']}/{d['latent_dim']} (Var mu >= {d['inactive_threshold']}; an inactive one carries no information, "
        f"its E s2 ≈ 1), "
        f"{d['n_examples']} {d['split']} images",
        f"variance law mean: {d['variance_law_mean']:.4f} (expected ≈ 1 for active and inactive variables alike)",
        f"average KL E_x KL(q(z|x)||p): {d['average_kl']:.4f} nats",
        f"marginal KL KL(q(z)||p): {mk['marginal_kl']:.4f} ± {mk['marginal_kl_stderr']:.4f} nats "
        f"(q(z) over N = {mk['n_data']} examples, {mk['n_samples']} draws)",
        "variance loss V(real) - V(generated): " + ", ".join(
            f"{k} {v:.5f}" for k, v in vl.items() if k != "n")]
    return "\n".join(lines)


def diagnose(args) -> int:
    from .run.folder import RunFolder  # noqa: PLC0415
    folder = RunFolder(args.run_dir)
    if not args.no_save and folder.is_run():
        folder.lock("python -m minivae.diagnose")   # report.json is read-modify-written
    try:
        d = diagnose_run(args.run_dir, args.split, args.n, args.n_gain, args.marginal_n, args.marginal_samples,
                         args.threshold, args.seed, args.data_dir, args.backend)
        print(format_table(d))
        if args.no_save:
            return 0
        written = [folder.write_json("diagnostics.json", d)]
        folder.update_report("diagnostics", d)
        from .plots import write_training_plots  # noqa: PLC0415
        written += write_training_plots(args.run_dir)
        print("wrote " + ", ".join(written), file=sys.stderr)
    finally:
        folder.unlock()
    return 0


def main(argv=None) -> int:
    return command_main(build_parser, diagnose, argv)


if __name__ == "__main__":
    sys.exit(main())
