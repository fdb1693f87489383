r"""``MultiHeadAttention``: self- and cross-attention with masks and a key/value cache.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py`` and ``tests/test_nn_properties.py``.

Each of :math:`H` heads attends in its own :math:`d = C/H`-dimensional subspace:

.. math::
    \mathrm{head}_h = \mathrm{softmax}\!\Bigl(\frac{Q_h K_h^\top}{\sqrt d} + M\Bigr) V_h, \qquad
    \mathrm{MHA}(x) = [\mathrm{head}_1, \dots, \mathrm{head}_H]\, W_O^\top + b_O

Self-attention projects :math:`Q, K, V` from the same input with one fused matrix (GPT-2's
``c_attn``, ``(3C, C)``); cross-attention projects :math:`Q` from the decoder (``q_proj``) and
:math:`K, V` from the encoder output (``kv_proj``). ``c_proj`` is :math:`W_O`.

Key/value cache. When generating, token :math:`t+1` needs the keys and values of tokens
:math:`0..t`, which do not change. A :class:`KVCache` keeps them (preallocated, appended in place),
so each new token costs one row of projections instead of the whole prefix. Caches are for
inference (``no_grad``): no gradient flows into cached keys.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.nn.dropout import Dropout
from minroots.nn.functional.attention import packed_self_attention, scaled_dot_product_attention
from minroots.nn.linear import Linear
from minroots.nn.module import Module

__all__ = ["MultiHeadAttention", "KVCache"]


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer: ``(B, H, L, d)``.

    ``append`` writes new positions into a preallocated buffer (doubling it when full) and returns
    views of everything cached; ``reorder`` follows beams in beam search.
    """

    def __init__(self, capacity: int = 0):
        self.capacity = capacity
        self.k = self.v = None
        self.length = 0

    def append(self, k, v):
        """Add ``k, v`` of shape ``(B, H, T, d)``; return the cached ``(B, H, length, d)`` views."""
        xp = B.get_array_module(k)
        t = k.shape[2]
        need = self.length + t
        if self.k is None or need > self.k.shape[2] or self.k.shape[:2] != k.shape[:2]:
            cap = max(need, self.capacity, 2 * (self.k.shape[2] if self.k is not None else 0))
            new_k = xp.empty(k.shape[:2] + (cap,) + k.shape[3:], dtype=k.dtype)
            new_v = xp.empty(v.shape[:2] + (cap,) + v.shape[3:], dtype=v.dtype)
            if self.length:
                new_k[:, :, : self.length] = self.k[:, :, : self.length]
                new_v[:, :, : self.length] = self.v[:, :, : self.length]
            self.k, self.v = new_k, new_v
        self.k[:, :, self.length : need] = k
        self.v[:, :, self.length : need] = v
        self.length = need
        return self.k[:, :, :need], self.v[:, :, :need]

    def get(self):
        """The cached ``(k, v)`` views (``None`` while empty)."""
        if self.k is None or self.length == 0:
            return None
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def reorder(self, index) -> None:
        """Keep batch rows ``index`` (in that order): beam search follows its surviving beams."""
        if self.k is not None:
            self.k, self.v = self.k[index], self.v[index]

    def reset(self) -> None:
        self.length = 0


def _split_heads(x: Tensor, n_head: int) -> Tensor:
    b, t, c = x.shape
    return x.reshape(b, t, n_head, c // n_head).transpose(0, 2, 1, 3)  # (B, H, T, d)


def _merge_heads(x: Tensor) -> Tensor:
    b, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)  # (B, T, C)


