r"""GELU, the Gaussian error linear unit (Hendrycks & Gimpel, 2016): the activation of Transformer
feed-forward layers, fused, exact by default and in GPT-2's tanh form on request.

Book chapter 2, "Autograd" (``book/02_autograd.md``) lists it with the elementwise functions;
chapter 3, "Layers and softmax attention" (``book/03_attention.md``) uses it in the feed-forward
layer. Tests in ``tests/test_nn_functional.py`` (worked example, fused against composed, PyTorch)
and ``tests/test_autograd_gradcheck.py`` / ``tests/test_autograd_torch.py`` (``x.gelu()``).

Exact form, ``approximate="none"`` (PyTorch's default, and the default here): with the standard
normal distribution :math:`\Phi` and density :math:`\varphi(x) = e^{-x^2/2}/\sqrt{2\pi}`,

.. math::
    y = x\,\Phi(x) = \tfrac{x}{2}\,\bigl(1 + \mathrm{erf}(x/\sqrt2)\bigr), \qquad
    \frac{dy}{dx} = \Phi(x) + x\,\varphi(x)

Tanh form, ``approximate="tanh"`` (GPT-2's ``gelu_new``): with :math:`c = \sqrt{2/\pi}`,
:math:`k = 0.044715` and :math:`u = c\,(x + k x^3)`,

.. math::
    y = \tfrac{x}{2}\,(1 + \tanh u), \qquad
    \frac{dy}{dx} = \tfrac12 (1 + \tanh u) + \tfrac{x}{2}\,(1 - \tanh^2 u)\, c\,(1 + 3 k x^2)

Factored for few passes over memory: :math:`dy/dx = (1 + \tanh u)\,[\tfrac12 + \tfrac{x}{2}\,
c\,(1 + 3 k x^2)(1 - \tanh u)]`. The fused tanh form keeps :math:`x^2` and :math:`1 + \tanh u` for
the backward and works in place on float32 buffers (``x*x``, never ``x**3``, which is ten times
slower). :func:`gelu_composed` builds both forms from basic ops (``erf``, ``tanh``, ``mul``) as
the reference of the tests.

Worked example: :math:`\mathrm{GELU}(0) = 0`; :math:`\mathrm{GELU}(1) \approx 0.8413` (exact) and
:math:`0.8412` (tanh form); :math:`\mathrm{GELU}(-1) \approx -0.1587` (exact), :math:`-0.1588` (tanh).
"""

from __future__ import annotations

import math

from minroots import backend as B
from minroots.autograd import elementwise as E
from minroots.autograd.tensor import Tensor
from minroots.validation import one_of, tensor_arg

__all__ = ["gelu", "gelu_composed"]

_FORMS = ("none", "tanh")


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    r"""GELU, one graph node: exact :math:`x\,\Phi(x)` (``"none"``, the default, as in PyTorch) or
    the tanh form (``"tanh"``, GPT-2's)."""
    tensor_arg("gelu", "x", x)
    one_of("gelu", "approximate", approximate, _FORMS)
    if approximate == "tanh":
        return _gelu_tanh(x)
    xp = B.get_array_module(x.data)
    a = x.data
    dt = a.dtype.type
    cdf = 0.5 * (1 + B.erf(a * dt(1 / math.sqrt(2.0))))  # Phi(x)
    y = a * cdf

    def backward(g):
        pdf = xp.exp(-0.5 * a * a) * dt(1 / math.sqrt(2 * math.pi))  # phi(x)
        return (g * (cdf + a * pdf),)

    return Tensor._make(y, (x,), backward, "gelu")


def _gelu_tanh(x: Tensor) -> Tensor:
    r""":math:`\tfrac{x}{2}(1 + \tanh u)`, in place on float32 buffers; its factored derivative."""
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


def gelu_composed(x: Tensor, approximate: str = "none") -> Tensor:
    """Reference GELU from basic autograd ops: ``x/2 (1 + erf(x/sqrt 2))`` or the tanh form."""
    one_of("gelu_composed", "approximate", approximate, _FORMS)
    if approximate == "tanh":
        u = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (E.tanh(u) + 1.0)
    return x * 0.5 * (E.erf(x * (1 / math.sqrt(2.0))) + 1.0)
