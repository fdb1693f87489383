"""Every op, forward and backward, equals PyTorch in float64 (rtol 1e-10), on random inputs,
contiguous or not (permuted and strided, as ``.T`` makes).

Run just these with: ``pytest tests/test_autograd_torch.py -v``.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from op_cases import CASES, LAYOUTS, draw_case

import minroots as mr

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.parity


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_forward_and_backward_equal_torch(name, layout, data):
    arrays, fn, torch_fn = draw_case(name, data.draw, layout)
    ours = [mr.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]

    out = fn(*ours)
    ref = torch_fn(*theirs)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)

    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * mr.tensor(weights)).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        expected = np.zeros(a.shape) if b.grad is None else b.grad.numpy()
        got = np.zeros(a.shape) if a.grad is None else a.grad
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=f"input {i}")