class MultiHeadAttention(Module):
    """``MultiHeadAttention(128, 4)``: 4 heads of 32 dimensions.

    Args:
        n_embd: model width :math:`C`. n_head: number of heads (must divide ``n_embd``).
        dropout: dropout on the attention weights and on the output.
        bias: biases in the projections. cross: cross-attention (queries from ``x``, keys and
        values from ``memory``). kv_dim: width of ``memory`` (default ``n_embd``).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 cross: bool = False, kv_dim: int | None = None, proj_std: float = 0.02):  # fmt: skip
        super().__init__()
        if n_head <= 0 or n_embd % n_head:
            raise ValueError(
                f"MultiHeadAttention: n_embd={n_embd} must be divisible by n_head={n_head}"
            )
        self.n_embd, self.n_head, self.cross, self.dropout = n_embd, n_head, cross, dropout
        if cross:
            self.q_proj = Linear(n_embd, n_embd, bias=bias)
            self.kv_proj = Linear(kv_dim or n_embd, 2 * n_embd, bias=bias)
        else:
            self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)  # fused [Q | K | V]
        self.c_proj = Linear(n_embd, n_embd, bias=bias, init_std=proj_std)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor | None = None, is_causal: bool = False,
                key_padding_mask=None, attn_mask=None, cache: KVCache | None = None) -> Tensor:  # fmt: skip
        """Attend from ``x`` ``(B, T, C)``.

        ``key_padding_mask`` ``(B, T_k)`` is ``True`` on real keys and ``False`` on padding;
        ``attn_mask`` is a boolean ``(T, T_k)`` (or broadcastable) mask, ``True`` = may attend;
        ``is_causal`` hides later positions. With ``cache``, ``x`` holds only the new positions.
        """
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(
                f"MultiHeadAttention: x must be a Tensor of shape (B, T, {self.n_embd}), "
                f"got {getattr(x, 'shape', type(x).__name__)}"
            )
        if self.cross and memory is None:
            raise ValueError(
                "MultiHeadAttention: cross-attention needs memory (the encoder output)"
            )
        p = self.dropout if self.training else 0.0
        mask = self._bool_mask(x, key_padding_mask, attn_mask)
        if not self.cross and cache is None:  # the training path: one fused node for all heads
            qkv = self.c_attn(x)  # (B, T, 3C)
            y = packed_self_attention(
                qkv, self.n_head, is_causal=is_causal and mask is None, dropout_p=p,
                mask=self._with_causal(mask, x.shape[1], x.shape[1]) if is_causal else mask,
            )  # fmt: skip  # (B, T, C)
        else:
            q, k, v = self._project(x, memory, cache)  # (B, H, T, d), (B, H, Tk, d) x 2
            t_q, t_k = q.shape[2], k.shape[2]
            causal = is_causal and not self.cross
            if causal and mask is not None:
                mask, causal = self._with_causal(mask, t_q, t_k), False
            y = _merge_heads(
                scaled_dot_product_attention(q, k, v, mask=mask, is_causal=causal, dropout_p=p)
            )  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def _project(self, x, memory, cache):
        c = self.n_embd
        if self.cross:
            q = _split_heads(self.q_proj(x), self.n_head)
            cached = cache.get() if cache is not None else None
            if cached is not None:  # the encoder output does not change while decoding
                return q, Tensor(cached[0]), Tensor(cached[1])
            kv = self.kv_proj(memory)  # (B, S, 2C)
            k, v = _split_heads(kv[:, :, :c], self.n_head), _split_heads(kv[:, :, c:], self.n_head)
            if cache is not None:
                cache.append(k.data, v.data)
            return q, k, v
        qkv = self.c_attn(x)  # (B, T, 3C)
        q = _split_heads(qkv[:, :, :c], self.n_head)
        k = _split_heads(qkv[:, :, c : 2 * c], self.n_head)
        v = _split_heads(qkv[:, :, 2 * c :], self.n_head)
        if cache is not None:
            kd, vd = cache.append(k.data, v.data)
            k, v = Tensor(kd), Tensor(vd)
        return q, k, v

    @staticmethod
    def _bool_mask(x, key_padding_mask, attn_mask):
        """Combine the masks into one boolean mask broadcastable to (B, H, T, T_k), or None."""
        xp = B.get_array_module(x.data)
        mask = None
        if key_padding_mask is not None:
            kpm = (
                key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask
            )
            kpm = xp.asarray(kpm)
            if kpm.dtype != bool or kpm.ndim != 2 or kpm.shape[0] != x.shape[0]:
                raise ValueError(
                    f"MultiHeadAttention: key_padding_mask must be a boolean (B, T_k) array with "
                    f"B={x.shape[0]} (True on real tokens), got {kpm.dtype} {kpm.shape}"
                )
            mask = kpm[:, None, None, :]  # (B, 1, 1, Tk)
        if attn_mask is not None:
            am = xp.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
            if am.dtype != bool:
                raise ValueError(f"MultiHeadAttention: attn_mask must be boolean, got {am.dtype}")
            mask = am if mask is None else mask & am
        return mask

    @staticmethod
    def _with_causal(mask, t_q: int, t_k: int):
        if mask is None:
            return None
        xp = B.get_array_module(mask)
        causal = xp.arange(t_k)[None, :] <= xp.arange(t_q)[:, None] + (t_k - t_q)  # (Tq, Tk)
        return mask & causal

    def extra_repr(self) -> str:
        kind = "cross" if self.cross else "self"
        return f"n_embd={self.n_embd}, n_head={self.n_head}, {kind}-attention"
