r"""Reductions: sum, mean, max, min and var over axes, as in NumPy (``axis``, ``keepdims``).

Book chapter 2, "Autograd" (``book/02_autograd.md``); tests in ``tests/test_autograd_gradcheck.py`` and ``tests/test_autograd_torch.py``.

A reduction's backward spreads the output gradient back over the reduced axes: for
:math:`z = \sum_i a_i` every :math:`\bar a_i = \bar z`; for the mean each gets :math:`\bar z / n`.
"""

from __future__ import annotations

import builtins
import numbers

from minroots import backend as B
from minroots.autograd.tensor import Tensor
from minroots.validation import describe, shown

__all__ = ["sum", "mean", "max", "min", "var"]


def normalize_axes(axis, ndim: int, op: str) -> tuple:
    """``axis`` (None, an int or a tuple, negatives allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, numbers.Integral):
            raise TypeError(f"{op}: axis must be None, an integer or a tuple of integers, got "
                            f"{shown(axis)} ({describe(axis)})")  # fmt: skip
        if not -ndim <= ax < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(ax % builtins.max(ndim, 1))
    if len(set(out)) < len(out):
        raise ValueError(f"{op}: axis must not repeat an axis, got {shown(axis)}")
    return tuple(sorted(out))


def kept_shape(shape: tuple, axes: tuple) -> tuple:
    """The shape of a reduction over ``axes`` with ``keepdims=True``: ``(2, 3, 4), (1,) -> (2, 1, 4)``."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for ax in axes:
        n *= shape[ax]
    return n


def sum(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    r"""Forward :math:`z = \sum_{i \in axes} a_i`; backward :math:`\bar a_i = \bar z` (broadcast back over the summed axes)."""
    axes = normalize_axes(axis, a.ndim, "sum")
    kshape = kept_shape(a.shape, axes)
    xp = B.get_array_module(a.data)
    out = a.data.sum(axis=axes, keepdims=keepdims)
    return Tensor._make(out, (a,), lambda g: (xp.broadcast_to(g.reshape(kshape), a.shape),), "sum")


def mean(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    r"""Forward :math:`z = \frac1n \sum_{i \in axes} a_i`; backward :math:`\bar a_i = \bar z / n`."""
    axes = normalize_axes(axis, a.ndim, "mean")
    kshape = kept_shape(a.shape, axes)
    n = _count(a.shape, axes)
    xp = B.get_array_module(a.data)
    out = a.data.mean(axis=axes, keepdims=keepdims)
    return Tensor._make(
        out, (a,), lambda g: (xp.broadcast_to(g.reshape(kshape) / n, a.shape),), "mean"
    )


def _extreme(a: Tensor, axis, keepdims: bool, op: str) -> Tensor:
    axes = normalize_axes(axis, a.ndim, op)
    if a.data.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {a.shape}")
    kshape = kept_shape(a.shape, axes)
    best = (
        a.data.max(axis=axes, keepdims=True)
        if op == "max"
        else a.data.min(axis=axes, keepdims=True)
    )
    out = best if keepdims else best.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    def backward(g):
        # ties share the gradient equally, as torch.amax does
        hit = a.data == best
        count = hit.sum(axis=axes, keepdims=True)
        return (hit * (g.reshape(kshape) / count).astype(a.data.dtype, copy=False),)

    return Tensor._make(out, (a,), backward, op)


def max(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    r"""Forward :math:`z = \max_{i \in axes} a_i`; backward :math:`\bar a_i = \bar z / k` at the :math:`k` positions that attain the max, else 0."""
    return _extreme(a, axis, keepdims, "max")


def min(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    r"""Forward :math:`z = \min_{i \in axes} a_i`; backward :math:`\bar a_i = \bar z / k` at the :math:`k` positions that attain the min, else 0."""
    return _extreme(a, axis, keepdims, "min")


def var(a: Tensor, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    r"""Forward :math:`z = \frac{1}{n - ddof} \sum_i (a_i - \mu)^2`; backward :math:`\bar a_i = \bar z \, \frac{2 (a_i - \mu)}{n - ddof}`.

    (The mean's own dependence on :math:`a_i` drops out because :math:`\sum_i (a_i - \mu) = 0`.)
    ``ddof=0`` as in NumPy; ``ddof=1`` is the unbiased estimate (torch's default).
    """
    axes = normalize_axes(axis, a.ndim, "var")
    kshape = kept_shape(a.shape, axes)
    denom = _count(a.shape, axes) - ddof
    if denom <= 0:
        raise ValueError(f"var: need more than ddof={ddof} elements along the reduced axes")
    d = a.data - a.data.mean(axis=axes, keepdims=True)
    out = (d * d).sum(axis=axes, keepdims=keepdims) / denom
    return Tensor._make(out, (a,), lambda g: (g.reshape(kshape) * (2 / denom) * d,), "var")
