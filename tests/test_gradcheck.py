"""The gradient checker itself must catch wrong derivatives (a check that cannot fail is no check)."""
import numpy as np
import pytest

from minivae import Tensor, gradcheck, ops
from minivae.autograd import Function


class WrongSquare(Function):
    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, g):
        return (g * self.a,)  # missing factor 2


class RowSwappedSum(Function):
    """Right in aggregate (Σ of the vjp) but each row wrong: caught only by the row checks."""

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return (g[::-1].copy(),)


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_detects_wrong_vjp(xp, mode):
    with pytest.raises(gradcheck.GradcheckError, match="gradient check failed"):
        gradcheck.check(WrongSquare.apply, [gradcheck.random_input((3, 3))], mode=mode)


def test_detects_permuted_jacobian(xp):
    result = gradcheck.check(RowSwappedSum.apply, [gradcheck.random_input((4,))], mode="full",
                             raise_on_failure=False)
    assert not result.ok


def test_accepts_correct_vjp_and_refuses_float32(xp):
    assert gradcheck.check(ops.square, [gradcheck.random_input((3,))]).ok
    with pytest.raises(TypeError, match="float64"):
        gradcheck.check(ops.square, [Tensor(np.ones(3, np.float32), requires_grad=True)])


def test_avoid_kinks_moves_values_off_the_kink():
    x = gradcheck.avoid_kinks(np.array([-1e-4, 0.0, 2e-3, 0.5]), kinks=(0.0,), margin=1e-2)
    assert np.all(np.abs(x) >= 1e-2)
    assert x[3] == 0.5
