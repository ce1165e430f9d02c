"""Shared fixtures: every test starts on NumPy/float32/seed 0; ``xp`` runs a test per backend.

CuPy tests run on real CuPy when a CUDA GPU is usable (test ids say ``cupy``) and on
the strict CPU stand-in in ``tests/standin/cupy`` otherwise (ids say ``standin``):
this module then puts the stand-in in ``sys.modules['cupy']`` for the whole session.
``MINIVAE_TEST_STANDIN=1`` forces the stand-in even where a GPU is present.
"""
import importlib
import os
import sys

import pytest

from minivae import backend

STANDIN_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin")


def _real_cupy_usable():
    if os.environ.get("MINIVAE_TEST_STANDIN") == "1":
        return False
    try:
        import cupy  # noqa: PLC0415
        return getattr(cupy, "__standin__", False) is False and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def load_standin():
    """The stand-in's modules (``{'cupy': ..., 'cupy.random': ...}``), imported under CuPy's names
    and then taken out of ``sys.modules`` again, so real CuPy (if loaded) is left as it was."""
    saved = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, STANDIN_PATH)
    try:
        importlib.import_module("cupy")
        for sub in ("cupy._core", "cupy._kernels", "cupy.cuda", "cupy.lib", "cupy.lib.stride_tricks",
                    "cupy.linalg", "cupy.random"):
            importlib.import_module(sub)
        modules = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    finally:
        sys.path.remove(STANDIN_PATH)
        for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return modules


os.environ.setdefault("MINIVAE_STANDIN_QUIET", "1")   # no stand-in notice in test output
REAL_GPU = _real_cupy_usable()
CUPY_ID = "cupy" if REAL_GPU else "standin"      # what CuPy test ids say
STANDIN = load_standin()
if not REAL_GPU:
    sys.modules.update(STANDIN)


def pytest_configure(config):
    config.addinivalue_line("markers", "standin: runs CuPy code on the CPU stand-in (no GPU)")


def pytest_report_header(config):
    return (f"cupy: {'real CuPy on a CUDA GPU' if REAL_GPU else 'CPU stand-in (tests/standin/cupy), no GPU'}"
            f" (test ids say {CUPY_ID!r})")


_CUPY_MARKS = [pytest.mark.cupy] + ([] if REAL_GPU else [pytest.mark.standin])


@pytest.fixture(autouse=True)
def _reset_backend():
    backend.use("numpy", dtype="float32", seed=0)
    yield
    backend.use("numpy", dtype="float32", seed=0)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=_CUPY_MARKS, id=CUPY_ID)])
def xp(request):
    """The array module of each backend, set active in float64 (gradient checks):
    NumPy, then CuPy on a GPU or the stand-in without one."""
    return backend.use(request.param, dtype="float64", seed=0)


@pytest.fixture(params=[pytest.param("cupy", marks=_CUPY_MARKS, id=CUPY_ID)])
def cupy_backend(request):
    """The name ``'cupy'`` for CPU/GPU parity tests, with the id saying which CuPy runs."""
    return request.param


@pytest.fixture(params=["standin"])
def standin(monkeypatch):
    """The stand-in as ``cupy`` for this test even on a GPU machine (transfer counts),
    with its transfer log cleared."""
    for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
        monkeypatch.delitem(sys.modules, k)
    for k, v in STANDIN.items():
        monkeypatch.setitem(sys.modules, k, v)
    STANDIN["cupy"].LOG.clear()
    yield STANDIN["cupy"]
    backend.use("numpy")


@pytest.fixture
def no_cupy(monkeypatch):
    """A machine without CuPy: ``import cupy`` fails, whatever is installed."""
    for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.setitem(sys.modules, "cupy", None)


def standin_env():
    """Environment for a subprocess (``python -m minivae...``) that must find the stand-in as ``cupy``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, MINIVAE_OFFLINE="1", MINIVAE_STANDIN_QUIET="0",
                PYTHONPATH=os.pathsep.join([STANDIN_PATH, root]))
