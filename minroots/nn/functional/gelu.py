r"""GELU, the activation of GPT-2's feed-forward layers, fused and computed in place.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_functional.py``.

Exact form: :math:`\mathrm{GELU}(x) = x\,\Phi(x) = \tfrac{x}{2}\,(1 + \mathrm{erf}(x/\sqrt2))`.
GPT-2 uses the tanh approximation (PyTorch's ``approximate="tanh"``): with
:math:`c = \sqrt{2/\pi}`, :math:`k = 0.044715` and :math:`u = c\,(x + k x^3)`,

.. math::
    y = \tfrac{x}{2}\,(1 + \tanh u), \qquad
    \frac{dy}{dx} = \tfrac12 (1 + \tanh u) + \tfrac{x}{2}\,(1 - \tanh^2 u)\, c\,(1 + 3 k x^2)

Factored for few passes over memory: :math:`dy/dx = (1 + \tanh u)\,[\tfrac12 + \tfrac{x}{2}\,
c\,(1 + 3 k x^2)(1 - \tanh u)]`. The fused version keeps :math:`x^2` and :math:`1 + \tanh u` for
the backward and works in place on float32 buffers (``x*x``, never ``x**3``, which is ten times
slower).

Worked example: :math:`\mathrm{GELU}(0) = 0`, :math:`\mathrm{GELU}(1) \approx 0.8412` (tanh form;
exact 0.8413), :math:`\mathrm{GELU}(-1) \approx -0.1588`.
"""

from __future__ import annotations

import math

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd import elementwise as E

__all__ = ["gelu", "gelu_composed"]


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU; ``approximate="tanh"`` (GPT-2's, the default here) or ``"none"`` (exact, erf)."""
    if approximate == "none":
        return E.gelu(x, approximate="none")
    if approximate != "tanh":
        raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")
    xp = B.get_array_module(x.data)
    a = x.data
    dt = a.dtype.type
    c, ck = dt(math.sqrt(2.0 / math.pi)), dt(math.sqrt(2.0 / math.pi) * 0.044715)
    a2 = a * a  # x^2, kept for the backward
    t1 = a2 * ck
    t1 += c
    t1 *= a  # u = c x + c k x^3
    xp.tanh(t1, out=t1)
    t1 += dt(1.0)  # 1 + tanh u, kept for the backward
    y = a * t1
    y *= dt(0.5)

    def backward(g):
        # dy/dx = (1 + t) [1/2 + (x/2) c (1 + 3 k x^2) (1 - t)],  t = tanh u,  1 - t = 2 - t1
        d = a2 * (dt(1.5) * ck)
        d += dt(0.5) * c
        d *= a  # (x/2) c (1 + 3 k x^2)
        d *= xp.subtract(dt(2.0), t1)
        d += dt(0.5)
        d *= t1
        d *= g
        return (d,)

    return Tensor._make(y, (x,), backward, "gelu")


def gelu_composed(x: Tensor, approximate: str = "tanh") -> Tensor:
    """Reference GELU from basic ops (tanh form) or the autograd's elementwise GELU (exact)."""
    if approximate == "none":
        return E.gelu(x, approximate="none")
    c = math.sqrt(2.0 / math.pi)
    u = (x + x * x * x * 0.044715) * c
    return x * 0.5 * (E.tanh(u) + 1.0)
