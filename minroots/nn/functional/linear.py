r"""The affine map of a fully connected layer, fused into one graph node.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_functional.py``.

For an input :math:`X` of shape ``(..., in)``, a weight :math:`W` of shape ``(out, in)`` (PyTorch's
``nn.Linear`` layout) and a bias :math:`b` of shape ``(out,)``:

.. math::
    Y = X W^\top + b, \qquad
    \bar X = \bar Y W, \qquad \bar W = \bar Y^\top X, \qquad \bar b = \textstyle\sum_{\text{rows}} \bar Y

The leading axes are folded into rows first (``(B, T, in) -> (B*T, in)``), so the forward is a
2-D matrix product and the weight gradient is one more, instead of a batch of small ones. BLAS
reads the transposed operands in place (it takes a transpose flag; no copy is made). Two cores:
the forward product is cut into blocks of rows, and the backward's two products,
:math:`\bar X` and :math:`\bar W`, of equal cost, run side by side, each one BLAS call on one
thread of :mod:`minroots.parallel`.

Worked example: ``X = [[1, 2]]``, ``W = [[1, 0], [1, 1]]``, ``b = [0, 1]`` gives ``Y = [[1, 4]]``.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd.linalg import matmul
from minroots.autograd.shape import transpose
from minroots.parallel import map_blocks, row_blocks

__all__ = ["linear", "linear_composed"]

#: most rows of X per block of the forward product: a BLAS call on fewer rows packs the weight
#: more often (measured: 512-row blocks cost up to 12% more than one call, 1024-row blocks 3-5%)
ROWS_PER_BLOCK = 1024


def _forward_blocks(n: int, xp) -> list[slice]:
    """Rows of the forward product: two blocks from 512 rows on (one per core of a 2-core
    machine), more above 2048 rows, at most :data:`ROWS_PER_BLOCK` each; from the shape only."""
    rows = n if n < 512 else min(ROWS_PER_BLOCK, -(-n // 2))
    return row_blocks(n, 1, elements=rows, xp=xp)


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
    xp = B.get_array_module(x2)
    b = None if bias is None else bias.data
    rows = _forward_blocks(x2.shape[0], xp)
    # the dtype of x2 @ w.T, asked of an empty product: the inputs' common type, except that
    # bfloat16 products (ml_dtypes, under autocast) come back in float32, unrounded
    y = xp.empty((x2.shape[0], n_out), dtype=(x2[:0] @ w.T).dtype)  # (N, out)
    map_blocks(lambda s: _affine(x2[s], w, b, y[s], xp), rows)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, n_out)  # (N, out)

        def x_bar():
            return (g2 @ w).reshape(x.shape) if x.requires_grad else None

        def w_bar_and_b_bar():
            gw = g2.T @ x2 if weight.requires_grad else None
            gb = g2.sum(axis=0) if bias is not None and bias.requires_grad else None
            return gw, gb

        # two independent products of equal cost: one per thread
        gx, (gw, gb) = map_blocks(lambda task: task(), [x_bar, w_bar_and_b_bar])
        return (gx, gw) if bias is None else (gx, gw, gb)

    return Tensor._make(y.reshape(*lead, n_out), parents, backward, "linear")


def _affine(x, w, b, out, xp):
    """``out = x W^T + b`` for one block of rows (BLAS reads ``W^T`` in place: no copy)."""
    xp.matmul(x, w.T, out=out)
    if b is not None:
        out += b


def linear_composed(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Reference: ``x @ weight.T + bias`` from the generic autograd ops."""
    y = matmul(x, transpose(weight))
    return y if bias is None else y + bias
