"""The autograd ``Tensor``: an array that remembers how it was made, so gradients can flow back.

Book chapter 2, "Autograd" (``book/02_autograd.md``); tests in ``tests/test_autograd_*.py``.

Every operation on tensors builds one node of a graph: the output tensor keeps its ``_parents`` and a
``_backward`` function that maps the gradient of the output to the gradients of the parents (the
chain rule, one local step). ``loss.backward()`` walks the graph in reverse topological order:

.. math::  \\bar{x} = \\sum_{y \\in \\mathrm{children}(x)} \\bar{y} \\, \\frac{\\partial y}{\\partial x}

where :math:`\\bar{x} = \\partial L / \\partial x`. The walk uses an explicit stack (deep graphs do not
hit Python's recursion limit) and releases the graph as it goes unless ``retain_graph=True``.

Operations live in their own modules (``elementwise``, ``gelu``, ``reductions``, ``shape``,
``linalg``, ``softmax``), each forward next to its backward; ``minroots/autograd/__init__.py``
installs them on ``Tensor`` as methods and operators (``a @ b``, ``x.softmax(-1)``).
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from minroots import backend as B
from minroots.validation import shown

__all__ = ["Tensor", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly"]

_local = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside a :func:`no_grad` block."""
    return getattr(_local, "grad_enabled", True)


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.prev = is_grad_enabled()
        _local.grad_enabled = self.enabled

    def __exit__(self, *exc):
        _local.grad_enabled = self.prev
        return False


def no_grad():
    """Context manager (and decorator) under which no graph is built: inference keeps no intermediates."""
    return _GradMode(False)


def enable_grad():
    """Context manager that turns graph building back on inside a :func:`no_grad` block."""
    return _GradMode(True)


class detect_anomaly(contextlib.ContextDecorator):
    """Debug mode: raise as soon as an operation produces NaN or infinity, naming the operation."""

    def __enter__(self):
        self.prev = getattr(_local, "anomaly", False)
        _local.anomaly = True

    def __exit__(self, *exc):
        _local.anomaly = self.prev
        return False


