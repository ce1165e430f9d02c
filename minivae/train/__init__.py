"""``python -m minivae.train``: the training command and its loop."""
from .config import DEFAULTS, ConfigError, build_parser, resolve
from .trainer import Trainer, TrainingError

__all__ = ["DEFAULTS", "ConfigError", "Trainer", "TrainingError", "build_parser", "main", "resolve"]


def main(argv=None):
    from .__main__ import main as _main  # noqa: PLC0415
    return _main(argv)
