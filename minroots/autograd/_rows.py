"""Fast row reductions over the last axis, shared by the fused kernels (not public API).

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``).

NumPy's ``a.sum(axis=-1)`` and ``a.max(axis=-1)`` on float32 rows of ~100 numbers run at about half
the speed of ``einsum("...j->...", a)`` and ``numpy.fmax.reduce`` (measured on the project's
machine; see ``benchmarks/train_step.py``). They give the same results (``fmax`` only differs for
NaN, which these kernels never feed it). CuPy takes the plain forms.
"""

from __future__ import annotations

import numpy as np

__all__ = ["row_sum", "row_dot", "row_max"]


def row_sum(a, xp):
    """``a.sum(axis=-1, keepdims=True)``: ``[[1, 2], [3, 4]] -> [[3], [7]]``."""
    if xp is np:
        return np.einsum("...j->...", a)[..., None]
    return a.sum(axis=-1, keepdims=True)


def row_dot(a, b, xp):
    """``(a * b).sum(axis=-1, keepdims=True)`` without the product array."""
    if xp is np:
        return np.einsum("...j,...j->...", a, b)[..., None]
    return (a * b).sum(axis=-1, keepdims=True)


def row_max(a, xp):
    """``a.max(axis=-1, keepdims=True)``; rows of length 0 give -inf (the maximum of nothing)."""
    if a.shape[-1] == 0:
        return xp.full(a.shape[:-1] + (1,), -xp.inf, dtype=a.dtype)
    if xp is np:
        return np.fmax.reduce(a, axis=-1, keepdims=True)
    return a.max(axis=-1, keepdims=True)
