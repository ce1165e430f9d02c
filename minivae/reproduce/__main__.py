"""``python -m minivae.reproduce``: check a claim of the papers with one command.

    python -m minivae.reproduce --list
    python -m minivae.reproduce ID [--quick | --full] [--seeds N] [--data-dir DIR] [--out DIR]
    python -m minivae.reproduce all --quick --data-dir DIR
    python -m minivae.reproduce --write-docs --out DIR     # docs/claims/*.json + docs/results.md table
"""
from __future__ import annotations

import argparse
import os
import sys

from . import claims, record
from .runner import CommandFailed


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minivae.reproduce",
        description="Run the experiment behind a claim of the papers (Asperti 2018/2020, Dai & Wipf "
                    "2019, Rezende & Viola 2018), compare with the paper's value and say reproduced, "
                    "differs or partial, with the evidence in OUT/<id>/claim.json.")
    p.add_argument("claim", nargs="?", help="a claim id (see --list) or 'all'")
    p.add_argument("--list", action="store_true", help="list the claims with their source, the "
                   "paper's value and the estimated cost of --quick and --full on 2 CPU cores")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="data subsets and fewer epochs: all claims in ~15 min on 2 cores (default)")
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the papers' scale (all 60,000 MNIST images, 3 seeds): hours on 2 cores")
    size.add_argument("--tiny", dest="mode", action="store_const", const="tiny",
                      help="a plumbing check on tiny data (the tests use it); numbers mean nothing")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per configuration (default: 1 quick, 3 full)")
    p.add_argument("--dataset", default="mnist",
                   help="data set of the training claims [default: mnist; sprites for plumbing checks]")
    p.add_argument("--data-dir", default=None, help="folder holding the MNIST files (passed to the commands)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default=None,
                   help="backend of every command (default: $MINIVAE_BACKEND or numpy)")
    p.add_argument("--out", default=None, help="output folder [default: runs/reproduce-<mode>]")
    p.add_argument("--write-docs", action="store_true",
                   help="copy OUT/*/claim.json to DOCS/claims/, the two figures to DOCS/, and "
                        "regenerate the claims table of DOCS/results.md")
    p.add_argument("--docs", default="docs", help="the docs folder for --write-docs [default: docs]")
    return p


def _minutes(s):
    return f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.1f} h"


def print_list(seeds):
    print("claims (estimated cost on 2 idle CPU cores; runs shared between claims are counted once "
          "by 'all'):\n")
    for row in claims.listing(seeds):
        print(f"{row['id']:<24} quick {_minutes(row['quick_s']):>9}   full {_minutes(row['full_s']):>9}")
        print(f"    {row['title']}")
        print(f"    source: {row['source']}")
        print(f"    paper:  {row['paper']}")
    ids = list(claims.BY_ID)
    print(f"\nall: quick {_minutes(claims.cost(ids, 'quick', seeds))}, "
          f"full {_minutes(claims.cost(ids, 'full', seeds))}")


def write_docs(out, docs):
    import glob
    import shutil
    target = os.path.join(docs, "claims")
    os.makedirs(target, exist_ok=True)
    copied = 0
    for path in sorted(glob.glob(os.path.join(out, "*", "claim.json"))):
        doc = record.check(__import__("json").load(open(path)))
        shutil.copyfile(path, os.path.join(target, f"{doc['id']}.json"))
        copied += 1
    for fig in ("sparsity.png", "geco-vs-elbo.png"):
        if os.path.exists(os.path.join(out, fig)):
            shutil.copyfile(os.path.join(out, fig), os.path.join(docs, fig))
    docs_list = record.load_dir(target, list(claims.BY_ID))
    path = record.update_results(os.path.join(docs, "results.md"), docs_list,
                                 command="python -m minivae.reproduce --write-docs")
    print(f"copied {copied} claim.json file(s) to {target}; table of {len(docs_list)} claims in {path}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    mode = args.mode or "quick"
    if args.seeds is not None and args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2
    if args.list:
        print_list(args.seeds)
        return 0
    out = args.out or os.path.join("runs", f"reproduce-{mode}")
    if args.write_docs:
        write_docs(out, args.docs)
        return 0
    if not args.claim:
        print("error: name a claim id, 'all', --list or --write-docs (python -m minivae.reproduce --list "
              "shows the ids)", file=sys.stderr)
        return 2
    ids = list(claims.ALL_ORDER) if args.claim == "all" else [args.claim]
    try:
        for i in ids:
            claims.get(i)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    from .run import make_context, run_claim
    ctx = make_context(mode=mode, out=out, seeds=args.seeds, dataset=args.dataset,
                       data_dir=args.data_dir, backend=args.backend)
    print(f"reproduce {', '.join(ids)} in {mode} mode -> {ctx.out} (estimated "
          f"{_minutes(claims.cost(ids, mode, args.seeds))} on 2 idle cores)")
    if mode != "full":
        print(f"note: {mode} mode trains on data subsets with fewer epochs and "
              f"{len(ctx.seeds)} seed(s); --full is the papers' scale")
    verdicts = {}
    try:
        for i in ids:
            verdicts[i] = run_claim(ctx, i, argv=record.python_argv())["verdict"]["verdict"]
    except CommandFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if len(ids) > 1:
        print("\n" + "\n".join(f"{i:<24} {v}" for i, v in verdicts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
