r"""``SwiGLU``: the gated feed-forward layer of Llama, Qwen and Mistral.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_nn_modern_layers.py``.

.. math::  \mathrm{FFN}(x) = \bigl(\mathrm{silu}(x W_{\text{gate}}^\top) \odot x W_{\text{up}}^\top\bigr)\, W_{\text{down}}^\top

GPT-2's MLP has two matrices, :math:`C \to 4C \to C`; SwiGLU has three, so at the same
parameter count its hidden width is :math:`\tfrac23 \cdot 4C = 8C/3`. :math:`W_{\text{gate}}` and
:math:`W_{\text{up}}` are stored as one ``c_fc`` of shape ``(2F, C)`` (rows ``[gate | up]``), so
both come from one matrix multiplication, and the gate is the fused kernel
:func:`~minroots.nn.functional.silu.swiglu`; ``c_proj`` is :math:`W_{\text{down}}`. (Hugging
Face's Llama stores ``gate_proj``, ``up_proj`` and ``down_proj``; :mod:`minroots.nn.hf_weights`
converts.)
"""

from __future__ import annotations

from minroots.nn.dropout import Dropout
from minroots.nn.functional.silu import swiglu
from minroots.nn.linear import Linear
from minroots.nn.module import Module
from minroots.validation import positive_int

__all__ = ["SwiGLU", "swiglu_hidden"]


def swiglu_hidden(n_embd: int, multiple: int = 32) -> int:
    """The hidden width with GPT-2's MLP parameter count: ``8 n_embd / 3`` rounded up to ``multiple``.

    >>> swiglu_hidden(128), 4 * 128 * 2, 3 * swiglu_hidden(128)   # hidden; parameters / n_embd
    (352, 1024, 1056)
    """
    width = -(-8 * n_embd // 3)  # ceil(8 C / 3)
    return -(-width // multiple) * multiple


class SwiGLU(Module):
    """``SwiGLU(128, 352)``: 128 -> 2 x 352 (gate, up) -> 352 -> 128, no biases by default."""

    def __init__(self, n_embd: int, hidden: int, dropout: float = 0.0, bias: bool = False,
                 init_std: float = 0.02, proj_std: float = 0.02):  # fmt: skip
        super().__init__()
        positive_int("SwiGLU", "hidden", hidden)
        self.hidden = hidden
        self.c_fc = Linear(n_embd, 2 * hidden, bias=bias, init_std=init_std)  # [gate | up]
        self.c_proj = Linear(hidden, n_embd, bias=bias, init_std=proj_std)  # down
        self.dropout = Dropout(dropout)

    def forward(self, x):
        h = self.c_fc(x)  # (B, T, 2F)
        return self.dropout(self.c_proj(swiglu(h)))  # (B, T, F) -> (B, T, C)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, gated (SwiGLU)"
