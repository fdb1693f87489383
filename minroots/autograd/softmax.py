r"""Softmax, log-softmax and log-sum-exp: fused, numerically stable, each one graph node.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``) and chapter 4,
"Cross-entropy" (``book/04_cross_entropy.md``); tests in ``tests/test_autograd_tensor.py`` and ``tests/test_autograd_gradcheck.py``.

.. math::
    \mathrm{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad
    \mathrm{logsumexp}(x) = m + \ln \sum_j e^{x_j - m}, \qquad m = \max_j x_j

Subtracting the maximum changes nothing mathematically and keeps every exponent :math:`\le 0`,
so nothing overflows even for inputs of :math:`\pm 10^4` in float32. Each fused op saves only what
its backward needs (the softmax output); the ``*_composed`` versions build the same function from
basic ops and serve as the reference in the tests.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import elementwise as E
from minroots.autograd import reductions as R
from minroots.autograd.tensor import Tensor

__all__ = ["softmax", "log_softmax", "logsumexp", "softmax_composed", "log_softmax_composed"]


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    r"""Forward :math:`y = \mathrm{softmax}(a)`; backward :math:`\bar a = y \odot (\bar y - \sum_j \bar y_j y_j)` (the softmax Jacobian)."""
    xp = B.get_array_module(a.data)
    y = a.data - a.data.max(axis=axis, keepdims=True)
    xp.exp(y, out=y)
    y /= y.sum(axis=axis, keepdims=True)

    def backward(g):
        gy = g * y
        gy -= y * gy.sum(axis=axis, keepdims=True)
        return (gy,)

    return Tensor._make(y, (a,), backward, "softmax")


def log_softmax(a: Tensor, axis: int = -1) -> Tensor:
    r"""Forward :math:`z = a - \mathrm{logsumexp}(a)`; backward :math:`\bar a = \bar z - \mathrm{softmax}(a) \sum_j \bar z_j`."""
    xp = B.get_array_module(a.data)
    shifted = a.data - a.data.max(axis=axis, keepdims=True)
    z = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):
        return (g - xp.exp(z) * g.sum(axis=axis, keepdims=True),)

    return Tensor._make(z, (a,), backward, "log_softmax")


def logsumexp(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    r"""Forward :math:`z = \ln \sum_j e^{a_j}`; backward :math:`\bar a_i = \bar z \, \mathrm{softmax}(a)_i`."""
    xp = B.get_array_module(a.data)
    axes = R.normalize_axes(axis, a.ndim, "logsumexp")
    m = a.data.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)  # rows of all -inf stay -inf instead of NaN
    s = xp.log(xp.exp(a.data - m).sum(axis=axes, keepdims=True)) + m
    out = s if keepdims else s.reshape([n for i, n in enumerate(a.shape) if i not in axes])
    kshape = R.kept_shape(a.shape, axes)
    return Tensor._make(out, (a,), lambda g: (g.reshape(kshape) * xp.exp(a.data - s),), "logsumexp")


def softmax_composed(a: Tensor, axis: int = -1) -> Tensor:
    """Reference softmax from basic ops (exp, sum, div): slower, same values and gradients."""
    e = E.exp(E.sub(a, R.max(a, axis=axis, keepdims=True).detach()))
    return E.div(e, R.sum(e, axis=axis, keepdims=True))


def log_softmax_composed(a: Tensor, axis: int = -1) -> Tensor:
    """Reference log-softmax from basic ops: ``a - m - log(sum(exp(a - m)))``."""
    shifted = E.sub(a, R.max(a, axis=axis, keepdims=True).detach())
    return E.sub(shifted, E.log(R.sum(E.exp(shifted), axis=axis, keepdims=True)))
