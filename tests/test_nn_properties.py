"""Hypothesis properties of softmax, attention, layer norm and cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import arrays, shapes

import minroots
import minroots.nn.functional as F
from minroots.nn import MultiHeadAttention


def _t(a, grad=False):
    return minroots.tensor(np.asarray(a), requires_grad=grad)


@pytest.mark.task3_1
@given(arrays(shapes(min_dims=1, max_dims=3, max_side=6), low=-50, high=50))
def test_softmax_rows_sum_to_one(a):
    y = F.softmax(_t(a), axis=-1).data
    assert (y >= 0).all()
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)


@pytest.mark.task3_4
@given(arrays((2, 6, 8)), st.integers(0, 5), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_causal_attention_ignores_the_future(x, t, seed):
    """Changing inputs after position t changes nothing at positions <= t."""
    minroots.manual_seed(seed % 1000)
    mha = MultiHeadAttention(8, 2).to(dtype=np.float64)
    x2 = x.copy()
    x2[:, t + 1 :] = np.random.default_rng(seed).standard_normal(x2[:, t + 1 :].shape)
    y1 = mha(_t(x), is_causal=True).data
    y2 = mha(_t(x2), is_causal=True).data
    np.testing.assert_allclose(y1[:, : t + 1], y2[:, : t + 1], rtol=1e-10, atol=1e-12)


@pytest.mark.task3_2
@given(arrays((1, 5, 8)), st.permutations(range(5)))
@settings(max_examples=20)
def test_self_attention_without_mask_is_permutation_equivariant(x, perm):
    mha = MultiHeadAttention(8, 2).to(dtype=np.float64)
    perm = np.array(perm)
    y = mha(_t(x)).data
    y_perm = mha(_t(x[:, perm])).data
    np.testing.assert_allclose(y_perm, y[:, perm], rtol=1e-10, atol=1e-12)


@pytest.mark.task3_3
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 16)),
                  elements=st.floats(-100, 100, width=64)))  # fmt: skip
def test_layer_norm_rows_have_mean_zero_variance_one(a):
    a = a + np.arange(a.shape[-1]) * 0.5  # rows are never constant
    y = F.layer_norm(_t(a), eps=0.0).data
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-9)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-9)


@pytest.mark.task4_1
@given(arrays(st.tuples(st.integers(1, 6), st.integers(2, 7)), low=-30, high=30), st.data())
def test_cross_entropy_is_minus_log_softmax_at_target(z, data):
    n, c = z.shape
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    loss = F.cross_entropy(_t(z), target, reduction="none").data
    logp = F.log_softmax(_t(z), axis=-1).data
    np.testing.assert_allclose(loss, -logp[np.arange(n), target], rtol=1e-10, atol=1e-12)


@pytest.mark.task4_1
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(2, 7)),
                  elements=st.floats(-1e4, 1e4, width=32)), st.data())  # fmt: skip
def test_cross_entropy_is_finite_for_huge_float32_logits(z, data):
    n, c = z.shape
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    zt = _t(z, grad=True)
    loss = F.cross_entropy(zt, target)
    loss.backward()
    assert loss.dtype == np.float32 and np.isfinite(loss.data) and np.isfinite(zt.grad).all()


@pytest.mark.task4_1
@given(arrays(st.tuples(st.integers(2, 6), st.integers(2, 5))), st.data())
def test_ignored_positions_get_zero_gradient(z, data):
    n, c = z.shape
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    ignored = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    ignored[0] = False  # at least one counted position
    target[ignored] = -100
    smoothing = data.draw(st.sampled_from([0.0, 0.1]))
    zt = _t(z, grad=True)
    F.cross_entropy(zt, target, label_smoothing=smoothing).backward()
    assert (zt.grad[ignored] == 0).all()
    assert (np.abs(zt.grad[~ignored]).sum(axis=-1) > 0).all()
