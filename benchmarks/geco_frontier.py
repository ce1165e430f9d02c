"""GECO's dual controllers against the β-VAE frontier (issue 11; math.md §3).

Trains mnist-dense (784-256-64-32-16, batch 128, Adam lr 1e-3, float32, seed 0) with
GECO under each controller, and with the fixed-γ ELBO (β = 1) at a few γ around κ²,
then reads the frontier KL at each GECO run's test MSE by linear interpolation between
the two ELBO runs whose test MSEs bracket it. Its own loop on the lower layers
(build_model, GECO / ELBO, Adam, BatchIterator), not the trainer.

    PYTHONPATH=. python benchmarks/geco_frontier.py --data-dir ../shared/data --out /tmp/geco-frontier \\
        --runs geco:alg1,geco:warm,geco:pid,elbo:0.01,elbo:0.015,elbo:0.0225,elbo:0.03,elbo:0.045
    PYTHONPATH=. python benchmarks/geco_frontier.py --out /tmp/geco-frontier --table

Each run writes OUT/<run>.json (the final numbers) and OUT/<run>.trace.jsonl (λ, C_ma,
KL, MSE every --trace-every steps); --table prints the markdown table from those files.
A CLA run: ``--runs geco:pid --constraint re,cla --kappa 0.15,0.9 --classifier DIR``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy

from minivae import Tensor, backend
from minivae.autograd import no_grad
from minivae.data import BatchIterator, load_dataset
from minivae.optim import Adam
from minivae.vae import ELBO, build_model
from minivae.vae import constraints as C
from minivae.vae.diagnostics import model_latent_statistics
from minivae.vae.geco import GECO
from minivae.vae.geco_control import CONTROLLERS


def make_objective(kind, value, args, train):
    if kind == "elbo":
        return ELBO(gamma=float(value))
    names, kappas = args.constraint.split(","), [float(k) for k in str(args.kappa).split(",")]
    built = []
    for name, kappa in zip(names, kappas):
        if name == "cla":
            from minivae.classifier import load_classifier  # noqa: PLC0415
            built.append(C.CLA(kappa, load_classifier(args.classifier)))
        else:
            built.append(C.CONSTRAINTS[name](kappa))
    name, *options = value.split(":")       # e.g. pid:kp=1:ki=0.01, warm:eta=0.003
    gains = {k: float(v) for k, v in (o.split("=") for o in options)}
    return GECO(built, controller=CONTROLLERS[name](**gains))


def evaluate(model, objective, data, batch_size=500):
    """Test-set terms (means over the set), eval mode, ε from a fixed seed (as the trainer's)."""
    model.eval()
    totals, n = {}, 0
    gen = numpy.random.default_rng(12345)
    labels = getattr(objective, "needs_labels", False)
    with no_grad():
        for start in range(0, len(data), batch_size):
            xb = data.images[start:start + batch_size]
            x = Tensor(backend.to_device(xb))
            eps = backend.to_device(gen.standard_normal((len(xb), model.latent_dim)))
            extra = {"labels": backend.to_device(data.labels[start:start + batch_size])} if labels else {}
            _, terms = objective.loss(x, model(x, eps=eps), **extra)
            for k in ("kl", "mse", "c_batch"):
                if k in terms:
                    totals[k] = totals.get(k, 0.0) + numpy.asarray(terms[k], dtype=float) * len(xb)
            n += len(xb)
    model.train()
    return {k: (v / n).tolist() for k, v in totals.items()}


def run_one(spec, args):
    kind, value = spec.split(":", 1)
    name = f"{kind}-{value}" if kind == "elbo" else f"geco-{value}-{args.constraint}-{args.kappa}"
    name = name.replace(",", "_").replace(":", "_").replace("=", "")
    backend.use("numpy", dtype="float32", seed=args.seed)
    train = load_dataset("mnist", split="train", data_dir=args.data_dir, n=args.n_train, seed=args.seed)
    test = load_dataset("mnist", split="test", data_dir=args.data_dir, n=args.n_test, seed=args.seed)
    model = build_model("mnist-dense", input_shape=train.shape)
    objective = make_objective(kind, value, args, train)
    optimizer = Adam(model.parameters(), lr=args.lr)
    batches = BatchIterator(train.images, args.batch_size, shuffle=True, seed=args.seed, drop_last=True,
                            return_indices=True)
    needs_labels = getattr(objective, "needs_labels", False)
    trace = open(os.path.join(args.out, name + ".trace.jsonl"), "w")
    step, start = 0, time.perf_counter()
    for epoch in range(args.epochs):
        for xb, idx in batches:
            x = Tensor(backend.to_device(xb))
            optimizer.zero_grad()
            out = model(x)
            extra = {"labels": backend.to_device(train.labels[idx])} if needs_labels else {}
            loss, terms = objective.loss(x, out, **extra)
            if not math.isfinite(terms["loss"]):
                raise SystemExit(f"{name}: non-finite loss at step {step + 1}: {terms}")
            loss.backward()
            optimizer.step()
            objective.after_step(terms)
            step += 1
            if step % args.trace_every == 0 or step == 1:
                keep = ("kl", "mse", "c_batch", "c_ma", "lambda", "lambda_at_bound")
                trace.write(json.dumps({"step": step, **{k: terms[k] for k in keep if k in terms}}) + "\n")
        print(f"{name}: epoch {epoch + 1}/{args.epochs} step {step} kl {terms['kl']:.2f} mse {terms['mse']:.5f}"
              + (f" lambda {terms['lambda']} c_ma {terms['c_ma']}" if kind == "geco" else "")
              + f" ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    trace.close()
    result = {"run": name, "kind": kind, "value": value, "epochs": args.epochs, "steps": step,
              "seconds": time.perf_counter() - start, "test": evaluate(model, objective, test),
              "active": int(model_latent_statistics(model, test.images[:5000]).active.sum())}
    if kind == "geco":
        result.update(constraint=args.constraint, kappa=args.kappa, c_ma=objective.c_ma.tolist(),
                      **{"lambda": objective.lambdas.tolist()}, steps_at_bound=objective.steps_at_bound.tolist(),
                      controller=repr(objective.controller))
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result), flush=True)


