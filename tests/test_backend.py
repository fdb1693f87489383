"""The array backend: NumPy by default, CuPy on request (GPU tests are marked and skip without one)."""

import numpy as np
import pytest

import minroots as mr
from minroots import backend as B


def test_numpy_is_the_default():
    assert B.current() == "numpy"
    assert B.xp() is np
    assert B.get_array_module(np.ones(2)) is np
    assert B.default_dtype() == np.float32


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="'numpy' or 'cupy'"):
        B.use("tpu")


def test_default_dtype_switch():
    B.set_default_dtype("float64")
    try:
        assert mr.tensor([1.0]).dtype == np.float64
        assert mr.zeros(2).dtype == np.float64
    finally:
        B.set_default_dtype("float32")
    with pytest.raises(ValueError):
        B.set_default_dtype("int32")


def test_erf_matches_math_erf():
    import math

    x = np.linspace(-4, 4, 101)
    np.testing.assert_allclose(B.erf(x), [math.erf(v) for v in x], rtol=1e-14, atol=1e-15)


@pytest.mark.gpu
def test_cupy_tensor_round_trip_and_gradients():
    B.use("cupy")
    try:
        x = mr.randn(4, 5, requires_grad=True)
        assert x.device == "cuda"
        (x.softmax(-1) * x).sum().backward()
        assert x.grad.shape == (4, 5)
        cpu = mr.tensor(np.ones((4, 5), dtype=np.float32)).to("cpu")
        with pytest.raises(RuntimeError, match="different devices"):
            x + cpu
    finally:
        B.use("numpy")


@pytest.mark.gpu
def test_cupy_matches_numpy_forward_and_backward():
    x_np = np.random.default_rng(0).standard_normal((3, 4))
    results = []
    for device in ("cpu", "cuda"):
        t = mr.tensor(x_np).to(device).requires_grad_()
        out = (t.gelu().log_softmax(-1) * 2).sum()
        out.backward()
        results.append((B.to_numpy(out.data), B.to_numpy(t.grad)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-10)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-10)
