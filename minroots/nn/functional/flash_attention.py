r"""Tiled attention with an online softmax (FlashAttention's algorithm), forward and backward.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_flash_attention.py``.

The dense kernel (:mod:`minroots.nn.functional.attention`) forms the scores
:math:`S = QK^\top/\sqrt d` of every query with every key: :math:`T^2` numbers per head, 64 MB per
head in float32 at :math:`T = 4096`. FlashAttention (Dao et al., 2022; the loop order of
FlashAttention-2, Dao 2023) computes the same output one tile of :math:`B_r` queries by
:math:`B_c` keys at a time and never holds more than one tile of scores: memory :math:`O(T)` per
head instead of :math:`O(T^2)`.

**Forward: the online softmax.** For one tile of queries, walk the key tiles :math:`j = 1, 2,
\dots` keeping, per query row, the running maximum :math:`m`, the running sum :math:`\ell` of the
exponentials and the running unnormalized output :math:`A`:

.. math::
    S_j = Q K_j^\top / \sqrt d + M_j, \quad m' = \max(m, \operatorname{rowmax} S_j), \quad
    P_j = e^{S_j - m'}, \quad \alpha = e^{m - m'}, \\
    \ell \leftarrow \alpha \ell + \operatorname{rowsum} P_j, \qquad
    A \leftarrow \alpha A + P_j V_j, \qquad m \leftarrow m'

At the end :math:`O = A / \ell` and the row's log-sum-exp :math:`L = m + \ln \ell` is kept for the
backward. Rescaling by :math:`\alpha` whenever the maximum grows is what makes one pass enough:
every term ends up multiplied by :math:`e^{-m_{\text{final}}}`, exactly as in the two-pass
softmax. :math:`m` starts at the most negative float rather than :math:`-\infty`, so a row whose
keys are all masked so far keeps finite shifts (no :math:`-\infty - (-\infty)`); a row with every
key masked ends with :math:`\ell = 0` and gets zeros, as in the dense kernel.

**Backward: recompute instead of store.** With :math:`D = \operatorname{rowsum}(\bar O \odot O)`
(equal to :math:`\operatorname{rowsum}(\bar P \odot P)`), each tile's weights come back exactly
from :math:`L`, and the dense kernel's formulas apply tile by tile:

.. math::
    P_{ij} = e^{S_{ij} - L_i}, \quad \bar V_j \mathrel{+}= P_{ij}^\top \bar O_i, \quad
    \bar P_{ij} = \bar O_i V_j^\top, \quad \bar S_{ij} = P_{ij} \odot (\bar P_{ij} - D_i), \\
    \bar Q_i \mathrel{+}= \bar S_{ij} K_j / \sqrt d, \qquad
    \bar K_j \mathrel{+}= \bar S_{ij}^\top Q_i / \sqrt d

With a causal mask the tiles above the diagonal are skipped (about half the work at large
:math:`T`), and only the tiles on the diagonal add a mask. The inputs are plain ``(..., T, d)``
arrays, e.g. ``(B, H, T, d)`` (grouped-query attention repeats its key/value heads first). The
leading axes are cut into blocks of heads for the threads of :mod:`minroots.parallel`; each head's
tiles are always visited in the same order, so the results do not depend on the thread count.

Worked example: with one key tile (:math:`T_k \le B_c`) the loop runs once, :math:`\alpha = 0`,
and the result is the dense softmax; ``tests/test_flash_attention.py`` checks outputs and gradients
against the dense kernel to 1e-10 in float64.
"""

from __future__ import annotations

import math

from minroots.autograd import Tensor
from minroots.autograd._rows import row_dot, row_max, row_sum
from minroots.parallel import map_blocks, row_blocks

__all__ = [
    "flash_attention", "flash_arrays", "flash_forward", "flash_backward", "BLOCK_Q", "BLOCK_K",
]  # fmt: skip

BLOCK_Q = 128  #: queries per tile (B_r)
BLOCK_K = 128  #: keys per tile (B_c)
_TILE_MASKS: dict = {}


