r"""``Embedding``: a table of learned vectors, one row per token id.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py``.

``Embedding(V, D)(idx)`` maps integer ids of any shape to vectors: ``(B, T) -> (B, T, D)``. Rows
are initialized from :math:`\mathcal{N}(0, 0.02^2)`, as in GPT-2. Ids outside ``[0, V)`` or a
floating dtype raise a clear error.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.nn.functional.embedding import embedding
from minroots.nn.module import Module, Parameter
from minroots.validation import positive_int

__all__ = ["Embedding"]


class Embedding(Module):
    """``Embedding(65, 128)``: 65 token ids, 128 numbers each."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float = 0.02,
                 dtype=None):  # fmt: skip
        super().__init__()
        positive_int("Embedding", "num_embeddings", num_embeddings)
        positive_int("Embedding", "embedding_dim", embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        w = B.rng().standard_normal(
            (num_embeddings, embedding_dim), dtype=dtype or B.default_dtype()
        )
        w *= w.dtype.type(init_std)
        self.weight = Parameter(w)  # (V, D)

    def forward(self, idx):
        return embedding(idx, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