def frontier_kl(mse, elbo):
    """KL of the fixed-γ ELBO at test MSE ``mse``: linear between the two bracketing runs (None outside)."""
    points = sorted((r["test"]["mse"], r["test"]["kl"]) for r in elbo)
    for (m0, k0), (m1, k1) in zip(points, points[1:]):
        if m0 <= mse <= m1:
            return k0 + (k1 - k0) * (mse - m0) / (m1 - m0)
    return None


def path_peaks(out, run):
    """(max λ of the first constraint, max of KL averaged over 10 trace records) along a run."""
    records = [json.loads(line) for line in open(os.path.join(out, run + ".trace.jsonl"))]
    lam = [r["lambda"] if isinstance(r["lambda"], float) else r["lambda"][0] for r in records]
    kl = [r["kl"] for r in records]
    smooth = [sum(kl[i:i + 10]) / 10 for i in range(max(1, len(kl) - 9))]
    return max(lam), max(smooth)


def table(out):
    results = [json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out)) if f.endswith(".json")]
    elbo = [r for r in results if r["kind"] == "elbo"]
    lines = ["| run | epochs | steps at bound | max λ | peak KL (train) | final C_ma (train) | final λ | test MSE | "
             "test KL | active | frontier KL at that MSE | gap |", "|" + " --- |" * 12]
    for r in sorted(elbo, key=lambda r: float(r["value"])):
        lines.append(f"| ELBO γ = {r['value']} | {r['epochs']} | – | – | – | – | (D/2γ = {784 / (2 * float(r['value'])):.0f}) "
                     f"| {r['test']['mse']:.5f} | {r['test']['kl']:.2f} | {r['active']} | – | – |")
    for r in results:
        if r["kind"] != "geco":
            continue
        mse, kl = r["test"]["mse"], r["test"]["kl"]
        ref = frontier_kl(mse, elbo)
        gap = "outside sweep" if ref is None else f"{100 * (kl - ref) / ref:+.1f} %"
        fmt = lambda v: ", ".join(f"{x:.3g}" for x in v)  # noqa: E731
        top_lambda, top_kl = path_peaks(out, r["run"])
        lines.append(f"| GECO {r['constraint']} κ = {r['kappa']}, {r['value']} | {r['epochs']} | "
                     f"{fmt(r['steps_at_bound'])} of {r['steps']} | {top_lambda:.3g} | {top_kl:.1f} | {fmt(r['c_ma'])} | {fmt(r['lambda'])} | {mse:.5f} | "
                     f"{kl:.2f} | {r['active']} | {'–' if ref is None else f'{ref:.2f}'} | {gap} |")
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="geco:alg1,geco:warm,geco:pid,elbo:0.01,elbo:0.015,elbo:0.0225,elbo:0.03,"
                   "elbo:0.045", help="comma-separated kind:value (geco:CONTROLLER[:gain=value...] or elbo:GAMMA)")
    p.add_argument("--constraint", default="re")
    p.add_argument("--kappa", default="0.15")
    p.add_argument("--classifier", default=None, help="folder or .npz of the CLA classifier")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True, help="folder for the per-run JSON files")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trace-every", type=int, default=10)
    p.add_argument("--table", action="store_true", help="print the table of the runs in --out and exit")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.table:
        return table(args.out)
    for spec in args.runs.split(","):
        run_one(spec.strip(), args)


if __name__ == "__main__":
    main()
