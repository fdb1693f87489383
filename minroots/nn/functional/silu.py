r"""SiLU (swish) and the SwiGLU gate of Llama's feed-forward layer, each fused into one graph node.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_nn_modern_kernels.py``.

SiLU (Elfwing et al., 2017; "swish" in Ramachandran et al., 2017) weighs its input by its own
sigmoid :math:`\sigma(x) = 1/(1 + e^{-x})`:

.. math::
    \mathrm{silu}(x) = x\,\sigma(x), \qquad
    \frac{d}{dx}\mathrm{silu}(x) = \sigma(x)\,\bigl(1 + x\,(1 - \sigma(x))\bigr)

(from :math:`\sigma' = \sigma (1 - \sigma)`). The sigmoid is computed as
:math:`e^{\min(x, 0)} / (1 + e^{-|x|})`, which never overflows and keeps its relative precision
for large negative :math:`x` (where :math:`1 + \tanh(x/2)` would cancel).

SwiGLU (Shazeer, 2020) gates one projection of the input with the SiLU of another. Given the two
projections packed side by side, :math:`h = [a \mid b]` with :math:`a = x W_{\text{gate}}^\top`
and :math:`b = x W_{\text{up}}^\top` (one matrix multiplication for both):

.. math::
    \mathrm{swiglu}(h) = \mathrm{silu}(a) \odot b, \qquad
    \bar a = \bar y \odot b \odot \mathrm{silu}'(a), \qquad \bar b = \bar y \odot \mathrm{silu}(a)

and the feed-forward layer is :math:`\mathrm{swiglu}(h)\, W_{\text{down}}^\top`. The fused
:func:`swiglu` keeps :math:`\sigma(a)` for the backward and writes both gradients into one
``(..., 2F)`` buffer, the layout of :math:`h`.

Worked example: :math:`\mathrm{silu}(0) = 0`, :math:`\mathrm{silu}(1) = \sigma(1) = 0.7311`,
:math:`\mathrm{silu}(-1) = -0.2689`; ``swiglu([1, 2])`` = :math:`0.7311 \cdot 2 = 1.4621`.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd import elementwise as E

__all__ = ["silu", "silu_composed", "swiglu", "swiglu_composed", "sigmoid_array"]


def sigmoid_array(a, xp):
    r""":math:`\sigma(a) = e^{\min(a, 0)} / (1 + e^{-|a|})` as a new array (no overflow)."""
    s = xp.minimum(a, a.dtype.type(0))
    xp.exp(s, out=s)  # the numerator, in (0, 1]
    d = xp.abs(a)
    xp.negative(d, out=d)
    xp.exp(d, out=d)
    d += a.dtype.type(1)  # the denominator, in (1, 2]
    s /= d
    return s


def _silu_grad(a, s, xp):
    r""":math:`\sigma(a)\,(1 + a\,(1 - \sigma(a)))`, given :math:`s = \sigma(a)`."""
    d = xp.subtract(a.dtype.type(1), s)
    d *= a
    d += a.dtype.type(1)
    d *= s
    return d


def silu(x: Tensor) -> Tensor:
    r""":math:`x\,\sigma(x)`, one graph node (PyTorch's ``F.silu``)."""
    xp = B.get_array_module(x.data)
    a = x.data
    s = sigmoid_array(a, xp)  # kept for the backward
    return Tensor._make(a * s, (x,), lambda g: (g * _silu_grad(a, s, xp),), "silu")


def silu_composed(x: Tensor) -> Tensor:
    """Reference SiLU from basic autograd ops: ``x * sigmoid(x)``."""
    return x * E.sigmoid(x)


def swiglu(h: Tensor) -> Tensor:
    r""":math:`\mathrm{silu}(a) \odot b` for ``h`` = ``[a | b]`` ``(..., 2F)``; returns ``(..., F)``."""
    if h.ndim < 1 or h.shape[-1] % 2:
        raise ValueError(
            f"swiglu: h must have an even last axis [gate | up] (..., 2F), got shape {h.shape}"
        )
    xp = B.get_array_module(h.data)
    f = h.shape[-1] // 2
    a, b = h.data[..., :f], h.data[..., f:]
    s = sigmoid_array(a, xp)
    act = a * s  # silu(a)
    y = act * b

    def backward(g):
        gh = xp.empty(h.shape, dtype=h.dtype)
        ga = gh[..., :f]
        xp.multiply(g, b, out=ga)
        ga *= _silu_grad(a, s, xp)
        xp.multiply(g, act, out=gh[..., f:])
        return (gh,)

    return Tensor._make(y, (h,), backward, "swiglu")


def swiglu_composed(h: Tensor) -> Tensor:
    """Reference SwiGLU from basic ops: slices of ``h`` and :func:`silu_composed`."""
    f = h.shape[-1] // 2
    return silu_composed(h[..., :f]) * h[..., f:]
