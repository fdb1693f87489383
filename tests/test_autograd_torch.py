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


def test_pow_at_a_zero_base_takes_the_limits_torch_takes():
    """``a ** p`` at ``a = 0``: the derivatives meet 0 * inf; both libraries give the same values
    (0 where the function is locally constant, +-inf where the rule really diverges)."""
    base = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 3.0])
    exponent = np.array([0.0, 1.0, 2.0, 0.5, -1.0, 0.0, 1.5])
    ours = [mr.tensor(base, requires_grad=True), mr.tensor(exponent, requires_grad=True)]
    theirs = [torch.tensor(base, requires_grad=True), torch.tensor(exponent, requires_grad=True)]
    with np.errstate(divide="ignore"):  # 0 ** -1 = inf and its derivative -inf are expected
        (ours[0] ** ours[1]).sum().backward()
    (theirs[0] ** theirs[1]).sum().backward()
    for name, a, b in zip(("base", "exponent"), ours, theirs, strict=True):
        np.testing.assert_array_equal(a.grad, b.grad.numpy(), err_msg=f"gradient of the {name}")
    assert ours[0].grad[0] == 0 and ours[1].grad[0] == 0  # 0 ** 0: no NaN
    for p in (0, 0.5, 1, 2, 3, -1):  # a Python exponent
        x = mr.tensor([0.0, 1.5], requires_grad=True)
        t = torch.tensor([0.0, 1.5], requires_grad=True)
        with np.errstate(divide="ignore"):
            (x**p).sum().backward()
        (t**p).sum().backward()
        np.testing.assert_array_equal(x.grad, t.grad.numpy(), err_msg=f"d/dx x**{p}")
