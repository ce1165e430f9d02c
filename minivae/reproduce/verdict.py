"""Verdicts: compare a measured quantity with a paper's value and say ``reproduced``,
``differs`` or ``partial``, with the tolerance used and why.

Pure functions on plain numbers (no I/O, no training), so each rule is unit-tested
with constructed numbers (tests/test_reproduce_verdict.py). Every function returns a
:class:`Verdict` whose ``why`` quotes the numbers it decided on: a verdict is evidence,
never a bare word.
"""
from __future__ import annotations

import dataclasses
import math

REPRODUCED, DIFFERS, PARTIAL = "reproduced", "differs", "partial"
VERDICTS = (REPRODUCED, DIFFERS, PARTIAL)


@dataclasses.dataclass(frozen=True)
class Verdict:
    verdict: str
    tolerance: str  # the tolerance used and why that tolerance
    why: str  # the measured numbers the verdict rests on

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")

    def to_dict(self):
        return dataclasses.asdict(self)


def _floats(values, what):
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{what}: no measured values")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what}: non-finite measured value in {out}")
    return out


def spread(values) -> dict:
    """n, mean, sample standard deviation (None for one value), min, max and the values."""
    v = _floats(values, "spread")
    n = len(v)
    mean = sum(v) / n
    sd = math.sqrt(sum((a - mean) ** 2 for a in v) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "sd": sd, "min": min(v), "max": max(v), "values": v}


def _fmt(x):
    return f"{x:.4g}"


def near_value(values, paper, tol, *, what="value", why_tol=""):
    """The paper gives an approximate value ("about 8 of 16"): reproduced when the
    mean over seeds is within ``tol`` of it; partial when the mean is not but some
    seed is; differs otherwise."""
    s = spread(values)
    off = s["mean"] - paper
    tolerance = f"|mean − {_fmt(paper)}| ≤ {_fmt(tol)}" + (f" ({why_tol})" if why_tol else "")
    some = [v for v in s["values"] if abs(v - paper) <= tol]
    if abs(off) <= tol:
        return Verdict(REPRODUCED, tolerance,
                       f"{what}: mean {_fmt(s['mean'])} over {s['n']} seed(s) "
                       f"(values {s['values']}) vs the paper's {_fmt(paper)}")
    if some:
        return Verdict(PARTIAL, tolerance,
                       f"{what}: mean {_fmt(s['mean'])} is {_fmt(abs(off))} from the paper's "
                       f"{_fmt(paper)}, but {len(some)} of {s['n']} seeds are within "
                       f"{_fmt(tol)} (values {s['values']})")
    return Verdict(DIFFERS, tolerance,
                   f"{what}: mean {_fmt(s['mean'])} over {s['n']} seed(s) (values "
                   f"{s['values']}) is {_fmt(abs(off))} from the paper's {_fmt(paper)}")


def groups_near_one(groups: dict, tol, *, what="variance law"):
    """Each named group of per-variable values (e.g. active / inactive) should have a
    mean within ``tol`` of 1: reproduced when all do, partial when some do (or a group
    is empty), differs when none does."""
    ok, bad, empty, parts = [], [], [], []
    for name, values in groups.items():
        values = list(values)
        if not values:
            empty.append(name)
            parts.append(f"{name}: none")
            continue
        s = spread(values)
        (ok if abs(s["mean"] - 1.0) <= tol else bad).append(name)
        parts.append(f"{name}: mean {_fmt(s['mean'])} over {s['n']} variables "
                     f"(range {_fmt(s['min'])}–{_fmt(s['max'])})")
    tolerance = f"|group mean − 1| ≤ {_fmt(tol)} for every group"
    why = f"{what}: " + "; ".join(parts)
    if not ok:
        return Verdict(DIFFERS, tolerance, why)
    if bad or empty:
        missing = bad + [f"{e} (no variables to test)" for e in empty]
        return Verdict(PARTIAL, tolerance, why + f"; not within tolerance: {', '.join(missing)}")
    return Verdict(REPRODUCED, tolerance, why)


def ratios_near_one(ratios, tol, *, what="ratio"):
    """Every ratio within ``tol`` of 1: reproduced; their mean only: partial; else differs."""
    s = spread(ratios)
    tolerance = f"|ratio − 1| ≤ {_fmt(tol)}"
    why = f"{what}: mean {_fmt(s['mean'])}, range {_fmt(s['min'])}–{_fmt(s['max'])} over {s['n']}"
    if all(abs(r - 1.0) <= tol for r in s["values"]):
        return Verdict(REPRODUCED, tolerance, why)
    if abs(s["mean"] - 1.0) <= tol:
        return Verdict(PARTIAL, tolerance, why + " (the mean is within tolerance, not every value)")
    return Verdict(DIFFERS, tolerance, why)


