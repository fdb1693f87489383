"""The array backend: NumPy by default, CuPy on request (GPU tests are marked and skip without one)."""

import ast
import math
from pathlib import Path

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


# --- one device vocabulary (backend.DEVICES) ------------------------------------------------
def test_device_names_map_to_backends_and_back():
    assert B.DEVICES == {
        "cpu": "numpy", "numpy": "numpy", "cuda": "cupy", "gpu": "cupy", "cupy": "cupy",
    }  # fmt: skip
    for name, backend in B.DEVICES.items():
        assert B.backend_name(name) == backend
        assert B.device_name(name) == {"numpy": "cpu", "cupy": "cuda"}[backend]
    assert B.xp("cpu") is np and B.xp("numpy") is np and B.xp() is np
    assert B.rng("cpu") is B.rng("numpy") is B.rng()


@pytest.mark.parametrize("name", ["cpu", "numpy"])
def test_every_device_argument_takes_both_cpu_names(name):
    x = np.arange(3.0)
    assert mr.zeros(2, device=name).device == "cpu"
    assert mr.arange(3, device=name).device == "cpu"
    assert mr.tensor(x, device=name).device == "cpu"
    assert B.to_device(x, name) is x  # already there: no copy
    expected = np.random.default_rng(0).standard_normal(3, dtype=np.float32)
    mr.manual_seed(0)
    np.testing.assert_array_equal(mr.randn(3, device=name).data, expected)  # the seeded NumPy rng
    m = mr.nn.Linear(2, 2)
    assert m.to(name) is m and m.weight.device == "cpu"
    B.use(name)
    assert B.current() == "numpy"


@pytest.mark.parametrize(
    "call",
    [
        lambda: B.use("tpu"),
        lambda: B.to_device(np.zeros(1), "tpu"),
        lambda: B.rng("tpu"),
        lambda: B.xp("tpu"),
        lambda: mr.zeros(2, device="tpu"),
        lambda: mr.randn(2, device="tpu"),
        lambda: mr.tensor([1.0], device="tpu"),
        lambda: mr.tensor([1.0]).to("tpu"),
        lambda: mr.nn.Linear(2, 2).to("tpu"),
    ],
    ids=["use", "to_device", "rng", "xp", "zeros", "randn", "tensor", "Tensor.to", "Module.to"],
)
def test_an_unknown_device_gets_the_same_message_everywhere(call):
    with pytest.raises(
        ValueError,
        match=r"device must be 'cpu' or 'cuda' \(or the backends 'numpy' or 'cupy'; 'gpu' is 'cuda'\), got 'tpu'$",
    ):
        call()


def test_only_the_backend_lists_device_names():
    """The alias "gpu" is spelled in one place: the table in backend.py (the other modules ask it)."""
    package = Path(B.__file__).parent
    spelled = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and node.value == "gpu":
                spelled.append(path.relative_to(package).as_posix())
    assert set(spelled) == {"backend.py"}


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cuda", "gpu", "cupy"])
def test_every_device_argument_takes_every_gpu_name(name):
    x = np.arange(3.0)
    for t in (mr.zeros(2, device=name), mr.randn(2, device=name), mr.tensor(x, device=name)):
        assert t.device == "cuda"
    assert B.xp(name).__name__ == "cupy" and B.device_of(B.to_device(x, name)) == "cuda"
    m = mr.nn.Linear(2, 2).to(name)
    assert m.weight.device == "cuda"
    assert mr.tensor(x).to(name).device == "cuda"


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
