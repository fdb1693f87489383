"""Tensor behaviour: dtypes, graph hygiene, no_grad, gradient accumulation, devices, clear errors."""

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given
from strategies import arrays, shapes

import minroots as mr
from minroots.autograd import softmax as S


@pytest.mark.task2_3
def test_seed_example_prints_the_gradient_shape():
    x = mr.randn(3, 4, requires_grad=True)
    (x.softmax(-1) * x).sum().backward()
    assert x.grad.shape == (3, 4)
    assert x.grad.dtype == np.float32


@pytest.mark.task2_3
def test_hand_checkable_example():
    """d/dx of sum(x^2 + 3x) is 2x + 3."""
    x = mr.tensor([1.0, -2.0, 0.5], requires_grad=True)
    (x * x + 3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.array([5.0, -1.0, 4.0], dtype=np.float32))


def test_dtypes_are_kept():
    assert mr.tensor([1, 2]).dtype == np.float32  # lists take the default dtype
    assert mr.tensor(3.0).dtype == np.float32
    assert mr.tensor(np.zeros(2)).dtype == np.float64  # arrays keep theirs
    assert mr.tensor(np.zeros(2, dtype=np.int64)).dtype == np.int64
    x = mr.tensor([1.0, 2.0])
    for y in (x * 0.5, 0.5 * x, x + 1, x / 3, x**2, 1 - x, x.exp() * 1e-3):
        assert y.dtype == np.float32, y


@pytest.mark.task2_3
def test_gradients_accumulate_across_uses_and_calls():
    x = mr.tensor([2.0], requires_grad=True)
    y = x * x * x  # x used three times in one graph: 3x^2 = 12
    y.sum().backward()
    assert x.grad[0] == pytest.approx(12.0)
    (x * 1).sum().backward()  # a second backward adds
    assert x.grad[0] == pytest.approx(13.0)


@pytest.mark.task2_2
def test_broadcast_backward_reduces_to_input_shape():
    a = mr.tensor(np.ones((2, 3)), requires_grad=True)
    b = mr.tensor(np.ones((3,)), requires_grad=True)
    c = mr.tensor(np.ones((2, 1)), requires_grad=True)
    (a * b + c).sum().backward()
    assert b.grad.shape == (3,) and np.all(b.grad == 2)
    assert c.grad.shape == (2, 1) and np.all(c.grad == 3)


@pytest.mark.task2_3
def test_graph_is_released_after_backward():
    x = mr.tensor(np.ones(4), requires_grad=True)
    h = (x * 2).exp()
    ref = weakref.ref(h)
    loss = h.sum()
    del h
    gc.collect()
    assert ref() is not None  # still held by loss's graph
    loss.backward()
    gc.collect()
    assert ref() is None  # freed: backward dropped the graph
    with pytest.raises(RuntimeError, match="already released"):
        loss.backward()


@pytest.mark.task2_3
def test_retain_graph_allows_a_second_backward():
    x = mr.tensor(np.ones(3), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, 4 * np.ones(3))


def test_no_grad_builds_no_graph():
    x = mr.tensor(np.ones(3), requires_grad=True)
    with mr.no_grad():
        y = (x * 2).exp().sum()
    assert not y.requires_grad and y._parents == () and y._backward is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()

    @mr.no_grad()
    def infer(t):
        return t * 3

    assert not infer(x).requires_grad
    assert mr.is_grad_enabled()


@pytest.mark.task2_3
def test_deep_graph_does_not_hit_the_recursion_limit():
    x = mr.tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 1.0001**5000, rtol=1e-3)


def test_detach_cuts_the_graph():
    x = mr.tensor(np.ones(2), requires_grad=True)
    y = (x.detach() * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, np.ones(2))


def test_comparisons_are_not_differentiable():
    x = mr.tensor([1.0, 3.0], requires_grad=True)
    m = x > 2
    assert m.dtype == bool and not m.requires_grad
    assert m.tolist() == [False, True]


def test_shape_errors_name_the_op_and_shapes():
    with pytest.raises(
        ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned \(3 != 4\)"
    ):
        mr.ones(2, 3) @ mr.ones(4, 5)
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        mr.ones(2, 3) + mr.ones(4)
    with pytest.raises(ValueError, match="reshape"):
        mr.ones(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        mr.ones(2, 3).sum(axis=3)
    with pytest.raises(TypeError, match="floating"):
        mr.tensor(np.arange(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar output"):
        mr.ones(2, requires_grad=True).exp().backward()


def test_moving_to_cuda_without_a_gpu_explains_how_to_install():
    if mr.backend.cupy_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="pip install"):
        mr.ones(2).to("cuda")
    with pytest.raises(RuntimeError, match="CuPy"):
        mr.backend.use("cupy")
    assert mr.backend.current() == "numpy"


def test_manual_seed_makes_random_tensors_reproducible():
    mr.manual_seed(7)
    a = mr.randn(3, 3).numpy()
    mr.manual_seed(7)
    b = mr.randn(3, 3).numpy()
    np.testing.assert_array_equal(a, b)
    state = mr.backend.get_rng_state()
    c = mr.rand(4).numpy()
    mr.backend.set_rng_state(state)
    np.testing.assert_array_equal(c, mr.rand(4).numpy())


def test_detect_anomaly_names_the_op():
    x = mr.tensor([-1.0, 1.0], requires_grad=True)
    with pytest.raises(FloatingPointError, match="'log'"), np.errstate(invalid="ignore"):
        with mr.detect_anomaly():
            x.log()


@pytest.mark.task3_1
@given(x=shapes(min_dims=2).flatmap(lambda s: arrays(s, -1e4, 1e4)))
def test_softmax_family_is_finite_for_large_float32_inputs(x):
    t = mr.tensor(x.astype(np.float32), requires_grad=True)
    for out in (t.softmax(-1), t.log_softmax(-1), t.logsumexp(axis=-1)):
        assert np.all(np.isfinite(out.data)), out
    np.testing.assert_allclose(t.softmax(-1).data.sum(-1), 1.0, rtol=1e-5)
    t.log_softmax(-1).sum().backward()
    assert np.all(np.isfinite(t.grad))


@pytest.mark.task3_1
@given(x=shapes(min_dims=1).flatmap(lambda s: arrays(s, -5, 5)))
def test_fused_softmax_equals_composed_reference(x):
    for fused, composed in (
        (S.softmax, S.softmax_composed),
        (S.log_softmax, S.log_softmax_composed),
    ):
        a = mr.tensor(x, requires_grad=True)
        b = mr.tensor(x, requires_grad=True)
        fa, fb = fused(a, -1), composed(b, -1)
        np.testing.assert_allclose(fa.data, fb.data, rtol=1e-12, atol=1e-12)
        w = np.random.default_rng(0).standard_normal(x.shape)
        (fa * w).sum().backward()
        (fb * w).sum().backward()
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)
