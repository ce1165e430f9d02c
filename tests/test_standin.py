"""The CuPy stand-in itself: it must refuse every implicit host/device crossing CuPy
refuses (else the CuPy tests it runs prove nothing), allow and log the explicit ones,
and compute what NumPy computes. Every test takes the ``standin`` fixture (ids say
``standin``), so these run on GPU machines too."""
import copy

import numpy as np
import pytest

from minivae import backend
from minivae.optim import adam

IMPLICIT = "Implicit conversion to a NumPy array is not allowed"


@pytest.fixture
def cp(standin):
    return standin


@pytest.fixture
def d(cp):
    return cp.asarray(np.arange(6.0).reshape(2, 3))


def test_it_is_not_numpy_and_says_what_it_is(cp, d):
    assert not isinstance(d, np.ndarray) and type(d) is cp.ndarray
    assert cp.__standin__ is True and "standin" in cp.__version__
    assert b"not a GPU" in cp.cuda.runtime.getDeviceProperties(0)["name"]
    assert backend.get_array_module(d) is cp


@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda a: a.__array__(), np.ascontiguousarray],
                         ids=["asarray", "array", "__array__", "ascontiguousarray"])
def test_numpy_conversion_is_refused(d, convert):
    with pytest.raises(TypeError, match=IMPLICIT):
        convert(d)


@pytest.mark.parametrize("ufunc", [np.exp, np.isfinite, np.negative], ids=lambda f: f.__name__)
def test_numpy_ufuncs_are_refused(d, ufunc):
    with pytest.raises(TypeError, match="does not support ufuncs"):
        ufunc(d)
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.add(d, 1.0)


@pytest.mark.parametrize("fn", [np.sum, np.mean, np.allclose, np.concatenate, np.where, np.linalg.norm],
                         ids=lambda f: f.__name__)
def test_numpy_functions_are_refused(d, fn):
    args = {np.allclose: (d, d), np.concatenate: ([d, d],), np.where: (d > 1, d, 0.0)}.get(fn, (d,))
    with pytest.raises(TypeError):
        fn(*args)


def test_host_arrays_are_refused_on_the_device_side(cp, d):
    host = np.ones(3)
    for attempt in (lambda: d + host, lambda: host + d, lambda: d * host, lambda: cp.maximum(d, host),
                    lambda: cp.concatenate([d[0], host]), lambda: d.__setitem__(0, host),
                    lambda: d[np.array([0, 1])], lambda: cp.add.at(d, np.array([0]), 1.0)):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            attempt()


def test_a_device_integer_is_no_python_index(cp):
    with pytest.raises(TypeError, match="cannot be used as a Python index"):
        [10, 20, 30][cp.asarray(1)]
    assert [10, 20, 30][int(cp.asarray(1))] == 20


def test_in_place_with_a_host_array_is_refused(d):
    with pytest.raises(TypeError, match="Unsupported type"):
        d += np.ones(3)


def test_scalars_stay_on_the_device_like_cupy(cp, d):
    for r in (d.sum(), d[0, 1], cp.max(d), d.mean(axis=None)):
        assert type(r) is cp.ndarray and r.shape == ()
    assert type(np.float32(2.0) * d) is cp.ndarray          # NumPy scalars are fine, as on CuPy


def test_only_explicit_crossings_and_each_is_logged(cp, d):
    cp.LOG.clear()
    host = d.get()
    assert isinstance(host, np.ndarray) and host.tolist() == [[0, 1, 2], [3, 4, 5]]
    host[0, 0] = 99                                          # a copy: the device is untouched
    assert float(d[0, 0]) == 0.0
    assert cp.asnumpy(d).sum() == 15 and d.sum().item() == 15 and bool(d[1, 1] > 3)
    up = cp.asarray(host)
    host[0, 0] = -1                                          # the device never aliases the host
    assert int(up[0, 0]) == 99
    kinds = [k for k, _, _ in cp.LOG.events]
    assert kinds == ["d2h", "d2h", "d2h", "d2h", "d2h", "h2d", "d2h"]
    assert cp.LOG.events[0][1] == 48 and cp.LOG.events[-2][1] == 48


