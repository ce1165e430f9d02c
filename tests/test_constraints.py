"""GECO's constraints (math.md §3, Taming VAEs Table 1): float64 gradient checks of each,
values against direct per-patch loops, and the invariances the definitions promise."""
import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck, nn
from minivae.vae import constraints as C


def images(xp, shape=(2, 2, 7, 6), seed=0, low=0.05, high=0.95):
    return xp.asarray(np.random.default_rng(seed).uniform(low, high, size=shape))


def leaf(xp, shape=(2, 2, 7, 6), seed=1):
    return Tensor(images(xp, shape, seed), requires_grad=True)


# --------------------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("name", ["re", "fre", "pncc"])
def test_gradient_check_image_constraints(xp, name):
    x = Tensor(images(xp, seed=0))
    x_hat = leaf(xp)
    fn = {"re": lambda y: C.reconstruction_error(x, y, 0.1),
          "fre": lambda y: C.feature_reconstruction_error(x, y, 0.1, window=3),
          "pncc": lambda y: C.pncc_constraint(x, y, 0.9, window=3)}[name]
    gradcheck.check(fn, [x_hat], mode="full" if x_hat.size <= 64 else "directional", n_directions=4)
    small = Tensor(images(xp, (1, 1, 4, 4), seed=3), requires_grad=True)   # full Jacobian too
    xs = Tensor(images(xp, (1, 1, 4, 4), seed=4))
    fn_small = {"re": lambda y: C.reconstruction_error(xs, y, 0.1),
                "fre": lambda y: C.feature_reconstruction_error(xs, y, 0.1, window=2),
                "pncc": lambda y: C.pncc_constraint(xs, y, 0.9, window=2)}[name]
    gradcheck.check(fn_small, [small], mode="full")


def test_gradient_check_pncc_without_stabiliser(xp):
    x = Tensor(images(xp, (1, 1, 5, 5), seed=5))
    gradcheck.check(lambda y: C.patch_ncc(x, y, window=3, eps=0.0), [leaf(xp, (1, 1, 5, 5), seed=6)], mode="full")


def test_gradient_check_local_statistics(xp):
    gradcheck.check(lambda y: C.local_statistics(y, window=3)[1], [leaf(xp, (1, 2, 5, 4))], mode="full")


def test_gradient_check_cla_through_a_conv_classifier(xp):
    from minivae.classifier import Classifier
    clf = Classifier((1, 8, 8), n_classes=3, channels=(2, 3), hidden=4)
    labels = xp.asarray([0, 2, 1])
    x_hat = leaf(xp, (3, 1, 8, 8))
    constraint = C.CLA(0.8, clf)
    assert all(not p.requires_grad for p in clf.parameters())   # frozen
    gradcheck.check(lambda y: constraint(None, y, labels), [x_hat], mode="directional", n_directions=4)


# --------------------------------------------------------------------------- values

def test_re_matches_its_formula(xp):
    x, y = images(xp, seed=0), images(xp, seed=1)
    got = C.reconstruction_error(Tensor(x), Tensor(y), 0.2).numpy()
    xh, yh = backend.to_host(x), backend.to_host(y)
    expected = ((xh - yh) ** 2).reshape(2, -1).mean(axis=1) - 0.04
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert C.RE(0.2).threshold == pytest.approx(0.04) and C.RE(0.2).measure(got[0]) == pytest.approx(expected[0] + 0.04)


def _patches(a, k):
    """All k×k patches of a (C, H, W) host array: (H−k+1, W−k+1, C, k, k), by loops."""
    c, h, w = a.shape
    return np.array([[a[:, i:i + k, j:j + k] for j in range(w - k + 1)] for i in range(h - k + 1)])


def test_local_statistics_match_patch_loops(xp):
    x = images(xp, (2, 2, 7, 6), seed=2)
    mean, std = C.local_statistics(Tensor(x), window=3, eps=1e-4)
    xh = backend.to_host(x)
    for b in range(2):
        for ch in range(2):
            p = _patches(xh[b, ch:ch + 1], 3).reshape(5, 4, -1)
            np.testing.assert_allclose(mean.numpy()[b, ch], p.mean(-1), rtol=1e-12)
            np.testing.assert_allclose(std.numpy()[b, ch], np.sqrt(p.var(-1) + 1e-4), rtol=1e-10)


def test_fre_matches_patch_loops_and_is_zero_on_itself(xp):
    x, y = images(xp, seed=0), images(xp, seed=1)
    got = C.feature_reconstruction_error(Tensor(x), Tensor(y), 0.05, window=3).numpy()
    xh, yh = backend.to_host(x), backend.to_host(y)
    for b in range(2):
        px = _patches(xh[b], 3).transpose(2, 0, 1, 3, 4).reshape(2, 5, 4, -1)   # per channel
        py = _patches(yh[b], 3).transpose(2, 0, 1, 3, 4).reshape(2, 5, 4, -1)
        fx = np.stack([px.mean(-1), np.sqrt(px.var(-1) + 1e-4)])
        fy = np.stack([py.mean(-1), np.sqrt(py.var(-1) + 1e-4)])
        assert got[b] == pytest.approx(((fx - fy) ** 2).mean() - 0.0025, rel=1e-10)
    itself = C.feature_reconstruction_error(Tensor(x), Tensor(x), 0.05).numpy()
    np.testing.assert_allclose(itself, -0.0025, atol=1e-15)   # f(x) − f(x) = 0, so C = −κ²


