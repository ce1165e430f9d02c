"""Progress lines that mean the same for every objective (math.md §1–3).

Every line shows the −ELBO in nats (β = 1, the objective's own decoder: comparable
across objectives), the per-element MSE and the KL, then the objective's state: γ
for the ELBO family; λ and C_ma against its threshold for every GECO constraint.
The raw training loss (which for balanced γ rises as γ falls, and for GECO is λ·C)
goes only to ``metrics.jsonl``. One ETA format everywhere (:func:`format_seconds`).
"""
from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``; ``--:--`` when unknown."""
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def state_parts(record: dict, constraints=None) -> list:
    """The objective's state as text: γ, or λ_j and C_ma,j vs the threshold of each constraint."""
    parts = []
    if "lambda" in record and constraints:
        lambdas, c_mas = _as_list(record["lambda"]), _as_list(record.get("c_ma"))
        for (name, kappa, kind), lam, c_ma in zip(constraints, lambdas, c_mas):
            measure = c_ma + kappa ** 2 if kind == "error" else kappa - c_ma
            sign = "<=" if kind == "error" else ">="
            target = kappa ** 2 if kind == "error" else kappa
            ok = "met" if c_ma <= 0 else "violated"
            parts.append(f"{name}: λ {lam:.3g}, {'error' if kind == 'error' else 'similarity'} {measure:.4g} "
                         f"(target {sign} {target:.4g}, {ok})")
        at_bound = record.get("lambda_at_bound")
        if at_bound and any(_as_list(at_bound)):
            parts.append("WARNING λ at its bound")
    elif isinstance(record.get("gamma"), float):
        parts.append(f"γ {record['gamma']:.4g}")
    return parts


class Progress:
    """Step/total, −ELBO, MSE, KL, the objective's state, items/s and ETA. ``stream``: stderr."""

    def __init__(self, total: int, start: int = 0, stream=None, unit: str = "images", constraints=None,
                 prefix: str = ""):
        self.total, self.start, self.unit, self.prefix = total, start, unit, prefix
        self.constraints = constraints
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self._open = False

    def line(self, step: int, record: dict) -> str:
        done = step - self.start
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        parts = [f"{self.prefix}step {step}/{self.total}"]
        if isinstance(record.get("neg_elbo"), float):
            parts.append(f"-ELBO {record['neg_elbo']:.4g} nats")
        for key in ("mse", "kl"):
            if isinstance(record.get(key), float):
                parts.append(f"{key.upper() if key == 'mse' else 'KL'} {record[key]:.4g}")
        parts += state_parts(record, self.constraints)
        rate = record.get(f"{self.unit}_per_s")
        if rate is not None:
            parts.append(f"{rate:.0f} {self.unit}/s")
        parts.append(f"ETA {format_seconds(eta)}")
        return "  ".join(parts)

    def update(self, step: int, record: dict) -> None:
        line = self.line(step, record)
        if self.tty:
            self.stream.write("\r" + line.ljust(110))
            self._open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


__all__ = ["Progress", "format_seconds", "state_parts"]
