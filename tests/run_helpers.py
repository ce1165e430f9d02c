"""Helpers shared by the run-layer tests: tiny runs, folder snapshots, subprocess commands."""
import hashlib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset", "sprites", "--n-train", "256", "--n-test", "64", "--image-size", "16",
        "--preset", "sprites-dense", "--hidden", "16", "--latent-dim", "3", "--batch-size", "32"]


def snapshot(folder) -> dict:
    """Every file under ``folder`` -> (SHA-256 of its bytes, mode); None when the folder is absent."""
    if not os.path.exists(folder):
        return None
    if os.path.isfile(folder):
        return {"": hashlib.sha256(open(folder, "rb").read()).hexdigest()}
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mode)
    return out


def env(**extra):
    e = dict(os.environ, MINIVAE_OFFLINE="1", PYTHONPATH=ROOT)
    e.pop("MINIVAE_DEBUG", None)
    e.update(extra)
    return e


def run_module(module, *args, timeout=300, **popen):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=env(), timeout=timeout, **popen)


def tiny_settings(**extra) -> dict:
    """TINY as a settings dict (for :func:`minivae.run.resolve`)."""
    settings = {k.lstrip("-").replace("-", "_"): v for k, v in zip(TINY[::2], TINY[1::2])}
    settings.update(extra)
    return settings
