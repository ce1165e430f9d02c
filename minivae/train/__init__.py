"""``python -m minivae.train``: the training command (thin: parse, call the run layer, report).

The loop itself is :class:`minivae.run.Trainer`; the configuration :mod:`minivae.run.config`.
"""
from ..run.config import ConfigError, RunConfig, resolve
from ..run.training import Trainer, TrainingError

__all__ = ["ConfigError", "RunConfig", "Trainer", "TrainingError", "build_parser", "main", "resolve"]


def build_parser():
    from .__main__ import build_parser as _build  # noqa: PLC0415
    return _build()


def main(argv=None):
    from .__main__ import main as _main  # noqa: PLC0415
    return _main(argv)
