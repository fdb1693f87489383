"""Layers: shapes, initialization, bad inputs, the KV cache, and parity with ``torch.nn`` layers
(float64, forward and backward) with the weights copied across."""

from __future__ import annotations

import numpy as np
import pytest

import minroots
from minroots.nn import (
    CrossAttention,
    Embedding,
    FeedForward,
    KVCache,
    LayerNorm,
    Linear,
    MultiHeadAttention,
    SelfAttention,
    SinusoidalPositionalEncoding,
    TransformerBlock,
)


def _x(rng, *shape, grad=True):
    return minroots.tensor(rng.standard_normal(shape), requires_grad=grad)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_init_follows_gpt2():
    lin = Linear(256, 512)
    assert abs(lin.weight.data.std() - 0.02) < 0.001 and not lin.bias.data.any()
    assert lin.weight.dtype == np.float32 and lin.weight.shape == (512, 256)
    block = TransformerBlock(64, 4, n_layer=8)
    assert abs(block.attn.c_proj.weight.data.std() - 0.02 / 4) < 0.0005  # 0.02 / sqrt(2 * 8)
    assert abs(block.mlp.c_proj.weight.data.std() - 0.02 / 4) < 0.0005
    ln = LayerNorm(8)
    assert (ln.weight.data == 1).all() and (ln.bias.data == 0).all()


def test_layer_bad_inputs(rng):
    with pytest.raises(ValueError, match="in_features=4"):
        Linear(4, 2)(_x(rng, 3, 5))
    with pytest.raises(ValueError, match="last axis 8"):
        LayerNorm(8)(_x(rng, 3, 5))
    with pytest.raises(ValueError, match=r"shape \(B, T, 8\)"):
        MultiHeadAttention(8, 2)(_x(rng, 3, 8))
    with pytest.raises(ValueError, match="divisible by n_head"):
        MultiHeadAttention(8, 3)
    with pytest.raises(ValueError, match="out of range"):
        Embedding(5, 2)(np.array([[5]]))
    with pytest.raises(ValueError, match="positive integer"):
        Linear(0, 3)
    with pytest.raises(ValueError, match="key_padding_mask"):
        MultiHeadAttention(8, 2)(_x(rng, 2, 3, 8), key_padding_mask=np.ones((2, 3)))


def test_sinusoidal_worked_example():
    pe = SinusoidalPositionalEncoding(4, max_len=8, dtype=np.float64)
    np.testing.assert_allclose(pe(2).data[0], [0, 1, 0, 1])
    np.testing.assert_allclose(pe(2).data[1], [np.sin(1), np.cos(1), np.sin(0.01), np.cos(0.01)])
    assert not list(pe.parameters()) and "table" not in pe.state_dict()
    with pytest.raises(ValueError, match="block_size"):
        pe(5, offset=4)


@pytest.mark.task9_4
def test_kv_cache_appends_grows_and_returns_everything_so_far(rng):
    cache = KVCache(capacity=2)
    assert cache.get() is None
    k1, v1 = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((1, 2, 3, 4))
    k, v = cache.append(k1, v1)  # more than the capacity: the buffer grows
    np.testing.assert_array_equal(k, k1)
    np.testing.assert_array_equal(v, v1)
    k2, v2 = rng.standard_normal((1, 2, 1, 4)), rng.standard_normal((1, 2, 1, 4))
    k, v = cache.append(k2, v2)
    np.testing.assert_array_equal(k, np.concatenate([k1, k2], axis=2))  # (B, H, 4, d)
    np.testing.assert_array_equal(v, np.concatenate([v1, v2], axis=2))
    assert cache.length == 4 and cache.k.shape[2] >= 4
    got_k, got_v = cache.get()
    np.testing.assert_array_equal(got_k, k)
    np.testing.assert_array_equal(got_v, v)
    cache.reset()
    assert cache.get() is None and cache.length == 0


@pytest.mark.task9_4
def test_kv_cache_matches_full_causal_attention(rng):
    mha = MultiHeadAttention(16, 4).to(dtype=np.float64)
    x = _x(rng, 2, 7, 16, grad=False)
    full = mha(x, is_causal=True).data
    cache = KVCache(capacity=3)  # small on purpose: it must grow
    parts = [mha(minroots.tensor(x.data[:, :4]), is_causal=True, cache=cache).data]
    for t in range(4, 7):
        parts.append(mha(minroots.tensor(x.data[:, t : t + 1]), is_causal=True, cache=cache).data)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-12, atol=1e-12)
    assert cache.length == 7


