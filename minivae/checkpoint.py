"""Checkpoints: one ``.npz`` that ``numpy.load(path, allow_pickle=False)`` reads, written atomically.

No pickle anywhere (design.md, "Checkpoints"): every entry is a numeric array or
a 0-d unicode array holding JSON. Key layout (format version 1)::

    format              "minivae-checkpoint"   (the marker: foreign files lack it)
    format_version      1                      (int64; newer versions are refused)
    minivae_version     "0.1.0"                (informational)
    config              JSON object            (the run's configuration)
    step, epoch         int64 counters
    rng_state           JSON                   (backend.rng_state() unless given)
    extra_json          JSON                   (anything JSON-serialisable, or null)
    model/<a>/<b>       parameters and buffers, the dotted names "/"-joined
                        ("encoder.0.weight" -> "model/encoder/0/weight"), host arrays
    optim/__meta__      JSON: optimiser type, t, hyperparameters, param_shapes
    optim/<buffer>      flat optimiser state (Adam: optim/m, optim/v; SGD: optim/momentum_buffer)
    objective/__json__  JSON of the objective state, each array in it replaced by
                        {"__minivae_array__": "objective/<path>"}
    objective/<path>    those arrays (γ, λ, C_ma ... as arrays; Python numbers stay in the JSON)
    extra/<name>        extra_arrays

The file is written to a temporary file in the same folder, flushed and
fsync'ed, then ``os.replace``d over the target, so a crash (or an exception)
mid-write leaves the previous checkpoint untouched and no temporary behind.

Loading validates everything before changing anything: a model or optimiser is
modified only when the whole checkpoint fits it.
"""
from __future__ import annotations

import json
import operator
import os
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy

from . import backend
from .autograd import Tensor
from .fileio import atomic_file

FORMAT = "minivae-checkpoint"
FORMAT_VERSION = 1
_ARRAY_REF = "__minivae_array__"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the model/optimiser it is loaded into."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read (host NumPy arrays; the model/optimiser are restored separately)."""

    path: str
    format_version: int
    config: dict
    step: int
    epoch: int
    objective_state: dict | None
    rng_state: dict | None
    extra_json: object
    extra_arrays: dict = field(default_factory=dict)
    model_state: dict = field(default_factory=dict)       # dotted name -> array
    optimizer_state: dict | None = None                    # as Optimizer.state_dict()


# ============================================================================ saving

def save_checkpoint(path, model, optimizer=None, *, config=None, step: int = 0, epoch: int = 0,
                    objective_state=None, rng_state=None, extra_json=None, extra_arrays=None) -> str:
    """Write one checkpoint ``.npz`` atomically; returns the path written.

    ``model`` (or ``None``) contributes its ``state_dict()`` (parameters and
    buffers); ``optimizer`` its ``state_dict()``; ``objective_state`` is a dict of
    numbers/arrays (nested dicts allowed); ``rng_state`` defaults to
    :func:`minivae.backend.rng_state`. CuPy arrays are copied to the host.
    """
    from . import __version__  # noqa: PLC0415  (the package is initialised before any call)

    arrays = {
        "format": numpy.array(FORMAT),
        "format_version": numpy.array(FORMAT_VERSION, dtype=numpy.int64),
        "minivae_version": numpy.array(__version__),
        "config": _json_array("config", {} if config is None else config),
        "step": numpy.array(_counter("step", step), dtype=numpy.int64),
        "epoch": numpy.array(_counter("epoch", epoch), dtype=numpy.int64),
        "rng_state": _json_array("rng_state", backend.rng_state() if rng_state is None else rng_state),
        "extra_json": _json_array("extra_json", extra_json),
    }
    if model is not None:
        for name, value in model.state_dict().items():
            if "/" in name:
                raise CheckpointError(f"model entry {name!r} contains '/', which checkpoints use as separator")
            arrays["model/" + name.replace(".", "/")] = _host_array(f"model entry {name!r}", value)
    if optimizer is not None:
        meta = {}
        for key, value in optimizer.state_dict().items():
            if hasattr(value, "shape") and hasattr(value, "dtype"):
                arrays[f"optim/{key}"] = _host_array(f"optimiser state {key!r}", value)
            else:
                meta[key] = value
        arrays["optim/__meta__"] = _json_array("optimiser state", meta)
    if objective_state is not None:
        if not isinstance(objective_state, dict):
            raise TypeError(f"objective_state must be a dict, got {type(objective_state).__name__}")
        tree = _split_arrays(objective_state, "objective", arrays)
        arrays["objective/__json__"] = _json_array("objective_state", tree)
    for name, value in (extra_arrays or {}).items():
        arrays[f"extra/{name}"] = _host_array(f"extra array {name!r}", value)
    _atomic_savez(os.fspath(path), arrays)
    return os.fspath(path)


