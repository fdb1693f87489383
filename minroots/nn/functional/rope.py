r"""Rotary position embeddings (RoPE, Su et al., 2021): rotate queries and keys by their position.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_nn_modern_kernels.py``.

A head vector :math:`x \in \mathbb{R}^d` at position :math:`m` is cut into two halves,
:math:`x = [x^{(1)}, x^{(2)}]`, and each pair :math:`(x^{(1)}_i, x^{(2)}_i)` is rotated by the angle
:math:`m\,\omega_i` with the frequencies :math:`\omega_i = \theta^{-2i/d}`, :math:`i < d/2`
(``theta`` = 10000 in Llama 2, 500000 in Llama 3):

.. math::
    y^{(1)} = x^{(1)} \cos(m\omega) - x^{(2)} \sin(m\omega), \qquad
    y^{(2)} = x^{(2)} \cos(m\omega) + x^{(1)} \sin(m\omega)

i.e. :math:`y = R_m x` with a block rotation :math:`R_m`. Since :math:`R_m^\top R_n = R_{n-m}`,
a rotated query at position :math:`m` and a rotated key at :math:`n` score
:math:`(R_m q)^\top (R_n k) = q^\top R_{n-m} k`: attention sees only the *relative* position
:math:`n - m`. The pairing of element :math:`i` with element :math:`i + d/2` ("rotate half") is the
layout of Hugging Face's Llama and Qwen weights; the original paper pairs neighbours
:math:`(2i, 2i+1)`, which is the same rotation after a permutation of the projection's rows.

Backward: a rotation is orthogonal, so its adjoint is its transpose, the rotation by
:math:`-m\omega`:

.. math::
    \bar x^{(1)} = \bar y^{(1)} \cos(m\omega) + \bar y^{(2)} \sin(m\omega), \qquad
    \bar x^{(2)} = \bar y^{(2)} \cos(m\omega) - \bar y^{(1)} \sin(m\omega)

Positions start at ``offset``: with a key/value cache holding :math:`L` positions, the new tokens
are at :math:`L, L+1, \dots`; a batch of sequences of different lengths gives one offset per row.
The cos/sin tables (:func:`rope_tables`) are computed in float64, cast to the input's dtype and
cached per length (rounded up to a power of two), head size, theta, dtype and backend, so that
generating token after token does not rebuild them.

Worked example: :math:`d = 2`, :math:`x = [1, 0]` at position 1 with :math:`\omega_0 = 1` turns into
:math:`[\cos 1, \sin 1] = [0.5403, 0.8415]`; at position 0 nothing changes.
"""

from __future__ import annotations

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd.shape import concatenate
from minroots.validation import integer, real

__all__ = ["rope", "rope_composed", "rope_tables", "rope_frequencies"]

_TABLES: dict = {}


def rope_frequencies(head_dim: int, theta: float = 10000.0) -> np.ndarray:
    r""":math:`\omega_i = \theta^{-2i/d}` for :math:`i = 0 .. d/2 - 1`, in float64.

    >>> rope_frequencies(4, theta=100.0)
    array([1. , 0.1])
    """
    return 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def rope_tables(length: int, head_dim: int, theta: float = 10000.0, dtype="float32", xp=None):
    r"""``(cos, sin)``, each ``(length, head_dim // 2)``: :math:`\cos(m\omega_i)`, :math:`\sin(m\omega_i)`
    for positions :math:`m = 0 .. length - 1`.

    Computed in float64 and cast to ``dtype``; cached (read-only views of a table whose length is
    the next power of two), so asking for one more position reuses the table.

    >>> cos, sin = rope_tables(2, 2, dtype="float64")
    >>> cos.round(4).tolist(), sin.round(4).tolist()
    ([[1.0], [0.5403]], [[0.0], [0.8415]])
    """
    return _tables(length, head_dim, theta, dtype, xp)[:2]


def _tables(length: int, head_dim: int, theta: float, dtype, xp):
    """``(cos, sin, C, S)`` for positions ``0 .. length - 1``: the half tables of
    :func:`rope_tables`, and the full-width ``C = [cos, cos]``, ``S = [-sin, sin]`` the kernel uses."""
    xp = xp if xp is not None else B.xp()
    dtype = xp.dtype(dtype)
    size = 1 << max(0, int(length) - 1).bit_length()  # the next power of two >= length
    key = (size, head_dim, float(theta), str(dtype), xp.__name__)
    tables = _TABLES.get(key)
    if tables is None:
        angles = np.outer(np.arange(size, dtype=np.float64), rope_frequencies(head_dim, theta))
        cos, sin = np.cos(angles), np.sin(angles)
        full = (cos, sin, np.concatenate([cos, cos], axis=1), np.concatenate([-sin, sin], axis=1))
        tables = tuple(xp.asarray(t.astype(dtype)) for t in full)
        if xp.__name__ == "numpy":
            for t in tables:
                t.flags.writeable = False
        _TABLES[key] = tables
    return tuple(t[:length] for t in tables)


