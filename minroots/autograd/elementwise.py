r"""Elementwise operations, each forward next to its backward.

Book chapter 2, "Autograd" (``book/02_autograd.md``); tests in ``tests/test_autograd_gradcheck.py`` and ``tests/test_autograd_torch.py``.

For an elementwise :math:`y = f(x)` the chain rule is local: :math:`\bar{x} = \bar{y} \odot f'(x)`.
Binary operations broadcast like NumPy; their backward sums the gradient back down to each input's
shape (:func:`~minroots.autograd.tensor.unbroadcast`). Python numbers take the tensor's dtype, so
``float32_tensor * 0.5`` stays float32.
"""

from __future__ import annotations

import math

from minroots import backend as B
from minroots.autograd.tensor import Tensor, lift, same_device, unbroadcast

__all__ = [
    "add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "tanh", "relu", "sigmoid",
    "erf", "abs", "clip", "where", "masked_fill", "astype",
    "eq", "ne", "lt", "le", "gt", "ge",
]  # fmt: skip


def _binary(a, b, op: str):
    a = lift(a, b, op) if not isinstance(a, Tensor) else a
    b = lift(b, a, op)
    same_device(op, a, b)
    return a, b


def _check_broadcast(op: str, a: Tensor, b: Tensor) -> None:
    try:
        B.get_array_module(a.data).broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together"
        ) from None


def add(a, b) -> Tensor:
    r"""Forward :math:`z = a + b`; backward :math:`\bar a = \bar z,\ \bar b = \bar z` (summed over broadcast axes)."""
    a, b = _binary(a, b, "add")
    _check_broadcast("add", a, b)
    return Tensor._make(
        a.data + b.data, (a, b),
        lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape)), "add",
    )  # fmt: skip


def sub(a, b) -> Tensor:
    r"""Forward :math:`z = a - b`; backward :math:`\bar a = \bar z, \bar b = -\bar z`."""
    a, b = _binary(a, b, "sub")
    _check_broadcast("sub", a, b)
    return Tensor._make(
        a.data - b.data, (a, b),
        lambda g: (unbroadcast(g, a.shape), unbroadcast(-g, b.shape)), "sub",
    )  # fmt: skip