def _tile_mask(n_q: int, n_k: int, shift: int, dtype, xp):
    """Additive causal mask of one tile: key ``c`` is hidden from query ``r`` when ``c > r + shift``
    (``shift`` = the tile's first query row + T_k - T_q - its first key column). Cached."""
    key = (n_q, n_k, shift, str(dtype), xp.__name__)
    m = _TILE_MASKS.get(key)
    if m is None:
        visible = xp.arange(n_k)[None, :] <= xp.arange(n_q)[:, None] + shift
        m = xp.where(visible, xp.asarray(0, dtype=dtype), xp.asarray(-xp.inf, dtype=dtype))
        _TILE_MASKS[key] = m
    return m


def _tiles(t_q: int, t_k: int, is_causal: bool, block_q: int, block_k: int):
    """``[(query slice, [(key slice, tile mask shift or None)])]``: for each query tile the key
    tiles it sees, in order; ``None`` = every key of the tile visible (no causal mask needed)."""
    offset = t_k - t_q  # the queries are the last t_q of t_k positions (bottom-right causal)
    out = []
    for i0 in range(0, t_q, block_q):
        i1 = min(i0 + block_q, t_q)
        keys = []
        for j0 in range(0, t_k, block_k):
            j1 = min(j0 + block_k, t_k)
            if is_causal and j0 > i1 - 1 + offset:
                break  # this tile and all later ones are in the future of every query here
            full = not is_causal or j1 - 1 <= i0 + offset
            keys.append((slice(j0, j1), None if full else i0 + offset - j0))
        out.append((slice(i0, i1), keys))
    return out


def _mask_tile(mask, qs: slice, ks: slice):
    """The tile ``[..., qs, ks]`` of an additive mask broadcastable to ``(..., T_q, T_k)``."""
    rows = qs if mask.shape[-2] != 1 else slice(None)
    cols = ks if mask.shape[-1] != 1 else slice(None)
    return mask[..., rows, cols]


def flash_forward(qs, kt, v, tiles, mask, xp, o, lse) -> None:
    r"""Online-softmax forward of one block of heads, from contiguous ``qs`` = :math:`Q/\sqrt d`
    ``(n, T_q, d)``, ``kt`` = :math:`K^\top` ``(n, d, T_k)``, ``v`` ``(n, T_k, d_v)``; ``mask`` is
    an additive mask broadcastable to ``(n, T_q, T_k)`` or None. Writes ``O`` into ``o``
    ``(n, T_q, d_v)`` and the rows' log-sum-exp :math:`L` into ``lse`` ``(n, T_q, 1)``."""
    n = qs.shape[0]
    dt = qs.dtype
    lowest = xp.asarray(xp.finfo(dt).min, dtype=dt)
    for q_rows, keys in tiles:
        nr = q_rows.stop - q_rows.start
        m = xp.full((n, nr, 1), lowest, dtype=dt)  # running max (finite: see the docstring)
        ell = xp.zeros((n, nr, 1), dtype=dt)  # running sum of exponentials
        acc = xp.zeros((n, nr, v.shape[-1]), dtype=dt)  # running unnormalized output
        for k_cols, shift in keys:
            s = _scores(qs, kt, q_rows, k_cols, shift, mask, xp)  # (n, Br, Bc)
            m_new = xp.maximum(m, row_max(s, xp))
            s -= m_new
            p = xp.exp(s, out=s)  # P_j = e^{S_j - m'}
            alpha = xp.exp(m - m_new)
            ell *= alpha
            ell += row_sum(p, xp)
            acc *= alpha
            acc += xp.matmul(p, v[:, k_cols])
            m = m_new
        seen = ell > 0  # False only for rows with every key masked: output 0, as the dense kernel
        r = xp.zeros_like(ell)
        xp.divide(1, ell, out=r, where=seen)
        xp.multiply(acc, r, out=o[:, q_rows])
        lse[:, q_rows] = xp.where(seen, m + xp.log(xp.where(seen, ell, 1)), xp.inf)


