"""``python -m minivae.train --stage2 RUN_DIR [flags]``: train the second stage into RUN_DIR.

Flags of the training command that apply to the second stage:

  --hidden W1,W2,W3   widths of its ReLU layers (default 1024,1024,1024)
  --activation NAME   hidden activation (default relu)
  --objective         learned-gamma | balanced (default: stage 1's if it is one of them, else learned-gamma)
  --kl-weight, --gamma-min   as for stage 1 (balanced / learned-gamma)
  --epochs (default 20), --batch-size (128), --lr (1e-3: Dai & Wipf use 1e-4 for hundreds of
  epochs; 1e-3 fits a budget of tens), --seed (0),
  --max-steps, --log-every (100), --n-samples (64, the grid in stage2_samples.png),
  --backend, --data-dir (where the stage-1 data are now)

Anything else (a different --dataset, --latent-dim, --out, presets...) does not
describe a second stage and is refused rather than silently ignored. Writes
``stage2.npz`` (atomic checkpoint), ``stage2.json``, ``stage2_metrics.jsonl``,
``stage2_samples.png`` and a ``stage2`` section in ``report.json``.
"""
from __future__ import annotations

import os
import sys

from .run import STAGE2_CHECKPOINT, STAGE2_CONFIG, TwoStageError, load_stage1

STAGE2_KEYS = ("hidden", "activation", "objective", "kl_weight", "gamma_min", "epochs", "batch_size", "lr",
               "seed", "max_steps", "log_every", "n_samples")
# keys that are fine when they agree with stage 1 (or are about where things are)
RUN_KEYS = ("dataset", "latent_dim", "out", "data_dir", "backend", "dtype")


def _split_args(args: dict, stage1_config: dict):
    config, problems = {}, []
    for key, value in args.items():
        if key in ("stage2", "resume") or value is None:
            if key == "resume" and value:
                problems.append("--resume (a second stage is trained in one go; delete stage2.npz to retrain)")
            continue
        if key in STAGE2_KEYS:
            config[key] = value
        elif key in ("data_dir", "backend"):
            continue
        elif key in RUN_KEYS:
            first = stage1_config.get(key)
            if key == "out":
                same = os.path.abspath(str(value)) == os.path.abspath(args["stage2"])
            elif key == "latent_dim":
                same = first is None or int(value) == int(first)
            else:
                same = value == first
            if not same:
                problems.append(f"--{key.replace('_', '-')} {value} (the stage-1 run has {first!r}; the second "
                                "stage always uses the run's data, latent size and folder)")
        else:
            problems.append(f"--{key.replace('_', '-')}")
    if problems:
        raise TwoStageError("these flags do not apply to --stage2: " + "; ".join(problems))
    return config


def train_stage2(args: dict, log=None):
    """Entry point of ``python -m minivae.train --stage2 RUN_DIR`` (``args``: the parsed flags as a dict)."""
    from .training import Stage2Trainer, check_stage2_config  # noqa: PLC0415
    log = log or (lambda msg: print(msg, file=sys.stderr))
    run_dir = args["stage2"]
    stage1 = load_stage1(run_dir, backend_name=args.get("backend"))
    if args.get("latent_dim") is not None and int(args["latent_dim"]) != stage1.model.latent_dim:
        raise TwoStageError(f"--latent-dim {args['latent_dim']}: the second stage's latent size equals stage 1's "
                            f"({stage1.model.latent_dim})")
    config = check_stage2_config(_split_args(args, stage1.config), stage1)
    for name in (STAGE2_CHECKPOINT, STAGE2_CONFIG):
        if os.path.exists(os.path.join(run_dir, name)):
            raise TwoStageError(f"{run_dir!r} already holds a second stage ({name}); delete {STAGE2_CHECKPOINT} "
                                f"and {STAGE2_CONFIG} to train it again (nothing was overwritten)")
    train, _ = stage1.load_data(args.get("data_dir"))
    trainer = Stage2Trainer(stage1, config, train.images, log=log)
    log(f"training the second stage ({config['objective']}, hidden {config['hidden']}, "
        f"{trainer.model.num_parameters()} parameters) on the codes of {len(train)} images -> {run_dir}")
    summary = trainer.run()
    ren = summary["renormalisation"]
    log(f"done: gamma_z {summary['gamma_z']:.4g}  stage-2 mse {ren['mse2']:.4g}  latent variance loss "
        f"{ren['var_loss2']:.4g}  (scalar renormalisation {'on' if ren['apply_scalar'] else 'off'}: "
        f"loss/mse {ren['var_loss2'] / max(ren['mse2'], 1e-300):.3g} vs {ren['threshold']})  -> {run_dir}")
    return summary
