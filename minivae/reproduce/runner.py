"""Run the existing commands as subprocesses and read their run folders.

A command never imports another command (design.md), so the experiments of
``python -m minivae.reproduce`` are the literal commands ``python -m minivae.train``,
``diagnose``, ``evaluate``, ``classifier`` and ``fixedpoint``; the exact command lines
go into claim.json. Each command records itself in its folder
(``.reproduce-<tag>.json``); a later claim that needs the same command with the same
arguments reuses the folder instead of running it again (``all`` shares the dense
runs among five claims).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time


class CommandFailed(RuntimeError):
    pass


class Runner:
    """Runs ``python -m MODULE ARGS`` with the current interpreter, logs to the folder,
    and remembers the commands (``self.commands``) of the claim in progress."""

    def __init__(self, out, *, data_args=(), backend=None, log=print):
        self.out = os.path.normpath(out)
        self.data_args = list(data_args)  # e.g. ["--dataset", "mnist", "--data-dir", D]
        self.backend = backend
        self.log = log
        self.commands: list[str] = []
        self.folders: list[str] = []
        self._help_cache: dict[str, str] = {}

    def folder(self, name):
        return os.path.join(self.out, "runs", name)

    def _backend_args(self, module):
        if self.backend and module in ("minivae.train", "minivae.diagnose", "minivae.evaluate",
                                       "minivae.classifier", "minivae.fixedpoint"):
            return ["--backend", self.backend]
        return []

    def run(self, module, args, *, folder, tag, fresh=False, invalidates=()):
        """Run the command unless ``folder`` holds a record of the same one (then reuse).

        ``fresh``: the command creates ``folder`` (a training run): a stale folder from
        a different command is removed first. ``invalidates``: tags of later commands on
        this folder whose records go when this one actually runs (their inputs changed).
        Returns the seconds it took (0 if reused).
        """
        argv = [str(a) for a in args] + self._backend_args(module)
        text = shlex.join(["python", "-m", module, *argv])
        record = os.path.join(folder, f".reproduce-{tag}.json")
        self.commands.append(text)
        if folder not in self.folders:
            self.folders.append(folder)
        _wait_for_other_process(folder, tag)
        if os.path.exists(record):
            with open(record) as f:
                if json.load(f).get("argv") == argv:
                    self.log(f"  reuse  {text}")
                    return 0.0
        if fresh and os.path.isdir(folder):
            shutil.rmtree(folder)  # only ever a folder under our own --out
        os.makedirs(folder, exist_ok=True)
        for later in invalidates:
            stale = os.path.join(folder, f".reproduce-{later}.json")
            if os.path.exists(stale):
                os.remove(stale)
        self.log(f"  run    {text}")
        start = time.perf_counter()
        lock = _lock_path(folder, tag)
        with open(lock, "w") as f:
            f.write(str(os.getpid()))
        try:
            with open(os.path.join(folder, f".reproduce-{tag}.log"), "w") as logf:
                proc = subprocess.run([sys.executable, "-m", module, *argv], stdout=logf,
                                      stderr=subprocess.STDOUT, env=_child_env())
        finally:
            os.remove(lock)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            with open(os.path.join(folder, f".reproduce-{tag}.log")) as f:
                tail = f.read()[-2000:]
            raise CommandFailed(f"{text} failed (exit {proc.returncode}); its output ends:\n{tail}")
        with open(record, "w") as f:
            json.dump({"argv": argv, "command": text, "seconds": seconds}, f)
        return seconds

    def is_done(self, module, args, *, folder, tag):
        """Whether ``folder`` records this very command (``run`` would reuse it)."""
        argv = [str(a) for a in args] + self._backend_args(module)
        record = os.path.join(folder, f".reproduce-{tag}.json")
        if not os.path.exists(record):
            return False
        with open(record) as f:
            return json.load(f).get("argv") == argv

    def has_flag(self, module, flag):
        """Whether ``python -m module --help`` lists ``flag`` (flags added later)."""
        if module not in self._help_cache:
            proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                                  text=True, env=_child_env())
            self._help_cache[module] = proc.stdout
        return flag in self._help_cache[module]

    def remember(self, commands, folders):
        """Count commands already read in this process as part of the current claim."""
        self.commands.extend(commands)
        self.folders.extend(f for f in folders if f not in self.folders)

    def compute_seconds(self, commands, folders):
        """Seconds the commands took when they ran (from their records), reused or not."""
        total = 0.0
        for folder in folders:
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if name.startswith(".reproduce-") and name.endswith(".json"):
                    with open(os.path.join(folder, name)) as f:
                        rec = json.load(f)
                    if rec.get("command") in commands:
                        total += rec.get("seconds", 0.0)
        return total

    def take_record(self):
        """The commands and folders since the last call (one claim's), then reset."""
        commands, folders = list(dict.fromkeys(self.commands)), list(self.folders)
        self.commands, self.folders = [], []
        return commands, folders


def _lock_path(folder, tag):
    # next to the folder, not in it: a fresh run removes the folder
    return os.path.join(os.path.dirname(os.path.abspath(folder)),
                        f".{os.path.basename(os.path.abspath(folder))}.{tag}.lock")


def _wait_for_other_process(folder, tag, poll=10.0):
    """Two reproduce processes sharing --out (say, two claims run side by side) never
    run the same command on one folder at once: the second waits, then reuses."""
    lock = _lock_path(folder, tag)
    while os.path.exists(lock):
        try:
            with open(lock) as f:
                os.kill(int(f.read().strip() or 0), 0)  # is the holder alive?
        except (ValueError, ProcessLookupError, FileNotFoundError):
            try:
                os.remove(lock)  # a stale lock of a killed process
            except FileNotFoundError:
                pass
            return
        except PermissionError:
            pass
        time.sleep(poll)


def _child_env():
    """The child sees the same minivae as this process (a checkout run with PYTHONPATH)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


# ---- reading run folders ---------------------------------------------------------

def read_json(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise CommandFailed(f"{path} is missing: the command that writes it did not run or "
                            "failed; rerun the claim")
    with open(path) as f:
        return json.load(f)


def read_metrics(folder, name="metrics.jsonl"):
    with open(os.path.join(folder, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def per_epoch_means(records, keys=("kl", "mse")):
    """Mean of each logged key per epoch (the training curves at epoch resolution)."""
    by_epoch: dict[int, list] = {}
    for r in records:
        by_epoch.setdefault(int(r["epoch"]), []).append(r)
    out = []
    for e in sorted(by_epoch):
        rows = by_epoch[e]
        out.append({"epoch": e, "step": rows[-1]["step"],
                    **{k: sum(r[k] for r in rows) / len(rows) for k in keys if k in rows[0]}})
    return out
