"""Finding data files on disk, checking their SHA-256, and downloading them when allowed.

Files are looked up, in order, in: the explicit ``data_dir`` (the CLI's
``--data-dir``), the folder named by ``$MINIVAE_DATA``, and the user cache
(``$XDG_CACHE_HOME/minivae``, by default ``~/.cache/minivae``). In each root a
file may sit in the dataset's folder (``ROOT/mnist/train-images-idx3-ubyte.gz``,
the layout of the shared data folder; torchvision's ``ROOT/MNIST/raw/`` also
works) or directly in the root.

Missing files are downloaded from the public mirrors into the first root
(``urllib``, a short timeout, a ``.part`` file renamed only once its checksum is
right), unless ``MINIVAE_OFFLINE=1`` or ``download=False``; otherwise, or when the
network is unreachable, one error lists which files to put in which folder with
their checksums. A file that is present but has the wrong SHA-256 is never used.
"""
from __future__ import annotations

import os
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..fileio import sha256_file as _sha256_file
from .dataset import ChecksumError, MissingDataError

DATA_ENV = "MINIVAE_DATA"
OFFLINE_ENV = "MINIVAE_OFFLINE"
TIMEOUT_S = 15.0
_USER_AGENT = "minivae (https://pypi.org/project/minivae)"
_digests: dict = {}       # (path, size, mtime_ns) -> sha256, so a file is hashed once per process


@dataclass(frozen=True)
class RemoteFile:
    """A published data file: its name, SHA-256, size in bytes and mirror URLs (tried in order)."""
    name: str
    sha256: str
    size: int
    urls: tuple


def cache_dir() -> Path:
    """The per-user cache folder for downloaded data."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minivae"


def offline() -> bool:
    """Whether ``MINIVAE_OFFLINE`` forbids any download attempt."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def search_roots(data_dir=None) -> list[Path]:
    """The folders searched, in order: ``data_dir``, ``$MINIVAE_DATA``, the cache."""
    roots = [data_dir, os.environ.get(DATA_ENV) or None, cache_dir()]
    seen = []
    for root in roots:
        if root is not None:
            path = Path(root).expanduser()
            if path not in seen:
                seen.append(path)
    return seen


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (memoised on path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = _sha256_file(path)
    return _digests[key]


def verify(path, expected_sha256: str) -> Path:
    """Raise :class:`ChecksumError` unless ``path`` has the expected SHA-256."""
    found = sha256_file(path)
    if found != expected_sha256:
        raise ChecksumError(
            f"checksum mismatch for {path}:\n  expected sha256 {expected_sha256}\n"
            f"  found    sha256 {found}\n"
            "The file is corrupt, truncated or not the original release: delete it and "
            "download it again (or put the original file there).")
    return Path(path)


def _candidates(roots, folders, name):
    for root in roots:
        for folder in folders:
            yield root / folder / name
        yield root / name


def _open_url(url: str, timeout: float):
    """One HTTP(S) GET (a seam for tests, which replace it and never touch the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (fixed https/http mirrors)


def _fetch(file: RemoteFile, folder: Path) -> Path:
    """Download ``file`` into ``folder``, verified; raises on failure, keeps no partial file."""
    folder.mkdir(parents=True, exist_ok=True)
    dest, part = folder / file.name, folder / (file.name + ".part")
    failures, mismatch = [], None
    for url in file.urls:
        print(f"minivae: downloading {url} ({file.size:,} bytes) to {folder}", file=sys.stderr)
        try:
            with _open_url(url, TIMEOUT_S) as response, open(part, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        try:
            verify(part, file.sha256)
        except ChecksumError as exc:
            part.unlink(missing_ok=True)
            mismatch = ChecksumError(f"downloaded from {url}: {exc}")
            continue
        os.replace(part, dest)
        return dest
    if mismatch is not None:
        raise mismatch
    raise OSError("; ".join(failures))


def missing_message(dataset: str, files, folder: Path, roots, reason: str) -> str:
    """The one message telling the user which files to put in which folder."""
    lines = [f"{dataset}: {len(files)} data file(s) not found: {', '.join(f.name for f in files)}.",
             f"Put the original files (byte-for-byte, not decompressed) in {folder}/",
             f"  (or in DIR/{folder.name}/ given with --data-dir DIR or ${DATA_ENV}=DIR):"]
    for f in files:
        lines.append(f"    {f.name}  {f.size:,} bytes  sha256 {f.sha256}")
        lines.append(f"      from {f.urls[0]}")
    lines.append("Searched: " + ", ".join(str(r) for r in roots) + ".")
    lines.append(reason)
    return "\n".join(lines)


def locate(dataset: str, files, folders, data_dir=None, download=None) -> list[Path]:
    """Paths of ``files`` (a sequence of :class:`RemoteFile`), each verified by SHA-256.

    ``folders`` are the dataset's folder names inside a root, the first being
    where downloads go. ``download=None`` downloads unless ``MINIVAE_OFFLINE`` is
    set; ``False`` never downloads; ``MINIVAE_OFFLINE=1`` always wins.
    """
    roots = search_roots(data_dir)
    found, missing = {}, []
    for file in files:
        path = next((p for p in _candidates(roots, folders, file.name) if p.is_file()), None)
        if path is None:
            missing.append(file)
        else:
            found[file.name] = verify(path, file.sha256)
    target = roots[0] / folders[0]
    if missing:
        if offline():
            reason = f"Download was not attempted: {OFFLINE_ENV} is set (unset it to download)."
        elif download is False:
            reason = "Download was not attempted (download=False)."
        else:
            reason = None
        for file in missing if reason is None else ():
            try:
                found[file.name] = _fetch(file, target)
            except OSError as exc:
                reason = f"Download failed ({exc})."
                break
        if reason is not None:
            missing = [f for f in missing if f.name not in found]
            raise MissingDataError(missing_message(dataset, missing, target, roots, reason))
    return [found[f.name] for f in files]
