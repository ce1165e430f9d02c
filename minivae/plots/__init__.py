"""Optional figures of a run folder (matplotlib, the ``[plot]`` extra).

Each figure module reads the run's own files (metrics.jsonl, latents.jsonl) and
returns the paths it wrote; without matplotlib nothing is written and the list is
empty -- plotting is never required for a run to succeed.
"""
from __future__ import annotations

import importlib
import warnings

FIGURE_MODULES = ("geco", "latents")


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def write_training_plots(run_dir) -> list:
    """Write every figure that applies to ``run_dir``; returns the written paths."""
    if not have_matplotlib():
        return []
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")  # files only, no display
    written = []
    for name in FIGURE_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ImportError:
            continue
        try:
            written += module.write(run_dir)
        except Exception as exc:  # a figure must never lose a finished run
            warnings.warn(f"figure {name} for {run_dir} failed: {exc}")
    return written
