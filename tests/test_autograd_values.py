"""Forward values of the autograd ops: hand-checkable examples and NumPy float64 references.

The gradients are checked in ``test_autograd_gradcheck.py`` (central differences) and
``test_autograd_torch.py``; these tests make sure the *values* are right too (a wrong forward with a
matching wrong backward, say ``exp`` returning ``2 e^x`` with gradient ``2 e^x``, passes a
gradient check). The ``task*`` markers are the course assignments (``minroots/assignments``).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, broadcastable_pair, shapes

import minroots as mr
from minroots.autograd import unbroadcast

RTOL, ATOL = 1e-12, 1e-14


def _close(tensor, expected):
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=RTOL, atol=ATOL)


# --- 2.1: elementwise ops -----------------------------------------------------------------------
BINARY = {"mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.divide)}
UNARY = {"exp": (lambda a: a.exp(), np.exp), "log": (lambda a: a.log(), np.log)}


@pytest.mark.task2_1
@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_values_equal_numpy(name, data):
    sa, sb = data.draw(broadcastable_pair())
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb, 0.5, 2.0))
    ours, numpy_fn = BINARY[name]
    out = ours(mr.tensor(a), mr.tensor(b))
    assert out.shape == np.broadcast_shapes(sa, sb)
    _close(out, numpy_fn(a, b))


@pytest.mark.task2_1
@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_values_equal_numpy(name, data):
    x = data.draw(arrays(data.draw(shapes()), 0.2, 3.0))
    ours, numpy_fn = UNARY[name]
    _close(ours(mr.tensor(x)), numpy_fn(x))


@pytest.mark.task2_1
def test_elementwise_by_hand():
    x = mr.tensor(np.array([0.0, 1.0, 2.0]))
    _close(x.exp(), [1.0, math.e, math.e**2])
    _close(mr.tensor(np.array([1.0, math.e, 0.5])).log(), [0.0, 1.0, -math.log(2)])
    _close(mr.tensor(np.array([6.0, 1.0])) / mr.tensor(np.array([3.0, 4.0])), [2.0, 0.25])
    _close(mr.tensor(np.array([[1.0], [2.0]])) * mr.tensor(np.array([3.0, 4.0])), [[3, 4], [6, 8]])
    assert (mr.tensor(np.ones(2, dtype=np.float32)) * 0.5).dtype == np.float32  # no upcast


# --- 2.2: broadcasting and reductions -----------------------------------------------------------
REDUCTIONS = {"sum": np.sum, "mean": np.mean}


@pytest.mark.task2_2
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data())
def test_reductions_equal_numpy(name, data):
    shape = data.draw(shapes())
    x = data.draw(arrays(shape))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    keep = data.draw(st.booleans())
    out = getattr(mr.tensor(x), name)(axis=axis, keepdims=keep)
    expected = REDUCTIONS[name](x, axis=axis, keepdims=keep)
    assert out.shape == np.shape(expected)
    _close(out, expected)


@pytest.mark.task2_2
def test_reductions_and_unbroadcast_by_hand():
    x = mr.tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    _close(x.sum(), 21.0)
    _close(x.sum(axis=0), [5.0, 7.0, 9.0])
    _close(x.mean(axis=1, keepdims=True), [[2.0], [5.0]])
    _close(x.mean(axis=(0, 1)), 3.5)
    g = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(unbroadcast(g, (3,)), [3.0, 5.0, 7.0])  # summed over rows
    np.testing.assert_array_equal(unbroadcast(g, (2, 1)), [[3.0], [12.0]])  # over columns
    np.testing.assert_array_equal(unbroadcast(g, (1, 1)), [[15.0]])
    assert unbroadcast(g, (2, 3)) is g  # nothing was broadcast: the same array


# --- 2.4: matrix multiplication -----------------------------------------------------------------
@pytest.mark.task2_4
@given(data=st.data())
def test_matmul_values_equal_numpy(data):
    batch_a, batch_b = data.draw(broadcastable_pair(max_dims=2, max_side=3))
    n, k, m = data.draw(st.tuples(*[st.integers(1, 4)] * 3))
    form = data.draw(st.sampled_from(["batched", "vec_left", "vec_right", "vec_vec"]))
    sa = (k,) if form in ("vec_left", "vec_vec") else (*batch_a, n, k)
    sb = (k,) if form in ("vec_right", "vec_vec") else (*batch_b, k, m)
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    out = mr.tensor(a) @ mr.tensor(b)
    assert out.shape == np.matmul(a, b).shape
    _close(out, np.matmul(a, b))


@pytest.mark.task2_4
def test_matmul_by_hand():
    a = mr.tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    b = mr.tensor(np.array([[5.0], [6.0]]), requires_grad=True)
    z = a @ b
    _close(z, [[17.0], [39.0]])
    z.backward(np.ones((2, 1)))
    _close(mr.tensor(a.grad), [[5.0, 6.0], [5.0, 6.0]])  # dA = dZ B^T
    _close(mr.tensor(b.grad), [[4.0], [6.0]])  # dB = A^T dZ
    with pytest.raises(ValueError, match="not aligned"):
        a @ mr.tensor(np.ones((3, 1)))


# --- 2.5: activations ---------------------------------------------------------------------------
ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
}


@pytest.mark.task2_5
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(data=st.data())
def test_activations_equal_numpy(name, data):
    x = data.draw(arrays(data.draw(shapes()), -4.0, 4.0))
    _close(getattr(mr.tensor(x), name)(), ACTIVATIONS[name](x))


@pytest.mark.task2_5
def test_activations_by_hand_and_saturated():
    x = mr.tensor(np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0]))
    _close(x.sigmoid(), [0.0, 1 / (1 + math.e), 0.5, 1 / (1 + 1 / math.e), 1.0])
    _close(x.tanh(), [-1.0, -math.tanh(1), 0.0, math.tanh(1), 1.0])
    _close(x.relu(), [0.0, 0.0, 0.0, 1.0, 1000.0])
    with np.errstate(all="raise"):  # no overflow warning at +-1000 either
        x.sigmoid()


# --- 3.1: softmax -------------------------------------------------------------------------------
@pytest.mark.task3_1
def test_softmax_by_hand():
    z = mr.tensor(np.array([[0.0, math.log(3.0)], [5.0, 5.0]]))
    _close(z.softmax(-1), [[0.25, 0.75], [0.5, 0.5]])
    _close(z.log_softmax(-1), np.log([[0.25, 0.75], [0.5, 0.5]]))
    _close(mr.tensor(np.array([[1.0, 2.0], [3.0, 6.0]])).softmax(axis=0),
           [[1 / (1 + math.e**2), 1 / (1 + math.e**4)], [1 / (1 + math.e**-2), 1 / (1 + math.e**-4)]])  # fmt: skip


@pytest.mark.task3_1
@given(data=st.data())
def test_softmax_values_equal_numpy(data):
    shape = data.draw(shapes())
    x = data.draw(arrays(shape, -30.0, 30.0))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    _close(mr.tensor(x).softmax(axis), p)
    np.testing.assert_allclose(
        mr.tensor(x).log_softmax(axis).numpy(), np.log(p), rtol=1e-10, atol=1e-12
    )


# --- 4.2: log-sum-exp ---------------------------------------------------------------------------
@pytest.mark.task4_2
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # log(0) = -inf, on purpose
def test_logsumexp_by_hand_and_extreme_inputs():
    _close(mr.tensor(np.array([0.0, 0.0])).logsumexp(), math.log(2.0))
    _close(mr.tensor(np.array([[1e4, 1e4], [-1e4, -1e4]])).logsumexp(axis=1),
           [1e4 + math.log(2.0), -1e4 + math.log(2.0)])  # fmt: skip
    big = mr.tensor(np.array([1e4, 0.0], dtype=np.float32)).logsumexp()
    assert np.isfinite(big.numpy()) and big.dtype == np.float32
    _close(
        mr.tensor(np.array([[-np.inf, -np.inf], [0.0, -np.inf]])).logsumexp(axis=-1), [-np.inf, 0.0]
    )


@pytest.mark.task4_2
@given(data=st.data())
def test_logsumexp_values_equal_numpy(data):
    shape = data.draw(shapes())
    x = data.draw(arrays(shape, -50.0, 50.0))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    keep = data.draw(st.booleans())
    m = x.max(axis=axis, keepdims=True)
    expected = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    if not keep:
        expected = expected.squeeze(axis=axis) if axis is not None else expected.reshape(())
    out = mr.tensor(x).logsumexp(axis=axis, keepdims=keep)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
