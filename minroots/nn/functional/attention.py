r"""Scaled dot-product attention with a fused backward, and its packed multi-head form.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_functional.py`` and ``tests/test_nn_properties.py``.

For queries :math:`Q` (``(..., T_q, d)``), keys :math:`K` (``(..., T_k, d)``) and values
:math:`V` (``(..., T_k, d_v)``):

.. math::
    S = \frac{Q K^\top}{\sqrt{d}} + M, \qquad P = \mathrm{softmax}_{\text{rows}}(S), \qquad O = P V

where the additive mask :math:`M` holds 0 where a query may look and :math:`-\infty` where it may
not (the causal mask hides the future: key :math:`j` is hidden from query :math:`i` when
:math:`j > i`). Backward, with :math:`\bar O` given:

.. math::
    \bar V = P^\top \bar O, \quad \bar P = \bar O V^\top, \quad
    \bar S = P \odot \bigl(\bar P - \textstyle\sum_j (\bar P \odot P)_{:,j}\bigr), \quad
    \bar Q = \frac{\bar S K}{\sqrt d}, \quad \bar K = \frac{\bar S^\top Q}{\sqrt d}

The fused op keeps one ``(T_q, T_k)`` array per head for the backward, the exponentials
:math:`E = e^{S - \max}`, with the row factors :math:`r = 1/\sum_j E_j` (so :math:`P = rE`; ``r`` is
folded into the small operands rather than applied to the big matrix). Every batched matmul gets
C-contiguous operands (:math:`Q/\sqrt d`, :math:`K^\top`, :math:`V` are copied once): NumPy passes
those to BLAS, while a transposed view can take a loop hundreds of times slower. The exception is
decoding a single query without a graph: the products are then matrix-vector, BLAS reads the
key/value cache in place, and a copy would cost several times the product. The causal mask for a
given :math:`(T_q, T_k)` is built once and cached. When :math:`T_q < T_k` (decoding with a
key/value cache: the queries are the *last* :math:`T_q` positions) the causal mask is aligned to
the bottom right, so query :math:`i` sees keys :math:`j \le i + T_k - T_q`.

Worked example: one query equally similar to two keys (:math:`S = [0, 0]`) gives
:math:`P = [\tfrac12, \tfrac12]` and returns the average of the two values.
"""

from __future__ import annotations

import math

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd._rows import row_dot
from minroots.autograd.elementwise import add
from minroots.autograd.linalg import matmul
from minroots.autograd.shape import swapaxes
from minroots.autograd.softmax import exp_shifted, softmax_composed
from minroots.autograd.tensor import is_grad_enabled, unbroadcast
from minroots.nn.functional.flash_attention import _fold_heads, flash_arrays, flash_attention
from minroots.parallel import map_blocks, row_blocks
from minroots.validation import one_of

__all__ = [
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_composed",
    "causal_mask",
    "packed_self_attention",
    "use_flash",
    "KERNELS",
]

_MASKS: dict = {}


def causal_mask(t_q: int, t_k: int, dtype, xp=None):
    """The causal mask ``(t_q, t_k)``: query ``i`` may look at key ``j`` when ``j <= i + t_k - t_q``.

    The queries are the *last* ``t_q`` of ``t_k`` positions (decoding with a key/value cache), so
    the mask is aligned to the bottom right. A float ``dtype`` gives the additive form (0 where a
    query may look, ``-inf`` where not); ``dtype=bool`` the boolean form (``True`` where a query
    may look), which combines with padding masks by ``&``. Built once per ``(t_q, t_k, dtype,
    backend)`` and cached (read-only).

    >>> causal_mask(2, 3, "float32")        # two new queries after one cached position
    array([[  0.,   0., -inf],
           [  0.,   0.,   0.]], dtype=float32)
    >>> causal_mask(2, 3, bool)
    array([[ True,  True, False],
           [ True,  True,  True]])
    """
    xp = xp if xp is not None else B.xp()
    dtype = xp.dtype(dtype)
    key = (t_q, t_k, str(dtype), xp.__name__)
    m = _MASKS.get(key)
    if m is None:
        m = xp.arange(t_k)[None, :] <= xp.arange(t_q)[:, None] + (t_k - t_q)  # (Tq, Tk) visible
        if dtype.kind != "b":  # the additive form
            zero, minus_inf = xp.asarray(0, dtype=dtype), xp.asarray(-xp.inf, dtype=dtype)
            m = xp.where(m, zero, minus_inf).astype(dtype)
        if xp.__name__ == "numpy":
            m.flags.writeable = False
        _MASKS[key] = m
    return m


