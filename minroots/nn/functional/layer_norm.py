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
:math:`\mu` and :math:`r` per row (the backward recomputes :math:`\hat x`, one subtraction and one
product per block, instead of keeping a second full-size array); the composed reference builds the
same function from ``mean``, ``sub``, ``mul``, ``sqrt``.

Worked example: ``x = [1, 2, 3]`` (no affine, eps 0) gives
:math:`\mu = 2, \sigma^2 = 2/3` and ``y = [-1.2247, 0, 1.2247]``.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd import elementwise as E
from minroots.autograd import reductions as R
from minroots.autograd._rows import row_dot, row_sum
from minroots.parallel import map_blocks, row_blocks
from minroots.validation import real, tensor_arg

__all__ = ["layer_norm", "layer_norm_composed"]


def layer_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    r"""y = \gamma \odot (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta over the last axis (fused).

    Blocks of rows share the threads of :mod:`minroots.parallel`; the node keeps :math:`\mu` and
    :math:`r` per row and recomputes :math:`\hat x` in the backward, block by block.
    """
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
    x2 = x.data.reshape(-1, d)  # (N, D)
    n = x2.shape[0]
    w = None if weight is None else weight.data
    b = None if bias is None else bias.data
    y = xp.empty_like(x2)
    mu, rstd = xp.empty((n, 1), dtype=x2.dtype), xp.empty((n, 1), dtype=x2.dtype)  # (N, 1)
    blocks = row_blocks(n, d, xp=xp)
    map_blocks(lambda s: _forward_rows(x2[s], w, b, eps, y[s], mu[s], rstd[s]), blocks)
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def backward(g):
        g2 = g.reshape(-1, d)
        gx = xp.empty_like(x2) if x.requires_grad else None

        def block(s):
            return _backward_rows(x2[s], g2[s], mu[s], rstd[s], w, None if gx is None else gx[s])

        parts = map_blocks(block, blocks)
        out = [None if gx is None else gx.reshape(x.shape)]
        if weight is not None:  # column sums: the blocks' partial sums, added in block order
            out.append(_sum_in_order([p[0] for p in parts]) if weight.requires_grad else None)
        if bias is not None:
            out.append(_sum_in_order([p[1] for p in parts]) if bias.requires_grad else None)
        return tuple(out)

    return Tensor._make(y.reshape(x.shape), parents, backward, "layer_norm")


def _forward_rows(x, w, b, eps, y, mu, rstd):
    """One block of rows: writes ``y``, the row means ``mu`` and ``rstd`` :math:`= r`."""
    xp = B.get_array_module(x)
    dt = x.dtype.type
    d = x.shape[-1]
    xp.multiply(row_sum(x, xp), dt(1.0 / d), out=mu)
    xhat = xp.subtract(x, mu, out=y)
    var = row_dot(xhat, xhat, xp)  # sum of squares without a temporary
    var *= dt(1.0 / d)
    var += dt(eps)
    xp.sqrt(var, out=var)
    xp.divide(dt(1.0), var, out=rstd)  # r = 1 / sqrt(var + eps)
    xhat *= rstd
    if w is not None:
        y *= w
    if b is not None:
        y += b


def _backward_rows(x, g, mu, rstd, w, gx):
    r"""One block of rows: writes :math:`\bar x` into ``gx`` (unless None) and returns the block's
    column sums :math:`(\sum \bar y \odot \hat x, \sum \bar y)` for :math:`\bar\gamma, \bar\beta`."""
    xp = B.get_array_module(x)
    dt = x.dtype.type
    d = x.shape[-1]
    xhat = xp.subtract(x, mu)
    xhat *= rstd
    sums = (xp.einsum("ij,ij->j", g, xhat), g.sum(axis=0))
    if gx is None:
        return sums
    gxhat = gx
    if w is not None:
        xp.multiply(g, w, out=gxhat)
    else:
        gxhat[...] = g
    m2 = row_dot(gxhat, xhat, xp)
    m2 *= dt(1.0 / d)
    m1 = row_sum(gxhat, xp)
    m1 *= dt(1.0 / d)
    gxhat -= m1
    xhat *= m2
    gxhat -= xhat
    gxhat *= rstd
    return sums


def _sum_in_order(arrays):
    """``arrays[0] + arrays[1] + ...``, always in this order (the same bits for any thread count)."""
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    return total


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
