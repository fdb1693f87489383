r"""Gradient clipping by global norm.

Book chapter 5, "Optimizers" (``book/05_optimizers.md``).

One bad batch can produce a huge gradient and throw a model far from where it was. Clipping rescales
*all* gradients together, so their direction is kept, whenever their joint norm exceeds a limit.
Matches ``torch.nn.utils.clip_grad_norm_``.
"""

from __future__ import annotations

import math

from minroots import backend as B
from minroots.optim.optimizer import _is_parameter
from minroots.validation import as_value_error, describe, real

__all__ = ["clip_grad_norm_"]


def _norm(g, p: float) -> float:
    r""":math:`\lVert g \rVert_p` of one gradient array, as a Python float."""
    xp = B.get_array_module(g)
    if p == 2.0:
        flat = g.reshape(-1)
        return math.sqrt(float(xp.dot(flat, flat)))  # a BLAS dot: fast, in the array's dtype
    if math.isinf(p):
        return float(xp.abs(g).max()) if g.size else 0.0
    if p == 1.0:
        return float(xp.abs(g).sum())
    return float((xp.abs(g) ** p).sum()) ** (1.0 / p)


def clip_grad_norm_(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    r"""Scale all gradients in place so that their joint norm is at most ``max_norm``.

    The total norm treats every gradient as one long vector:

    .. math::

        \lVert g \rVert = \Big(\sum_i \lVert g^{(i)} \rVert_p^p\Big)^{1/p}, \qquad
        g^{(i)} \leftarrow g^{(i)} \cdot \min\Big(1, \frac{c}{\lVert g \rVert + 10^{-6}}\Big)

    (for :math:`p = \infty`, the largest absolute entry). The :math:`10^{-6}` keeps the division
    finite and is the same constant torch uses.

    Worked example: gradients ``[3.0]`` and ``[4.0]`` have total 2-norm 5; with ``max_norm=1`` they
    become about ``[0.6]`` and ``[0.8]``, and 5.0 is returned.

    Args:
        parameters: a Tensor or an iterable of Tensors; those whose ``.grad`` is None are skipped.
        max_norm: the limit :math:`c \ge 0`.
        norm_type: :math:`p > 0`, or ``float("inf")`` (default 2).
        error_if_nonfinite: raise a RuntimeError if the total norm is nan or inf (otherwise the
            gradients are scaled by a nan/0 factor, as in torch).

    Returns:
        The total norm *before* clipping, as a Python float (0.0 when no parameter has a gradient).

    ``_checked`` (below) validates the arguments and collects the gradients.
    """
    grads, p = _checked(parameters, max_norm, norm_type)
    if not grads:
        return 0.0
    norms = [_norm(g, p) for g in grads]
    if math.isinf(p):
        total = max(norms)
    elif p == 2.0:
        total = math.sqrt(math.fsum(n * n for n in norms))
    else:
        total = math.fsum(n**p for n in norms) ** (1.0 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
            f"pass error_if_nonfinite=False to clip anyway"
        )
    coef = float(max_norm) / (total + 1e-6)  # nan when the total is nan: gradients become nan
    if coef >= 1.0:
        return total  # already within the limit: multiplying by 1 would change nothing
    for g in grads:
        g *= coef  # in place, in g's own dtype (a Python float does not promote float32)
    return total


def _checked(parameters, max_norm, norm_type) -> tuple[list, float]:
    """The gradients to clip (those that are not None) and :math:`p` as a float, after checking
    the arguments of :func:`clip_grad_norm_`."""
    if _is_parameter(parameters):
        parameters = [parameters]
    try:
        parameters = list(parameters)
    except TypeError:
        raise TypeError(
            f"clip_grad_norm_: parameters must be a Tensor or an iterable of Tensors, got "
            f"{describe(parameters)}"
        ) from None
    for k, p in enumerate(parameters):
        if not _is_parameter(p):
            raise TypeError(f"clip_grad_norm_: parameters[{k}] must be a Tensor, got {describe(p)}")
    where = "clip_grad_norm_"
    as_value_error(real, where, "max_norm", max_norm, low=0, finite=False)
    p = as_value_error(real, where, "norm_type", norm_type, low=0, low_open=True, finite=False)
    grads = [q.grad for q in parameters if q.grad is not None]
    return grads, p