def mul(a, b) -> Tensor:
    r"""Forward :math:`z = a \odot b`; backward :math:`\bar a = \bar z \odot b, \bar b = \bar z \odot a`."""
    a, b = _binary(a, b, "mul")
    _check_broadcast("mul", a, b)

    def backward(g):
        ga = unbroadcast(g * b.data, a.shape) if a.requires_grad else None
        gb = unbroadcast(g * a.data, b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor._make(a.data * b.data, (a, b), backward, "mul")


def div(a, b) -> Tensor:
    r"""Forward :math:`z = a / b`; backward :math:`\bar a = \bar z / b, \bar b = -\bar z \, a / b^2`."""
    a, b = _binary(a, b, "div")
    _check_broadcast("div", a, b)

    def backward(g):
        ga = unbroadcast(g / b.data, a.shape) if a.requires_grad else None
        gb = unbroadcast(-g * a.data / (b.data * b.data), b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor._make(a.data / b.data, (a, b), backward, "div")


def pow(a, p) -> Tensor:
    r"""Forward :math:`z = a^p`; backward :math:`\bar a = \bar z \, p \, a^{p-1}`, and for a tensor exponent :math:`\bar p = \bar z \, z \ln a`.

    At a zero base both products can meet :math:`0 \cdot \infty`; each then takes the value of its
    limit, as PyTorch does:

    * :math:`\bar a = 0` where :math:`p = 0`: :math:`a^0 = 1` does not depend on :math:`a`, although
      :math:`p \, a^{p-1} = 0 \cdot 0^{-1}` at :math:`a = 0`;
    * :math:`\bar p = 0` where :math:`a = 0` and :math:`p \ge 0`: :math:`0^p = 0` for every
      :math:`p > 0` (the limit from the right at :math:`p = 0`), although
      :math:`z \ln a = 0 \cdot (-\infty)`.

    Elsewhere the rule is followed as written: :math:`\bar a = \infty` at :math:`a = 0` for
    :math:`0 < p < 1`, :math:`\bar p = -\infty` at :math:`a = 0` for :math:`p < 0`.
    """
    if isinstance(p, (int, float)):
        xp = B.get_array_module(a.data)
        out = a.data * a.data if p == 2 else xp.power(a.data, a.data.dtype.type(p))

        def backward_scalar(g):
            if p == 0:  # the limit case: a**0 = 1 is constant
                return (xp.zeros_like(a.data),)
            if p == 2:
                return (g * 2 * a.data,)
            return (g * p * xp.power(a.data, a.data.dtype.type(p - 1)),)

        return Tensor._make(out, (a,), backward_scalar, "pow")
    a, p = _binary(a, p, "pow")
    _check_broadcast("pow", a, p)
    xp = B.get_array_module(a.data)
    out = xp.power(a.data, p.data)

    def backward(g):
        ga = gp = None
        if a.requires_grad:
            # where p = 0 the exponent p - 1 becomes 0, so p * a**(p-1) is 0 * 1, never 0 * inf
            safe_p = xp.where(p.data == 0, p.data.dtype.type(1), p.data)
            ga = unbroadcast(g * p.data * xp.power(a.data, safe_p - 1), a.shape)
        if p.requires_grad:
            # where a = 0 and p >= 0 the log is taken of 1: z * ln(a) becomes z * 0
            limit = (a.data == 0) & (p.data >= 0)
            safe_a = xp.where(limit, a.data.dtype.type(1), a.data)
            gp = unbroadcast(g * out * xp.log(safe_a), p.shape)
        return ga, gp

    return Tensor._make(out, (a, p), backward, "pow")


def neg(a: Tensor) -> Tensor:
    r"""Forward :math:`z = -a`; backward :math:`\bar a = -\bar z`."""
    return Tensor._make(-a.data, (a,), lambda g: (-g,), "neg")


def exp(a: Tensor) -> Tensor:
    r"""Forward :math:`z = e^a`; backward :math:`\bar a = \bar z \odot z`."""
    out = B.get_array_module(a.data).exp(a.data)
    return Tensor._make(out, (a,), lambda g: (g * out,), "exp")


def log(a: Tensor) -> Tensor:
    r"""Forward :math:`z = \ln a`; backward :math:`\bar a = \bar z / a`."""
    out = B.get_array_module(a.data).log(a.data)
    return Tensor._make(out, (a,), lambda g: (g / a.data,), "log")


def sqrt(a: Tensor) -> Tensor:
    r"""Forward :math:`z = \sqrt a`; backward :math:`\bar a = \bar z / (2 z)`."""
    out = B.get_array_module(a.data).sqrt(a.data)
    return Tensor._make(out, (a,), lambda g: (g / (2 * out),), "sqrt")


def tanh(a: Tensor) -> Tensor:
    r"""Forward :math:`z = \tanh a`; backward :math:`\bar a = \bar z \odot (1 - z^2)`."""
    out = B.get_array_module(a.data).tanh(a.data)
    return Tensor._make(out, (a,), lambda g: (g * (1 - out * out),), "tanh")


def sigmoid(a: Tensor) -> Tensor:
    r"""Forward :math:`z = \sigma(a) = 1 / (1 + e^{-a})`; backward :math:`\bar a = \bar z \odot z (1 - z)`.

    Computed as :math:`(1 + \tanh(a/2)) / 2`, which never overflows.
    """
    xp = B.get_array_module(a.data)
    out = 0.5 * (1 + xp.tanh(0.5 * a.data))
    return Tensor._make(out, (a,), lambda g: (g * out * (1 - out),), "sigmoid")


def relu(a: Tensor) -> Tensor:
    r"""Forward :math:`z = \max(a, 0)`; backward :math:`\bar a = \bar z \odot [a > 0]`."""
    mask = a.data > 0
    return Tensor._make(a.data * mask, (a,), lambda g: (g * mask,), "relu")


def erf(a: Tensor) -> Tensor:
    r"""Forward :math:`z = \mathrm{erf}(a)`; backward :math:`\bar a = \bar z \odot \tfrac{2}{\sqrt\pi} e^{-a^2}`."""
    xp = B.get_array_module(a.data)
    scale = a.data.dtype.type(2 / math.sqrt(math.pi))
    return Tensor._make(
        B.erf(a.data), (a,), lambda g: (g * (xp.exp(-a.data * a.data) * scale),), "erf"
    )


def abs(a: Tensor) -> Tensor:  # noqa: A001 - the NumPy name
    r"""Forward :math:`z = |a|`; backward :math:`\bar a = \bar z \odot \mathrm{sign}(a)`."""
    xp = B.get_array_module(a.data)
    return Tensor._make(xp.abs(a.data), (a,), lambda g: (g * xp.sign(a.data),), "abs")


def clip(a: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - NumPy's argument names
    r"""Forward :math:`z = \min(\max(a, \mathrm{min}), \mathrm{max})`; backward :math:`\bar a = \bar z` where :math:`\mathrm{min} \le a \le \mathrm{max}`, else 0."""
    xp = B.get_array_module(a.data)
    out = xp.clip(a.data, min, max)
    inside = xp.ones(a.shape, dtype=bool)
    if min is not None:
        inside &= a.data >= min
    if max is not None:
        inside &= a.data <= max
    return Tensor._make(out, (a,), lambda g: (g * inside,), "clip")


def where(cond, a, b) -> Tensor:
    r"""Forward :math:`z = a` where ``cond`` else :math:`b`; backward :math:`\bar a = \bar z \odot c,\ \bar b = \bar z \odot \lnot c` with :math:`c` = ``cond``."""
    cond = cond.data if isinstance(cond, Tensor) else cond
    if not isinstance(a, Tensor):
        a = lift(a, b) if isinstance(b, Tensor) else Tensor(a)
    b = lift(b, a)
    same_device("where", a, b)
    xp = B.get_array_module(a.data)
    cond = xp.asarray(cond, dtype=bool)

    def backward(g):
        ga = unbroadcast(xp.where(cond, g, 0), a.shape) if a.requires_grad else None
        gb = unbroadcast(xp.where(cond, 0, g), b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor._make(xp.where(cond, a.data, b.data), (a, b), backward, "where")


def masked_fill(a: Tensor, mask, value: float) -> Tensor:
    r"""``value`` where ``mask`` is true, else :math:`a`; backward :math:`\bar a = \bar z \odot \lnot \mathrm{mask}`."""
    xp = B.get_array_module(a.data)
    mask = xp.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)
    out = xp.where(mask, a.data.dtype.type(value), a.data)
    return Tensor._make(
        out, (a,), lambda g: (unbroadcast(xp.where(mask, 0, g), a.shape),), "masked_fill"
    )


def astype(a: Tensor, dtype) -> Tensor:
    r"""The same values in another dtype; the backward casts :math:`\bar z` back."""
    src = a.data.dtype
    return Tensor._make(a.data.astype(dtype), (a,), lambda g: (g.astype(src),), "astype")


def _compare(op: str, fn):
    def compare(a, b) -> Tensor:
        a, b = _binary(a, b, op)
        return Tensor(fn(a.data, b.data))

    compare.__name__ = op
    compare.__doc__ = f"Elementwise ``{op}``: a boolean tensor with no gradient."
    return compare


eq = _compare("eq", lambda x, y: x == y)
ne = _compare("ne", lambda x, y: x != y)
lt = _compare("lt", lambda x, y: x < y)
le = _compare("le", lambda x, y: x <= y)
gt = _compare("gt", lambda x, y: x > y)
ge = _compare("ge", lambda x, y: x >= y)
