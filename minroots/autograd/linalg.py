r"""Matrix multiplication, batched and broadcasting like ``numpy.matmul``.

Book chapter 2, "Autograd" (``book/02_autograd.md``); tests in ``tests/test_autograd_gradcheck.py`` and ``tests/test_autograd_torch.py``.

For :math:`Z = A B` the backward is :math:`\bar A = \bar Z B^\top` and :math:`\bar B = A^\top \bar Z`,
summed over any batch axes that were broadcast.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd.shape import squeeze, unsqueeze
from minroots.autograd.tensor import Tensor, lift, same_device, unbroadcast

__all__ = ["matmul"]


def matmul(a, b) -> Tensor:
    r"""Forward :math:`Z = A B`; backward :math:`\bar A = \bar Z B^\top, \bar B = A^\top \bar Z`.

    >>> matmul(minroots.ones(2, 3), minroots.ones(3, 4)).shape
    (2, 4)
    """
    a = a if isinstance(a, Tensor) else lift(a, b)
    b = lift(b, a)
    same_device("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape}: both need at least one axis (use * for scalars)"
        )
    if a.ndim == 1:  # a vector on the left is a one-row matrix (and vector @ vector a number)
        return squeeze(matmul(unsqueeze(a, 0), b), -2 if b.ndim > 1 else -1)
    if b.ndim == 1:  # a vector on the right is a one-column matrix
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a.shape[-1]} != {b.shape[-2]})"
        )
    xp = B.get_array_module(a.data)
    try:
        xp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: batch shapes of {a.shape} and {b.shape} cannot be broadcast"
        ) from None
    out = xp.matmul(a.data, b.data)

    def backward(g):
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(xp.matmul(g, b.data.swapaxes(-1, -2)), a.shape)
        if b.requires_grad:
            if b.ndim == 2 and a.ndim > 2:  # weights shared by a batch: fold the batch into rows
                gb = a.data.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gb = unbroadcast(xp.matmul(a.data.swapaxes(-1, -2), g), b.shape)
        return ga, gb

    return Tensor._make(out, (a, b), backward, "matmul")
