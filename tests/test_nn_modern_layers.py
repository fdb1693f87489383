"""The modern decoder's layers: RMSNorm, SwiGLU, and self-attention with grouped key/value heads,
rotary positions and QK-norm (against PyTorch in float64, values and gradients), the key/value
cache that holds only the key/value heads, and the sliding-window cache."""

from __future__ import annotations

import numpy as np
import pytest

import minroots
from minroots.nn import KVCache, RMSNorm, SelfAttention, SwiGLU
from minroots.nn.swiglu import swiglu_hidden


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _x(rng, *shape, grad=True):
    return minroots.tensor(rng.standard_normal(shape), requires_grad=grad)


def _attention(rng, n_kv_head, rope_theta=None, qk_norm=False, qkv_bias=None, head_dim=None):
    """A float64 layer of 4 query heads over a width of 16, with non-trivial norms and biases."""
    layer = SelfAttention(16, 4, bias=True, n_kv_head=n_kv_head, rope_theta=rope_theta,
                          qk_norm=qk_norm, qkv_bias=qkv_bias, head_dim=head_dim).to(dtype="float64")  # fmt: skip
    for name, p in layer.named_parameters():
        if name.endswith("bias") or "norm" in name:
            p.data[...] = 1 + 0.3 * rng.standard_normal(p.shape)
    return layer


