r"""``LayerNorm``: normalize each token's features to mean 0 and variance 1, then scale and shift.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py``. The formula and its backward are in
:mod:`minroots.nn.functional.layer_norm`.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.nn.functional.layer_norm import layer_norm
from minroots.nn.module import Module, Parameter
from minroots.validation import positive_int

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """``LayerNorm(128)``: gain :math:`\\gamma` (ones) and bias :math:`\\beta` (zeros) of 128."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, bias: bool = True,
                 elementwise_affine: bool = True, dtype=None):  # fmt: skip
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError(
                    f"LayerNorm: only the last axis can be normalized, got {normalized_shape}"
                )
            normalized_shape = normalized_shape[0]
        positive_int("LayerNorm", "normalized_shape", normalized_shape)
        self.normalized_shape, self.eps = normalized_shape, eps
        xp, dtype = B.xp(), dtype or B.default_dtype()
        self.weight = (
            Parameter(xp.ones(normalized_shape, dtype=dtype)) if elementwise_affine else None
        )
        self.bias = (
            Parameter(xp.zeros(normalized_shape, dtype=dtype))
            if elementwise_affine and bias
            else None
        )

    def forward(self, x):
        if x.shape[-1:] != (self.normalized_shape,):
            raise ValueError(
                f"LayerNorm: expected input with last axis {self.normalized_shape}, got shape {x.shape}"
            )
        return layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"({self.normalized_shape},), eps={self.eps}"
