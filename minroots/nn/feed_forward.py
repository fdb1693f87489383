r"""``FeedForward``: the position-wise MLP of a Transformer block.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py``.

.. math::  \mathrm{FFN}(x) = \mathrm{dropout}\bigl(W_2\, \mathrm{act}(W_1 x + b_1) + b_2\bigr)

with :math:`W_1` of shape ``(4C, C)`` (GPT-2's ``c_fc``) and :math:`W_2` of shape ``(C, 4C)``
(``c_proj``). GPT-2 uses GELU in its tanh form (``"gelu_tanh"``, the default here, so that
GPT-2's weights give GPT-2's outputs); ``"gelu"`` is the exact GELU (PyTorch's default for
``F.gelu``); the original Transformer used ReLU. The GELU kernel is :mod:`minroots.autograd.gelu`.
"""

from __future__ import annotations

from minroots.autograd.elementwise import relu
from minroots.autograd.gelu import gelu
from minroots.nn.dropout import Dropout
from minroots.nn.linear import Linear
from minroots.nn.module import Module
from minroots.validation import one_of

__all__ = ["FeedForward"]

_ACTIVATIONS = ("gelu_tanh", "gelu", "relu")


class FeedForward(Module):
    """``FeedForward(128)``: 128 -> 512 -> 128 with GELU (tanh form) in between."""

    def __init__(self, n_embd: int, hidden: int | None = None, dropout: float = 0.0,
                 bias: bool = True, activation: str = "gelu_tanh", proj_std: float = 0.02):  # fmt: skip
        super().__init__()
        one_of("FeedForward", "activation", activation, _ACTIVATIONS)
        hidden = hidden or 4 * n_embd
        self.activation = activation
        self.c_fc = Linear(n_embd, hidden, bias=bias)
        self.c_proj = Linear(hidden, n_embd, bias=bias, init_std=proj_std)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        h = self.c_fc(x)  # (B, T, 4C)
        if self.activation == "gelu_tanh":
            h = gelu(h, approximate="tanh")
        elif self.activation == "gelu":
            h = gelu(h)  # exact, PyTorch's default
        else:
            h = relu(h)
        return self.dropout(self.c_proj(h))  # (B, T, C)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"
