r"""Position information: fixed sinusoids (the original Transformer) or a learned table (GPT-2).

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py``.

Attention by itself ignores order (it is permutation-equivariant), so each position :math:`t`
gets a vector added to its token embedding. The sinusoidal encoding of Vaswani et al. (2017):

.. math::
    PE_{t, 2i} = \sin\!\bigl(t / 10000^{2i/D}\bigr), \qquad
    PE_{t, 2i+1} = \cos\!\bigl(t / 10000^{2i/D}\bigr)

Worked example (:math:`D = 4`): :math:`PE_0 = [0, 1, 0, 1]`,
:math:`PE_1 = [\sin 1, \cos 1, \sin 0.01, \cos 0.01] \approx [0.8415, 0.5403, 0.0100, 1.0000]`.

Both classes share one interface: ``pos(T, offset=0)`` returns the ``(T, D)`` vectors of
positions ``offset .. offset + T - 1`` (``offset`` is the length already in a key/value cache).
With one offset per sequence, an integer array ``(B,)`` (sequences of different lengths decoded
together, chapter 14, ``book/14_deployment.md``), the result is ``(B, T, D)``.
"""

from __future__ import annotations

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.nn.embedding import Embedding
from minroots.nn.module import Module

__all__ = ["SinusoidalPositionalEncoding", "LearnedPositionalEmbedding"]


def _check_range(t: int, offset: int, max_len: int, where: str) -> None:
    if t < 0 or offset < 0 or offset + t > max_len:
        raise ValueError(
            f"{where}: positions {offset}..{offset + t - 1} exceed max_len={max_len} "
            f"(the sequence is longer than block_size)"
        )


def _row_positions(t: int, offsets, max_len: int, where: str) -> np.ndarray:
    """Positions ``(B, T)``: row ``b`` holds ``offsets[b] .. offsets[b] + T - 1``."""
    offsets = np.asarray(B.to_numpy(offsets), dtype=np.int64)
    if offsets.size:
        _check_range(t, int(offsets.min()), max_len, where)
        _check_range(t, int(offsets.max()), max_len, where)
    return offsets[:, None] + np.arange(t)  # (B, T)


class SinusoidalPositionalEncoding(Module):
    """Fixed sin/cos position vectors (no parameters; the table is a non-persistent buffer)."""

    def __init__(self, n_embd: int, max_len: int = 1024, dtype=None):
        super().__init__()
        if n_embd % 2:
            raise ValueError(f"SinusoidalPositionalEncoding: n_embd must be even, got {n_embd}")
        self.n_embd, self.max_len = n_embd, max_len
        pos = np.arange(max_len, dtype=np.float64)[:, None]  # (L, 1)
        freq = np.exp(-np.log(10000.0) * np.arange(0, n_embd, 2, dtype=np.float64) / n_embd)
        table = np.empty((max_len, n_embd), dtype=np.float64)
        table[:, 0::2] = np.sin(pos * freq)
        table[:, 1::2] = np.cos(pos * freq)
        table = B.xp().asarray(table.astype(dtype or B.default_dtype()))
        self.register_buffer("table", table, persistent=False)  # (L, D)

    def forward(self, t: int, offset=0) -> Tensor:
        where = "SinusoidalPositionalEncoding"
        if np.ndim(offset):  # one offset per row: (B, T, D)
            pos = _row_positions(t, offset, self.max_len, where)
            return Tensor(self.table[B.get_array_module(self.table).asarray(pos)])
        _check_range(t, offset, self.max_len, where)
        return Tensor(self.table[offset : offset + t])  # (T, D), a constant

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, max_len={self.max_len}"


class LearnedPositionalEmbedding(Embedding):
    """A learned ``(max_len, D)`` table (GPT-2's ``wpe``), looked up by position."""

    def __init__(self, max_len: int, n_embd: int, init_std: float = 0.02, dtype=None):
        super().__init__(max_len, n_embd, init_std=init_std, dtype=dtype)

    def forward(self, t: int, offset=0) -> Tensor:
        where = "LearnedPositionalEmbedding"
        if np.ndim(offset):  # one offset per row: a lookup of the positions, (B, T, D)
            pos = _row_positions(t, offset, self.num_embeddings, where)
            return super().forward(B.get_array_module(self.weight.data).asarray(pos))
        _check_range(t, offset, self.num_embeddings, where)
        # a slice, not a gather: its gradient is a plain copy into rows offset..offset+T-1
        return self.weight[offset : offset + t]  # (T, D)