def _check(x: Tensor, offset, theta: float, where: str) -> int:
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError(
            f"{where}: x must have shape (..., T, d) with an even head size d, got {x.shape}"
        )
    if np.ndim(offset):  # one offset per row of the batch axis
        rows = np.asarray(B.to_numpy(offset))
        if (rows.ndim != 1 or x.ndim < 3 or rows.shape[0] != x.shape[0]
                or rows.dtype.kind not in "iu" or (rows < 0).any()):  # fmt: skip
            raise ValueError(
                f"{where}: offset must be an int >= 0 or one per row, a (B,) array of ints >= 0 "
                f"for x of shape (B, ..., T, d), got {rows.dtype} {rows.shape} for x {x.shape}"
            )
    else:
        integer(where, "offset", offset, low=0)
    real(where, "theta", theta, low=0, low_open=True)
    return x.shape[-1] // 2


def _at_positions(tables, offset, x: Tensor, xp):
    """The rows of ``tables`` (each ``(L, k)``) for the positions of ``x`` ``(..., T, d)``:
    ``offset .. offset + T - 1``, ``(T, k)``; with one offset per row, a gather broadcast over
    the middle axes, ``(B, 1, .., 1, T, k)``."""
    t = x.shape[-2]
    if not np.ndim(offset):
        return tuple(a[offset : offset + t] for a in tables)
    pos = np.asarray(B.to_numpy(offset), dtype=np.int64)[:, None] + np.arange(t)  # (B, T)
    pos = xp.asarray(pos.reshape((pos.shape[0],) + (1,) * (x.ndim - 3) + (t,)))
    return tuple(a[pos] for a in tables)


def _end(offset, t: int) -> int:
    """One past the last position needed: the table length."""
    return int(np.max(B.to_numpy(offset), initial=0)) + t


def rope(x: Tensor, offset=0, theta: float = 10000.0) -> Tensor:
    r"""Rotate each pair :math:`(x_i, x_{i+d/2})` of ``x`` ``(..., T, d)`` by :math:`m\,\omega_i`,
    for positions :math:`m` = ``offset`` .. ``offset + T - 1`` (fused forward and backward).
    ``offset`` may be one int per row, a ``(B,)`` array for ``x`` ``(B, ..., T, d)``: sequences
    of different lengths decoded together (book chapter 14), row :math:`b` from ``offset[b]``.

    Written with full-width tables, :math:`y = C \odot x + S \odot P x` with
    :math:`C = [\cos, \cos]`, :math:`S = [-\sin, \sin]` and :math:`P` the swap of the two halves
    (``roll`` by :math:`d/2`), so that every product runs over whole contiguous rows; the backward
    is :math:`\bar x = C \odot \bar y + P^\top (S \odot \bar y)`, and :math:`P^\top = P`.
    """
    h = _check(x, offset, theta, "rope")
    xp = B.get_array_module(x.data)
    a = xp.ascontiguousarray(x.data)  # heads are often a transposed view: one copy, fast rows
    full = _tables(_end(offset, a.shape[-2]), 2 * h, theta, a.dtype, xp)[2:]
    c, s = _at_positions(full, offset, x, xp)  # (T, d) or (B, 1, .., T, d), broadcast over x
    y = a * c
    swapped = xp.roll(a, h, axis=-1)  # [x2, x1]
    swapped *= s
    y += swapped

    def backward(g):
        gx = g * c
        gs = g * s
        gx += xp.roll(gs, h, axis=-1)  # P^T (S g), the rotation by -angle
        return (gx,)

    return Tensor._make(y, (x,), backward, "rope")


def rope_composed(x: Tensor, offset=0, theta: float = 10000.0) -> Tensor:
    r"""Reference RoPE from basic ops, as Hugging Face writes it:
    :math:`x \odot [\cos, \cos] + \mathrm{rotate\_half}(x) \odot [\sin, \sin]` with
    :math:`\mathrm{rotate\_half}([x^{(1)}, x^{(2)}]) = [-x^{(2)}, x^{(1)}]`."""
    h = _check(x, offset, theta, "rope_composed")
    xp = B.get_array_module(x.data)
    tables = rope_tables(_end(offset, x.shape[-2]), 2 * h, theta, x.dtype, xp)
    cos, sin = _at_positions(tables, offset, x, xp)  # (T, d/2) or (B, 1, .., T, d/2)
    cos2 = Tensor(xp.concatenate([cos, cos], axis=-1))  # (T, d)
    sin2 = Tensor(xp.concatenate([sin, sin], axis=-1))
    rotated = concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos2 + rotated * sin2