def test_cached_causal_attention_with_padding_matches_the_packed_path(rng):
    """With a padding mask the causal rule is folded into one boolean mask, in the packed path and
    in the cached one (left padding, as when generating for prompts of different lengths)."""
    mha = SelfAttention(16, 4).to(dtype=np.float64)
    x = _x(rng, 2, 6, 16, grad=False)
    pad = np.array([[True] * 6, [False, False, True, True, True, True]])
    full = mha(x, is_causal=True, key_padding_mask=pad).data
    cache = KVCache()
    parts = [mha(minroots.tensor(x.data[:, :3]), is_causal=True, key_padding_mask=pad[:, :3],
                 cache=cache).data]  # fmt: skip
    for t in range(3, 6):
        step = minroots.tensor(x.data[:, t : t + 1])
        parts.append(mha(step, is_causal=True, key_padding_mask=pad[:, : t + 1], cache=cache).data)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-12, atol=1e-12)
    assert (full[1, :2] == mha.c_proj.bias.data).all()  # queries that see no key: zeros, then W_O


def test_self_and_cross_attention_are_two_layers(rng):
    assert MultiHeadAttention is SelfAttention
    cross = CrossAttention(8, 2, kv_dim=6).to(dtype=np.float64)
    assert [n for n, _ in cross.named_parameters()] == [
        "q_proj.weight", "q_proj.bias", "kv_proj.weight", "kv_proj.bias", "c_proj.weight",
        "c_proj.bias"]  # fmt: skip
    x, memory = _x(rng, 2, 3, 8), _x(rng, 2, 5, 6)
    y = cross(x, memory, key_padding_mask=np.array([[True] * 5, [True] * 2 + [False] * 3]))
    assert y.shape == (2, 3, 8)
    cache = KVCache()  # the keys and values of memory, computed once
    with minroots.no_grad():
        first = cross(x, memory, cache=cache).data
        again = cross(x, minroots.zeros(2, 5, 6, dtype=np.float64), cache=cache).data
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError, match="CrossAttention: memory"):
        cross(x, None)
    with pytest.raises(ValueError, match=r"SelfAttention: x must be a Tensor of shape \(B, T, 8\)"):
        SelfAttention(8, 2)(x[:, :, :4])


def test_key_padding_mask_ignores_padded_keys(rng):
    mha = MultiHeadAttention(8, 2).to(dtype=np.float64)
    x = _x(rng, 1, 5, 8, grad=False)
    mask = np.array([[True, True, True, False, False]])
    y_masked = mha(x, key_padding_mask=mask).data
    y_short = mha(minroots.tensor(x.data[:, :3])).data
    np.testing.assert_allclose(y_masked[:, :3], y_short, rtol=1e-12)


# ------------------------------------------------------------------ PyTorch parity
def _to_torch(a):
    import torch

    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


def _copy_linear(ours: Linear, weight, bias):
    ours.weight.data[...] = weight.detach().numpy()
    if bias is not None:
        ours.bias.data[...] = bias.detach().numpy()


def _assert_grads(pairs):
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parity
def test_torch_linear_embedding_layernorm(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tl, te, tn = (
        torch.nn.Linear(5, 3).double(),
        torch.nn.Embedding(7, 5).double(),
        torch.nn.LayerNorm(5).double(),
    )
    with torch.no_grad():
        tn.weight.normal_(), tn.bias.normal_()
    ml, me, mn = (
        Linear(5, 3).to(dtype=np.float64),
        Embedding(7, 5).to(dtype=np.float64),
        LayerNorm(5).to(dtype=np.float64),
    )
    _copy_linear(ml, tl.weight, tl.bias)
    _copy_linear(mn, tn.weight, tn.bias)
    me.weight.data[...] = te.weight.detach().numpy()
    idx = rng.integers(0, 7, (2, 4))
    ours = ml(mn(me(idx)))
    theirs = tl(tn(te(torch.tensor(idx))))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ours.shape)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    _assert_grads([(ml.weight, tl.weight), (ml.bias, tl.bias), (mn.weight, tn.weight),
                   (mn.bias, tn.bias), (me.weight, te.weight)])  # fmt: skip


def _copy_torch_mha(ours: MultiHeadAttention, theirs):
    w, b = theirs.in_proj_weight.detach().numpy(), theirs.in_proj_bias.detach().numpy()
    if ours.cross:
        c = ours.n_embd
        ours.q_proj.weight.data[...], ours.q_proj.bias.data[...] = w[:c], b[:c]
        ours.kv_proj.weight.data[...], ours.kv_proj.bias.data[...] = w[c:], b[c:]
    else:
        ours.c_attn.weight.data[...], ours.c_attn.bias.data[...] = w, b  # same [Q; K; V] layout
    _copy_linear(ours.c_proj, theirs.out_proj.weight, theirs.out_proj.bias)