def _as_array(data, dtype=None, where: str = "Tensor"):
    """Turn ``data`` into a backend array.

    Arrays keep their dtype (float64 stays float64); Python numbers and lists become the default
    float dtype (float32). A NumPy array moves to the GPU when the CuPy backend is in use. Data
    that is not numbers (``None``, strings, objects, ragged lists) is a one-line error naming
    ``where``.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)) or B.device_of(data) == "cuda":
        _check_numeric(where, data, data)
        if B.current() == "cupy" and B.device_of(data) == "cpu":
            data = B.to_device(data, "cuda")
        data = B.get_array_module(data).asarray(data)
        return data if dtype is None else data.astype(dtype, copy=False)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):  # nested lists of different lengths
        raise ValueError(f"{where}: data must be a number or nested lists of numbers of one shape, "
                         f"got a ragged {type(data).__name__}") from None  # fmt: skip
    _check_numeric(where, arr, data)
    if dtype is None and arr.dtype.kind in "iuf":
        dtype = B.default_dtype()
    return B.xp().asarray(arr, dtype=dtype)


def _check_numeric(where: str, arr, data) -> None:
    """Booleans, integers and floats only: a tensor of ``None`` or of strings is a mistake."""
    if arr.dtype.kind not in "biuf":
        got = shown(data) if np.ndim(data) == 0 else f"an array of dtype {arr.dtype}"
        raise TypeError(f"{where}: data must be numbers (bool, int or float), got {got}")


class Tensor:
    """An n-dimensional array with automatic differentiation.

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad          # d/dx sum(x^2) = 2x
    array([2., 4., 6.], dtype=float32)
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_op", "__weakref__")
    __array_priority__ = 1000  # numpy_array * tensor calls Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        if self.requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"Tensor: only floating tensors can require gradients, got dtype {self.data.dtype}"
            )
        self._parents = ()
        self._backward = None
        self._op = ""

    # ----------------------------------------------------------------- graph construction
    @staticmethod
    def _make(data, parents: tuple, backward, op: str) -> Tensor:
        """Create the output of an operation.

        ``backward(g)`` receives the gradient of the output and returns one gradient (or ``None``)
        per parent, already reduced to that parent's shape. No graph is kept under ``no_grad`` or
        when no parent needs a gradient.
        """
        out = Tensor.__new__(Tensor)
        if isinstance(data, np.generic):  # NumPy returns scalars from full reductions
            data = np.asarray(data)
        out.data = data
        out.grad = None
        out._op = op
        if getattr(_local, "anomaly", False):
            _check_finite(data, op)
        if is_grad_enabled() and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = parents
            out._backward = backward
        else:
            out.requires_grad = False
            out._parents = ()
            out._backward = None
        return out

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires one.

        Gradients are *added* to each leaf's ``.grad`` (call ``zero_grad`` between steps). Without
        ``retain_graph`` the graph is released as it is walked, so intermediates can be freed.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad)"
            )
        xp = B.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for a scalar output, this one has "
                    f"shape {self.shape}; pass grad= an array of that shape"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = _as_array(grad, self.data.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, expected {self.shape}")

        order = self._topological_order()
        grads = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf: accumulate into .grad
                if node.grad is None:  # a private copy: g may be shared with other nodes
                    node.grad = xp.array(g, dtype=node.data.dtype).reshape(node.data.shape)
                else:
                    node.grad += g
                continue
            parent_grads = node._backward(g)
            for parent, pg in zip(node._parents, parent_grads, strict=True):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
            if not retain_graph:
                node._backward = _released
                node._parents = ()

    def _topological_order(self) -> list[Tensor]:
        """Nodes in an order where every node comes after all of its parents (iterative DFS)."""
        order, visited = [], set()
        stack = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
        return order

    # ----------------------------------------------------------------- plain attributes
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def device(self) -> str:
        return B.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(B.to_numpy(self.data), separator=", ", precision=4, threshold=20)
        extra = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        return f"tensor({body}, dtype={self.dtype}{dev}{extra})"

    def __hash__(self):  # == is elementwise, so identity hashing must be explicit
        return id(self)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"Tensor.__bool__: the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item: only one-element tensors convert to a number, got shape {self.shape}"
            )
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the host for a GPU tensor; no gradient)."""
        return B.to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory)."""
        return Tensor._make(self.data, (), None, "detach")

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.data.dtype.kind != "f":
            raise TypeError(
                f"requires_grad_: only floating tensors can require gradients, got {self.dtype}"
            )
        self.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def to(self, device: str) -> Tensor:
        """This tensor on ``device`` (``"cpu"`` or ``"cuda"``); gradients flow back across the move."""
        if B.device_name(device, "Tensor.to") == self.device:
            return self
        src = self.device
        data = B.to_device(self.data, device)
        return Tensor._make(data, (self,), lambda g: (B.to_device(g, src),), "to")

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")


def _released(g):
    raise RuntimeError(
        "backward: this graph was already released by an earlier backward(); call the first "
        "backward(retain_graph=True) to go through it twice"
    )


def _check_finite(data, op: str) -> None:
    if data.dtype.kind == "f" and not bool(B.get_array_module(data).isfinite(data).all()):
        raise FloatingPointError(f"detect_anomaly: operation '{op}' produced NaN or infinity")


def unbroadcast(g, shape: tuple):
    """Sum ``g`` down to ``shape``: the backward of broadcasting.

    >>> unbroadcast(np.ones((2, 3)), (3,))       # the (3,) input was used by both rows
    array([2., 2., 2.])
    """
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    g = g.sum(axis=axes, keepdims=True) if axes else g
    return g.reshape(shape)


def same_device(op: str, *tensors: Tensor) -> None:
    """Raise a clear error when ``tensors`` live on different devices."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(
            f"{op}: tensors are on different devices ({' and '.join(sorted(devices))}); "
            "move them to one device with .to('cpu') or .to('cuda')"
        )


def lift(x, like: Tensor, where: str = "Tensor") -> Tensor:
    """Wrap a Python number or array as a constant tensor; numbers take ``like``'s dtype (no upcast).

    ``where`` (the operation) names the error for an operand that is not numbers.
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float)) and like.data.dtype.kind == "f":
        return Tensor(B.get_array_module(like.data).asarray(x, dtype=like.data.dtype))
    if isinstance(x, (bool, int, float)):
        return Tensor(np.asarray(x))
    return Tensor(_as_array(x, where=where))
