r"""Multi-head attention layers: ``SelfAttention`` (one packed Q/K/V projection, a key/value cache)
and ``CrossAttention`` (queries from the decoder, keys and values from the encoder), with
``KVCache``.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); the cache is chapter 9,
"Generation" (``book/09_generation.md``). Tests in ``tests/test_nn_layers.py`` and
``tests/test_nn_properties.py``.

Each of :math:`H` heads attends in its own :math:`d = C/H`-dimensional subspace:

.. math::
    \mathrm{head}_h = \mathrm{softmax}\!\Bigl(\frac{Q_h K_h^\top}{\sqrt d} + M\Bigr) V_h, \qquad
    \mathrm{MHA}(x) = [\mathrm{head}_1, \dots, \mathrm{head}_H]\, W_O^\top + b_O

Self-attention projects :math:`Q, K, V` from the same input with one fused matrix (GPT-2's
``c_attn``, ``(3C, C)``); cross-attention projects :math:`Q` from the decoder (``q_proj``) and
:math:`K, V` from the encoder output (``kv_proj``). ``c_proj`` is :math:`W_O` in both. Masks are
boolean, ``True`` where a query may look: a key padding mask ``(B, T_k)``, an attention mask
broadcastable to ``(T_q, T_k)``, and for self-attention the causal mask of
:func:`minroots.nn.functional.attention.causal_mask`.

Key/value cache. When generating, token :math:`t+1` needs the keys and values of tokens
:math:`0..t`, which do not change. A :class:`KVCache` keeps them (preallocated, appended in place),
so each new token costs one row of projections instead of the whole prefix; cross-attention caches
the keys and values of the encoder output, computed once. Caches are for inference (``no_grad``):
no gradient flows into cached keys.

``MultiHeadAttention`` is the earlier name of :class:`SelfAttention`, kept as an alias.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.nn.dropout import Dropout
from minroots.nn.functional.attention import (
    causal_mask,
    packed_self_attention,
    scaled_dot_product_attention,
)
from minroots.nn.linear import Linear
from minroots.nn.module import Module
from minroots.validation import multiple_of, positive_int

__all__ = ["SelfAttention", "CrossAttention", "MultiHeadAttention", "KVCache"]


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

    def key_padding_mask(self, t: int):
        """``None``: every cached position is real. (A cache whose rows hold sequences of
        different lengths, :class:`minroots.serve.slots.SlotCache`, returns ``(B, length + t)``.)"""
        return None


# ---------------------------------------------------------------------- shared by both layers
def _check_heads(where: str, n_embd: int, n_head: int) -> None:
    positive_int(where, "n_head", n_head)
    multiple_of(where, "n_embd", n_embd, "n_head", n_head)


def _check_input(where: str, x, n_embd: int) -> None:
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != n_embd:
        raise ValueError(
            f"{where}: x must be a Tensor of shape (B, T, {n_embd}), "
            f"got {getattr(x, 'shape', type(x).__name__)}"
        )


def _split_heads(x: Tensor, n_head: int) -> Tensor:
    b, t, c = x.shape
    return x.reshape(b, t, n_head, c // n_head).transpose(0, 2, 1, 3)  # (B, H, T, d)


def _merge_heads(x: Tensor) -> Tensor:
    b, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)  # (B, T, C)


def _bool_mask(where: str, x: Tensor, key_padding_mask, attn_mask):
    """The masks combined into one boolean mask broadcastable to ``(B, H, T, T_k)``, or None."""
    xp = B.get_array_module(x.data)
    mask = None
    if key_padding_mask is not None:
        kpm = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask
        kpm = xp.asarray(kpm)
        if kpm.dtype != bool or kpm.ndim != 2 or kpm.shape[0] != x.shape[0]:
            raise ValueError(
                f"{where}: key_padding_mask must be a boolean (B, T_k) array with B={x.shape[0]} "
                f"(True on real tokens), got {kpm.dtype} {kpm.shape}"
            )
        mask = kpm[:, None, None, :]  # (B, 1, 1, Tk)
    if attn_mask is not None:
        am = xp.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
        if am.dtype != bool:
            raise ValueError(f"{where}: attn_mask must be boolean, got {am.dtype}")
        mask = am if mask is None else mask & am
    return mask


def _fold_causal(mask, is_causal: bool, t_q: int, t_k: int):
    """``(mask, is_causal)`` with the causal rule folded into a boolean ``mask`` when there is one
    (the kernels take either a mask or ``is_causal``, not both)."""
    if not is_causal or mask is None:
        return mask, is_causal
    return mask & causal_mask(t_q, t_k, bool, B.get_array_module(mask)), False


# ---------------------------------------------------------------------- the two layers
class SelfAttention(Module):
    """Multi-head self-attention: ``SelfAttention(128, 4)`` has 4 heads of 32 dimensions.

    Queries, keys and values are all projected from ``x`` by one fused ``c_attn``. Without a cache
    the whole layer is one graph node (:func:`~minroots.nn.functional.attention.packed_self_attention`);
    with a :class:`KVCache`, ``x`` holds only the new positions.

    Args:
        n_embd: model width :math:`C`. n_head: number of heads (must divide ``n_embd``).
        dropout: dropout on the attention weights and on the output. bias: biases in the
        projections. proj_std: initial std of the output projection.
    """

    cross = False  # keys and values come from x itself (CrossAttention: from memory)

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 proj_std: float = 0.02):  # fmt: skip
        super().__init__()
        _check_heads("SelfAttention", n_embd, n_head)
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)  # fused [Q | K | V]
        self.c_proj = Linear(n_embd, n_embd, bias=bias, init_std=proj_std)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x: Tensor, is_causal: bool = False, key_padding_mask=None, attn_mask=None,
                cache: KVCache | None = None) -> Tensor:  # fmt: skip
        """Attend from ``x`` ``(B, T, C)`` to itself; ``is_causal`` hides later positions."""
        _check_input("SelfAttention", x, self.n_embd)
        p = self.dropout if self.training else 0.0
        mask = _bool_mask("SelfAttention", x, key_padding_mask, attn_mask)
        if cache is None:  # training and full sequences: one fused node for all heads
            t = x.shape[1]
            mask, is_causal = _fold_causal(mask, is_causal, t, t)
            qkv = self.c_attn(x)  # (B, T, 3C)
            y = packed_self_attention(qkv, self.n_head, is_causal=is_causal, mask=mask, dropout_p=p)
        else:
            q, k, v = self._project_with_cache(x, cache)  # (B, H, T, d), (B, H, Tk, d) x 2
            mask, is_causal = _fold_causal(mask, is_causal, q.shape[2], k.shape[2])
            y = _merge_heads(
                scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, dropout_p=p)
            )  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def _project_with_cache(self, x, cache: KVCache):
        c = self.n_embd
        qkv = self.c_attn(x)  # (B, T, 3C)
        q = _split_heads(qkv[:, :, :c], self.n_head)
        k = _split_heads(qkv[:, :, c : 2 * c], self.n_head)
        v = _split_heads(qkv[:, :, 2 * c :], self.n_head)
        kd, vd = cache.append(k.data, v.data)
        return q, Tensor(kd), Tensor(vd)

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, n_head={self.n_head}, self-attention"


class CrossAttention(Module):
    """Multi-head cross-attention: queries from ``x`` (the decoder), keys and values from
    ``memory`` (the encoder output). ``CrossAttention(128, 4)`` has 4 heads of 32 dimensions.

    Args:
        n_embd: model width :math:`C`. n_head: number of heads (must divide ``n_embd``).
        dropout: dropout on the attention weights and on the output. bias: biases in the
        projections. kv_dim: width of ``memory`` (default ``n_embd``). proj_std: initial std of
        the output projection.
    """

    cross = True  # keys and values come from memory

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 kv_dim: int | None = None, proj_std: float = 0.02):  # fmt: skip
        super().__init__()
        _check_heads("CrossAttention", n_embd, n_head)
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.q_proj = Linear(n_embd, n_embd, bias=bias)
        self.kv_proj = Linear(kv_dim or n_embd, 2 * n_embd, bias=bias)  # fused [K | V]
        self.c_proj = Linear(n_embd, n_embd, bias=bias, init_std=proj_std)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, key_padding_mask=None, attn_mask=None,
                cache: KVCache | None = None) -> Tensor:  # fmt: skip
        """Attend from ``x`` ``(B, T, C)`` to ``memory`` ``(B, S, kv_dim)``; ``key_padding_mask``
        ``(B, S)`` is ``True`` on real memory positions. With ``cache``, the keys and values of
        ``memory`` are computed on the first call and reused after it."""
        _check_input("CrossAttention", x, self.n_embd)
        if memory is None:
            raise ValueError("CrossAttention: memory (the encoder output) is required")
        p = self.dropout if self.training else 0.0
        mask = _bool_mask("CrossAttention", x, key_padding_mask, attn_mask)
        q = _split_heads(self.q_proj(x), self.n_head)  # (B, H, T, d)
        k, v = self._keys_values(memory, cache)  # (B, H, S, d) x 2
        y = _merge_heads(scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p))  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def _keys_values(self, memory: Tensor, cache: KVCache | None):
        cached = cache.get() if cache is not None else None
        if cached is not None:  # the encoder output does not change while decoding
            return Tensor(cached[0]), Tensor(cached[1])
        c = self.n_embd
        kv = self.kv_proj(memory)  # (B, S, 2C)
        k, v = _split_heads(kv[:, :, :c], self.n_head), _split_heads(kv[:, :, c:], self.n_head)
        if cache is not None:
            cache.append(k.data, v.data)
        return k, v

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, n_head={self.n_head}, cross-attention"


MultiHeadAttention = SelfAttention  # the earlier name (and PyTorch's); the same class
