"""Backend selection, dtype, transfers and the seeded generator."""
import numpy as np
import pytest

from minivae import Tensor, backend


def test_unknown_backend_lists_the_choices():
    with pytest.raises(backend.BackendError, match="unknown backend 'tpu'; choose one of: numpy, cupy"):
        backend.use("tpu")


def test_cupy_request_without_cupy_is_one_clear_line(no_cupy):
    backend._state.name = None
    assert not backend.is_available("cupy")
    with pytest.raises(backend.BackendError) as info:
        backend.use("cupy")
    message = str(info.value)
    assert "\n" not in message and "pip install -e \".[gpu]\"" in message and "--backend numpy" in message


def test_cupy_without_a_device_is_one_clear_line(standin, monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    monkeypatch.setattr(standin.cuda.runtime, "getDeviceCount", no_device)
    with pytest.raises(backend.BackendError) as info:
        backend.use("cupy")
    message = str(info.value)
    assert "\n" not in message and "no usable CUDA GPU" in message and "--backend numpy" in message
    monkeypatch.setattr(standin.cuda.runtime, "getDeviceCount", lambda: 0)
    with pytest.raises(backend.BackendError, match="found no CUDA GPU; use --backend numpy"):
        backend.use("cupy")


def test_describe_names_the_device(standin):
    assert backend.describe().startswith("numpy ")
    backend.use("cupy")
    text = backend.describe()
    assert text.startswith("cupy 0.0.0+minivae.standin on ") and "not a GPU" in text


def test_environment_variable_selects_the_backend(monkeypatch):
    monkeypatch.setenv("MINIVAE_BACKEND", "numpy")
    backend._state.name = None
    assert backend.name() == "numpy"
    monkeypatch.setenv("MINIVAE_BACKEND", "fortran")
    backend._state.name = None
    with pytest.raises(backend.BackendError, match="unknown backend 'fortran'"):
        backend.xp()
    backend.use("numpy")


def test_default_dtype(xp):
    backend.set_default_dtype("float32")
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert backend.to_device(np.ones(2)).dtype == np.float32
    assert backend.to_device(np.arange(3)).dtype.kind == "i"  # integers keep their kind
    backend.set_default_dtype("float64")
    assert Tensor([1.0]).dtype == np.float64
    with pytest.raises(backend.BackendError, match="unsupported dtype 'float16'"):
        backend.set_default_dtype("float16")


def test_host_device_round_trip(xp):
    a = np.arange(6.0).reshape(2, 3)
    d = backend.to_device(a)
    assert backend.get_array_module(d) is xp
    assert np.array_equal(backend.to_host(d), a)
    assert isinstance(Tensor(a).numpy(), np.ndarray)


def test_seeded_generator_and_its_state(xp):
    backend.manual_seed(7)
    first = backend.to_host(backend.rng().standard_normal(4))
    if backend.name() == "numpy":   # seed s means the generator default_rng(s), nothing else
        assert np.array_equal(first, np.random.default_rng(7).standard_normal(4))
    backend.manual_seed(8)
    assert not np.array_equal(backend.to_host(backend.rng().standard_normal(4)), first)
    backend.manual_seed(7)
    assert np.array_equal(backend.to_host(backend.rng().standard_normal(4)), first)
    state = backend.rng_state()
    after = backend.to_host(backend.rng().standard_normal(3))
    backend.set_rng_state(state)
    if backend.name() == "numpy":  # CuPy generators restore from the seed only
        assert np.array_equal(backend.to_host(backend.rng().standard_normal(3)), after)
