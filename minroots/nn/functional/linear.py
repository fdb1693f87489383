r"""The affine map of a fully connected layer, fused into one graph node.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_functional.py``.

For an input :math:`X` of shape ``(..., in)``, a weight :math:`W` of shape ``(out, in)`` (PyTorch's
``nn.Linear`` layout) and a bias :math:`b` of shape ``(out,)``:

.. math::
    Y = X W^\top + b, \qquad
    \bar X = \bar Y W, \qquad \bar W = \bar Y^\top X, \qquad \bar b = \textstyle\sum_{\text{rows}} \bar Y

The leading axes are folded into rows first (``(B, T, in) -> (B*T, in)``), so the forward is one
2-D matrix product and the weight gradient is one more, instead of a batch of small ones.

Worked example: ``X = [[1, 2]]``, ``W = [[1, 0], [1, 1]]``, ``b = [0, 1]`` gives ``Y = [[1, 4]]``.
"""

from __future__ import annotations

from minroots.autograd import Tensor
from minroots.autograd.linalg import matmul
from minroots.autograd.shape import transpose

__all__ = ["linear", "linear_composed"]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    r"""Y = X W^\top + b  (fused: one node, 2-D matmuls only)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"linear: x must be a Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} has last axis {x.shape[-1] if x.ndim else None}, "
            f"expected in_features={weight.shape[1]} (weight shape {weight.shape})"
        )
    n_in, n_out = weight.shape[1], weight.shape[0]
    lead = x.shape[:-1]
    x2 = x.data.reshape(-1, n_in)  # (N, in)
    w = weight.data
    y = x2 @ w.T  # (N, out)
    if bias is not None:
        y += bias.data
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, n_out)  # (N, out)
        gx = (g2 @ w).reshape(x.shape) if x.requires_grad else None
        gw = g2.T @ x2 if weight.requires_grad else None
        if bias is None:
            return gx, gw
        gb = g2.sum(axis=0) if bias.requires_grad else None
        return gx, gw, gb

    return Tensor._make(y.reshape(*lead, n_out), parents, backward, "linear")


def linear_composed(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Reference: ``x @ weight.T + bias`` from the generic autograd ops."""
    y = matmul(x, transpose(weight))
    return y if bias is None else y + bias
