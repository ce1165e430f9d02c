"""Atomic file writing, the one way minivae writes a file it must not half-write.

Every output (checkpoints, ``config.json``, ``report.json``, PNG grids, ``.npy``
samples) goes through :func:`atomic_file`: a temporary file in the same folder,
fsync, then ``os.replace`` -- a crash leaves either the old file or the new one,
never a torn one. Temporary files are named ``.<name>.<random>.tmp`` so that a
writer killed mid-write leaves something :func:`remove_stale_temporaries` can
recognise. Files get the mode an ordinary ``open()`` would give (0666 minus the
umask), not ``mkstemp``'s private 0600.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile

import numpy

TEMP_PATTERN = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")


def _umask() -> int:
    # os.umask can only be read by setting it; put it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb"):
    """``with atomic_file(path) as f:`` -- write ``f``; ``path`` appears whole on success only."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX; not on Windows)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data)


def jsonable(value):
    """``value`` with arrays and NumPy scalars as lists/numbers, non-finite floats as strings
    ("nan", "inf": JSON has no such numbers, and a silent ``null`` would hide them)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "get") and hasattr(value, "dtype") and not isinstance(value, numpy.ndarray):
        value = value.get()  # a device array (CuPy): an explicit copy to the host
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def atomic_write_json(path, obj) -> None:
    """``obj`` as indented, key-sorted JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_temporaries(folder) -> list:
    """Delete the temporary files a killed writer left in ``folder``; returns their names.

    Call it only while holding the folder's lock: another live writer's temporary
    file looks the same.
    """
    removed = []
    for name in sorted(os.listdir(folder)):
        if TEMP_PATTERN.match(name) and os.path.isfile(os.path.join(folder, name)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed.append(name)
    return removed


__all__ = ["atomic_file", "atomic_write_bytes", "atomic_write_json", "jsonable", "remove_stale_temporaries",
           "sha256_file"]