def improves(before, after, min_factor, *, what="distance"):
    """Paired values (one pair per seed) where lower is better: reproduced when every
    pair improves and the mean factor before/after is at least ``min_factor``; partial
    when the means improve but not every seed or not by that factor; differs otherwise."""
    b, a = _floats(before, what), _floats(after, what)
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(b)} values before but {len(a)} after")
    factors = [x / y if y > 0 else math.inf for x, y in zip(b, a)]
    mean_b, mean_a = sum(b) / len(b), sum(a) / len(a)
    factor = mean_b / mean_a if mean_a > 0 else math.inf
    tolerance = (f"every seed lower and mean factor before/after ≥ {_fmt(min_factor)} "
                 "(margin above the sampling noise)")
    why = (f"{what}: mean {_fmt(mean_b)} → {_fmt(mean_a)} (factor {_fmt(factor)}; per seed "
           f"{[round(f, 3) for f in factors]})")
    if all(f > 1 for f in factors) and factor >= min_factor:
        return Verdict(REPRODUCED, tolerance, why)
    if mean_a < mean_b:
        return Verdict(PARTIAL, tolerance, why)
    return Verdict(DIFFERS, tolerance, why)


def lower_at_matched(kl_test, kl_ref, mse_test, mse_ref, match_tol, *, what="KL"):
    """GECO against the ELBO (Taming VAEs Fig. 5): at a matched reconstruction error
    (|mse_test/mse_ref − 1| ≤ match_tol for every pair) the tested method should have
    the lower KL in every pair. Matched and lower: reproduced; lower in some pairs or
    not matched: partial; matched and not lower on average: differs."""
    kt, kr = _floats(kl_test, what), _floats(kl_ref, what)
    mt, mr = _floats(mse_test, "mse"), _floats(mse_ref, "mse")
    if not len(kt) == len(kr) == len(mt) == len(mr):
        raise ValueError("lower_at_matched: the four lists must have one entry per pair")
    mism = [x / y - 1.0 for x, y in zip(mt, mr)]
    matched = all(abs(m) <= match_tol for m in mism)
    lower = [x < y for x, y in zip(kt, kr)]
    mean_t, mean_r = sum(kt) / len(kt), sum(kr) / len(kr)
    tolerance = (f"operating points matched when |MSE ratio − 1| ≤ {_fmt(match_tol)} in every "
                 "pair; then the KL must be lower in every pair")
    why = (f"{what}: mean {_fmt(mean_t)} vs {_fmt(mean_r)} nats; lower in {sum(lower)} of "
           f"{len(lower)} pairs; MSE mismatch {[round(m, 4) for m in mism]}")
    if matched and all(lower):
        return Verdict(REPRODUCED, tolerance, why)
    if matched and mean_t >= mean_r:
        return Verdict(DIFFERS, tolerance, why)
    if not matched and not any(lower):
        return Verdict(DIFFERS, tolerance, why + " (operating points not matched either)")
    return Verdict(PARTIAL, tolerance,
                   why + ("" if matched else " (operating points not matched)"))


def much_lower(test, ref, min_factor, *, what="marginal KL"):
    """The tested values should be lower than the reference by at least ``min_factor``
    (ratio of means): that and every pair lower: reproduced; lower but by less:
    partial; not lower: differs."""
    t, r = _floats(test, what), _floats(ref, what)
    if len(t) != len(r):
        raise ValueError(f"{what}: {len(t)} tested values but {len(r)} references")
    mean_t, mean_r = sum(t) / len(t), sum(r) / len(r)
    factor = mean_r / mean_t if mean_t > 0 else math.inf
    tolerance = f"reference/tested ≥ {_fmt(min_factor)} and every pair lower"
    why = f"{what}: {_fmt(mean_r)} → {_fmt(mean_t)} (factor {_fmt(factor)})"
    if factor >= min_factor and all(x < y for x, y in zip(t, r)):
        return Verdict(REPRODUCED, tolerance, why)
    if mean_t < mean_r:
        return Verdict(PARTIAL, tolerance, why)
    return Verdict(DIFFERS, tolerance, why)