KERNELS = ("auto", "dense", "flash")
#: "auto" takes the tiled kernel from this many keys on: measured on one thread, causal, forward +
#: backward, it takes 0.84x the dense kernel's time at 512 keys, 0.68x at 1024, but 1.1x at 256
#: (benchmarks/README.md) ...
FLASH_MIN_KEYS = 512
#: ... or when the dense kernel's saved scores, (..., T_q, T_k) float32, would pass this size
FLASH_MAX_SCORES_BYTES = 1 << 30


def use_flash(kernel: str, q_shape: tuple, t_k: int, dropout_p: float, same_lead: bool,
              where: str) -> bool:  # fmt: skip
    """Whether attention of queries ``q_shape`` ``(..., T_q, d)`` over ``t_k`` keys runs tiled.

    ``"flash"`` always (it has no dropout, and needs q, k, v with the same leading axes);
    ``"dense"`` never; ``"auto"`` when the tiled kernel can run and either ``t_k >=``
    ``FLASH_MIN_KEYS`` or the dense scores would take more than
    ``FLASH_MAX_SCORES_BYTES``.
    """
    one_of(where, "kernel", kernel, KERNELS)
    if kernel == "flash" and (dropout_p or not same_lead):
        raise ValueError(
            f"{where}: kernel='flash' needs dropout_p=0 and q, k, v with the same leading axes; "
            f"use kernel='dense' (got dropout_p={dropout_p})"
        )
    if kernel != "auto":
        return kernel == "flash"
    if dropout_p or not same_lead or not is_grad_enabled() and q_shape[-2] == 1:
        return False
    scores = math.prod(q_shape[:-1]) * t_k * 4
    return t_k >= FLASH_MIN_KEYS or scores > FLASH_MAX_SCORES_BYTES


def _additive_mask(mask, dtype, xp):
    """A boolean mask (True = may attend, PyTorch's convention) or a float mask, as additive."""
    if mask is None:
        return None
    mask = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
    if mask.dtype == bool:
        return xp.where(mask, xp.asarray(0, dtype=dtype), xp.asarray(-xp.inf, dtype=dtype))
    return mask.astype(dtype, copy=False)


def _exp_rows_(s, xp):
    r"""In place: ``s`` becomes :math:`E = e^{s - \max}` per row (:func:`exp_shifted`); returns
    ``(E, r)`` with :math:`r = 1 / \sum_j E_j` ``(..., 1)``, so that the softmax is :math:`P = r E`.

    :math:`P` itself is never formed: ``r`` is folded into the small ``(T, d)`` operands instead
    (one full pass over the ``(T, T)`` scores saved forward and backward). Rows that are all
    ``-inf`` (every key masked) get :math:`r = 0`, hence zero output, not NaN.
    """
    e, _, total = exp_shifted(s, axis=-1, out=s, fast_rows=True)
    r = xp.zeros_like(total)
    xp.divide(1, total, out=r, where=total > 0)
    return e, r


def _c(a, xp):
    return xp.ascontiguousarray(a)


def _scaled_copy(a, scale, xp):
    """``a * scale`` as a new C-contiguous array (an elementwise op on a transposed view would
    otherwise keep the view's memory order)."""
    out = xp.empty(a.shape, dtype=a.dtype)
    return xp.multiply(a, scale, out=out)


