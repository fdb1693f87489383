r"""``TransformerBlock``: attention and a feed-forward layer, each inside a residual connection.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py``.

Pre-LN (GPT-2, the default): normalize *before* each sub-layer, and keep the residual stream clean::

    x = x + attn(ln_1(x))
    x = x + cross_attn(ln_cross(x), memory)       # decoder blocks of an encoder-decoder only
    x = x + mlp(ln_2(x))

Post-LN (the original Transformer, ``norm_first=False``): normalize *after* each residual sum::

    x = ln_1(x + attn(x));  x = ln_cross(x + cross_attn(x, memory));  x = ln_2(x + mlp(x))

Pre-LN trains stably without a careful warm-up; post-LN is what "Attention Is All You Need" used.
Residual projections start with std :math:`0.02/\sqrt{2 n_\text{layer}}` (GPT-2), so the sum of
:math:`2 n_\text{layer}` residual contributions keeps its scale at initialization.

The modern decoder's choices (book chapter 12, ``book/12_modern_decoder.md``; tests in
``tests/test_nn_modern_layers.py``) are options of the same block: ``norm="rms"`` (RMSNorm for
``ln_1``, ``ln_2``), ``mlp="swiglu"`` (:class:`~minroots.nn.swiglu.SwiGLU`), and the attention's
``n_kv_head``, ``head_dim``, ``rope_theta``, ``qk_norm`` and ``qkv_bias``
(:class:`~minroots.nn.attention.SelfAttention`). ``init="llama"`` draws every weight from
:math:`\mathcal{N}(0, 0.02^2)` without GPT-2's depth scaling, as Hugging Face's Llama does.
"""

from __future__ import annotations

import math

from minroots.nn.attention import CrossAttention, KVCache, SelfAttention
from minroots.nn.feed_forward import FeedForward
from minroots.nn.layer_norm import LayerNorm
from minroots.nn.module import Module
from minroots.nn.rms_norm import RMSNorm
from minroots.nn.swiglu import SwiGLU, swiglu_hidden
from minroots.validation import one_of

__all__ = ["TransformerBlock"]

NORMS = ("layer", "rms")
MLPS = ("gelu_tanh", "gelu", "relu", "swiglu")
INITS = ("gpt2", "llama")


def make_norm(kind: str, n: int, eps: float, bias: bool):
    """A layer norm (with a bias when ``bias``) or an RMSNorm of width ``n``."""
    return LayerNorm(n, eps=eps, bias=bias) if kind == "layer" else RMSNorm(n, eps=eps)


class TransformerBlock(Module):
    """One block: (causal) self-attention, optional cross-attention, feed-forward.

    Args:
        n_embd, n_head: width and number of heads.
        dropout: on attention weights and residuals.
        bias: biases in linear layers and layer norms.
        norm_first: pre-LN (True) or post-LN.
        cross_attention: add a cross-attention sub-layer (decoder of an encoder-decoder).
        activation: ``"gelu_tanh"`` (GPT-2), ``"gelu"``, ``"relu"`` or ``"swiglu"`` (gated).
        n_layer: depth of the whole stack, for the scaled initialization of residual projections.
        eps: the epsilon of the norms.
        norm: ``"layer"`` or ``"rms"``.
        mlp_hidden: the MLP's hidden width (default ``4 n_embd``, or ``8 n_embd / 3`` rounded up
            to 32 for SwiGLU).
        init: ``"gpt2"`` (residual projections scaled down by depth) or ``"llama"``.
        n_kv_head, head_dim, rope_theta, qk_norm, qkv_bias: see
            :class:`~minroots.nn.attention.SelfAttention`.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 norm_first: bool = True, cross_attention: bool = False,
                 activation: str = "gelu_tanh", n_layer: int = 1, eps: float = 1e-5, *,
                 norm: str = "layer", mlp_hidden: int | None = None, init: str = "gpt2",
                 n_kv_head: int | None = None, head_dim: int | None = None,
                 rope_theta: float | None = None, qk_norm: bool = False,
                 qkv_bias: bool | None = None):  # fmt: skip
        super().__init__()
        one_of("TransformerBlock", "norm", norm, NORMS)
        one_of("TransformerBlock", "activation", activation, MLPS)
        one_of("TransformerBlock", "init", init, INITS)
        self.norm_first = norm_first
        proj_std = 0.02 / math.sqrt(2 * n_layer) if init == "gpt2" else 0.02
        self.ln_1 = make_norm(norm, n_embd, eps, bias)
        self.attn = SelfAttention(n_embd, n_head, dropout, bias, proj_std=proj_std,
                                  n_kv_head=n_kv_head, head_dim=head_dim, rope_theta=rope_theta,
                                  qk_norm=qk_norm, qkv_bias=qkv_bias, norm_eps=eps)  # fmt: skip
        if cross_attention:
            self.ln_cross = make_norm(norm, n_embd, eps, bias)
            self.cross_attn = CrossAttention(n_embd, n_head, dropout, bias, proj_std=proj_std)
        else:
            self.cross_attn = None
        self.ln_2 = make_norm(norm, n_embd, eps, bias)
        if activation == "swiglu":
            hidden = mlp_hidden or swiglu_hidden(n_embd)
            self.mlp = SwiGLU(n_embd, hidden, dropout, bias, proj_std=proj_std)
        else:
            hidden = mlp_hidden or 4 * n_embd
            self.mlp = FeedForward(n_embd, hidden, dropout, bias, activation, proj_std=proj_std)

    def forward(self, x, memory=None, is_causal: bool = True, key_padding_mask=None,
                memory_padding_mask=None, cache: KVCache | None = None,
                cross_cache: KVCache | None = None):  # fmt: skip
        """``x`` ``(B, T, C)`` -> ``(B, T, C)``. ``key_padding_mask`` masks ``x``'s own padded
        positions as keys; ``memory_padding_mask`` those of ``memory`` (both True = real)."""

        def attn(h):
            return self.attn(h, is_causal=is_causal, key_padding_mask=key_padding_mask, cache=cache)

        def cross(h):
            return self.cross_attn(
                h, memory, key_padding_mask=memory_padding_mask, cache=cross_cache
            )

        if self.norm_first:
            x = x + attn(self.ln_1(x))
            if self.cross_attn is not None:
                x = x + cross(self.ln_cross(x))
            return x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + attn(x))
        if self.cross_attn is not None:
            x = self.ln_cross(x + cross(x))
        return self.ln_2(x + self.mlp(x))

    def extra_repr(self) -> str:
        return "pre-LN" if self.norm_first else "post-LN"
