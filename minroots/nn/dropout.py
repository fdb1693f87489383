"""``Dropout``: zero random elements during training (see :mod:`minroots.nn.functional.dropout`).

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py``. Active only in training mode (``model.train()``); ``model.eval()``
makes it the identity.
"""

from __future__ import annotations

from minroots.nn.functional.dropout import dropout
from minroots.nn.module import Module
from minroots.validation import real

__all__ = ["Dropout"]


class Dropout(Module):
    """``Dropout(0.1)``: each element is zeroed with probability 0.1 while training."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        real("Dropout", "p", p, low=0, high=1, high_open=True)
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
