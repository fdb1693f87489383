"""The modern decoder's fused kernels (RMSNorm, RoPE, SiLU, SwiGLU): worked examples, against their
composed references, float64 central differences over every element, and PyTorch (float64,
forward and backward)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, fused_equals_composed, shapes

import minroots
import minroots.nn.functional as F

RTOL, ATOL = 1e-10, 1e-12


def _t(a, grad=True):
    return minroots.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def _torch_rope(x, offset, theta):
    """Hugging Face's Llama rotation (``x cos + rotate_half(x) sin``), with float64 tables."""
    import torch

    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(offset, offset + x.shape[-2], dtype=torch.float64)[:, None] * inv
    emb = torch.cat([angles, angles], dim=-1)
    rotated = torch.cat([-x[..., d // 2 :], x[..., : d // 2]], dim=-1)
    return x * emb.cos() + rotated * emb.sin()


def _torch_parity(ours_fn, torch_fn, inputs, rng):
    torch = pytest.importorskip("torch")
    ours = [_t(a) for a in inputs]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    y, ref = ours_fn(*ours), torch_fn(*theirs)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(y.data, ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    y.backward(g)
    ref.backward(torch.tensor(g))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ------------------------------------------------------------------ RMSNorm (task 12.2)
@pytest.mark.task12_2
def test_rms_norm_worked_example():
    x = _t([[3.0, 4.0]])
    y = F.rms_norm(x, eps=0.0)
    np.testing.assert_allclose(y.data, [[3 / np.sqrt(12.5), 4 / np.sqrt(12.5)]], rtol=1e-12)
    np.testing.assert_allclose((y.data**2).mean(), 1.0, rtol=1e-12)  # unit mean square
    y.backward(np.array([[1.0, 0.0]]))  # d y_0 / d x: r - x_0^2 r^3 / D
    r = 1 / np.sqrt(12.5)
    np.testing.assert_allclose(x.grad, [[r - 9 * r**3 / 2, -12 * r**3 / 2]], rtol=1e-12)


@pytest.mark.task12_2
def test_rms_norm_fused_matches_composed(rng):
    inputs = [rng.standard_normal((2, 3, 6)) * 2, rng.standard_normal(6)]
    fused_equals_composed(F.rms_norm, F.rms_norm_composed, inputs, rng)


@pytest.mark.task12_2
@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm_gradcheck_every_element(rng, with_weight):
    inputs = [_t(rng.standard_normal((2, 4, 5)))]
    if with_weight:
        inputs.append(_t(rng.standard_normal(5)))
    result = minroots.gradcheck(lambda *xs: F.rms_norm(*xs, eps=1e-5), inputs)
    assert result, str(result)


@pytest.mark.task12_2
@pytest.mark.parity
def test_rms_norm_equals_torch(rng):
    torch = pytest.importorskip("torch")
    inputs = [rng.standard_normal((2, 3, 8)), rng.standard_normal(8)]
    _torch_parity(lambda x, w: F.rms_norm(x, w, eps=1e-6),
                  lambda x, w: torch.nn.functional.rms_norm(x, (8,), w, eps=1e-6), inputs, rng)  # fmt: skip


@pytest.mark.task12_2
@given(x=arrays(shapes(min_dims=1, max_dims=3, max_side=5), low=-3, high=3))
def test_rms_norm_is_scale_invariant(x):
    """RMSNorm(c x) = RMSNorm(x) for c > 0 (with eps = 0): what it normalizes is the scale."""
    if (x**2).mean(axis=-1).min() < 1e-100:
        return  # a row of (almost) zeros has no scale to divide by in float64
    a = F.rms_norm(_t(x, False), eps=0.0).data
    b = F.rms_norm(_t(7.5 * x, False), eps=0.0).data
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_rms_norm_bad_inputs(rng):
    with pytest.raises(ValueError, match=r"rms_norm: weight must have shape \(4,\)"):
        F.rms_norm(_t(rng.standard_normal((2, 4))), _t(np.ones(3)))
    with pytest.raises(ValueError, match="rms_norm: eps must be a finite number >= 0"):
        F.rms_norm(_t(rng.standard_normal((2, 4))), eps=-1.0)


# ------------------------------------------------------------------ RoPE (task 12.1)
@pytest.mark.task12_1
def test_rope_worked_example():
    x = _t([[1.0, 0.0], [1.0, 0.0]])  # d = 2: one pair, omega_0 = 1, positions 0 and 1
    y = F.rope(x)
    np.testing.assert_allclose(y.data, [[1.0, 0.0], [np.cos(1.0), np.sin(1.0)]], rtol=1e-12)
    y.backward(np.array([[0.0, 0.0], [np.cos(1.0), np.sin(1.0)]]))  # R^T R e_0 = e_0
    np.testing.assert_allclose(x.grad, [[0.0, 0.0], [1.0, 0.0]], atol=1e-15)


@pytest.mark.task12_1
@pytest.mark.parametrize("offset", [0, 5])
def test_rope_fused_matches_composed(rng, offset):
    def fused(x):
        return F.rope(x, offset, theta=100.0)

    def composed(x):
        return F.rope_composed(x, offset, theta=100.0)

    fused_equals_composed(fused, composed, [rng.standard_normal((2, 3, 7, 8))], rng)


@pytest.mark.task12_1
def test_rope_gradcheck_every_element(rng):
    result = minroots.gradcheck(
        lambda x: F.rope(x, 3, theta=50.0), [_t(rng.standard_normal((2, 5, 6)))]
    )
    assert result, str(result)


@pytest.mark.task12_1
@pytest.mark.parity
@pytest.mark.parametrize("offset, theta", [(0, 10000.0), (9, 500.0)])
def test_rope_equals_hugging_face_rotation_in_torch(rng, offset, theta):
    _torch_parity(lambda x: F.rope(x, offset, theta), lambda x: _torch_rope(x, offset, theta),
                  [rng.standard_normal((2, 3, 6, 8))], rng)  # fmt: skip


@pytest.mark.task12_1
@given(shift=st.integers(0, 40), seed=st.integers(0, 2**31 - 1))
def test_rope_scores_depend_only_on_relative_position(shift, seed):
    """(R_m q) . (R_n k) = q . R_{n-m} k: moving query and key by the same amount changes nothing."""
    r = np.random.default_rng(seed)
    q, k = r.standard_normal((1, 8)), r.standard_normal((1, 8))
    m, n = 3, 7

    def score(a, b):
        qm = F.rope(_t(q, False), m + a, theta=100.0).data
        kn = F.rope(_t(k, False), n + b, theta=100.0).data
        return float((qm @ kn.T)[0, 0])

    np.testing.assert_allclose(score(shift, shift), score(0, 0), rtol=1e-9, atol=1e-12)


@pytest.mark.task12_1
def test_rope_offset_continues_the_positions(rng):
    """Rotating the last tokens with an offset equals rotating the whole sequence: a KV cache's
    new keys get the rotation of their true positions."""
    x = rng.standard_normal((2, 9, 4))
    whole = F.rope(_t(x, False)).data
    tail = F.rope(_t(x[:, 6:], False), offset=6).data
    np.testing.assert_allclose(tail, whole[:, 6:], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=-1), np.linalg.norm(x, axis=-1))


def test_rope_tables_are_cached_per_power_of_two_and_dtype():
    cos, sin = F.rope_tables(5, 8, dtype="float32")
    cos2, _ = F.rope_tables(7, 8, dtype="float32")
    assert cos.shape == (5, 4) and cos.dtype == np.float32 and not cos.flags.writeable
    assert np.shares_memory(cos, cos2)  # both views of the table of 8 positions
    assert F.rope_tables(5, 8, dtype="float64")[0].dtype == np.float64
    np.testing.assert_allclose(sin[3, 1], np.sin(3 * 10000 ** (-2 / 8)), rtol=1e-6)


def test_rope_bad_inputs(rng):
    with pytest.raises(ValueError, match="even head size"):
        F.rope(_t(rng.standard_normal((2, 3, 5))))
    with pytest.raises(ValueError, match="rope: offset must be an integer >= 0"):
        F.rope(_t(rng.standard_normal((2, 3, 4))), offset=-1)
    with pytest.raises(ValueError, match="rope: theta must be a finite number > 0"):
        F.rope(_t(rng.standard_normal((2, 3, 4))), theta=0.0)


# ------------------------------------------------------------------ SiLU and SwiGLU
def test_silu_and_swiglu_worked_examples():
    sig1 = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(F.silu(_t([0.0, 1.0, -1.0])).data, [0, sig1, -(1 - sig1)])
    np.testing.assert_allclose(F.swiglu(_t([1.0, 2.0])).data, [2 * sig1])
    assert np.isfinite(F.silu(_t([-1000.0, 1000.0])).data).all()  # no overflow


def test_silu_keeps_relative_precision_far_below_zero():
    x = np.array([-30.0, -50.0])
    np.testing.assert_allclose(F.silu(_t(x, False)).data, x / (1 + np.exp(-x)), rtol=1e-14)


@pytest.mark.parametrize("name", ["silu", "swiglu"])
def test_silu_and_swiglu_fused_match_composed(rng, name):
    fused, composed = getattr(F, name), getattr(F, f"{name}_composed")
    fused_equals_composed(fused, composed, [rng.standard_normal((2, 3, 8)) * 3], rng)


@pytest.mark.parametrize("name", ["silu", "swiglu"])
def test_silu_and_swiglu_gradcheck_every_element(rng, name):
    result = minroots.gradcheck(getattr(F, name), [_t(rng.standard_normal((3, 6)) * 3)])
    assert result, str(result)


@pytest.mark.parity
def test_silu_and_swiglu_equal_torch(rng):
    torch = pytest.importorskip("torch")
    x = [rng.standard_normal((2, 5, 8)) * 3]
    _torch_parity(F.silu, torch.nn.functional.silu, x, rng)
    _torch_parity(F.swiglu, lambda h: torch.nn.functional.silu(h[..., :4]) * h[..., 4:], x, rng)


def test_float32_stays_float32(rng):
    x = minroots.tensor(rng.standard_normal((2, 3, 8)).astype(np.float32), requires_grad=True)
    w = minroots.tensor(np.ones(8, dtype=np.float32), requires_grad=True)
    for y in (F.rms_norm(x, w), F.rope(x), F.silu(x), F.swiglu(x)):
        assert y.dtype == np.float32
        y.backward(np.ones(y.shape, dtype=np.float32))
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    with pytest.raises(ValueError, match="even last axis"):
        F.swiglu(x[..., :3])
