r"""``RMSNorm``: divide each token's features by their root mean square, then scale (no shift).

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_nn_modern_layers.py``. The formula and its backward are in
:mod:`minroots.nn.functional.rms_norm`.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.nn.functional.rms_norm import rms_norm
from minroots.nn.module import Module, Parameter
from minroots.validation import positive_int, real

__all__ = ["RMSNorm"]


class RMSNorm(Module):
    """``RMSNorm(128)``: a gain :math:`\\gamma` of 128 ones; no bias (Llama, Qwen, T5)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6, dtype=None):
        super().__init__()
        positive_int("RMSNorm", "normalized_shape", normalized_shape)
        self.normalized_shape = normalized_shape
        self.eps = real("RMSNorm", "eps", eps, low=0, low_open=True)
        self.weight = Parameter(B.xp().ones(normalized_shape, dtype=dtype or B.default_dtype()))

    def forward(self, x):
        if x.shape[-1:] != (self.normalized_shape,):
            raise ValueError(
                f"RMSNorm: expected input with last axis {self.normalized_shape}, got shape {x.shape}"
            )
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"({self.normalized_shape},), eps={self.eps}"
