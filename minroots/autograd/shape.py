r"""Shape operations: they move numbers around without changing them, so their backward moves the
gradient back the same way.

Book chapter 2, "Autograd" (``book/02_autograd.md``); tests in ``tests/test_autograd_gradcheck.py`` and ``tests/test_autograd_torch.py``.

- ``reshape`` / ``squeeze`` / ``unsqueeze``: the gradient is reshaped back.
- ``transpose(*axes)``: the gradient is transposed by the inverse permutation.
- ``a[index]``: the gradient is scattered back, *adding* where an index repeats (an embedding
  lookup uses the same row many times: each use contributes).
- ``concatenate`` / ``stack``: the gradient is cut into the pieces; ``split`` is indexing.
"""

from __future__ import annotations

import numbers

from minroots import backend as B
from minroots.autograd.tensor import Tensor, same_device, unbroadcast
from minroots.validation import shown

__all__ = [
    "reshape", "transpose", "swapaxes", "squeeze", "unsqueeze", "flatten", "broadcast_to",
    "getitem", "concatenate", "stack", "split",
]  # fmt: skip


def reshape(a: Tensor, *shape) -> Tensor:
    r"""View :math:`a` with a new shape; backward: :math:`\bar z` reshaped to the shape of :math:`a`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in shape):
        raise TypeError(f"reshape: shape must be integers, got {shown(shape)}")
    try:
        out = a.data.reshape(shape)
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {a.shape} into {shape}"
        ) from None
    return Tensor._make(out, (a,), lambda g: (g.reshape(a.shape),), "reshape")


def flatten(a: Tensor, start: int = 0) -> Tensor:
    """Merge the axes from ``start`` on into one: ``(2, 3, 4), start=1 -> (2, 12)``."""
    start %= max(a.ndim, 1)
    return reshape(a, a.shape[:start] + (-1,))


def transpose(a: Tensor, *axes) -> Tensor:
    r"""Permute axes as NumPy does (reverse them when none are given); backward: :math:`\bar z` permuted back."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if axes and not all(_is_int(ax) and -a.ndim <= ax < a.ndim for ax in axes):
        raise ValueError(f"transpose: axes must be a permutation of the {a.ndim} axes, got "
                         f"{shown(axes)}")  # fmt: skip
    axes = tuple(reversed(range(a.ndim))) if not axes else tuple(ax % a.ndim for ax in axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes must be a permutation of the {a.ndim} axes, got {axes}")
    inverse = tuple(sorted(range(a.ndim), key=axes.__getitem__))
    return Tensor._make(
        a.data.transpose(axes), (a,), lambda g: (g.transpose(inverse),), "transpose"
    )


def swapaxes(a: Tensor, axis1: int, axis2: int) -> Tensor:
    r"""Exchange two axes; backward: :math:`\bar z` with the same two axes exchanged."""
    _axis("swapaxes", a, axis1)
    _axis("swapaxes", a, axis2)
    return Tensor._make(
        a.data.swapaxes(axis1, axis2), (a,), lambda g: (g.swapaxes(axis1, axis2),), "swapaxes"
    )


def squeeze(a: Tensor, axis=None) -> Tensor:
    """Remove axes of length one (all of them, or the given ones)."""
    if axis is not None:
        axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
        if a.ndim == 0:
            raise ValueError(f"squeeze: axis must be None for a 0-d tensor, got {shown(axis)}")
        for ax in axes:
            _axis("squeeze", a, ax)
            if a.ndim and a.shape[ax] != 1:
                raise ValueError(
                    f"squeeze: axis {ax} has length {a.shape[ax]}, not 1 (shape {a.shape})"
                )
        axis = tuple(sorted({ax % max(a.ndim, 1) for ax in axes}))  # NumPy refuses repeats
    return Tensor._make(a.data.squeeze(axis), (a,), lambda g: (g.reshape(a.shape),), "squeeze")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _axis(op: str, a: Tensor, axis, extra: int = 0) -> None:
    """An axis of ``a`` (``extra=1``: of the result of inserting one), or a clear error."""
    n = a.ndim + extra
    if not _is_int(axis) or not -max(n, 1) <= axis < max(n, 1):
        raise ValueError(f"{op}: axis must be an integer in [{-max(n, 1)}, {max(n, 1)}) for a "
                         f"tensor with {a.ndim} dimensions, got {shown(axis)}")  # fmt: skip


def unsqueeze(a: Tensor, axis: int) -> Tensor:
    """Insert an axis of length one at ``axis``: ``(3, 4), axis=0 -> (1, 3, 4)``."""
    _axis("unsqueeze", a, axis, extra=1)
    xp = B.get_array_module(a.data)
    return Tensor._make(
        xp.expand_dims(a.data, axis), (a,), lambda g: (g.reshape(a.shape),), "unsqueeze"
    )


def broadcast_to(a: Tensor, shape) -> Tensor:
    r"""Repeat ``a`` along broadcast axes; backward: :math:`\bar z` summed back to the shape of :math:`a`."""
    xp = B.get_array_module(a.data)
    out = xp.broadcast_to(a.data, tuple(shape))
    return Tensor._make(out, (a,), lambda g: (unbroadcast(g, a.shape),), "broadcast_to")


def _unwrap_index(index):
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _is_basic(index) -> bool:
    """True for indices made only of ints, slices, None and Ellipsis (no element can repeat)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


def getitem(a: Tensor, index) -> Tensor:
    r"""Forward :math:`z = a[index]`; backward: zeros with :math:`\bar z` added at the indexed places (a scatter-add)."""
    index = _unwrap_index(index)
    try:
        out = a.data[index]
    except IndexError as exc:
        raise IndexError(f"getitem: {exc} (tensor shape {a.shape})") from None
    xp = B.get_array_module(a.data)
    basic = _is_basic(index)

    def backward(g):
        full = xp.zeros_like(a.data)
        if basic:
            full[index] = g
        else:
            B.scatter_add(full, index, g)
        return (full,)

    return Tensor._make(out, (a,), backward, "getitem")


def _joinable(op: str, tensors) -> tuple[list, object]:
    """``tensors`` as a non-empty list of Tensors on one device, and their array module."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{op}: need at least one tensor")
    same_device(op, *tensors)
    return tensors, B.get_array_module(tensors[0].data)


