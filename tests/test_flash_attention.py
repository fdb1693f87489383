"""Tiled attention with an online softmax (``minroots.nn.functional.flash_attention``): the same
outputs and gradients as the dense kernel (float64, 1e-10), central differences, masks, memory
that grows like T (not T^2), and the ``kernel=`` option of the attention kernels."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import minroots
import minroots.nn.functional as F
from minroots.nn.functional.attention import FLASH_MIN_KEYS, use_flash
from minroots.nn.functional.flash_attention import _tiles, flash_attention

TOL = dict(rtol=1e-10, atol=1e-10)


def _t(a):
    return minroots.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def _run(fn, arrays, grad, **kw):
    ts = [_t(a) for a in arrays]
    y = fn(*ts, **kw)
    y.backward(grad)
    return [y.data, *(t.grad for t in ts)]


def _assert_same(kernel_kw, arrays, rng, **kw):
    """Flash (with ``kernel_kw``, e.g. tile sizes) and dense: outputs and every gradient."""
    dv = arrays[2].shape[-1]
    grad = rng.standard_normal((*arrays[0].shape[:-1], dv))
    dense = _run(F.scaled_dot_product_attention, arrays, grad, kernel="dense", **kw)
    flash = _run(flash_attention, arrays, grad, **kernel_kw, **kw)
    for name, a, b in zip(("O", "dQ", "dK", "dV"), flash, dense, strict=True):
        np.testing.assert_allclose(a, b, **TOL, err_msg=f"flash and dense differ in {name}")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _qkv(rng, b, h, t_q, t_k, d, dv=None):
    shapes = [(b, h, t_q, d), (b, h, t_k, d), (b, h, t_k, dv or d)]
    return [rng.standard_normal(s) for s in shapes]


# ------------------------------------------------------------------ equal to the dense kernel
@pytest.mark.parametrize(
    "t_q, t_k, block_q, block_k",
    [(37, 37, 8, 8), (37, 37, 16, 5), (9, 40, 4, 8), (40, 40, 128, 128), (1, 23, 8, 8)],
)
def test_causal_equals_dense_with_any_tiles(rng, t_q, t_k, block_q, block_k):
    """Tiles that do not divide T, more keys than queries (bottom-right causal, as with a cache),
    a single query, one tile for everything."""
    arrays = _qkv(rng, 2, 3, t_q, t_k, 5, dv=7)
    _assert_same(dict(block_q=block_q, block_k=block_k), arrays, rng, is_causal=True)


@pytest.mark.parametrize("masking", ["none", "bool", "padding", "additive"])
def test_masks_equal_dense(rng, masking):
    arrays = _qkv(rng, 2, 2, 19, 23, 4)
    mask = None
    if masking == "bool":
        mask = rng.random((19, 23)) > 0.4
    elif masking == "padding":
        mask = np.ones((2, 1, 1, 23), dtype=bool)
        mask[1, ..., -6:] = False  # the second sequence is 6 keys shorter
    elif masking == "additive":
        mask = rng.standard_normal((2, 2, 19, 23))
    _assert_same(dict(block_q=8, block_k=6), arrays, rng, mask=mask)


def test_rows_with_every_key_masked_give_zeros_not_nan(rng):
    arrays = _qkv(rng, 1, 2, 6, 10, 3)
    mask = rng.random((6, 10)) > 0.5
    mask[2] = False  # query 2 sees nothing
    _assert_same(dict(block_q=4, block_k=4), arrays, rng, mask=mask)
    out = flash_attention(*[_t(a) for a in arrays], mask=mask, block_q=4, block_k=4).data
    assert np.all(out[:, :, 2] == 0) and np.isfinite(out).all()


def test_hand_checkable_example_one_query_two_equal_keys():
    """S = [0, 0]: weights 1/2 each, the average of the two values; with tiles of one key the
    online softmax rescales once (alpha = e^0 = 1) and gets the same."""
    q = _t([[[1.0, 0.0]]])
    k = _t([[[0.0, 1.0], [0.0, -1.0]]])
    v = _t([[[2.0, 0.0], [0.0, 4.0]]])
    out = flash_attention(q, k, v, block_q=1, block_k=1)
    np.testing.assert_allclose(out.data, [[[1.0, 2.0]]], rtol=1e-15)


def test_gradcheck_against_central_differences(rng):
    arrays = _qkv(rng, 1, 2, 7, 9, 3)
    inputs = [_t(a) for a in arrays]
    result = minroots.gradcheck(
        lambda q, k, v: flash_attention(q, k, v, is_causal=True, block_q=3, block_k=4), inputs
    )
    assert result, str(result)


def test_causal_skips_the_tiles_above_the_diagonal():
    tiles = _tiles(8, 8, True, 4, 4)
    assert [[ks.start for ks, _ in keys] for _, keys in tiles] == [[0], [0, 4]]
    # the first tile of the second row is fully visible (no mask); the diagonal ones need one
    assert [[shift for _, shift in keys] for _, keys in tiles] == [[0], [None, 0]]
    assert sum(len(keys) for _, keys in _tiles(1024, 1024, True, 128, 128)) == 8 * 9 // 2


def test_float32_stays_float32_and_close_to_dense(rng):
    arrays = [a.astype(np.float32) for a in _qkv(rng, 2, 2, 300, 300, 16)]
    ts = [minroots.tensor(a) for a in arrays]
    flash = flash_attention(*ts, is_causal=True).data
    dense = F.scaled_dot_product_attention(*ts, is_causal=True, kernel="dense").data
    assert flash.dtype == np.float32
    np.testing.assert_allclose(flash, dense, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ memory O(T)
def _peak_bytes(kernel: str, t: int) -> int:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((1, 2, t, 16), dtype=np.float32) for _ in range(3)]
    grad = rng.standard_normal((1, 2, t, 16), dtype=np.float32)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    ts = [minroots.tensor(a, requires_grad=True) for a in arrays]
    F.scaled_dot_product_attention(*ts, is_causal=True, kernel=kernel).backward(grad)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def test_memory_grows_like_t_not_t_squared():
    """Doubling T doubles the tiled kernel's peak (inputs, outputs and O(T) statistics) but
    quadruples the dense kernel's (the (T, T) weights)."""
    flash = [_peak_bytes("flash", t) for t in (1024, 2048)]
    dense = [_peak_bytes("dense", t) for t in (1024, 2048)]
    assert flash[1] < 2.6 * flash[0], flash
    assert dense[1] > 3.5 * dense[0], dense
    assert flash[1] < dense[1] / 4, (flash, dense)


