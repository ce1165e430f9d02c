"""sprites: deterministic, and the returned factors really generate the images."""
import numpy as np
import pytest

from minivae.data import FACTOR_NAMES, DataError, load_dataset, make_sprites
from minivae.data.sprites import AREA, MAX_RADIUS, centre_pixels, render

ALL = ("square", "ellipse", "heart", "triangle")


def _moments(images):
    """Ink area and centre of mass (column, row) in pixel coordinates, per image."""
    ink = images[:, 0].astype(np.float64)
    centres = np.arange(ink.shape[-1]) + 0.5
    area = ink.sum(axis=(1, 2))
    col = (ink.sum(axis=1) * centres).sum(axis=1) / area
    row = (ink.sum(axis=2) * centres).sum(axis=1) / area
    return area, col, row


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, fa = make_sprites(300, seed=7)
    b, fb = make_sprites(300, seed=7)
    c, _ = make_sprites(300, seed=8)
    assert np.array_equal(a, b) and np.array_equal(fa, fb)
    assert not np.array_equal(a, c)


def test_contract_shapes_dtype_range_and_all_shapes_present():
    images, factors = make_sprites(500, seed=1, shapes=ALL)
    assert images.shape == (500, 1, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert factors.shape == (500, 5) and FACTOR_NAMES == ("shape", "scale", "rotation", "x", "y")
    assert set(np.unique(factors[:, 0]).astype(int)) == {0, 1, 2, 3}
    assert factors[:, 1].min() >= 0.5 and factors[:, 1].max() <= 1.0
    assert factors[:, 2].min() >= 0.0 and factors[:, 2].max() < 2 * np.pi
    # anti-aliased: edges carry intermediate values, yet the background is exactly 0
    assert ((images > 0.05) & (images < 0.95)).any()
    assert (images[:, 0, 0, :] == 0).all() and (images[:, 0, :, -1] == 0).all()


def test_centre_of_mass_follows_x_and_y():
    images, factors = make_sprites(2000, seed=2, shapes=ALL)
    _, col, row = _moments(images)
    cx, cy = centre_pixels(factors.astype(np.float64), 28)
    # every shape is centred on its centroid, so the ink's centre of mass is (cx, cy)
    assert np.abs(col - cx).max() < 0.2 and np.abs(row - cy).max() < 0.2
    assert np.corrcoef(col, factors[:, 3])[0, 1] > 0.99
    assert np.corrcoef(row, factors[:, 4])[0, 1] > 0.99       # y = 0 is the top row


def test_ink_area_grows_as_scale_squared():
    images, factors = make_sprites(2000, seed=3, shapes=ALL)
    area, _, _ = _moments(images)
    for k, shape in enumerate(ALL):
        pick = factors[:, 0] == k
        expected = AREA[shape] * (factors[pick, 1] * MAX_RADIUS * 28) ** 2
        ratio = area[pick] / expected
        assert abs(ratio.mean() - 1) < 0.02, shape
        assert np.abs(ratio - 1).max() < 0.08, shape
    # one square, scale swept at fixed rotation and position: strictly more ink
    sweep = np.array([[0, s, 0.3, 0.5, 0.5] for s in np.linspace(0.5, 1.0, 11)])
    swept, _, _ = _moments(render(sweep))
    assert np.all(np.diff(swept) > 0)
    np.testing.assert_allclose(swept, 2.0 * (sweep[:, 1] * MAX_RADIUS * 28) ** 2, rtol=0.04)


def test_ellipse_principal_axis_follows_rotation():
    n = 200
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    factors = np.stack([np.ones(n), np.ones(n), theta, np.full(n, 0.5), np.full(n, 0.5)], axis=1)
    images = render(factors, size=48)[:, 0].astype(np.float64)
    centres = np.arange(48) + 0.5
    x = centres[None, None, :] - 24.0
    y = 24.0 - centres[None, :, None]                    # y up, as the rotation is counter-clockwise
    m = images.sum(axis=(1, 2))
    mxx = (images * x * x).sum(axis=(1, 2)) / m
    myy = (images * y * y).sum(axis=(1, 2)) / m
    mxy = (images * x * y).sum(axis=(1, 2)) / m
    angle = 0.5 * np.arctan2(2 * mxy, mxx - myy)           # major axis, modulo π
    error = np.angle(np.exp(2j * (angle - theta))) / 2     # difference modulo π
    assert np.abs(error).max() < 0.03


def test_image_size_is_configurable_and_factors_do_not_depend_on_it():
    small, f_small = make_sprites(50, size=28, seed=4)
    large, f_large = make_sprites(50, size=64, seed=4)
    assert large.shape == (50, 1, 64, 64) and np.array_equal(f_small, f_large)
    ratio = _moments(large)[0] / _moments(small)[0]
    assert abs(np.median(ratio) - (64 / 28) ** 2) < 0.15 * (64 / 28) ** 2


def test_load_dataset_sprites_splits_and_labels():
    train = load_dataset("sprites", n=400, seed=5)
    again = load_dataset("sprites", n=400, seed=5)
    test = load_dataset("sprites", split="test", n=400, seed=5)
    assert np.array_equal(train.images, again.images)
    assert not np.array_equal(train.factors, test.factors)       # independent held-out draw
    assert train.shape == (1, 28, 28) and len(train) == 400
    assert np.array_equal(train.labels, train.factors[:, 0].astype(int))
    assert train.factor_names == FACTOR_NAMES and train.label_names == ("square", "ellipse", "heart")
    assert len(load_dataset("sprites")) == 20000 and len(load_dataset("sprites", "test")) == 5000
    big = load_dataset("sprites", n=10, image_size=40, shapes=ALL)
    assert big.shape == (1, 40, 40)


def test_bad_sprite_requests_are_clear():
    with pytest.raises(ValueError, match="unknown sprite shape.*choose among: square"):
        make_sprites(10, shapes=("square", "star"))
    with pytest.raises(ValueError, match="positive integer"):
        make_sprites(0)
    with pytest.raises(DataError, match="sprites are square"):
        load_dataset("sprites", image_size=(28, 32))
    with pytest.raises(TypeError, match="not understood by dataset 'sprites'.*shapes"):
        load_dataset("sprites", key="x")