def _counter(what, value) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None


def _json_array(what, value):
    try:
        return numpy.array(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable ({exc}); use numbers, strings, lists "
                        "and dicts (convert paths and arrays first)") from None


def _host_array(what, value) -> numpy.ndarray:
    if isinstance(value, Tensor):
        value = value.data
    array = backend.to_host(value)
    if array.dtype.hasobject:
        raise CheckpointError(f"{what} is an object array; checkpoints hold numeric arrays only")
    return array  # (not ascontiguousarray: it would turn a 0-d γ into shape (1,))


def _split_arrays(tree, path, arrays):
    """The JSON part of ``tree``; its arrays go to ``arrays[path/...]`` with a reference left behind."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            if not isinstance(key, str) or "/" in key or key.startswith("__"):
                raise TypeError(f"objective_state key {key!r} at {path!r} must be a string without "
                                "'/' and not starting with '__'")
            out[key] = _split_arrays(value, f"{path}/{key}", arrays)
        return out
    if isinstance(tree, (list, tuple)):
        return [_split_arrays(v, f"{path}/{i}", arrays) for i, v in enumerate(tree)]
    if isinstance(tree, numpy.generic):
        return tree.item()  # a NumPy scalar: exact as a Python number
    if isinstance(tree, Tensor) or (hasattr(tree, "shape") and hasattr(tree, "dtype")):
        arrays[path] = _host_array(f"objective_state entry {path!r}", tree)
        return {_ARRAY_REF: path}
    return tree  # numbers, strings, None: checked by json.dumps


def _atomic_savez(path: str, arrays: dict) -> None:
    """``numpy.savez`` through :func:`minivae.fileio.atomic_file` (temp file, fsync, rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write checkpoint {path}: folder {folder} does not exist")
    with atomic_file(path) as f:
        numpy.savez(f, allow_pickle=False, **arrays)


# ============================================================================ loading

def load_checkpoint(path, model=None, optimizer=None, *, restore_rng: bool = False) -> Checkpoint:
    """Read a checkpoint; restore ``model`` and ``optimizer`` in place when given.

    Parameters go through ``model.load_state_dict`` (cast to the model's
    backend and dtype; optimiser views stay views). With ``restore_rng=True`` the
    backend generator is reset to the saved state as well. Raises
    :class:`CheckpointError` for a missing, corrupt, foreign, object-holding or
    too-new file, and for one that does not fit ``model``/``optimizer`` (nothing
    is modified then).
    """
    path = os.fspath(path)
    arrays = _read_npz(path)
    version = int(arrays["format_version"]) if "format_version" in arrays else 0
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}, newer than this "
                              f"minivae supports ({FORMAT_VERSION}); upgrade minivae to load it")
    if version < 1:
        raise CheckpointError(f"checkpoint {path} has no valid format_version; it is corrupt")

    def text(key, default="null"):
        try:
            return json.loads(str(arrays[key])) if key in arrays else json.loads(default)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt: entry {key!r} is not valid JSON ({exc})") from None

    model_state = {k[len("model/"):].replace("/", "."): v for k, v in arrays.items() if k.startswith("model/")}
    optimizer_state = None
    if "optim/__meta__" in arrays:
        optimizer_state = dict(text("optim/__meta__"))
        optimizer_state.update({k[len("optim/"):]: v for k, v in arrays.items()
                                if k.startswith("optim/") and k != "optim/__meta__"})
    objective_state = None
    if "objective/__json__" in arrays:
        objective_state = _join_arrays(text("objective/__json__"), arrays, path)
    ckpt = Checkpoint(
        path=path, format_version=version, config=text("config", "{}"),
        step=int(arrays.get("step", 0)), epoch=int(arrays.get("epoch", 0)),
        objective_state=objective_state, rng_state=text("rng_state"), extra_json=text("extra_json"),
        extra_arrays={k[len("extra/"):]: v for k, v in arrays.items() if k.startswith("extra/")},
        model_state=model_state, optimizer_state=optimizer_state)

    # validate everything first, then modify: a refused checkpoint changes nothing
    if model is not None:
        _check_model(path, model, model_state)
    if optimizer is not None:
        if optimizer_state is None:
            raise CheckpointError(f"checkpoint {path} holds no optimiser state; "
                                  "load it without optimizer= (and start the optimiser afresh)")
        problems = optimizer._state_problems(optimizer_state)
        if problems:
            raise CheckpointError(f"checkpoint {path}: optimiser state does not fit: " + "; ".join(problems))
    if model is not None:
        model.load_state_dict(model_state)
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    if restore_rng and ckpt.rng_state is not None:
        backend.set_rng_state(ckpt.rng_state)
    return ckpt