def _forward(qs, kt, v, add_mask, dropout_p, xp):
    """O = softmax(Qs K^T + M) V from *contiguous* operands: ``qs`` = Q / sqrt(d) ``(..., Tq, d)``,
    ``kt`` = K^T ``(..., d, Tk)``, ``v`` ``(..., Tk, dv)``. Returns (O, E, r, drop) where the
    attention weights are P = r E and ``drop`` is their dropout mask (or None).

    Every stacked matmul gets C-contiguous operands: NumPy hands those to BLAS, whereas a
    transposed view (``k.swapaxes(-1, -2)``) can fall back to a loop hundreds of times slower.
    """
    s = xp.matmul(qs, kt)  # (..., Tq, Tk)
    if add_mask is not None:
        s += add_mask
    e, r = _exp_rows_(s, xp)
    drop = _dropout_mask(e, dropout_p, xp)
    o = xp.matmul(e if drop is None else e * drop, v)  # (..., Tq, dv)
    o *= r
    return o, e, r, drop


def _backward(g, qs, kt, v, e, r, drop, scale, xp):
    """Gradients (dQ, dK^T, dV^T) of O = (P * drop) V with P = r E, from contiguous operands.

    With S = Qs K^T (Qs = Q * scale): dV^T = (r dO)^T (E * drop), dP = (dO V^T) * drop,
    dS = P * (dP - rowsum(dP * P)) = r * dS' with dS' = E * (dP - r rowsum(dP * E)),
    dQ = (dS' K) * r * scale, dK^T = (r Qs)^T dS'. The transposed results (dK^T, dV^T) avoid
    transposing the large (Tq, Tk) matrices; the caller's final layout copy absorbs them.
    """
    g = _c(g, xp)
    gr_t = _c((g * r).swapaxes(-1, -2), xp)  # (..., dv, Tq)
    gvt = xp.matmul(gr_t, e if drop is None else e * drop)  # dV^T (..., dv, Tk)
    gp = xp.matmul(g, _c(v.swapaxes(-1, -2), xp))  # dP (..., Tq, Tk)
    if drop is not None:
        gp *= drop
    rs = row_dot(gp, e, xp)
    rs *= r
    gp -= rs
    gp *= e  # dS'
    gq = xp.matmul(gp, _c(kt.swapaxes(-1, -2), xp))  # (..., Tq, d)
    gq *= r * scale
    gkt = xp.matmul(_c((qs * r).swapaxes(-1, -2), xp), gp)  # dK^T (..., d, Tk)
    return gq, gkt, gvt


def _dropout_mask(p, dropout_p: float, xp):
    """0 or 1/(1-p) per attention weight (inverted dropout), or None when dropout_p is 0."""
    if not dropout_p:
        return None
    gen = B.rng(xp.__name__)
    keep = gen.random(p.shape, dtype=p.dtype) >= p.dtype.type(dropout_p)
    return keep * p.dtype.type(1.0 / (1.0 - dropout_p))


def _prepare(q, k, v, mask, is_causal, scale):
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(
            f"scaled_dot_product_attention: q, k, v need shape (..., T, d); "
            f"got {q.shape}, {k.shape}, {v.shape}"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: q {q.shape} and k {k.shape} need the same last axis, "
            f"k and v {v.shape} the same number of positions"
        )
    if mask is not None and is_causal:
        raise ValueError("scaled_dot_product_attention: pass either mask or is_causal, not both")
    xp = B.get_array_module(q.data)
    dt = q.data.dtype
    scale = dt.type(1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        mask_add = causal_mask(q.shape[-2], k.shape[-2], dt, xp)
    else:
        mask_add = _additive_mask(mask, dt, xp)
    return xp, scale, mask_add


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask=None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    kernel: str = "auto",
) -> Tensor:
    r"""O = \mathrm{softmax}(Q K^\top / \sqrt d + M)\,V (fused forward and backward, one node).

    ``mask`` is boolean (``True`` = may attend, broadcast to ``(..., T_q, T_k)``) or additive
    float; ``is_causal`` uses the cached causal mask; ``dropout_p`` drops attention weights.
    ``kernel``: ``"dense"`` (this module), ``"flash"`` (tiled,
    :mod:`~minroots.nn.functional.flash_attention`) or ``"auto"`` (:func:`use_flash`).
    """
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(
            f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}"
        )
    same_lead = q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
    if use_flash(
        kernel, q.shape, k.shape[-2], dropout_p, same_lead, "scaled_dot_product_attention"
    ):
        return flash_attention(q, k, v, mask=mask, is_causal=is_causal, scale=scale)
    xp, scale, mask_add = _prepare(q, k, v, mask, is_causal, scale)
    qs = _scaled_copy(q.data, scale, xp)  # (..., Tq, d)
    if q.shape[-2] == 1 and not is_grad_enabled():
        # Decoding one query with a KV cache: the products are matrix-vector, and BLAS reads the
        # strided cache views directly; a contiguous K^T copy would cost more than the product.
        kt, vd = k.data.swapaxes(-1, -2), v.data
    else:
        kt = _c(k.data.swapaxes(-1, -2), xp)  # (..., d, Tk)
        vd = _c(v.data, xp)  # (..., Tk, dv)
    out, e, r, drop = _forward(qs, kt, vd, mask_add, dropout_p, xp)

    def backward(g):
        gq, gkt, gvt = _backward(g, qs, kt, vd, e, r, drop, scale, xp)
        gk, gv = gkt.swapaxes(-1, -2), gvt.swapaxes(-1, -2)
        return unbroadcast(gq, q.shape), unbroadcast(gk, k.shape), unbroadcast(gv, v.shape)

    return Tensor._make(out, (q, k, v), backward, "scaled_dot_product_attention")