def concatenate(tensors, axis: int = 0) -> Tensor:
    r"""Join tensors along an existing axis; backward: each :math:`\bar a_k` is its slice of :math:`\bar z`."""
    tensors, xp = _joinable("concatenate", tensors)
    try:
        out = xp.concatenate([t.data for t in tensors], axis=axis)
    except ValueError as exc:
        shapes = [t.shape for t in tensors]
        raise ValueError(
            f"concatenate: shapes {shapes} do not match along axis {axis}: {exc}"
        ) from None
    ends = list(_cumsum([t.shape[axis] for t in tensors]))

    def backward(g):
        return tuple(xp.split(g, ends[:-1], axis=axis))

    return Tensor._make(out, tuple(tensors), backward, "concatenate")


def stack(tensors, axis: int = 0) -> Tensor:
    r"""Join tensors along a new axis; backward: each :math:`\bar a_k` is :math:`\bar z` at index :math:`k` of that axis."""
    tensors, xp = _joinable("stack", tensors)
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    out = xp.stack([t.data for t in tensors], axis=axis)
    ax = axis % out.ndim

    def backward(g):
        return tuple(xp.take(g, k, axis=ax) for k in range(len(tensors)))

    return Tensor._make(out, tuple(tensors), backward, "stack")


def split(a: Tensor, indices_or_sections, axis: int = 0) -> list[Tensor]:
    """Cut ``a`` into pieces along ``axis`` (NumPy's rules); each piece is an indexing op."""
    n = a.shape[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(
                f"split: axis of length {n} does not divide into {indices_or_sections} parts"
            )
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0, *indices_or_sections, n]
    ax = axis % a.ndim
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        index = (slice(None),) * ax + (slice(lo, hi),)
        pieces.append(getitem(a, index))
    return pieces


def _cumsum(sizes):
    total = 0
    for s in sizes:
        total += s
        yield total
