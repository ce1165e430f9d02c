"""Command line: ``python -m minivae.train [--help]`` -- train a VAE into a run folder, or
(``--stage2 RUN_DIR``) the second stage of a trained run."""
from __future__ import annotations

import argparse
import os
import sys

from ..run.cli import CommandParser, command_main, log
from ..run.config import add_config_flags, resolve

DESCRIPTION = ("Train a VAE (ELBO, β-VAE, learned γ, balanced γ or GECO) and write a run folder with config.json "
               "(the resolved configuration and its provenance), metrics.jsonl, checkpoint.npz, samples.png, "
               "reconstructions.png and report.json. Ctrl-C or SIGTERM: the step finishes, a checkpoint is "
               "written, --resume continues exactly.")
# --stage2: these keys describe the second stage; these must agree with stage 1; these say where things are
STAGE2_KEYS = ("hidden", "activation", "objective", "kl_weight", "gamma_min", "epochs", "batch_size", "lr", "seed",
               "max_steps", "log_every", "n_samples")
STAGE2_SAME_AS_STAGE1 = ("dataset", "latent_dim", "out", "dtype")
STAGE2_WHERE = ("data_dir", "backend")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m minivae.train", description=DESCRIPTION,
                           argument_default=argparse.SUPPRESS)
    parser.add_argument("--config", help="JSON or TOML file setting any of the keys below (flat or in sections "
                                         "data/model/objective/optim/run; a run's config.json works too)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out exactly where it stopped (flags given now may extend "
                             "--epochs / --max-steps and change logging/checkpoints); a run that stopped before "
                             "its first checkpoint starts again from step 0 with its saved configuration")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out (its minivae files are deleted first); never touches "
                             "a folder that holds no minivae run")
    parser.add_argument("--stage2", metavar="RUN_DIR",
                        help="train the second-stage VAE on the latent codes of the stage-1 run in RUN_DIR "
                             "(flags: --hidden, --activation, --objective learned-gamma|balanced, --kl-weight, "
                             "--gamma-min, --epochs, --batch-size, --lr, --seed, --max-steps, --log-every, "
                             "--n-samples, --data-dir, --backend)")
    return add_config_flags(parser)


def train(args: dict, argv=None) -> int:
    if args.get("stage2"):
        return train_stage2(args)
    from ..run.training import Trainer  # noqa: PLC0415
    resume, overwrite = bool(args.pop("resume", False)), bool(args.pop("overwrite", False))
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other; give one")
    config = resolve(_resume_base(args) if resume else args)
    trainer = Trainer(config, resume=resume, overwrite=overwrite, log=log, argv=argv)
    log(f"training {config.model.preset or config.model.model} on {config.data.dataset} ({len(trainer.train_set)} "
        f"images, {trainer.model.num_parameters()} parameters, {config.objective_name}, backend "
        f"{trainer.config.provenance.get('backend', 'numpy')}) -> {config.run.out}")
    report = trainer.run()
    test, lat = report["test"], report["latents"]
    parts = [f"done: test -ELBO {test.get('neg_elbo', float('nan')):.4f} nats", f"MSE {test['mse']:.5f}",
             f"KL {test['kl']:.3f}",
             f"active latents {lat['active_count']}/{lat['latent_dim']} (Var μ_j >= {lat['inactive_threshold']})",
             f"variance law mean {lat['variance_law_mean']:.3f} (expected ≈ 1)"]
    log("  ".join(parts) + f"  -> {config.run.out}")
    for warning in report.get("warnings", []):
        log(warning)
    return 0


def _resume_base(args: dict) -> dict:
    """On --resume the run's own config.json is the base; flags given now override it."""
    out = args.get("out")
    if out is None:
        raise ValueError("--resume needs --out: the run folder to continue")
    path = os.path.join(out, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"--resume: {out!r} holds no run to resume (no config.json); start it without --resume")
    from ..run.config import load_config_file  # noqa: PLC0415
    base = load_config_file(path)
    base.update({k: v for k, v in args.items() if k != "config"})
    base["out"] = out
    return base


def train_stage2(args: dict) -> int:
    from ..run.load import load_run  # noqa: PLC0415
    from ..run.stage2 import TwoStageError, check_stage2_config, train_stage2 as _train  # noqa: PLC0415
    run_dir = args["stage2"]
    stage1 = load_run(run_dir, backend_name=args.get("backend"))
    problems = []
    for key, value in args.items():
        if key in ("stage2",) + STAGE2_KEYS + STAGE2_WHERE:
            continue
        if key == "resume":
            problems.append("--resume (a second stage is trained in one go; delete stage2.npz to retrain)")
        elif key in STAGE2_SAME_AS_STAGE1:
            first = {"dataset": stage1.config.data.dataset, "latent_dim": str(stage1.model.latent_dim),
                     "out": os.path.abspath(run_dir), "dtype": stage1.config.run.dtype}[key]
            given = os.path.abspath(str(value)) if key == "out" else str(value)
            if given != first:
                problems.append(f"--{key.replace('_', '-')} {value} (the stage-1 run has {first}; the second stage "
                                "always uses the run's data, latent size and folder)")
        else:
            problems.append(f"--{key.replace('_', '-')}")
    if problems:
        raise TwoStageError("these flags do not apply to --stage2: " + "; ".join(problems))
    config = check_stage2_config({k: args[k] for k in STAGE2_KEYS if k in args}, stage1)
    summary = _train(stage1, config, data_dir=args.get("data_dir"), log=log)
    ren = summary["renormalisation"]
    log(f"done: γ_z {summary['gamma_z']:.4g}  stage-2 MSE {ren['mse2']:.4g}  latent variance loss "
        f"{ren['var_loss2']:.4g}  (scalar renormalisation {'on' if ren['apply_scalar'] else 'off'}: "
        f"loss/MSE {ren['var_loss2'] / max(ren['mse2'], 1e-300):.3g} vs {ren['threshold']})  -> {run_dir}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return command_main(build_parser, lambda args: train(vars(args), argv), argv)


if __name__ == "__main__":
    sys.exit(main())