def test_pncc_matches_whitened_patch_inner_products(xp):
    x, y = images(xp, (2, 3, 6, 6), seed=7), images(xp, (2, 3, 6, 6), seed=8)
    got = C.patch_ncc(Tensor(x), Tensor(y), window=3, eps=0.0).numpy()
    xh, yh = backend.to_host(x), backend.to_host(y)
    for b in range(2):
        px, py = _patches(xh[b], 3).reshape(4, 4, -1), _patches(yh[b], 3).reshape(4, 4, -1)
        wx = px - px.mean(-1, keepdims=True)
        wy = py - py.mean(-1, keepdims=True)
        wx /= np.linalg.norm(wx, axis=-1, keepdims=True)
        wy /= np.linalg.norm(wy, axis=-1, keepdims=True)
        np.testing.assert_allclose(got[b], (wx * wy).sum(-1), atol=1e-12)
    c = C.pncc_constraint(Tensor(x), Tensor(y), 0.7, window=3, eps=0.0).numpy()
    np.testing.assert_allclose(c, 0.7 - got.reshape(2, -1).mean(1), atol=1e-12)


def test_pncc_of_an_image_with_itself_is_one(xp):
    x = images(xp, (2, 1, 9, 9), seed=9)
    flat = xp.zeros((1, 1, 9, 9)) + 0.3            # flat patches too: they agree perfectly
    for eps in (C.PNCC_EPS, 1e-2):
        np.testing.assert_allclose(C.patch_ncc(Tensor(x), Tensor(x), eps=eps).numpy(), 1.0, atol=1e-12)
        np.testing.assert_allclose(C.patch_ncc(Tensor(flat), Tensor(flat), eps=eps).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(C.pncc_constraint(Tensor(x), Tensor(x), 0.9).numpy(), -0.1, atol=1e-12)


def test_pncc_is_invariant_to_affine_intensity_changes(xp):
    x, y = images(xp, (2, 2, 8, 8), seed=10), images(xp, (2, 2, 8, 8), seed=11)
    base = C.patch_ncc(Tensor(x), Tensor(y), eps=0.0).numpy()
    for a, b in ((3.0, -1.0), (0.2, 0.5)):
        np.testing.assert_allclose(C.patch_ncc(Tensor(x), Tensor(a * y + b), eps=0.0).numpy(), base, atol=1e-10)
        np.testing.assert_allclose(C.patch_ncc(Tensor(a * x + b), Tensor(y), eps=0.0).numpy(), base, atol=1e-10)
    np.testing.assert_allclose(C.patch_ncc(Tensor(x), Tensor(-y), eps=0.0).numpy(), -base, atol=1e-10)
    # the default stabiliser changes textured patches only slightly
    stabilised = C.patch_ncc(Tensor(x), Tensor(0.5 * y + 0.2)).numpy()
    assert np.abs(stabilised - base).max() < 0.02


def test_pncc_penalises_structure_where_the_data_is_flat(xp):
    flat = xp.zeros((1, 1, 8, 8))
    noisy = images(xp, (1, 1, 8, 8), seed=12, low=0.0, high=0.3)
    assert C.patch_ncc(Tensor(flat), Tensor(noisy)).numpy().max() < 0.5


def test_cla_is_kappa_minus_the_true_class_probability(xp):
    logits = xp.asarray([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-3.0, 5.0, 1.0]])
    labels = xp.asarray([0, 2, 1])
    got = C.classification_constraint(Tensor(logits), labels, lambda t: t, 0.9).numpy()
    host = backend.to_host(logits)
    p = np.exp(host - host.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(got, 0.9 - p[np.arange(3), [0, 2, 1]], rtol=1e-12)


def test_box_mean_across_channels(xp):
    x = images(xp, (1, 3, 4, 4), seed=13)
    got = C.box_mean(Tensor(x), 2, across_channels=True).numpy()
    xh = backend.to_host(x)
    assert got.shape == (1, 1, 3, 3)
    assert got[0, 0, 1, 2] == pytest.approx(xh[0, :, 1:3, 2:4].mean())


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("cls,kappa", [(C.RE, -0.1), (C.RE, 0.0), (C.FRE, float("nan")), (C.PNCC, 1.0),
                                       (C.PNCC, 1.5), (C.PNCC, 0.0), (C.RE, "abc")])
def test_kappa_outside_its_range_is_refused(cls, kappa):
    with pytest.raises(ValueError, match="kappa"):
        cls(kappa)


def test_cla_refusals():
    backend.use("numpy", dtype="float64")
    with pytest.raises(ValueError, match="accuracy"):
        C.CLA(1.0, lambda t: t)
    with pytest.raises(ValueError, match="classifier"):
        C.CLA(0.9, None)
    cla = C.CLA(0.9, lambda t: t)
    with pytest.raises(ValueError, match="labels"):
        cla(None, Tensor(np.zeros((2, 3))), None)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        cla(None, Tensor(np.zeros((2, 3))), np.array([0, 3]))


def test_shape_and_window_errors():
    backend.use("numpy", dtype="float64")
    x = Tensor(np.zeros((2, 1, 6, 6)))
    with pytest.raises(ValueError, match="differ"):
        C.reconstruction_error(x, Tensor(np.zeros((2, 1, 6, 5))), 0.1)
    with pytest.raises(ValueError, match="window"):
        C.patch_ncc(x, x, window=7)
    with pytest.raises(ValueError, match="images"):
        C.local_statistics(Tensor(np.zeros((2, 36))))


def test_default_scales():
    assert C.RE(0.1).default_scale == pytest.approx(0.01)
    assert C.FRE(0.2).default_scale == pytest.approx(0.04)
    assert C.PNCC(0.9).default_scale == pytest.approx(0.1)
    assert C.CLA(0.95, nn.Identity()).default_scale == pytest.approx(0.05)
