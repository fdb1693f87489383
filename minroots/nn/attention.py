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

Grouped-query attention, rotary positions and QK-norm (the options of :class:`SelfAttention` that
modern decoders use) are book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``);
tests in ``tests/test_nn_modern_layers.py``.

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
from minroots.nn.functional.rope import rope
from minroots.nn.linear import Linear
from minroots.nn.module import Module
from minroots.nn.rms_norm import RMSNorm
from minroots.validation import multiple_of, positive_int

__all__ = ["SelfAttention", "CrossAttention", "MultiHeadAttention", "KVCache"]


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer: ``(B, H, L, d)``.

    ``append`` writes new positions into a preallocated buffer (doubling it when full) and returns
    views of everything cached; ``reorder`` follows beams in beam search. ``length`` is the number
    of positions held, ``position`` the number appended since the last ``reset`` (the position of
    the next token).

    With ``window=W`` the cache is a sliding window: it holds at most the last ``W`` positions,
    dropping the oldest as new ones come (in a buffer of ``2W``, compacted every ``W`` tokens, so
    each token costs the same). Models with rotary positions use it to generate past their
    context: their keys carry their own rotation, and attention depends only on the distance
    between positions (book chapter 12).
    """

    def __init__(self, capacity: int = 0, window: int | None = None):
        if window is not None:
            positive_int("KVCache", "window", window)
            capacity = max(capacity, 2 * window)
        self.capacity, self.window = capacity, window
        self.k = self.v = None
        self.start = 0  # buffer index of the oldest position held (moves with a sliding window)
        self.length = 0
        self.position = 0

    def append(self, k, v):
        """Add ``k, v`` of shape ``(B, H, T, d)``; return the cached ``(B, H, length, d)`` views."""
        xp = B.get_array_module(k)
        t = k.shape[2]
        if self.window is not None:
            if t > self.window:
                raise ValueError(
                    f"KVCache: cannot append {t} positions to a window of {self.window}"
                )
            drop = max(0, self.length + t - self.window)  # the oldest positions leave the window
            self.start, self.length = self.start + drop, self.length - drop
        need = self.length + t
        if self.k is None or self.start + need > self.k.shape[2] or self.k.shape[:2] != k.shape[:2]:
            self._make_room(k, v, need, xp)
        end = self.start + need
        self.k[:, :, end - t : end] = k
        self.v[:, :, end - t : end] = v
        self.length = need
        self.position += t
        return self.k[:, :, self.start : end], self.v[:, :, self.start : end]

    def _make_room(self, k, v, need: int, xp) -> None:
        """Move the held positions to the front of the buffer, growing it when they do not fit."""
        held = slice(self.start, self.start + self.length)
        same_batch = self.k is not None and self.k.shape[:2] == k.shape[:2]
        if same_batch and need <= self.k.shape[2]:  # compact in place (a sliding window)
            self.k[:, :, : self.length] = self.k[:, :, held].copy()
            self.v[:, :, : self.length] = self.v[:, :, held].copy()
        else:
            cap = max(need, self.capacity, 2 * (self.k.shape[2] if self.k is not None else 0))
            new_k = xp.empty(k.shape[:2] + (cap,) + k.shape[3:], dtype=k.dtype)
            new_v = xp.empty(v.shape[:2] + (cap,) + v.shape[3:], dtype=v.dtype)
            if self.length:
                new_k[:, :, : self.length] = self.k[:, :, held]
                new_v[:, :, : self.length] = self.v[:, :, held]
            self.k, self.v = new_k, new_v
        self.start = 0

    def get(self):
        """The cached ``(k, v)`` views (``None`` while empty)."""
        if self.k is None or self.length == 0:
            return None
        held = slice(self.start, self.start + self.length)
        return self.k[:, :, held], self.v[:, :, held]

    def reorder(self, index) -> None:
        """Keep batch rows ``index`` (in that order): beam search follows its surviving beams."""
        if self.k is not None:
            self.k, self.v = self.k[index], self.v[index]

    def reset(self) -> None:
        self.start = self.length = self.position = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values held (not of the spare room in the buffer)."""
        cached = self.get()
        return 0 if cached is None else int(cached[0].nbytes + cached[1].nbytes)

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

    Queries, keys and values are all projected from ``x`` by one fused ``c_attn``. Without a cache,
    rotation or grouped heads (GPT-2) the whole layer is one graph node
    (:func:`~minroots.nn.functional.attention.packed_self_attention`); with a :class:`KVCache`,
    ``x`` holds only the new positions.

    The modern decoder's options (book chapter 12): ``n_kv_head`` < ``n_head`` shares each key/value
    head among ``n_head / n_kv_head`` query heads (grouped-query attention; 1 is multi-query), so
    ``c_attn`` is ``((n_head + 2 n_kv_head) head_dim, C)`` and the cache holds ``n_kv_head`` heads;
    ``rope_theta`` rotates queries and keys by their position
    (:func:`~minroots.nn.functional.rope.rope`); ``qk_norm`` applies an RMSNorm to each head's
    queries and keys before the rotation (Qwen 3).

    Args:
        n_embd: model width :math:`C`. n_head: number of query heads (must divide ``n_embd``
        unless ``head_dim`` is given). dropout: dropout on the attention weights and on the
        output. bias: a bias in the output projection (and in ``c_attn`` unless ``qkv_bias`` says
        otherwise). proj_std: initial std of the output projection. n_kv_head: key/value heads
        (default ``n_head``). head_dim: size of each head (default ``n_embd // n_head``).
        rope_theta: the base of rotary positions (None: no rotation). qk_norm: RMSNorm on
        queries and keys. qkv_bias: biases in ``c_attn`` (default ``bias``). norm_eps: the
        epsilon of the QK norms. init_std: initial std of ``c_attn``. kernel: ``"auto"``,
        ``"dense"`` or ``"flash"`` (tiled), passed to the attention kernel.
    """

    cross = False  # keys and values come from x itself (CrossAttention: from memory)

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 proj_std: float = 0.02, *, n_kv_head: int | None = None,
                 head_dim: int | None = None, rope_theta: float | None = None,
                 qk_norm: bool = False, qkv_bias: bool | None = None, norm_eps: float = 1e-6,
                 init_std: float = 0.02, kernel: str = "auto"):  # fmt: skip
        super().__init__()
        where = "SelfAttention"
        if head_dim is None:
            _check_heads(where, n_embd, n_head)
            head_dim = n_embd // n_head
        positive_int(where, "head_dim", head_dim)
        n_kv_head = n_head if n_kv_head is None else positive_int(where, "n_kv_head", n_kv_head)
        multiple_of(where, "n_head", n_head, "n_kv_head", n_kv_head)
        if rope_theta is not None and head_dim % 2:
            raise ValueError(f"{where}: head_dim must be even for rotary positions, got {head_dim}")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.n_kv_head, self.head_dim, self.rope_theta = n_kv_head, head_dim, rope_theta
        qkv_width = (n_head + 2 * n_kv_head) * head_dim  # [Q | K | V]
        qkv_bias = bias if qkv_bias is None else qkv_bias
        self.c_attn = Linear(n_embd, qkv_width, bias=qkv_bias, init_std=init_std)
        self.c_proj = Linear(n_head * head_dim, n_embd, bias=bias, init_std=proj_std)
        self.kernel = kernel
        self.q_norm = RMSNorm(head_dim, eps=norm_eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps=norm_eps) if qk_norm else None
        self.resid_dropout = Dropout(dropout)
        # GPT-2's layer: the fused node of packed_self_attention does it all
        self.packed = n_kv_head == n_head and rope_theta is None and not qk_norm

    def forward(self, x: Tensor, is_causal: bool = False, key_padding_mask=None, attn_mask=None,
                cache: KVCache | None = None) -> Tensor:  # fmt: skip
        """Attend from ``x`` ``(B, T, C)`` to itself; ``is_causal`` hides later positions."""
        _check_input("SelfAttention", x, self.n_embd)
        p = self.dropout if self.training else 0.0
        mask = _bool_mask("SelfAttention", x, key_padding_mask, attn_mask)
        if cache is None and self.packed:  # training and full sequences: one node for all heads
            t = x.shape[1]
            mask, is_causal = _fold_causal(mask, is_causal, t, t)
            qkv = self.c_attn(x)  # (B, T, 3C)
            y = packed_self_attention(
                qkv, self.n_head, is_causal=is_causal, mask=mask, dropout_p=p, kernel=self.kernel
            )
            return self.resid_dropout(self.c_proj(y))
        q, k, v = self._project(x, cache.position if cache is not None else 0)
        if cache is not None:
            kd, vd = cache.append(k.data, v.data)
            k, v = Tensor(kd), Tensor(vd)  # (B, H_kv, T_k, d): every position in the window
            if mask is not None and mask.ndim == 4 and mask.shape[-1] > k.shape[2]:
                mask = mask[..., -k.shape[2] :]  # a sliding window dropped the oldest keys
        mask, is_causal = _fold_causal(mask, is_causal, q.shape[2], k.shape[2])
        y = self._attend(q, k, v, mask, is_causal, p)  # (B, H, T, d)
        return self.resid_dropout(self.c_proj(_merge_heads(y)))  # (B, T, C)

    def _project(self, x: Tensor, offset):
        """Queries ``(B, H, T, d)``, keys and values ``(B, H_kv, T, d)``: split, QK-norm, rotated
        from ``offset`` (an int, or one per row ``(B,)`` when rows have different lengths)."""
        b, t, _ = x.shape
        h, hkv, d = self.n_head, self.n_kv_head, self.head_dim
        qkv = self.c_attn(x).reshape(b, t, h + 2 * hkv, d)  # (B, T, H + 2 H_kv, d)
        q, k, v = qkv[:, :, :h], qkv[:, :, h : h + hkv], qkv[:, :, h + hkv :]
        if self.q_norm is not None:  # over each head's d features, before the rotation
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (z.transpose(0, 2, 1, 3) for z in (q, k, v))  # (B, heads, T, d)
        if self.rope_theta is not None:
            q, k = rope(q, offset, self.rope_theta), rope(k, offset, self.rope_theta)
        return q, k, v

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask, is_causal: bool, p: float):
        """Attention of ``H`` query heads to ``H_kv`` key/value heads: query head ``j`` reads
        key/value head ``j // (H / H_kv)``, as Hugging Face's ``repeat_kv`` orders them. The
        groups are an axis of their own, ``(B, H_kv, G, T, d)`` against ``(B, H_kv, 1, T_k, d)``, so
        the kernel broadcasts the shared keys instead of copying them, and its backward sums each
        group's key and value gradients."""
        if self.n_kv_head == self.n_head:
            return scaled_dot_product_attention(
                q, k, v, mask=mask, is_causal=is_causal, dropout_p=p, kernel=self.kernel
            )
        b, h, t, d = q.shape
        g = h // self.n_kv_head
        qg = q.reshape(b, self.n_kv_head, g, t, d)  # (B, H_kv, G, T, d)
        kg, vg = k.unsqueeze(2), v.unsqueeze(2)  # (B, H_kv, 1, T_k, d)
        if mask is not None and mask.ndim == 4:  # (B, 1 or H, T, T_k) -> five axes
            mask = mask[:, :, None] if mask.shape[1] == 1 else mask.reshape(
                b, self.n_kv_head, g, *mask.shape[2:])  # fmt: skip
        y = scaled_dot_product_attention(
            qg, kg, vg, mask=mask, is_causal=is_causal, dropout_p=p, kernel=self.kernel
        )
        return y.reshape(b, h, t, d)

    def extra_repr(self) -> str:
        extra = ""
        if self.n_kv_head != self.n_head:
            extra += f", n_kv_head={self.n_kv_head}"
        if self.rope_theta is not None:
            extra += f", rope_theta={self.rope_theta:g}"
        if self.q_norm is not None:
            extra += ", qk_norm"
        return f"n_embd={self.n_embd}, n_head={self.n_head}{extra}, self-attention"


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