def _read_npz(path: str) -> dict:
    """Every entry of the file as a host array, or one clear CheckpointError."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint path {path} is a folder, not a file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise CheckpointError(f"{path} is not a minivae checkpoint: not an .npz (zip) archive"
                              + (" (the file is empty)" if not head else ""))
    try:
        npz = numpy.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise _corrupt(path, exc) from None
    with npz:
        keys = list(npz.files)
        marker = _read_entry(npz, "format", path) if "format" in keys else None
        if marker is None or marker.dtype.kind != "U" or marker.ndim != 0 or str(marker) != FORMAT:
            shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
            raise CheckpointError(f"{path} is not a minivae checkpoint (no {FORMAT!r} format marker; "
                                  f"it holds: {shown or 'nothing'})")
        return {key: _read_entry(npz, key, path) for key in keys}


def _read_entry(npz, key: str, path: str) -> numpy.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "bject arrays" in str(exc):
            raise CheckpointError(
                f"checkpoint {path} holds an object array under {key!r}, which cannot be loaded "
                "safely (allow_pickle=False); checkpoints hold numeric arrays only -- re-save it "
                "with minivae.checkpoint.save_checkpoint") from None
        raise _corrupt(path, exc) from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, exc) from None


def _corrupt(path, exc) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                           "use an earlier checkpoint or retrain")


def _join_arrays(tree, arrays, path):
    """Undo :func:`_split_arrays`: put the referenced arrays back into the JSON tree."""
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY_REF}:
            key = tree[_ARRAY_REF]
            if key not in arrays:
                raise CheckpointError(f"checkpoint {path} is corrupt: objective array {key!r} is missing")
            return arrays[key]
        return {k: _join_arrays(v, arrays, path) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join_arrays(v, arrays, path) for v in tree]
    return tree


def _check_model(path, model, state) -> None:
    own = {name: tuple(value.shape) for name, value in model._device_state().items()}
    missing = [n for n in own if n not in state]
    unexpected = [n for n in state if n not in own]
    shapes = [f"{n}: checkpoint {tuple(state[n].shape)} vs model {s}"
              for n, s in own.items() if n in state and tuple(state[n].shape) != s]
    # a parameter is a number: strings or booleans would be cast silently by the in-place copy
    kinds = [f"{n}: {state[n].dtype}" for n in own if n in state and state[n].dtype.kind not in "fiu"]
    if kinds:
        raise CheckpointError(f"checkpoint {path} holds non-numeric model arrays ({', '.join(kinds[:3])}); "
                              "it was not written by minivae or is damaged")
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {missing}")
        if unexpected:
            parts.append(f"not in the model: {unexpected}")
        if shapes:
            parts.append(f"shape mismatches: {shapes}")
        raise CheckpointError(f"checkpoint {path} does not match the model ({'; '.join(parts)}); "
                              "build the model with the checkpoint's config")
