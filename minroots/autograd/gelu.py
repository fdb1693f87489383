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
c\,(1 + 3 k x^2)(1 - \tanh u)]`. The fused tanh form works on cache-sized blocks of the array,
shared by the threads of :mod:`minroots.parallel`, in place on float32 buffers (``x*x``, never
``x**3``, which is ten times slower); it keeps only its input for the backward, which recomputes
:math:`1 + \tanh u` block by block. :func:`gelu_composed` builds both forms from basic ops
(``erf``, ``tanh``, ``mul``) as the reference of the tests.

Worked example: :math:`\mathrm{GELU}(0) = 0`; :math:`\mathrm{GELU}(1) \approx 0.8413` (exact) and
:math:`0.8412` (tanh form); :math:`\mathrm{GELU}(-1) \approx -0.1587` (exact), :math:`-0.1588` (tanh).
"""

from __future__ import annotations

import math

from minroots import backend as B
from minroots.autograd import elementwise as E
from minroots.autograd.tensor import Tensor
from minroots.parallel import map_blocks, row_blocks
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
    r""":math:`\tfrac{x}{2}(1 + \tanh u)`, block by block; its factored derivative, recomputed.

    Each block of :data:`~minroots.parallel.BLOCK_ELEMENTS` numbers runs the whole chain of steps
    while it sits in the cache, on the threads of :mod:`minroots.parallel`. The node keeps only its
    input: the backward recomputes :math:`1 + \tanh u` per block (cheaper than writing two more
    full-size arrays to memory in the forward and reading them back).
    """
    xp = B.get_array_module(x.data)
    a = x.data.reshape(-1)  # a view when contiguous
    blocks = row_blocks(a.size, 1, xp=xp)
    y = xp.empty_like(a)
    map_blocks(lambda s: _gelu_tanh_block(a[s], out=y[s]), blocks)

    def backward(g):
        gx = xp.empty_like(a)
        g1 = g.reshape(-1)
        map_blocks(lambda s: _gelu_tanh_grad_block(a[s], g1[s], out=gx[s]), blocks)
        return (gx.reshape(x.shape),)

    return Tensor._make(y.reshape(x.shape), (x,), backward, "gelu")


def _tanh_term(a):
    r""":math:`x^2` and :math:`1 + \tanh u` with :math:`u = c x + c k x^3` (``x*x``, never ``x**3``)."""
    xp = B.get_array_module(a)
    dt = a.dtype.type
    c, ck = dt(math.sqrt(2.0 / math.pi)), dt(math.sqrt(2.0 / math.pi) * 0.044715)
    a2 = a * a
    t1 = a2 * ck
    t1 += c
    t1 *= a  # u
    xp.tanh(t1, out=t1)
    t1 += dt(1.0)
    return a2, t1


def _gelu_tanh_block(a, out):
    """``out = (a / 2) (1 + tanh u)`` for one block."""
    _, t1 = _tanh_term(a)
    B.get_array_module(a).multiply(a, t1, out=out)
    out *= a.dtype.type(0.5)


def _gelu_tanh_grad_block(a, g, out):
    """``out = g dy/dx`` for one block: (1 + t) [1/2 + (x/2) c (1 + 3 k x^2) (1 - t)], t = tanh u,
    and 1 - t = 2 - (1 + t)."""
    xp = B.get_array_module(a)
    dt = a.dtype.type
    c, ck = dt(math.sqrt(2.0 / math.pi)), dt(math.sqrt(2.0 / math.pi) * 0.044715)
    a2, t1 = _tanh_term(a)
    d = xp.multiply(a2, dt(1.5) * ck, out=a2)
    d += dt(0.5) * c
    d *= a  # (x/2) c (1 + 3 k x^2)
    xp.multiply(g, t1, out=out)  # g (1 + t)
    xp.subtract(dt(2.0), t1, out=t1)  # 1 - t
    d *= t1
    d += dt(0.5)
    out *= d


def gelu_composed(x: Tensor, approximate: str = "none") -> Tensor:
    """Reference GELU from basic autograd ops: ``x/2 (1 + erf(x/sqrt 2))`` or the tanh form."""
    one_of("gelu_composed", "approximate", approximate, _FORMS)
    if approximate == "tanh":
        u = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (E.tanh(u) + 1.0)
    return x * 0.5 * (E.erf(x * (1 / math.sqrt(2.0))) + 1.0)
