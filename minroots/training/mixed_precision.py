r"""Mixed precision in the Trainer: 16-bit products, float32 master weights, loss scaling for fp16.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_mixed_precision.py``.

``TrainerConfig(precision=...)``:

==========  ===========================  ==================  ===================================
precision   products (``Linear``)        weights, optimizer  loss scale
==========  ===========================  ==================  ===================================
float32     float32                      float32             none
bf16        bfloat16 (``ml_dtypes``)     float32 (master)    none: bf16 has float32's range
fp16        float16                      float32 (master)    dynamic (``LossScaler``)
==========  ===========================  ==================  ===================================

The weights and AdamW's moments never leave float32: an update :math:`\eta \hat m / \sqrt{\hat v}`
of :math:`10^{-4}` relative size would vanish when added to a 16-bit weight (bf16 resolves only
:math:`2^{-8} \approx 0.4\%`). Only the forward and backward products round to 16 bits, through
:class:`~minroots.autograd.autocast.autocast`. With fp16, a step whose gradients overflow is
skipped and recorded in the history (``skipped``, with the new ``loss_scale``).

On the CPU, bfloat16 comes from ``ml_dtypes`` and float16 from NumPy; both are slower than float32
there (no 16-bit BLAS): their purpose on a CPU is to show the rounding and the overflow. On a GPU
(CuPy) the 16-bit products run on the tensor cores.
"""

from __future__ import annotations

import contextlib

import numpy as np

from minroots import backend as B
from minroots.autograd.autocast import autocast
from minroots.training.loss_scaling import LossScaler, unscale_gradients

__all__ = ["MixedPrecision"]


class MixedPrecision:
    """The precision of a run: ``"float32"``, ``"bf16"`` or ``"fp16"`` on ``device``.

    A backend that lacks the format raises a RuntimeError saying what to install or choose,
    before any training starts.
    """

    def __init__(self, precision: str = "float32", device: str = "cpu"):
        self.precision = precision
        self.dtype = None if precision == "float32" else B.half_dtype(precision, device)
        self.scaler = LossScaler() if precision == "fp16" else None

    def autocast(self):
        """The context in which the forward and backward run: :class:`~minroots.autograd.autocast.autocast`, and for fp16
        NumPy's overflow warnings silenced (an overflow is expected there: the step is skipped)."""
        if self.scaler is None:
            return autocast(self.dtype)
        stack = contextlib.ExitStack()
        stack.enter_context(autocast(self.dtype))
        stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
        return stack

    @property
    def loss_scale(self) -> float:
        """:math:`s`, the factor the loss is multiplied by before ``backward`` (1 unless fp16)."""
        return 1.0 if self.scaler is None else self.scaler.scale

    def unscale(self, params) -> bool:
        """Undo the loss scale on the gradients and update it; False means skip this step (an
        fp16 gradient overflowed; the scale was halved)."""
        if self.scaler is None:
            return True
        finite = unscale_gradients(params, self.scaler.scale)
        self.scaler.update(found_inf=not finite)
        return finite

    def state_dict(self) -> dict | None:
        """The loss scaler's state (fp16), or ``None``: saved in the Trainer's checkpoints."""
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        """Restore what :meth:`MixedPrecision.state_dict` saved (nothing to do without fp16)."""
        if self.scaler is not None and state is not None:
            self.scaler.load_state_dict(state)
