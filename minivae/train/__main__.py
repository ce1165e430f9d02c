"""Command line: ``python -m minivae.train [--help]``."""
from __future__ import annotations

import os
import sys

from ..backend import BackendError
from ..checkpoint import CheckpointError
from ..data import DataError
from .config import ConfigError, build_parser, resolve
from .trainer import Trainer, TrainingError

# errors that are the user's to fix: one line, no traceback (MINIVAE_DEBUG=1 shows it)
USER_ERRORS = (ConfigError, TrainingError, DataError, CheckpointError, BackendError, ValueError,
               FileNotFoundError)


def main(argv=None) -> int:
    args = vars(build_parser().parse_args(argv))
    try:
        if args.get("stage2"):
            from ..twostage.cli import train_stage2  # noqa: PLC0415  (issue: two-stage VAE)
            train_stage2(args)
            return 0
        config = resolve(args)
        if args.get("resume"):
            config = _resume_config(config, args)
        trainer = Trainer(config, resume=bool(args.get("resume")))
        print(f"training {config['preset'] or config['model']} on {config['dataset']} "
              f"({len(trainer.train_set)} images, {trainer.model.num_parameters()} parameters, "
              f"backend {config['backend'] or 'numpy'}) -> {config['out']}", file=sys.stderr)
        report = trainer.run()
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as exc:
        if os.environ.get("MINIVAE_DEBUG"):
            raise  # the full traceback, for reporting a bug in minivae itself
        print(f"error: {exc}", file=sys.stderr)
        return 2
    test = report["test"]
    lat = report["latents"]
    print(f"done: test loss {test['loss']:.4f}  mse {test['mse']:.5f}  kl {test['kl']:.3f}  "
          f"active latents {lat['active_count']}/{lat['latent_dim']}  "
          f"variance law mean {lat['variance_law_mean']:.3f}  -> {config['out']}", file=sys.stderr)
    return 0


def _resume_config(config, args):
    """On --resume the run's own config.json is the base; flags given now override it."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    path = os.path.join(config["out"], "config.json")
    if not os.path.isfile(path):
        raise TrainingError(f"--resume: {config['out']!r} has no config.json; is it a minivae run folder?")
    with open(path) as f:
        saved = json.load(f)
    saved.update({k: v for k, v in args.items() if k in saved})
    saved["out"] = config["out"]
    saved["max_steps"] = args.get("max_steps")  # a stop for one invocation, not part of the run
    return resolve_saved(saved)


def resolve_saved(saved):
    from .config import validate  # noqa: PLC0415
    return validate(saved)


if __name__ == "__main__":
    sys.exit(main())
