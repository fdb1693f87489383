r"""RMS normalization over the last axis (Zhang & Sennrich, 2019), fused into one graph node.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_nn_modern_kernels.py``.

Layer norm centres each row and divides by its standard deviation; RMSNorm only divides by the
root mean square, with no mean and no bias. For a row :math:`x` of :math:`D` numbers:

.. math::
    r = \Bigl(\tfrac1D \textstyle\sum_i x_i^2 + \epsilon\Bigr)^{-1/2}, \qquad
    \hat x = r\,x, \qquad y = \gamma \odot \hat x

Backward, with :math:`\bar{\hat x} = \gamma \odot \bar y` (from
:math:`\partial r / \partial x_j = -r^3 x_j / D`):

.. math::
    \bar x = r\,\bigl(\bar{\hat x} - \hat x \odot \mathrm{mean}(\bar{\hat x} \odot \hat x)\bigr),
    \qquad \bar\gamma = \textstyle\sum_{\text{rows}} \bar y \odot \hat x

It is layer norm's backward without the :math:`\mathrm{mean}(\bar{\hat x})` term, because no mean
was subtracted. The fused kernel saves only :math:`\hat x` and :math:`r`; the composed reference
builds the same function from ``mean``, ``mul``, ``sqrt`` and ``div``.

Worked example: ``x = [3, 4]`` (no weight, eps 0) has :math:`\tfrac12(9 + 16) = 12.5`, so
:math:`r = 1/\sqrt{12.5}` and ``y = [0.8485, 1.1314]`` (its mean square is 1).
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd import elementwise as E
from minroots.autograd import reductions as R
from minroots.autograd._rows import row_dot
from minroots.validation import real

__all__ = ["rms_norm", "rms_norm_composed"]


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    r"""y = \gamma \odot x / \sqrt{\mathrm{mean}(x^2) + \epsilon} over the last axis (fused)."""
    d = x.shape[-1]
    real("rms_norm", "eps", eps, low=0)
    if weight is not None and weight.shape != (d,):
        raise ValueError(
            f"rms_norm: weight must have shape ({d},) (the input's last axis), got {weight.shape}"
        )
    xp = B.get_array_module(x.data)
    dt = x.data.dtype.type
    x2 = x.data.reshape(-1, d)  # (N, D)
    r = row_dot(x2, x2, xp)  # sum of squares without a temporary, (N, 1)
    r *= dt(1.0 / d)
    r += dt(eps)
    xp.sqrt(r, out=r)
    xp.divide(dt(1.0), r, out=r)  # r = 1 / sqrt(mean(x^2) + eps)
    xhat = x2 * r  # (N, D)
    y = xhat * weight.data if weight is not None else xhat.copy()
    parents = (x,) if weight is None else (x, weight)

    def backward(g):
        g2 = g.reshape(-1, d)
        gx = gw = None
        if weight is not None and weight.requires_grad:
            gw = xp.einsum("ij,ij->j", g2, xhat)
        if x.requires_grad:
            gxhat = g2 * weight.data if weight is not None else g2.copy()
            m = row_dot(gxhat, xhat, xp)
            m *= dt(1.0 / d)  # mean(gxhat * xhat), (N, 1)
            gxhat -= xhat * m
            gxhat *= r
            gx = gxhat.reshape(x.shape)
        return (gx,) if weight is None else (gx, gw)

    return Tensor._make(y.reshape(x.shape), parents, backward, "rms_norm")


def rms_norm_composed(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Reference RMSNorm from basic autograd ops (mean, mul, add, sqrt, div)."""
    y = x / E.sqrt(R.mean(x * x, axis=-1, keepdims=True) + eps)
    return y * weight if weight is not None else y