def scaled_dot_product_attention_composed(
    q: Tensor, k: Tensor, v: Tensor, mask=None, is_causal: bool = False, scale: float | None = None
) -> Tensor:
    """Reference attention from basic ops (matmul, mul, add, softmax): no dropout."""
    xp, scale, mask_add = _prepare(q, k, v, mask, is_causal, scale)
    s = matmul(q, swapaxes(k, -1, -2)) * float(scale)
    if mask_add is not None:
        s = add(s, Tensor(mask_add))
    return matmul(softmax_composed(s, axis=-1), v)


def packed_self_attention(
    qkv: Tensor,
    n_head: int,
    is_causal: bool = True,
    mask=None,
    dropout_p: float = 0.0,
    kernel: str = "auto",
) -> Tensor:
    r"""Multi-head self-attention straight from a fused projection, one graph node.

    ``qkv`` is ``(B, T, 3C)`` = ``[Q | K | V]`` as GPT-2's ``c_attn`` produces it; the result is
    ``(B, T, C)`` with the heads merged back. Inside, for each block of sequences (the blocks
    shared by the threads of :mod:`minroots.parallel`): head-major contiguous copies of
    :math:`Q/\sqrt{d}`, :math:`K^\top` and :math:`V`, batched attention, and in the backward the
    three gradients written into their places in one ``(B, T, 3C)`` buffer (no per-head or
    per-projection graph nodes). ``kernel`` as in :func:`scaled_dot_product_attention`.
    """
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(
            f"packed_self_attention: qkv must be (B, T, 3*C) with C divisible by n_head={n_head}, "
            f"got {qkv.shape}"
        )
    b, t, c3 = qkv.shape
    c = c3 // 3
    hd = c // n_head
    xp = B.get_array_module(qkv.data)
    dt = qkv.data.dtype
    scale = dt.type(1.0 / math.sqrt(hd))
    heads = qkv.data.reshape(b, t, 3, n_head, hd)  # a view
    if mask is not None and is_causal:
        raise ValueError("packed_self_attention: pass either mask or is_causal, not both")
    if use_flash(kernel, (b, n_head, t, hd), t, dropout_p, True, "packed_self_attention"):
        return _packed_flash(qkv, heads, n_head, is_causal, _additive_mask(mask, dt, xp), scale)
    mask_add = causal_mask(t, t, dt, xp) if is_causal else _additive_mask(mask, dt, xp)
    y = xp.empty((b, t, c), dtype=dt)
    # Blocks of whole sequences on the threads of minroots.parallel; dropout draws random numbers,
    # so with dropout one block keeps the draws independent of the threads.
    blocks = [slice(0, b)] if dropout_p else row_blocks(b, n_head * t * t, xp=xp)
    blocks = list(enumerate(blocks))

    def forward_block(kb):
        s = kb[1]
        return _packed_forward(heads[s], _batch_rows(mask_add, s, b), scale, dropout_p, y[s], xp)

    saved = map_blocks(forward_block, blocks)

    def backward(g):
        gqkv = xp.empty((b, t, 3, n_head, hd), dtype=dt)
        gh = g.reshape(b, t, n_head, hd)  # a view

        def backward_block(kb):
            k, s = kb
            _packed_backward(gh[s], saved[k], scale, gqkv[s], xp)

        map_blocks(backward_block, blocks)
        return (gqkv.reshape(b, t, c3),)

    return Tensor._make(y, (qkv,), backward, "packed_self_attention")


