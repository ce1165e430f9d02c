"""Run claims: build the context, call each claim's experiment, draw the figures, write
OUT/<id>/claim.json and print one screen of summary per claim."""
from __future__ import annotations

import os
import time

from . import claims, figures, fixedpoints, geco, plans, record, sparsity, twostage
from .context import Context
from .runner import Runner, read_metrics

EXPERIMENTS = {
    "dense-sparsity": lambda ctx: sparsity.claim_sparsity(ctx, "dense"),
    "conv-sparsity": lambda ctx: sparsity.claim_sparsity(ctx, "conv"),
    "variance-law": sparsity.claim_variance_law,
    "balanced-gamma": sparsity.claim_balanced_gamma,
    "two-stage-fd": twostage.claim_two_stage,
    "renorm-fd": twostage.claim_renorm,
    "geco-kl": geco.claim_geco_kl,
    "geco-marginal-kl": geco.claim_marginal_kl,
    "geco-information-plane": geco.claim_information_plane,
    "critical-beta": fixedpoints.claim_critical_beta,
    "two-point": fixedpoints.claim_two_point,
    "phase-transitions": fixedpoints.claim_phase_transitions,
}
assert set(EXPERIMENTS) == set(claims.BY_ID)


def make_context(*, mode, out, seeds=None, dataset="mnist", data_dir=None, backend=None, log=print):
    plan = plans.PLANS[mode]
    data_args = ["--dataset", dataset] + (["--data-dir", data_dir] if data_dir else [])
    runner = Runner(out, data_args=data_args, backend=backend, log=log)
    n = seeds or plan["seeds"]
    return Context(runner=runner, mode=mode, plan=plan, seeds=list(range(n)), data_args=data_args,
                   dataset=dataset, out=os.path.normpath(out))


def _figures(ctx, claim_id, result):
    out = []
    if claim_id in ("dense-sparsity", "conv-sparsity"):
        sweeps = {k: sparsity.sweep_if_done(ctx, k) for k in ctx.plan["sparsity"]}
        sweeps = {k: v for k, v in sweeps.items() if v}
        path = figures.sparsity_figure(sweeps, sparsity.PAPER_COUNT, os.path.join(ctx.out, "sparsity.png"),
                                         ctx.dataset)
        out.append(path)
    if claim_id == "geco-kl":
        curves = []
        for p in ctx.cache.get("geco-pairs", []):
            tag = f"{p['net']}/{p['elbo']['variant']}/s{p['elbo']['seed']}"
            for side, label in (("elbo", f"ELBO {tag}"), ("geco", f"GECO-{p['geco']['controller']} {tag}")):
                rec = read_metrics(p[side]["folder"])
                if side == "elbo" and any(c["label"] == label for c in curves):
                    continue
                curves.append({"label": label, "steps": [r["step"] for r in rec], "kl": [r["kl"] for r in rec],
                               "mse": [r["mse"] for r in rec]})
        path = figures.geco_figure(result["details"]["pairs"], result["details"]["frontier"], curves,
                                   os.path.join(ctx.out, "geco-vs-elbo.png"))
        out.append(path)
    if any(p is None for p in out):
        ctx.note("matplotlib is not installed: no figure drawn")
    return [p for p in out if p]


def run_claim(ctx, claim_id, *, argv="", log=print):
    claim = claims.get(claim_id)
    log(f"== {claim.id}: {claim.title}  [{ctx.mode}]")
    start = time.perf_counter()
    ctx.notes = []
    result = EXPERIMENTS[claim_id](ctx)
    result.setdefault("figures", [])
    result["figures"] = list(result["figures"]) + _figures(ctx, claim_id, result)
    commands, runs = ctx.runner.take_record()
    result.setdefault("details", {})["compute_seconds"] = ctx.runner.compute_seconds(commands, runs)
    if ctx.mode == "tiny":
        ctx.note("tiny mode: a plumbing check on tiny data; the numbers mean nothing")
    elif ctx.mode == "quick" and claim.group != "fixedpoint":
        ctx.note("quick mode: the verdict is evidence about this budget only (shorter training than the "
                 "papers'; e.g. the dense VAE's latents collapse after ~2,000 steps of full MNIST, "
                 "docs/results.md); --full runs the papers' scale")
    doc = record.build(claim, result, mode=ctx.mode, seeds=ctx.seeds, commands=commands, runs=runs,
                       notes=list(ctx.notes), seconds=time.perf_counter() - start, argv=argv)
    path = record.write(doc, os.path.join(ctx.out, claim.id))
    log(summary(doc, path))
    return doc


def _values(values, most=8):
    shown = ", ".join(f"{x:.4g}" for x in values[:most])
    return shown + (f", … ({len(values) - most} more)" if len(values) > most else "")


def summary(doc, path):
    m, v = doc["measured"], doc["verdict"]
    sd = f" ± {m['sd']:.3g} (sd)" if m.get("sd") is not None else ""
    lines = [f"   source:   {doc['source']}",
             f"   paper:    {doc['paper']['value']}",
             f"   measured: {m['mean']:.4g}{sd} {m['unit']}  [n = {m['n']}: {_values(m['values'])}]",
             f"   verdict:  {v['verdict'].upper()}",
             f"   why:      {v['why']}",
             f"   tolerance: {v['tolerance']}"]
    lines += [f"   note:     {n}" for n in doc["notes"]]
    lines += [f"   figure:   {f}" for f in doc["figures"]]
    lines += [f"   {len(doc['commands'])} command(s) ({doc['seconds']:.0f} s); claim.json: {path}"]
    return "\n".join(lines)
