r"""Gradient checking: compare backward's gradients with central finite differences in float64.

Book chapter 2, "Autograd" (``book/02_autograd.md``).

.. math::  \frac{\partial L}{\partial x_i} \approx \frac{L(x + \epsilon e_i) - L(x - \epsilon e_i)}{2 \epsilon}

with an error of order :math:`\epsilon^2`. A non-scalar output :math:`y` is reduced to
:math:`L = \sum_j v_j y_j` with fixed random weights :math:`v`, which checks the whole
vector-Jacobian product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minroots import backend as B
from minroots.autograd.tensor import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckResult"]


@dataclass
class GradcheckResult:
    """The outcome of :func:`gradcheck`: true when every element matched; ``str`` tells the worst."""

    ok: bool
    max_abs_error: float
    worst_input: int
    worst_index: tuple
    analytic: float
    numeric: float
    checked: int

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (
            f"gradcheck {verdict}: {self.checked} elements checked; worst at input {self.worst_input} "
            f"index {self.worst_index}: analytic {self.analytic:.10g} vs numeric {self.numeric:.10g} "
            f"(abs error {self.max_abs_error:.3g})"
        )


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5, seed: int = 0):
    """Check ``fn(*inputs)``'s gradients against central differences, over every element.

    ``inputs`` are float64 tensors; those with ``requires_grad`` are checked. Returns a
    :class:`GradcheckResult` (truthy when all elements satisfy ``|a - n| <= atol + rtol * |n|``).
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: inputs[{i}] must be a Tensor, got {type(t).__name__}")
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: inputs[{i}] must be float64 for finite differences, got {t.dtype}"
            )
    out = fn(*inputs)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    weights = B.get_array_module(out.data).asarray(weights)

    def scalar(o) -> float:
        return float((o.data * weights).sum())

    for t in inputs:
        t.grad = None
    (out * Tensor(weights)).sum().backward()

    worst = GradcheckResult(True, 0.0, -1, (), 0.0, 0.0, 0)
    worst_excess = -np.inf
    checked = 0
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        analytic = B.to_numpy(t.grad) if t.grad is not None else np.zeros(t.shape)
        if not t.data.flags.c_contiguous:
            t.data = B.get_array_module(t.data).ascontiguousarray(t.data)
        flat = t.data.reshape(-1)  # a view: perturbing it perturbs t
        for k in range(flat.size):
            orig = flat[k].item()
            with no_grad():
                flat[k] = orig + eps
                plus = scalar(fn(*inputs))
                flat[k] = orig - eps
                minus = scalar(fn(*inputs))
                flat[k] = orig
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic.reshape(-1)[k])
            err = abs(a - numeric)
            excess = err - (atol + rtol * abs(numeric))
            if not math.isfinite(excess):  # NaN or inf in either gradient is a mismatch, the worst
                excess = math.inf
            checked += 1
            if excess > worst_excess:
                worst_excess = excess
                index = tuple(int(v) for v in np.unravel_index(k, t.shape))
                worst = GradcheckResult(excess <= 0, err, i, index, a, numeric, 0)
    worst.ok = worst_excess <= 0
    worst.checked = checked
    return worst