def test_keywords_real_cupy_lacks_are_refused(cp, d):
    for attempt in (lambda: d.max(initial=0), lambda: cp.sum(d, where=d > 1), lambda: cp.exp(d, where=d > 1)):
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            attempt()


def test_names_real_cupy_lacks_are_refused(cp):
    with pytest.raises(AttributeError, match="has no attribute 'genfromtxt'"):
        cp.genfromtxt
    with pytest.raises(AttributeError):
        cp.random.default_rng(0).permutation   # cupy.random.Generator has no permutation


def test_numbers_are_numpys(cp):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 2))
    da, db = cp.asarray(a), cp.asarray(b)
    assert np.array_equal((da @ db).get(), a @ b)
    assert np.array_equal(cp.exp(da).sum(axis=0).get(), np.exp(a).sum(axis=0))
    out = cp.empty((4, 2))
    assert cp.matmul(da, db, out=out) is out
    view = cp.lib.stride_tricks.as_strided(da, (3, 5), (da.strides[0], da.strides[1]))
    assert np.array_equal(view.get(), a[:3])
    acc = cp.zeros(3)
    cp.add.at(acc, cp.asarray([0, 2, 2]), 1.0)
    assert acc.get().tolist() == [1.0, 0.0, 2.0]
    assert np.allclose(cp.linalg.solve(cp.asarray(np.eye(2) * 2), cp.asarray([2.0, 4.0])).get(), [1, 2])
    assert copy.deepcopy(da).get().tolist() == a.tolist()


def test_its_generator_is_seeded_but_not_numpys_stream(cp):
    g1, g2 = cp.random.default_rng(5), cp.random.default_rng(5)
    x = g1.standard_normal((3,), dtype=np.float32)
    assert x.dtype == np.float32 and np.array_equal(x.get(), g2.standard_normal((3,), dtype=np.float32).get())
    assert not np.allclose(x.get(), np.random.default_rng(5).standard_normal(3, dtype=np.float32))


def test_the_adam_kernel_reference_refuses_a_changed_kernel(cp):
    """The stand-in runs a NumPy reference of minivae's fused Adam kernel only while the
    kernel's source is the one the reference was written from."""
    kernel = adam._cupy_adam_kernel(cp)
    assert kernel.name == "minivae_adam_step"
    with pytest.raises(NotImplementedError, match="no reference for ElementwiseKernel 'minivae_adam_step'"):
        cp.ElementwiseKernel("T grad", "T param", "param -= 2 * grad;", "minivae_adam_step")


def test_the_adam_kernel_reference_is_adam(cp):
    """One step of the kernel's reference against Algorithm 1 written here (float32, with
    weight decay). What only a GPU checks: that the CUDA C compiles and binds T, and its
    rounding (nvcc may fuse a*b+c): tests/test_cupy_parity.py on real CuPy."""
    rng = np.random.default_rng(0)
    p, g, m, v = (rng.standard_normal(7).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    b1, b2, wd, lr, eps, t = 0.9, 0.999, 0.01, 1e-2, 1e-8, 3
    gg = g + np.float32(wd) * p
    m_ref = np.float32(b1) * m + np.float32(1 - b1) * gg
    v_ref = np.float32(b2) * v + np.float32(1 - b2) * gg * gg
    p_ref = p - np.float32(lr / (1 - b1 ** t)) * m_ref / (np.sqrt(v_ref) / np.float32(np.sqrt(1 - b2 ** t))
                                                         + np.float32(eps))
    dp, dm, dv = cp.asarray(p), cp.asarray(m), cp.asarray(v)
    adam._cupy_adam_kernel(cp)(cp.asarray(g), b1, b2, wd, lr / (1 - b1 ** t), np.sqrt(1 - b2 ** t), eps, dp, dm, dv)
    assert dp.dtype == np.float32
    np.testing.assert_allclose(dm.get(), m_ref, rtol=1e-6)
    np.testing.assert_allclose(dv.get(), v_ref, rtol=1e-6)
    np.testing.assert_allclose(dp.get(), p_ref, rtol=1e-6)
    assert not np.allclose(dp.get(), p)
