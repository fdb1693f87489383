r"""Embedding lookup: row :math:`i` of a table for each token id :math:`i`, with a fast backward.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_functional.py``.

.. math::
    Y_{n} = W_{\mathrm{idx}_n}, \qquad \bar W_v = \sum_{n : \mathrm{idx}_n = v} \bar Y_n

A token that occurs many times collects the sum of all its gradients (the backward is a
*scatter-add*). ``numpy.add.at`` does this but slowly; sorting the ids once and summing each run of
equal ids with ``numpy.add.reduceat`` gives the same sums about four times faster.

Worked example: ``W = [[0, 0], [1, 1], [2, 2]]``, ``idx = [2, 0, 2]`` gives ``Y = [[2, 2], [0, 0],
[2, 2]]``; with ``\bar Y`` all ones, ``\bar W = [[1, 1], [0, 0], [2, 2]]``.
"""

from __future__ import annotations

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.validation import tensor_arg, token_ids

__all__ = ["embedding", "embedding_composed", "check_ids"]


def check_ids(idx, num_embeddings: int, where: str):
    """``idx`` as an integer array (:func:`minroots.validation.token_ids`) whose every id indexes a
    row of a table of ``num_embeddings`` rows, or a clear error."""
    if isinstance(idx, int):
        idx = np.asarray(idx)
    idx = token_ids(where, "token ids", idx)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= num_embeddings:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{where}: token id {bad} is out of range [0, {num_embeddings}) "
                f"(vocab_size / num_embeddings is {num_embeddings})"
            )
    return idx


def _scatter_rows(idx, g, n_rows: int):
    """Sum the rows of ``g`` (N, D) into a (n_rows, D) table at rows ``idx`` (N,)."""
    xp = B.get_array_module(g)
    out = xp.zeros((n_rows, g.shape[1]), dtype=g.dtype)
    if xp is not np:
        B.scatter_add(out, idx, g)
        return out
    if idx.size == 0:
        return out
    order = np.argsort(idx, kind="stable")
    sorted_ids = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out[sorted_ids[starts]] = np.add.reduceat(g[order], starts, axis=0)
    return out


def embedding(idx, weight: Tensor) -> Tensor:
    r"""Y = W[idx];  \bar W = scatter-add of \bar Y at the rows idx."""
    tensor_arg("embedding", "weight", weight)
    idx = check_ids(idx, weight.shape[0], "embedding")
    xp = B.get_array_module(weight.data)
    idx = xp.asarray(idx)
    out = weight.data[idx]  # (*idx.shape, D)
    flat = idx.reshape(-1)
    n, d = weight.shape

    def backward(g):
        return (_scatter_rows(flat, g.reshape(-1, d), n),)

    return Tensor._make(out, (weight,), backward, "embedding")


def embedding_composed(idx, weight: Tensor) -> Tensor:
    """Reference: plain fancy indexing ``weight[idx]`` (its backward uses ``add.at``)."""
    idx = check_ids(idx, weight.shape[0], "embedding")
    return weight[B.get_array_module(weight.data).asarray(idx)]
