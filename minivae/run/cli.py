"""What every ``python -m minivae.<command>`` shares: one-line errors, the common flags,
and the mapping of failures to exit codes.

* :class:`CommandParser` -- argparse whose usage errors are one line (``error: ...``), exit 2;
* :func:`common_flags` -- ``--backend``, ``--seed``, ``--data-dir`` with one wording everywhere;
* :func:`run_command` -- calls the command; a refusal (bad input, a folder in use, a
  damaged file, ...) prints one line and exits 2 (``MINIVAE_DEBUG=1`` shows the
  traceback), Ctrl-C exits 130, SIGTERM 143.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..backend import BackendError
from ..checkpoint import CheckpointError
from ..data import DataError
from ..settings import SettingError
from .folder import RunError

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               BackendError, CheckpointError, DataError, SettingError, RunError)


class Terminated(Exception):
    """SIGTERM arrived (a cluster's pre-emption); the command stopped at a step boundary."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (and exit 2)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def common_flags(parser, *, backend=True, seed=True, data_dir=True, seed_help="random seed"):
    if backend:
        parser.add_argument("--backend", choices=("numpy", "cupy"), default=None,
                            help="numpy (CPU) or cupy (CUDA GPU) [default: the run's, else $MINIVAE_BACKEND "
                                 "or numpy]")
    if seed:
        parser.add_argument("--seed", type=non_negative_int, default=0, help=f"{seed_help} [default: 0]")
    if data_dir:
        parser.add_argument("--data-dir", default=None,
                            help="where the data files are now (overrides the run's data folder)")
    return parser


def _integer_at_least(low, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value
    parse.__name__ = f"{what.replace('-', '_')}_int"
    return parse


positive_int = _integer_at_least(1, "positive")
non_negative_int = _integer_at_least(0, "non-negative")


def finite_float(text):
    import math  # noqa: PLC0415
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def run_command(fn, *args, **kwargs) -> int:
    """``fn(*args, **kwargs)`` with minivae's exit codes: its own (or 0), 2 for a refusal,
    130 for Ctrl-C, 143 for SIGTERM."""
    try:
        code = fn(*args, **kwargs)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed in one line)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        return 143
    except USER_ERRORS as exc:
        if os.environ.get("MINIVAE_DEBUG"):
            raise  # the full traceback, for reporting a bug in minivae itself
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0 if code is None else int(code)


def command_main(build_parser, fn, argv=None) -> int:
    """Parse ``argv`` with ``build_parser()`` and call ``fn(args)``, all under :func:`run_command`."""
    return run_command(lambda: fn(build_parser().parse_args(argv)))


def _one_line(exc) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return " ".join(text.split())


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


__all__ = ["CommandParser", "Terminated", "USER_ERRORS", "command_main", "common_flags", "finite_float", "log",
           "non_negative_int", "positive_int", "run_command"]