def flash_backward(g, qs, kt, v, o, lse, tiles, mask, scale, xp, gq, gkt, gvt) -> None:
    r"""Tiled backward of one block of heads: writes :math:`\bar Q` into ``gq`` ``(n, T_q, d)``,
    :math:`\bar K^\top` into ``gkt`` ``(n, d, T_k)`` and :math:`\bar V^\top` into ``gvt``
    ``(n, d_v, T_k)``, from ``g`` = :math:`\bar O` and the forward's ``O`` and ``L`` (no stored
    weights: each tile's :math:`P` is recomputed from :math:`L`). ``scale`` is :math:`1/\sqrt d`.
    Every product has contiguous operands (the transposes are copied once, :math:`O(Td)`)."""
    d_sum = row_dot(g, o, xp)  # D = rowsum(dO * O), (n, Tq, 1)
    gq[...] = 0
    gkt[...] = 0
    gvt[...] = 0
    vt = xp.ascontiguousarray(v.swapaxes(-1, -2))  # V^T (n, dv, Tk)
    k = xp.ascontiguousarray(kt.swapaxes(-1, -2))  # K (n, Tk, d)
    for q_rows, keys in tiles:
        g_i = xp.ascontiguousarray(g[:, q_rows])  # dO_i (n, Br, dv)
        gt_i = xp.ascontiguousarray(g_i.swapaxes(-1, -2))  # dO_i^T (n, dv, Br)
        qt_i = xp.ascontiguousarray(qs[:, q_rows].swapaxes(-1, -2))  # (Q_i s)^T (n, d, Br)
        for k_cols, shift in keys:
            s = _scores(qs, kt, q_rows, k_cols, shift, mask, xp)  # (n, Br, Bc)
            s -= lse[:, q_rows]
            p = xp.exp(s, out=s)  # P_ij = e^{S_ij - L_i}
            gvt[:, :, k_cols] += xp.matmul(gt_i, p)  # dV_j^T += dO_i^T P
            gp = xp.matmul(g_i, vt[:, :, k_cols])  # dP = dO_i V_j^T
            gp -= d_sum[:, q_rows]
            gp *= p  # dS = P (dP - D_i)
            gq[:, q_rows] += xp.matmul(gp, k[:, k_cols])  # dQ_i += dS K_j   (times s below)
            gkt[:, :, k_cols] += xp.matmul(qt_i, gp)  # dK_j^T += (Q_i s)^T dS
    gq *= scale


def _scores(qs, kt, q_rows: slice, k_cols: slice, shift, mask, xp):
    """One tile of scores ``(n, Br, Bc)``: :math:`Q_i s K_j^\top`, plus the causal tile mask
    (``shift`` not None: a tile on the diagonal) and the tile of ``mask``."""
    s = xp.matmul(qs[:, q_rows], kt[:, :, k_cols])
    if shift is not None:
        s += _tile_mask(q_rows.stop - q_rows.start, k_cols.stop - k_cols.start, shift, s.dtype, xp)
    if mask is not None:
        s += _mask_tile(mask, q_rows, k_cols)
    return s


def flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask=None,
    is_causal: bool = False,
    scale: float | None = None,
    block_q: int = BLOCK_Q,
    block_k: int = BLOCK_K,
) -> Tensor:
    r"""O = \mathrm{softmax}(Q K^\top / \sqrt d + M)\,V in tiles of ``block_q`` x ``block_k``:
    memory O(T) per head (one graph node; the same values and gradients as the dense kernel).

    ``q`` ``(..., T_q, d)``, ``k`` ``(..., T_k, d)``, ``v`` ``(..., T_k, d_v)`` with the same
    leading axes (e.g. ``(B, H, T, d)``); ``mask``: boolean (``True`` = may attend) or additive,
    broadcastable to ``(..., T_q, T_k)``; ``is_causal`` hides later keys (bottom-right aligned when
    ``T_q < T_k``, as :func:`~minroots.nn.functional.attention.causal_mask`). No dropout.
    """
    from minroots.nn.functional.attention import _prepare  # the dense kernel's checks and mask

    if is_causal and mask is not None:
        raise ValueError("flash_attention: pass either mask or is_causal, not both")
    xp, scale, mask_add = _prepare(q, k, v, mask, False, scale)
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            f"flash_attention: q, k, v need the same leading axes (repeat grouped key/value heads "
            f"first); got {q.shape}, {k.shape}, {v.shape}"
        )
    lead, t_q, t_k, dv = q.shape[:-2], q.shape[-2], k.shape[-2], v.shape[-1]
    n = math.prod(lead)
    o, grads = flash_arrays(
        q.data.reshape(n, t_q, -1), k.data.reshape(n, t_k, -1), v.data.reshape(n, t_k, dv),
        _fold_heads(mask_add, lead, xp), is_causal, scale, xp, block_q, block_k,
    )  # fmt: skip

    def backward(g):
        gq, gk, gv = grads(g.reshape(n, t_q, dv))
        return gq.reshape(q.shape), gk.reshape(k.shape), gv.reshape(v.shape)

    return Tensor._make(o.reshape(*lead, t_q, dv), (q, k, v), backward, "flash_attention")


def flash_arrays(q, k, v, mask, is_causal, scale, xp, block_q=BLOCK_Q, block_k=BLOCK_K):
    """The kernel on arrays of ``n`` heads: ``q`` ``(n, T_q, d)``, ``k`` ``(n, T_k, d)``, ``v``
    ``(n, T_k, d_v)`` (any strides), ``mask`` additive ``(T_q, T_k)``-like or ``(n, ., .)``.

    Returns ``O`` ``(n, T_q, d_v)`` and ``grads(dO) -> (dQ, dK, dV)``. Blocks of whole heads go to
    the threads of :mod:`minroots.parallel`.
    """
    n, t_q, _ = q.shape
    t_k, dv = k.shape[1], v.shape[-1]
    qs = xp.multiply(q, scale)  # Q / sqrt d, contiguous (n, Tq, d)
    kt = xp.ascontiguousarray(k.swapaxes(-1, -2))  # (n, d, Tk)
    vd = xp.ascontiguousarray(v)  # (n, Tk, dv)
    tiles = _tiles(t_q, t_k, is_causal, block_q, block_k)
    heads = row_blocks(n, block_q * block_k, elements=1 << 17, xp=xp)  # blocks of whole heads
    o = xp.empty((n, t_q, dv), dtype=qs.dtype)
    lse = xp.empty((n, t_q, 1), dtype=qs.dtype)  # O(T) per head: all the backward keeps

    def forward_block(s):
        flash_forward(qs[s], kt[s], vd[s], tiles, _heads_of(mask, s), xp, o[s], lse[s])

    map_blocks(forward_block, heads)

    def grads(g):
        gq, gkt, gvt = xp.empty_like(qs), xp.empty_like(kt), xp.empty((n, dv, t_k), dtype=vd.dtype)

        def backward_block(s):
            flash_backward(g[s], qs[s], kt[s], vd[s], o[s], lse[s], tiles, _heads_of(mask, s),
                           scale, xp, gq[s], gkt[s], gvt[s])  # fmt: skip

        map_blocks(backward_block, heads)
        return gq, gkt.swapaxes(-1, -2), gvt.swapaxes(-1, -2)

    return o, grads


def _fold_heads(mask, lead: tuple, xp):
    """An additive mask for ``(n, T_q, T_k)`` heads: 2-D when every head shares it (no copy), else
    ``(n, ., .)`` with the leading axes folded like the queries'."""
    if mask is None:
        return None
    if mask.ndim <= 2 or all(d == 1 for d in mask.shape[:-2]):
        return mask.reshape(mask.shape[-2:])
    return xp.broadcast_to(mask, (*lead, *mask.shape[-2:])).reshape(-1, *mask.shape[-2:])


def _heads_of(mask, s: slice):
    return mask[s] if mask is not None and mask.ndim == 3 else mask
