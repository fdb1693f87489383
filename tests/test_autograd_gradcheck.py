"""Every differentiable op: backward's gradient equals central differences, over every element,
for contiguous inputs and for non-contiguous ones (permuted and strided, as ``.T`` makes)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from op_cases import CASES, LAYOUTS, TASK_OF_CASE, draw_case

import minroots as mr

PARAMS = [
    pytest.param(
        name, marks=[getattr(pytest.mark, TASK_OF_CASE[name])] if name in TASK_OF_CASE else []
    )
    for name in sorted(CASES)
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", PARAMS)
@given(data=st.data())
def test_gradient_equals_central_differences(name, layout, data):
    arrays, fn, _ = draw_case(name, data.draw, layout)
    inputs = [mr.tensor(a, requires_grad=True) for a in arrays]
    result = mr.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert result, str(result)


def test_gradcheck_catches_a_wrong_gradient():
    """The checker itself must fail on a wrong backward (here: d/dx x^2 claimed to be x)."""
    from minroots.autograd.tensor import Tensor

    def bad_square(a):
        return Tensor._make(a.data * a.data, (a,), lambda g: (g * a.data,), "bad_square")

    x = mr.tensor(np.linspace(0.5, 1.5, 6), requires_grad=True)
    result = mr.gradcheck(bad_square, [x])
    assert not result
    assert "MISMATCH" in str(result)


def test_gradcheck_catches_a_nan_gradient():
    """A NaN gradient is a mismatch (it used to compare as never the worst and pass)."""
    from minroots.autograd.tensor import Tensor

    def nan_sin(a):
        return Tensor._make(np.sin(a.data), (a,), lambda g: (g * np.nan,), "nan_sin")

    result = mr.gradcheck(nan_sin, [mr.tensor(np.linspace(0.5, 1.5, 4), requires_grad=True)])
    assert not result and "MISMATCH" in str(result)


def test_gradcheck_requires_float64():
    x = mr.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        mr.gradcheck(lambda a: a * 2, [x])
