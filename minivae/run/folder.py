"""The run folder: its files, its lock, and the one way to write them.

A run folder holds one run: ``config.json`` (the resolved configuration),
``checkpoint.npz``, ``metrics.jsonl``, ``report.json``, images and figures; a second
stage adds ``stage2.*``. Guarantees (each tested):

* **one writer at a time** -- :meth:`RunFolder.lock` holds an exclusive ``flock`` on
  ``.minivae.lock`` for the writer's whole life; a second writer is refused in one
  line; a lock left by a dead process (the kernel drops a dead process's flock) is
  taken over with a message naming the old pid;
* **never someone else's folder** -- a non-empty folder that holds no minivae run is
  refused before anything is written;
* every file goes through :mod:`minivae.fileio` (atomic, umask-respecting), and the
  temporary files of a killed writer are removed when the next writer takes the lock.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from ..fileio import atomic_write_json, remove_stale_temporaries

LOCK_NAME = ".minivae.lock"
CONFIG, CHECKPOINT, METRICS, REPORT = "config.json", "checkpoint.npz", "metrics.jsonl", "report.json"
# files any minivae command writes into a run folder (a folder holding one of the first three is a run)
RUN_MARKERS = (CONFIG, CHECKPOINT, "stage2.npz")


class RunError(Exception):
    """Base of the run layer's refusals: a command prints the message in one line and exits 2."""


class RunFolderError(RunError, ValueError):
    """The folder cannot be used as asked (held by another writer, foreign, a file, ...)."""


def check_output_path(path, what="--out") -> str:
    """``path`` as a folder path that could be created: refuse a file or a path under a file."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunFolderError(f"{what} {path!r} is a file, not a folder; choose a folder path")
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise RunFolderError(f"{what} {path!r} lies under {parent!r}, which is a file; choose a folder path")
    return path


class RunFolder:
    """Paths and guarantees of one run folder (see the module docstring)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock_fd = None

    def file(self, name) -> str:
        return os.path.join(self.path, name)

    # -- what the folder holds ---------------------------------------------------------
    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def is_run(self) -> bool:
        return self.exists() and any(os.path.exists(self.file(n)) for n in RUN_MARKERS)

    def has_checkpoint(self) -> bool:
        return os.path.isfile(self.file(CHECKPOINT))

    def foreign_entries(self) -> list:
        """Entries of a folder that holds no run. Hidden names (``.name``: the lock, a tool's
        bookkeeping such as ``python -m minivae.reproduce``'s records) do not count."""
        if not self.exists() or self.is_run():
            return []
        return sorted(n for n in os.listdir(self.path) if not n.startswith("."))

    def refuse_foreign(self, what="--out") -> None:
        entries = self.foreign_entries()
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise RunFolderError(f"{what} {self.path!r} is not empty and holds no minivae run ({shown}); "
                                 "choose a new or empty folder (nothing was written)")

    # -- the lock -----------------------------------------------------------------------
    def lock(self, command: str = "minivae", log=None) -> "RunFolder":
        """Take the folder's exclusive writer lock (creating the folder); refuse if held."""
        check_output_path(self.path)
        os.makedirs(self.path, exist_ok=True)
        path = self.file(LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            import fcntl  # noqa: PLC0415  (POSIX; see _lock_without_fcntl elsewhere)
        except ImportError:  # pragma: no cover - Windows: best effort, no lock
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunFolderError(f"{self.path!r} is being written by another minivae process "
                                     f"({_describe(holder)}); wait for it to finish or choose another "
                                     "folder") from None
        previous = _read_holder(fd)
        if previous and log is not None:
            log(f"note: took over the lock of {self.path!r} left by a process that is gone "
                f"({_describe(previous)})")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._lock_fd = fd
        removed = remove_stale_temporaries(self.path)
        if removed and log is not None:
            log(f"note: removed {len(removed)} temporary file(s) left by a killed writer in {self.path!r}")
        return self

    def unlock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.file(LOCK_NAME))     # a clean folder after a clean exit
        os.close(self._lock_fd)                 # closing drops the flock
        self._lock_fd = None

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    def __enter__(self):
        if not self.locked:
            self.lock()
        return self

    def __exit__(self, *exc):
        self.unlock()

    # -- reading and writing --------------------------------------------------------------
    def read_json(self, name, default=None):
        path = self.file(name)
        if not os.path.isfile(path):
            return default
        try:
            with open(path) as f:
                return json.load(f)
        except ValueError as exc:
            raise RunFolderError(f"{path} is not valid JSON ({exc}); the run folder is damaged") from None

    def write_json(self, name, obj) -> str:
        self._require_lock(name)
        atomic_write_json(self.file(name), obj)
        return self.file(name)

    def update_report(self, section: str, value) -> str:
        """Set ``report.json[section] = value`` (read-modify-write under the lock)."""
        report = self.read_json(REPORT, {})
        if not isinstance(report, dict):
            raise RunFolderError(f"{self.file(REPORT)} does not hold a JSON object; the run folder is damaged")
        report[section] = value
        return self.write_json(REPORT, report)

    def _require_lock(self, name):
        if not self.locked:
            raise RunFolderError(f"internal: writing {name} into {self.path!r} without holding its lock")


def _read_holder(fd) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data.decode()) if data.strip() else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "unknown process"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, {holder.get('command', 'minivae')}, "
            f"since {holder.get('started')}")


__all__ = ["CHECKPOINT", "CONFIG", "METRICS", "REPORT", "RunError", "RunFolder", "RunFolderError", "check_output_path"]
