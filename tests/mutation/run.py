"""Run the curated mutants: ``python -m tests.mutation [--jobs 2] [--only ID ...] [--list]``.

For each mutant, in a scratch copy of the repository (a plain copy, not a git
worktree, made once per worker under a temporary folder): check that its anchor line
exists exactly once, apply the one-line change, run the mutant's target test files
with ``pytest -x -q -m "not slow"`` (the same tests CI runs, less the long training runs),
restore the file, and classify:

* **killed**     the tests failed (or timed out) with the mutant in place;
* **survived**   the tests passed: no test notices the bug;
* **stale**      the anchor line is missing or not unique (the code moved on: re-anchor it);
* **equivalent** documented as unable to change any output (expected to survive).

Before any mutant, the union of target files runs once unmutated: a red baseline
would make every "killed" meaningless, so the run stops there.
The score is killed / (mutants − stale − equivalent).
"""
from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

from .catalogue import MUTANTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache", "runs", "*.egg-info",
                                ".mypy_cache", ".ruff_cache")


def find_anchor(lines, text):
    """Indices of the lines whose stripped text equals ``text``."""
    return [i for i, line in enumerate(lines) if line.strip() == text]


def anchor_status(root, m):
    path = os.path.join(root, m.file)
    if not os.path.isfile(path):
        return "stale", f"{m.file} does not exist"
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    hits = find_anchor(lines, m.find)
    if len(hits) != 1:
        return "stale", f"anchor found {len(hits)} times in {m.file}"
    return "ok", hits[0]


def module_of(m):
    """``vae.geco`` for minivae/vae/geco.py, the package for the others (``ops``, ``twostage``...)."""
    parts = m.file[:-3].split("/")[1:]
    return ".".join(parts[:2]) if parts[0] == "vae" else parts[0]


def pytest_cmd(tests):
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]


def run_tests(root, tests, timeout):
    env = {**os.environ, "PYTHONPATH": root, "MINIVAE_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(pytest_cmd(tests), cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]


def run_mutant(root, m, timeout):
    status, where = anchor_status(root, m)
    if status == "stale":
        return "stale", where
    path = os.path.join(root, m.file)
    with open(path, encoding="utf-8") as f:
        original = f.read()
    lines = original.split("\n")
    indent = lines[where][: len(lines[where]) - len(lines[where].lstrip())]
    lines[where] = indent + m.replace
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    try:
        rc, tail = run_tests(root, m.tests, timeout)
    finally:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original)
    if rc == "timeout":
        return "killed", "timed out"
    if rc == 0:
        return ("equivalent" if m.equivalent else "survived"), tail[0] if tail else ""
    if rc in (4, 5):  # usage error / nothing collected: the catalogue is wrong, not the code
        return "stale", f"pytest exit {rc}: {tail[0] if tail else ''}"
    return "killed", tail[0] if tail else ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=2, help="scratch copies run in parallel (1 or 2; default 2)")
    p.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the mutants and their anchors, run nothing")
    p.add_argument("--timeout", type=float, default=600, help="seconds per mutant before it counts as killed")
    args = p.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.only and len(mutants) != len(set(args.only)):
        print(f"unknown mutant id(s): {sorted(set(args.only) - {m.id for m in mutants})}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutants:
            status, where = anchor_status(ROOT, m)
            print(f"{m.id:28s} {m.file:32s} {'line %d' % (where + 1) if status == 'ok' else where}")
        per_module = Counter(module_of(m) for m in mutants)
        print(f"{len(mutants)} mutants: " + ", ".join(f"{k} {v}" for k, v in sorted(per_module.items())))
        return 0
    jobs = max(1, min(args.jobs, 2))
    scratch = tempfile.mkdtemp(prefix="minivae-mutation-")
    roots = []
    try:
        for j in range(jobs):
            dst = os.path.join(scratch, f"copy{j}")
            shutil.copytree(ROOT, dst, ignore=IGNORE)
            roots.append(dst)
        baseline = sorted({t for m in mutants for t in m.tests})
        t0 = time.perf_counter()
        rc, tail = run_tests(roots[0], baseline, None)
        print(f"baseline ({len(baseline)} test files, unmutated): exit {rc} {tail[0] if tail else ''} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
        if rc != 0:
            print("the unmutated tests fail: fix them first", file=sys.stderr)
            return 1
        todo, results, lock = queue.Queue(), {}, threading.Lock()
        for m in mutants:
            todo.put(m)

        def worker(root):
            while True:
                try:
                    m = todo.get_nowait()
                except queue.Empty:
                    return
                t = time.perf_counter()
                outcome, detail = run_mutant(root, m, args.timeout)
                with lock:
                    results[m.id] = (outcome, detail)
                    print(f"{outcome:10s} {m.id:28s} {time.perf_counter() - t:5.0f}s  {detail}", flush=True)

        threads = [threading.Thread(target=worker, args=(r,)) for r in roots]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counts = Counter(outcome for outcome, _ in results.values())
    scored = len(mutants) - counts["stale"] - counts["equivalent"]
    print(f"\n{len(mutants)} mutants: {counts['killed']} killed, {counts['survived']} survived, "
          f"{counts['equivalent']} equivalent, {counts['stale']} stale")
    for m in mutants:
        outcome, detail = results[m.id]
        if outcome in ("survived", "stale"):
            print(f"  {outcome}: {m.id} ({m.file}) breaks {m.breaks}: {detail}")
        if outcome == "equivalent":
            print(f"  equivalent: {m.id}: {m.equivalent}")
    if scored:
        print(f"mutation score: {counts['killed']}/{scored} = {100 * counts['killed'] / scored:.1f}% "
              f"(stale and equivalent mutants excluded)")
    return 0 if counts["survived"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
