"""Ways to make tensors: from data, filled with a constant, or random from the seeded generator.

Book chapter 2, "Autograd" (``book/02_autograd.md``).

``tensor(array)`` keeps the array's dtype (float64 stays float64, so gradient checks can run in
double precision); Python numbers and lists become the default dtype (float32). Random tensors use
the backend's one seeded generator (:func:`minroots.backend.manual_seed`).
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd.tensor import Tensor

__all__ = [
    "tensor", "zeros", "ones", "full", "empty", "randn", "rand", "arange", "zeros_like", "ones_like",
]  # fmt: skip


def _shape(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"Tensor factory: shape must be non-negative integers, got {shape}")
    return tuple(shape)


def _dtype(dtype):
    return B.default_dtype() if dtype is None else dtype


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """A tensor holding ``data`` (a number, nested list, NumPy/CuPy array or Tensor)."""
    t = Tensor(data.data if isinstance(data, Tensor) else data, dtype=dtype)
    if device is not None and t.device != B.device_name(device, "tensor"):
        t = Tensor(B.to_device(t.data, device))
    return t.requires_grad_(requires_grad) if requires_grad else t


def zeros(*shape, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return Tensor(B.xp(device).zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return Tensor(B.xp(device).ones(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def empty(*shape, dtype=None, device=None) -> Tensor:
    return Tensor(B.xp(device).empty(_shape(shape), dtype=_dtype(dtype)))


def full(shape, fill_value, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return Tensor(B.xp(device).full(shape, fill_value, dtype=_dtype(dtype)), requires_grad)


def randn(*shape, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Standard normal samples from the seeded generator."""
    data = B.rng(device).standard_normal(_shape(shape), dtype=_dtype(dtype))
    return Tensor(data, requires_grad)


def rand(*shape, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Uniform samples in [0, 1) from the seeded generator."""
    data = B.rng(device).random(_shape(shape), dtype=_dtype(dtype))
    return Tensor(data, requires_grad)


def arange(start, stop=None, step=1, dtype=None, device=None) -> Tensor:
    """Evenly spaced values, as ``numpy.arange`` (integer arguments give an integer tensor)."""
    xp = B.xp(device)
    if stop is None:
        start, stop = 0, start
    return Tensor(xp.arange(start, stop, step, dtype=dtype))


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(B.get_array_module(t.data).zeros_like(t.data), requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(B.get_array_module(t.data).ones_like(t.data), requires_grad)
