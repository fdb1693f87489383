r"""Layer normalization over the last axis, fused into one graph node.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_functional.py``.

For each row :math:`x` of :math:`D` numbers (one token's features):

.. math::
    \mu = \tfrac1D \textstyle\sum_i x_i, \quad \sigma^2 = \tfrac1D \sum_i (x_i - \mu)^2, \quad
    \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad y = \gamma \odot \hat x + \beta

Backward, with :math:`\bar{\hat x} = \gamma \odot \bar y` and :math:`r = 1/\sqrt{\sigma^2+\epsilon}`:

.. math::
    \bar x = r\,\bigl(\bar{\hat x} - \mathrm{mean}(\bar{\hat x})
                      - \hat x \odot \mathrm{mean}(\bar{\hat x} \odot \hat x)\bigr), \quad
    \bar\gamma = \textstyle\sum_{\text{rows}} \bar y \odot \hat x, \quad
    \bar\beta = \textstyle\sum_{\text{rows}} \bar y

The variance is the biased one (divide by :math:`D`), as in PyTorch. The fused kernel saves only
:math:`\hat x` and :math:`r`; the composed reference builds the same function from ``mean``,
``sub``, ``mul``, ``sqrt``.

Worked example: ``x = [1, 2, 3]`` (no affine, eps 0) gives
:math:`\mu = 2, \sigma^2 = 2/3` and ``y = [-1.2247, 0, 1.2247]``.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd import elementwise as E
from minroots.autograd import reductions as R
from minroots.autograd._rows import row_dot, row_sum
from minroots.validation import real, tensor_arg

__all__ = ["layer_norm", "layer_norm_composed"]


def layer_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    r"""y = \gamma \odot (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta over the last axis (fused)."""
    tensor_arg("layer_norm", "x", x)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"layer_norm: x must have features on its last axis to normalize, got "
                         f"shape {x.shape}")  # fmt: skip
    real("layer_norm", "eps", eps, low=0)
    d = x.shape[-1]
    if weight is not None and weight.shape != (d,):
        raise ValueError(
            f"layer_norm: input has {d} features on its last axis but weight has shape {weight.shape}"
        )
    xp = B.get_array_module(x.data)
    dt = x.data.dtype.type
    x2 = x.data.reshape(-1, d)  # (N, D)
    mu = row_sum(x2, xp)
    mu *= dt(1.0 / d)
    xhat = x2 - mu
    var = row_dot(xhat, xhat, xp)  # sum of squares without a temporary
    var *= dt(1.0 / d)
    var += dt(eps)
    rstd = xp.sqrt(var, out=var)
    xp.divide(dt(1.0), rstd, out=rstd)  # r = 1 / sqrt(var + eps), (N, 1)
    xhat *= rstd
    if weight is not None:
        y = xhat * weight.data
        if bias is not None:
            y += bias.data
    else:
        y = xhat.copy() if bias is None else xhat + bias.data
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def backward(g):
        g2 = g.reshape(-1, d)
        out = [None]
        gw = gb = None
        if weight is not None and weight.requires_grad:
            gw = xp.einsum("ij,ij->j", g2, xhat)
        if bias is not None and bias.requires_grad:
            gb = g2.sum(axis=0)
        if x.requires_grad:
            gxhat = g2 * weight.data if weight is not None else g2.copy()
            m2 = row_dot(gxhat, xhat, xp)
            m2 *= dt(1.0 / d)
            m1 = row_sum(gxhat, xp)
            m1 *= dt(1.0 / d)
            gxhat -= m1
            gxhat -= xhat * m2
            gxhat *= rstd
            out[0] = gxhat.reshape(x.shape)
        if weight is not None:
            out.append(gw)
        if bias is not None:
            out.append(gb)
        return tuple(out)

    return Tensor._make(y.reshape(x.shape), parents, backward, "layer_norm")


def layer_norm_composed(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Reference layer norm from basic autograd ops (mean, sub, mul, sqrt, div)."""
    mu = R.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = R.mean(xc * xc, axis=-1, keepdims=True)
    y = xc / E.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
