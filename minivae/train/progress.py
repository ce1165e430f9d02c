"""Progress display: one updating line on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Shows step/total, loss, items/s and ETA. ``stream`` defaults to stderr."""

    def __init__(self, total: int, start: int = 0, stream=None, unit: str = "images"):
        self.total, self.start, self.unit = total, start, unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self._open = False

    def update(self, step: int, record: dict) -> None:
        done = step - self.start
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        parts = [f"step {step}/{self.total}"]
        for key in ("loss", "mse", "kl", "gamma", "lambda"):
            value = record.get(key)
            if isinstance(value, float):
                parts.append(f"{key} {value:.4g}")
        if "images_per_s" in record:
            parts.append(f"{record['images_per_s']:.0f} {self.unit}/s")
        parts.append(f"ETA {format_seconds(eta) if eta == eta else '--:--'}")
        line = "  ".join(parts)
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
            self._open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
