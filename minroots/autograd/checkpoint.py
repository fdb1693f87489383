r"""Activation checkpointing: run a function without keeping its graph, recompute it in the backward.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_autograd_checkpoint.py``.

A forward pass keeps every intermediate array that some backward will need. For one GPT block
of width :math:`C` with :math:`n_h` heads, on :math:`B` sequences of :math:`T` tokens, that is
about :math:`B T (34 C + 5 n_h T)` bytes in 16-bit arithmetic (Korthikanti et al., 2022: the
layer-norm outputs, the ``(B, T, 3C)`` projection, the ``(B, n_h, T, T)`` attention weights, the
``(B, T, 4C)`` MLP activations, ...), twice that in float32. Over :math:`L` blocks this is the
bulk of a training step's memory. :func:`checkpoint` trades it for compute:

- **forward**: run ``fn`` under :func:`~minroots.autograd.tensor.no_grad`, keep only its *inputs* and
  the output's array (one ``(B, T, C)`` per block instead of all of the above);
- **backward**: run ``fn`` again on the saved inputs, this time building its graph, and
  backpropagate the incoming gradient :math:`\bar y` through it. The parameters used inside
  ``fn`` receive their gradients during this nested ``backward``; the gradients of the inputs
  are returned to the outer graph.

So each checkpointed block costs one extra forward (about a third of a training step's
arithmetic: forward 1 part, backward 2) and keeps :math:`L` block inputs instead of :math:`L`
blocks' intermediates. The recomputation repeats the same operations on the same arrays, and
the random generator is rewound to where the first forward found it (dropout draws the same
masks), so the gradients equal those of the plain run exactly, bit for bit. (CuPy's generator
keeps its state on the GPU where it cannot be saved: there, with dropout, the recomputation
draws new masks.)

>>> from minroots.nn import Linear
>>> layer = Linear(3, 2)
>>> x = minroots.randn(4, 3, requires_grad=True)
>>> checkpoint(layer, x).sum().backward()
>>> layer.weight.grad.shape, x.grad.shape
((2, 3), (4, 3))
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd.tensor import Tensor, enable_grad, is_grad_enabled, no_grad

__all__ = ["checkpoint"]


def checkpoint(fn, *args, preserve_rng_state: bool = True, **kwargs) -> Tensor:
    r"""``fn(*args, **kwargs)`` without keeping its intermediates; recomputed in the backward.

    ``fn`` returns one Tensor. Its parameters (when ``fn`` is a ``Module``) and the Tensors among
    ``args`` are the node's parents. With ``preserve_rng_state`` the recomputation sees the
    generator state of the first run (the same dropout masks). Without gradients (``no_grad``, or
    nothing that requires one) this is just ``fn(*args, **kwargs)``.
    """
    params = list(fn.parameters()) if hasattr(fn, "parameters") else []
    inputs = [a for a in args if isinstance(a, Tensor)]
    if not is_grad_enabled() or not any(t.requires_grad for t in inputs + params):
        return fn(*args, **kwargs)
    rng_before = _rng_state() if preserve_rng_state else None
    with no_grad():
        out = fn(*args, **kwargs)
    if not isinstance(out, Tensor):
        raise TypeError(f"checkpoint: fn must return one Tensor, got {type(out).__name__}")

    def backward(g):
        rng_after = _rng_state() if rng_before is not None else None
        leaves = [_leaf(a) if isinstance(a, Tensor) else a for a in args]
        if rng_before is not None:
            B.set_rng_state(rng_before)
        try:
            with enable_grad():
                again = fn(*leaves, **kwargs)  # the same forward, graph kept this time
        finally:
            if rng_after is not None:
                B.set_rng_state(rng_after)
        again.backward(g)  # parameters inside fn accumulate their .grad here
        grads = [leaf.grad for leaf in leaves if isinstance(leaf, Tensor)]
        return (*grads, *(None for _ in params))

    return Tensor._make(out.data, (*inputs, *params), backward, "checkpoint")


def _rng_state() -> dict | None:
    """The generators' state, or ``None`` where it cannot be read (CuPy's generator keeps its
    state on the GPU: there the recomputation draws new dropout masks)."""
    try:
        return B.get_rng_state()
    except (AttributeError, TypeError, NotImplementedError):
        return None


def _leaf(t: Tensor) -> Tensor:
    """A graph leaf holding ``t``'s array (no copy) that collects the gradient flowing into it."""
    leaf = t.detach()
    leaf.requires_grad = t.requires_grad
    return leaf