def _batch_rows(mask, s: slice, b: int):
    """The rows ``s`` of a mask broadcastable to ``(B, H, T_q, T_k)`` (itself if it has no B axis)."""
    if mask is None or mask.ndim < 4 or mask.shape[0] != b:
        return mask
    return mask[s]


def _packed_forward(heads, mask_add, scale, dropout_p, y, xp):
    """One block of sequences: ``heads`` ``(b, T, 3, H, hd)`` -> ``y`` ``(b, T, C)``, written in
    place; returns what the backward needs (head-major ``Qs``, ``K^T``, ``V``, ``E``, ``r``, the
    dropout mask)."""
    nb, t, _, n_head, hd = heads.shape
    qs = _scaled_copy(heads[:, :, 0].transpose(0, 2, 1, 3), scale, xp)  # (b, H, T, hd)
    kt = _c(heads[:, :, 1].transpose(0, 2, 3, 1), xp)  # (b, H, hd, T)
    v = _c(heads[:, :, 2].transpose(0, 2, 1, 3), xp)  # (b, H, T, hd)
    o, e, r, drop = _forward(qs, kt, v, mask_add, dropout_p, xp)  # (b, H, T, hd)
    y.reshape(nb, t, n_head, hd)[...] = o.transpose(0, 2, 1, 3)  # (b, T, H, hd): heads merged
    return qs, kt, v, e, r, drop


def _packed_backward(g, saved, scale, gqkv, xp):
    """One block of sequences: ``g`` ``(b, T, H, hd)`` -> the three gradients, written into their
    places in ``gqkv`` ``(b, T, 3, H, hd)``."""
    qs, kt, v, e, r, drop = saved
    gq, gkt, gvt = _backward(g.transpose(0, 2, 1, 3), qs, kt, v, e, r, drop, scale, xp)
    gqkv[:, :, 0] = gq.transpose(0, 2, 1, 3)  # (b, T, H, hd)
    gqkv[:, :, 1] = gkt.transpose(0, 3, 1, 2)
    gqkv[:, :, 2] = gvt.transpose(0, 3, 1, 2)


def _packed_flash(qkv, heads, n_head, is_causal, mask_add, scale):
    """:func:`packed_self_attention` through the tiled kernel: heads ``(B*H, T, hd)`` in, the
    merged ``(B, T, C)`` out, the three gradients written into one ``(B, T, 3C)`` buffer."""
    xp = B.get_array_module(heads)
    b, t, _, _, hd = heads.shape
    mask_add = _fold_heads(mask_add, (b, n_head), xp)
    q, k, v = (heads[:, :, j].transpose(0, 2, 1, 3).reshape(b * n_head, t, hd) for j in range(3))
    o, grads = flash_arrays(q, k, v, mask_add, is_causal, scale, xp)  # (B*H, T, hd)
    y = o.reshape(b, n_head, t, hd).transpose(0, 2, 1, 3).reshape(b, t, n_head * hd)

    def backward(g):
        gh = g.reshape(b, t, n_head, hd).transpose(0, 2, 1, 3).reshape(b * n_head, t, hd)
        gqkv = xp.empty((b, t, 3, n_head, hd), dtype=heads.dtype)
        for j, gj in enumerate(grads(gh)):  # dQ, dK, dV (B*H, T, hd)
            gqkv[:, :, j] = gj.reshape(b, n_head, t, hd).transpose(0, 2, 1, 3)
        return (gqkv.reshape(qkv.shape),)

    return Tensor._make(y, (qkv,), backward, "packed_self_attention")