def rise_then_fall(peak, final, violation, min_ratio, max_violation, *, what="KL"):
    """GECO's information-plane path (Taming VAEs Fig. 3): KL peaks while the constraint
    is violated, then falls at constant error. ``violation`` is the final C_ma / κ²
    (≤ 0: the constraint holds). Peak/final ≥ min_ratio and violation ≤ max_violation:
    reproduced; one of the two: partial; neither: differs."""
    ratio = peak / final if final > 0 else math.inf
    falls, holds = ratio >= min_ratio, violation <= max_violation
    tolerance = (f"peak/final {what} ≥ {_fmt(min_ratio)} and final C_ma/κ² ≤ "
                 f"{_fmt(max_violation)}")
    why = (f"{what} peak {_fmt(peak)} → final {_fmt(final)} (ratio {_fmt(ratio)}); final "
           f"C_ma/κ² = {_fmt(violation)}")
    if falls and holds:
        return Verdict(REPRODUCED, tolerance, why)
    if falls or holds:
        return Verdict(PARTIAL, tolerance, why)
    return Verdict(DIFFERS, tolerance, why)


def relative_error(measured, exact, rtol, *, what="value", why_tol=""):
    """|measured/exact − 1| ≤ rtol: reproduced; ≤ 3·rtol: partial; else differs."""
    m = _floats([measured], what)[0]
    err = abs(m / exact - 1.0)
    tolerance = f"relative error ≤ {_fmt(rtol)}" + (f" ({why_tol})" if why_tol else "")
    why = f"{what}: measured {_fmt(m)} vs exact {_fmt(exact)} (relative error {_fmt(err)})"
    if err <= rtol:
        return Verdict(REPRODUCED, tolerance, why)
    if err <= 3 * rtol:
        return Verdict(PARTIAL, tolerance, why)
    return Verdict(DIFFERS, tolerance, why)


def max_abs_error(errors, atol, *, what="error"):
    """All absolute errors ≤ atol: reproduced; their median: partial; else differs."""
    e = sorted(abs(x) for x in _floats(errors, what))
    tolerance = f"max |error| ≤ {atol:g}"
    why = f"{what}: max {e[-1]:.3g}, median {e[len(e) // 2]:.3g} over {len(e)} values"
    if e[-1] <= atol:
        return Verdict(REPRODUCED, tolerance, why)
    if e[len(e) // 2] <= atol:
        return Verdict(PARTIAL, tolerance, why)
    return Verdict(DIFFERS, tolerance, why)


def _ranks(values):
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a, b):
    """Spearman's rank correlation: Pearson's correlation of the (average) ranks."""
    ra, rb = _ranks(list(a)), _ranks(list(b))
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va, vb = sum((x - ma) ** 2 for x in ra), sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 0.0


def staircase(betas, counts, beta_c, *, max_rho=-0.9, min_levels=3):
    """Phase transitions (Taming VAEs Fig. 2/7): the number of distinct clusters of the
    fixed point falls as β grows and is 1 above the collapse point β_c. Each β starts
    from the same grid, so a β may land in another local optimum than its neighbours:
    the fall is tested by Spearman's rank correlation of count against β (≤ max_rho),
    not step by step. Checks: (a) that correlation, (b) one cluster for every
    β ≥ 1.05·β_c, (c) at least ``min_levels`` distinct counts (a staircase, not a single
    jump). All three: reproduced; two: partial; fewer: differs."""
    b, c = _floats(betas, "beta"), [int(x) for x in counts]
    if len(b) != len(c) or len(b) < 2:
        raise ValueError("staircase: need at least two β with one count each")
    order = sorted(range(len(b)), key=b.__getitem__)
    b, c = [b[i] for i in order], [c[i] for i in order]
    rho = spearman(b, c)
    ups = sum(1 for x, y in zip(c, c[1:]) if y > x)
    above = [n for beta, n in zip(b, c) if beta >= 1.05 * beta_c]
    levels = len(set(c))
    checks = {"falls with β": rho <= max_rho,
              "one cluster above 1.05·β_c": bool(above) and all(n == 1 for n in above),
              f"≥ {min_levels} distinct counts": levels >= min_levels}
    tolerance = (f"Spearman ρ(β, count) ≤ {max_rho:g}; 1 cluster for β ≥ 1.05·β_c; "
                 f"≥ {min_levels} distinct counts")
    why = (f"counts from {c[0]} (β = {_fmt(b[0])}) to {c[-1]} (β = {_fmt(b[-1])}); Spearman ρ = "
           f"{rho:.3f}; {ups} increases in {len(c) - 1} steps; {levels} distinct counts; "
           f"β_c = {_fmt(beta_c)}; failed: {[k for k, v in checks.items() if not v] or 'none'}")
    passed = sum(checks.values())
    return Verdict(REPRODUCED if passed == 3 else PARTIAL if passed == 2 else DIFFERS, tolerance, why)
