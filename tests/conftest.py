"""Shared fixtures: every test starts on NumPy/float32/seed 0; ``xp`` runs a test per backend."""
import functools

import pytest

from minivae import backend


@functools.lru_cache(maxsize=None)
def _available(name):
    return backend.is_available(name)


@pytest.fixture(autouse=True)
def _reset_backend():
    backend.use("numpy", dtype="float32", seed=0)
    yield
    backend.use("numpy", dtype="float32", seed=0)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.cupy)])
def xp(request):
    """The array module of each available backend, set active in float64 (gradient checks).

    CuPy runs are skipped cleanly when CuPy or a GPU is missing.
    """
    if not _available(request.param):
        pytest.skip("CuPy or a CUDA GPU is not available")
    return backend.use(request.param, dtype="float64", seed=0)