def _torch_attention(layer, x, offset=0):
    """The same layer written as Hugging Face's Llama/Qwen 3 attention, in float64 PyTorch:
    q/k/v projections, per-head RMSNorm, rotate_half RoPE, repeat_kv, causal softmax."""
    import torch

    h, hkv, d = layer.n_head, layer.n_kv_head, layer.head_dim
    params = {n: torch.tensor(p.data, requires_grad=True) for n, p in layer.named_parameters()}
    b, t, _ = x.shape
    qkv = x @ params["c_attn.weight"].T
    if "c_attn.bias" in params:
        qkv = qkv + params["c_attn.bias"]
    qkv = qkv.view(b, t, h + 2 * hkv, d)
    q, k, v = qkv[:, :, :h], qkv[:, :, h : h + hkv], qkv[:, :, h + hkv :]

    def rms(z, w):
        return w * z * torch.rsqrt((z * z).mean(-1, keepdim=True) + 1e-6)

    if layer.q_norm is not None:
        q, k = rms(q, params["q_norm.weight"]), rms(k, params["k_norm.weight"])
    q, k, v = (z.transpose(1, 2) for z in (q, k, v))
    if layer.rope_theta is not None:
        inv = 1.0 / layer.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        ang = torch.arange(offset, offset + t, dtype=torch.float64)[:, None] * inv
        cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

        def rot(z):
            return z * cos + torch.cat([-z[..., d // 2 :], z[..., : d // 2]], -1) * sin

        q, k = rot(q), rot(k)
    k, v = k.repeat_interleave(h // hkv, dim=1), v.repeat_interleave(h // hkv, dim=1)
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    y = y.transpose(1, 2).reshape(b, t, h * d) @ params["c_proj.weight"].T + params["c_proj.bias"]
    return y, params


# ------------------------------------------------------------------ norms and MLP
def test_rms_norm_layer_has_a_gain_and_no_bias(rng):
    norm = RMSNorm(6, eps=1e-6)
    assert [n for n, _ in norm.named_parameters()] == ["weight"] and (norm.weight.data == 1).all()
    x = _x(rng, 2, 3, 6).float()
    y = norm(x)
    np.testing.assert_allclose((y.data**2).mean(-1), 1.0, rtol=1e-4)
    with pytest.raises(ValueError, match="RMSNorm: expected input with last axis 6"):
        norm(x[..., :4])
    with pytest.raises(ValueError, match="RMSNorm: eps must be a finite number > 0"):
        RMSNorm(6, eps=0.0)


def test_swiglu_layer_matches_its_formula_and_parameter_count(rng):
    mlp = SwiGLU(8, 12).to(dtype="float64")
    assert [n for n, _ in mlp.named_parameters()] == ["c_fc.weight", "c_proj.weight"]
    x = _x(rng, 2, 3, 8)
    gate = x.data @ mlp.c_fc.weight.data[:12].T
    up = x.data @ mlp.c_fc.weight.data[12:].T
    expected = (gate / (1 + np.exp(-gate)) * up) @ mlp.c_proj.weight.data.T
    np.testing.assert_allclose(mlp(x).data, expected, rtol=1e-12)
    # 8 C / 3 rounded up keeps GPT-2's MLP parameter count (8 C^2), to within the rounding
    for c in (64, 128, 384):
        assert 0 <= 3 * c * swiglu_hidden(c) - 8 * c * c < 3 * c * 32


# ------------------------------------------------------------------ attention against PyTorch
@pytest.mark.parity
@pytest.mark.parametrize(
    "n_kv_head, rope_theta, qk_norm, head_dim",
    [(4, None, False, None), (2, None, False, None), (1, 100.0, False, None),
     (2, 100.0, True, None), (2, 1e4, True, 6)],
    ids=["mha", "gqa", "mqa-rope", "gqa-rope-qknorm", "head_dim-6"],
)  # fmt: skip
def test_attention_equals_torch_values_and_gradients(rng, n_kv_head, rope_theta, qk_norm, head_dim):
    torch = pytest.importorskip("torch")
    layer = _attention(rng, n_kv_head, rope_theta, qk_norm, head_dim=head_dim)
    x = _x(rng, 2, 7, 16)
    tx = torch.tensor(x.data, requires_grad=True)
    ref, params = _torch_attention(layer, tx)
    y = layer(x, is_causal=True)
    np.testing.assert_allclose(y.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)  # fmt: skip


@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_grouped_attention_gradcheck(rng, n_kv_head):
    layer = _attention(rng, n_kv_head, rope_theta=50.0, qk_norm=True)
    x = _x(rng, 1, 4, 16)
    w = layer.c_attn.weight

    def fn(x, w_attn):
        layer.c_attn.weight = w_attn
        return layer(x, is_causal=True)

    result = minroots.gradcheck(fn, [x, minroots.tensor(w.data.copy(), requires_grad=True)])
    assert result, str(result)


def test_grouped_attention_with_padding_equals_repeated_heads(rng):
    """GQA is MHA whose key/value heads are repeated: copy them into a 4-head layer and compare,
    with a key padding mask (it must reach every group)."""
    gqa = _attention(rng, 2, rope_theta=100.0)
    mha = _attention(rng, 4, rope_theta=100.0)
    w, bias = gqa.c_attn.weight.data.reshape(8, 4, 16), gqa.c_attn.bias.data.reshape(8, 4)
    heads = [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7]  # q0..q3, then each k and v head twice
    mha.c_attn.weight.data[...] = w[heads].reshape(48, 16)
    mha.c_attn.bias.data[...] = bias[heads].reshape(48)
    mha.c_proj.weight.data[...] = gqa.c_proj.weight.data
    mha.c_proj.bias.data[...] = gqa.c_proj.bias.data
    x = _x(rng, 2, 5, 16, grad=False)
    pad = np.array([[True] * 5, [False, True, True, True, True]])
    np.testing.assert_allclose(gqa(x, is_causal=True, key_padding_mask=pad).data,
                               mha(x, is_causal=True, key_padding_mask=pad).data, rtol=1e-12)  # fmt: skip


# ------------------------------------------------------------------ the key/value cache
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_cache_holds_the_key_value_heads_and_matches_the_full_pass(rng, n_kv_head):
    layer = _attention(rng, n_kv_head, rope_theta=100.0, qk_norm=True)
    x = _x(rng, 2, 9, 16, grad=False)
    full = layer(x, is_causal=True).data
    cache = KVCache(capacity=4)
    with minroots.no_grad():
        parts = [layer(minroots.tensor(x.data[:, :5]), is_causal=True, cache=cache).data]
        for t in range(5, 9):
            step = minroots.tensor(x.data[:, t : t + 1])
            parts.append(layer(step, is_causal=True, cache=cache).data)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-11, atol=1e-12)
    assert cache.get()[0].shape == (2, n_kv_head, 9, 4)  # (B, H_kv, T, d)
    # 2 (K and V) x H_kv x d numbers per token and batch row, 8 bytes each in float64
    assert cache.nbytes == 2 * 2 * n_kv_head * 4 * 9 * 8


def test_sliding_window_cache_keeps_the_last_positions(rng):
    cache = KVCache(window=3)
    seen_k = []
    for t in range(8):
        k = rng.standard_normal((1, 2, 1, 4))
        seen_k.append(k)
        got_k, _ = cache.append(k, k)
        np.testing.assert_array_equal(got_k, np.concatenate(seen_k[-3:], axis=2))
        assert cache.length == min(t + 1, 3) and cache.position == t + 1
    assert cache.k.shape[2] == 6  # a buffer of 2W, compacted in place rather than grown
    with pytest.raises(ValueError, match="cannot append 4 positions to a window of 3"):
        cache.append(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 4)))
    cache.reset()
    assert cache.get() is None and cache.position == 0


def test_sliding_window_attention_equals_band_masked_attention(rng):
    """With rotary positions, decoding through a window of W equals full causal attention over
    the whole sequence with a band mask (key j visible to query i when i - W < j <= i)."""
    layer = _attention(rng, 2, rope_theta=100.0)
    x = _x(rng, 1, 11, 16, grad=False)
    i, j = np.arange(11)[:, None], np.arange(11)[None, :]
    band = (j <= i) & (j > i - 4)
    reference = layer(x, attn_mask=band).data
    cache = KVCache(window=4)
    with minroots.no_grad():
        steps = [layer(minroots.tensor(x.data[:, t : t + 1]), is_causal=True, cache=cache).data
                 for t in range(11)]  # fmt: skip
    np.testing.assert_allclose(np.concatenate(steps, axis=1), reference, rtol=1e-11, atol=1e-12)


def test_attention_options_are_checked():
    with pytest.raises(ValueError, match="SelfAttention: n_head must be divisible by n_kv_head=3"):
        SelfAttention(16, 4, n_kv_head=3)
    with pytest.raises(ValueError, match="SelfAttention: head_dim must be even"):
        SelfAttention(16, 4, head_dim=5, rope_theta=1e4)
    with pytest.raises(TypeError, match="SelfAttention: n_kv_head must be a positive integer"):
        SelfAttention(16, 4, n_kv_head=2.0)
    layer = SelfAttention(16, 4, n_kv_head=2, head_dim=6, rope_theta=1e4, qk_norm=True)
    assert layer.c_attn.weight.shape == ((4 + 2 * 2) * 6, 16) and layer.c_proj.weight.shape == (
        16,
        24,
    )
    assert "n_kv_head=2" in repr(layer) and "qk_norm" in repr(layer)