# ------------------------------------------------------------------ the kernel= option
def test_packed_self_attention_flash_equals_dense(rng):
    qkv = rng.standard_normal((2, 45, 3 * 12))
    grad = rng.standard_normal((2, 45, 12))
    for kw in (dict(is_causal=True), dict(is_causal=False, mask=rng.random((45, 45)) > 0.3)):
        dense = _run(F.packed_self_attention, [qkv], grad, n_head=3, kernel="dense", **kw)
        flash = _run(F.packed_self_attention, [qkv], grad, n_head=3, kernel="flash", **kw)
        for a, b in zip(flash, dense, strict=True):
            np.testing.assert_allclose(a, b, **TOL)


def test_auto_takes_flash_for_long_sequences_only():
    assert not use_flash("auto", (8, 6, 256, 64), 256, 0.0, True, "t")
    assert use_flash("auto", (1, 1, FLASH_MIN_KEYS, 64), FLASH_MIN_KEYS, 0.0, True, "t")
    assert not use_flash("auto", (1, 1, 4096, 64), 4096, 0.1, True, "t")  # dropout: dense
    assert use_flash("auto", (64, 64, 512, 8), 512, 0.0, True, "t")  # 4 GB of scores
    assert not use_flash("dense", (1, 1, 8192, 64), 8192, 0.0, True, "t")


def test_kernel_option_errors_are_clear(rng):
    q, k, v = (_t(a) for a in _qkv(rng, 1, 1, 4, 4, 2))
    with pytest.raises(ValueError, match="kernel must be one of"):
        F.scaled_dot_product_attention(q, k, v, kernel="tiled")
    with pytest.raises(ValueError, match="kernel='flash' needs dropout_p=0"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=0.1, kernel="flash")
    with pytest.raises(ValueError, match="either mask or is_causal"):
        flash_attention(q, k, v, mask=np.ones((4, 4), bool), is_causal=True)


def test_torch_sdpa_agrees_with_flash(rng):
    torch = pytest.importorskip("torch")
    arrays = _qkv(rng, 2, 2, 33, 33, 8)
    grad = rng.standard_normal((2, 2, 33, 8))
    ours = _run(flash_attention, arrays, grad, is_causal=True, block_q=16, block_k=16)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=True)
    y.backward(torch.tensor(grad))
    for a, b in zip(ours, [y, *(t.grad for t in ts)], strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), **TOL)
