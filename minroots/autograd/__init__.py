"""Reverse-mode automatic differentiation on NumPy/CuPy arrays.

Book chapter 2, "Autograd" (``book/02_autograd.md``); tests in ``tests/test_autograd_*.py``.

``Tensor`` (in ``tensor.py``) holds the data and walks the graph; each family of operations lives
in its own module with forward and backward side by side. This file installs them as methods and
operators, so ``a @ b``, ``x.softmax(-1)`` and ``x.sum(axis=0)`` read as they do in NumPy/PyTorch.
"""

from minroots.autograd import elementwise, gelu, linalg, reductions, shape, softmax
from minroots.autograd.factories import (
    arange,
    empty,
    full,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)  # fmt: skip
from minroots.autograd.gradcheck import GradcheckResult, gradcheck
from minroots.autograd.tensor import (
    Tensor,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    unbroadcast,
)  # fmt: skip

__all__ = [
    "Tensor", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly", "gradcheck",
    "GradcheckResult", "unbroadcast", "tensor", "zeros", "ones", "full", "empty", "randn", "rand",
    "arange", "zeros_like", "ones_like", "concatenate", "stack", "split", "where",
]  # fmt: skip

concatenate = shape.concatenate
stack = shape.stack
split = shape.split
where = elementwise.where


def _reflected(fn):
    return lambda self, other: fn(other, self)


_METHODS = {
    # arithmetic operators
    "__add__": elementwise.add, "__radd__": _reflected(elementwise.add),
    "__sub__": elementwise.sub, "__rsub__": _reflected(elementwise.sub),
    "__mul__": elementwise.mul, "__rmul__": _reflected(elementwise.mul),
    "__truediv__": elementwise.div, "__rtruediv__": _reflected(elementwise.div),
    "__pow__": elementwise.pow, "__rpow__": _reflected(elementwise.pow),
    "__neg__": elementwise.neg, "__abs__": elementwise.abs,
    "__matmul__": linalg.matmul, "__rmatmul__": _reflected(linalg.matmul),
    "__getitem__": shape.getitem,
    # comparisons: boolean tensors, no gradient
    "__eq__": elementwise.eq, "__ne__": elementwise.ne, "__lt__": elementwise.lt,
    "__le__": elementwise.le, "__gt__": elementwise.gt, "__ge__": elementwise.ge,
    # elementwise functions
    "exp": elementwise.exp, "log": elementwise.log, "sqrt": elementwise.sqrt,
    "tanh": elementwise.tanh, "relu": elementwise.relu, "sigmoid": elementwise.sigmoid,
    "erf": elementwise.erf, "gelu": gelu.gelu, "abs": elementwise.abs, "clip": elementwise.clip,
    "masked_fill": elementwise.masked_fill, "astype": elementwise.astype,
    "matmul": linalg.matmul,
    # reductions
    "sum": reductions.sum, "mean": reductions.mean, "max": reductions.max,
    "min": reductions.min, "var": reductions.var,
    "softmax": softmax.softmax, "log_softmax": softmax.log_softmax,
    "logsumexp": softmax.logsumexp,
    # shape
    "reshape": shape.reshape, "view": shape.reshape, "transpose": shape.transpose,
    "swapaxes": shape.swapaxes, "squeeze": shape.squeeze, "unsqueeze": shape.unsqueeze,
    "flatten": shape.flatten, "broadcast_to": shape.broadcast_to, "split": shape.split,
}  # fmt: skip

for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)

Tensor.T = property(lambda self: shape.transpose(self))
Tensor.float = lambda self: elementwise.astype(self, "float32") if self.dtype != "float32" else self
Tensor.double = lambda self: (
    elementwise.astype(self, "float64") if self.dtype != "float64" else self
)