@pytest.mark.parity
@pytest.mark.parametrize("masking", ["none", "causal", "padding", "causal+padding"])
def test_torch_multihead_self_attention(rng, masking):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64)
    ours = MultiHeadAttention(12, 3).to(dtype=np.float64)
    _copy_torch_mha(ours, theirs)
    x = rng.standard_normal((2, 5, 12))
    pad = np.array([[True] * 5, [True, True, True, False, False]]) if "padding" in masking else None
    causal = "causal" in masking
    xo, xt = minroots.tensor(x, requires_grad=True), _to_torch(x)
    yo = ours(xo, is_causal=causal, key_padding_mask=pad)
    yt, _ = theirs(
        xt, xt, xt, need_weights=False,
        attn_mask=torch.triu(torch.ones(5, 5, dtype=torch.bool), 1) if causal else None,
        key_padding_mask=None if pad is None else torch.tensor(~pad),  # torch: True = ignore
    )  # fmt: skip
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(yo.shape)
    yo.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        ours.c_attn.weight.grad, theirs.in_proj_weight.grad.numpy(), rtol=1e-8, atol=1e-10
    )


def _copy_torch_layer(ours: TransformerBlock, theirs, decoder: bool):
    _copy_torch_mha(ours.attn, theirs.self_attn)
    _copy_linear(ours.mlp.c_fc, theirs.linear1.weight, theirs.linear1.bias)
    _copy_linear(ours.mlp.c_proj, theirs.linear2.weight, theirs.linear2.bias)
    _copy_linear(ours.ln_1, theirs.norm1.weight, theirs.norm1.bias)
    if decoder:
        _copy_torch_mha(ours.cross_attn, theirs.multihead_attn)
        _copy_linear(ours.ln_cross, theirs.norm2.weight, theirs.norm2.bias)
        _copy_linear(ours.ln_2, theirs.norm3.weight, theirs.norm3.bias)
    else:
        _copy_linear(ours.ln_2, theirs.norm2.weight, theirs.norm2.bias)


@pytest.mark.parity
@pytest.mark.parametrize("norm_first", [True, False])
def test_torch_transformer_encoder_layer(rng, norm_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoderLayer(
        16, 4, dim_feedforward=64, dropout=0.0, activation="gelu", batch_first=True,
        norm_first=norm_first, dtype=torch.float64,
    ).train()  # train mode: the plain (non fast-path) implementation  # fmt: skip
    ours = TransformerBlock(16, 4, norm_first=norm_first, activation="gelu").to(dtype=np.float64)
    _copy_torch_layer(ours, theirs, decoder=False)
    x = rng.standard_normal((2, 6, 16))
    pad = np.array([[True] * 6, [True] * 4 + [False] * 2])
    xo, xt = minroots.tensor(x, requires_grad=True), _to_torch(x)
    yo = ours(xo, is_causal=False, key_padding_mask=pad)
    yt = theirs(xt, src_key_padding_mask=torch.tensor(~pad))
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-9, atol=1e-11)
    g = rng.standard_normal(yo.shape)
    yo.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        ours.mlp.c_fc.weight.grad, theirs.linear1.weight.grad.numpy(), rtol=1e-8, atol=1e-10
    )


@pytest.mark.parity
@pytest.mark.parametrize("norm_first", [True, False])
def test_torch_transformer_decoder_layer(rng, norm_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.TransformerDecoderLayer(
        16, 4, dim_feedforward=64, dropout=0.0, activation="relu", batch_first=True,
        norm_first=norm_first, dtype=torch.float64,
    ).train()  # fmt: skip
    ours = TransformerBlock(16, 4, norm_first=norm_first, cross_attention=True, activation="relu")
    ours.to(dtype=np.float64)
    _copy_torch_layer(ours, theirs, decoder=True)
    x, mem = rng.standard_normal((2, 5, 16)), rng.standard_normal((2, 7, 16))
    mpad = np.array([[True] * 7, [True] * 3 + [False] * 4])
    xo, xt = minroots.tensor(x, requires_grad=True), _to_torch(x)
    mo, mt = minroots.tensor(mem, requires_grad=True), _to_torch(mem)
    yo = ours(xo, mo, is_causal=True, memory_padding_mask=mpad)
    yt = theirs(xt, mt, tgt_mask=torch.triu(torch.ones(5, 5, dtype=torch.bool), 1),
                memory_key_padding_mask=torch.tensor(~mpad))  # fmt: skip
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-9, atol=1e-11)
    g = rng.standard_normal(yo.shape)
    yo.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(mo.grad, mt.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parity
def test_torch_feed_forward(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    fc, proj = torch.nn.Linear(8, 32).double(), torch.nn.Linear(32, 8).double()
    ours = FeedForward(8).to(dtype=np.float64)
    _copy_linear(ours.c_fc, fc.weight, fc.bias)
    _copy_linear(ours.c_proj, proj.weight, proj.bias)
    x = rng.standard_normal((3, 4, 8))
    xo, xt = minroots.tensor(x, requires_grad=True), _to_torch(x)
    yo, yt = ours(xo), proj(torch.nn.functional.gelu(fc(xt), approximate="tanh"))
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(yo.shape)
    yo.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
