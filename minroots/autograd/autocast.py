r"""Autocast: matrix products in a 16-bit format, everything else in float32 (mixed precision).

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_mixed_precision.py``.

Inside ``with autocast(dtype):`` a layer that supports it (``Linear``, whose products are most
of a GPT's arithmetic) runs :func:`in_low_precision`: its input, weight and bias are rounded to
``dtype`` (``float16`` or ``bfloat16``), the product is computed and rounded to ``dtype`` as a
GPU's tensor cores write it, and the result is handed back in float32. The layer norms, softmax,
GELU, residual sums and the loss stay in float32, as in PyTorch's autocast. The casts are
autograd operations, so the backward rounds the gradient flowing into each product to ``dtype``
as well, and returns float32 gradients to the float32 *master* weights:

.. math::
    y = \mathrm{f32}\big(\mathrm{r}(\mathrm{r}(x)\, \mathrm{r}(W)^\top + \mathrm{r}(b))\big),
    \qquad \mathrm{r} = \text{round to the 16-bit format}

float16 keeps 10 bits of fraction but reaches only 65504 (and loses numbers below about
:math:`6 \cdot 10^{-8}`); bfloat16 keeps float32's 8-bit exponent (up to :math:`3.4 \cdot 10^{38}`)
with 7 bits of fraction. So fp16 needs loss scaling against underflow and overflow
(:mod:`minroots.training.loss_scaling`); bf16 does not.

>>> from minroots.nn import Linear
>>> layer = Linear(4, 2)
>>> x = minroots.randn(3, 4)
>>> with autocast(np.float16):
...     y = layer(x)
>>> y.dtype, bool(abs(y.data - layer(x).data).max() < 1e-3)
(dtype('float32'), True)
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from minroots.autograd.tensor import Tensor

__all__ = ["autocast", "autocast_dtype", "in_low_precision"]

_local = threading.local()


class autocast(contextlib.ContextDecorator):
    """Run supporting layers' products in ``dtype`` (``None``: plain float32, a no-op)."""

    def __init__(self, dtype=None):
        self.dtype = None if dtype is None else np.dtype(dtype)

    def __enter__(self):
        self.prev = autocast_dtype()
        _local.dtype = self.dtype

    def __exit__(self, *exc):
        _local.dtype = self.prev
        return False


def autocast_dtype():
    """The 16-bit dtype of the enclosing :class:`autocast`, or ``None`` outside one."""
    return getattr(_local, "dtype", None)


def in_low_precision(fn, x: Tensor, *params):
    """``fn(x, *params)`` with every Tensor argument rounded to the autocast dtype and the result
    rounded to it too, returned in ``x``'s dtype (``None`` parameters pass through)."""
    dtype = autocast_dtype()
    low = [None if t is None else t.astype(dtype) for t in (x, *params)]
    y = fn(*low)
    if y.dtype != dtype:  # bfloat16 products come back from ml_dtypes in float32
        y = y.astype(dtype)
    return y.astype(x.dtype)
