r"""``Linear``: a fully connected layer, :math:`y = x W^\top + b`.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_layers.py``.

The weight has PyTorch's layout ``(out_features, in_features)``. Initialization follows GPT-2:
weights from :math:`\mathcal{N}(0, 0.02^2)` (``init_std``), biases zero. (PyTorch's own default is
a uniform Kaiming initialization; GPT-style models overwrite it with this one.)
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd.autocast import autocast_dtype, in_low_precision
from minroots.nn.functional.linear import linear
from minroots.nn.module import Module, Parameter
from minroots.validation import positive_int

__all__ = ["Linear"]


class Linear(Module):
    """``Linear(4, 8)`` maps ``(..., 4)`` to ``(..., 8)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init_std: float = 0.02, dtype=None):  # fmt: skip
        super().__init__()
        positive_int("Linear", "in_features", in_features)
        positive_int("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        dtype = dtype or B.default_dtype()
        w = B.rng().standard_normal((out_features, in_features), dtype=dtype)
        w *= w.dtype.type(init_std)
        self.weight = Parameter(w)  # (out, in)
        self.bias = Parameter(B.xp().zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"Linear: expected input with last axis in_features={self.in_features}, "
                f"got shape {x.shape}"
            )
        if autocast_dtype() is not None:  # mixed precision (chapter 13): the product in 16 bits
            return in_low_precision(linear, x, self.weight, self.bias)
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
