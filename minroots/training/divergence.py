"""Divergence: the loss or a gradient became NaN or infinite, so training stops with a clear error.

Book chapter 7, "Training" (``book/07_training.md``), section 7.6; tests in
``tests/test_training_trainer.py``.

The Trainer checks every update before it touches the weights: the loss of each micro-batch
(:func:`~minroots.training.accumulation.accumulate_gradients`) and the global gradient norm (one
NaN or infinity anywhere makes the norm non-finite). Either stops training with a
:class:`DivergenceError` that carries the step and the last good checkpoint, so a program can
catch it and act (lower the learning rate, resume from ``error.checkpoint``)::

    try:
        trainer.train()
    except DivergenceError as error:
        print(error.step, error.checkpoint)

>>> str(DivergenceError(4, "the training loss is nan", debug=True))
'step 4: the training loss is nan'
"""

from __future__ import annotations

import os
from pathlib import Path

from minroots import backend as B

__all__ = ["DivergenceError", "non_finite_gradients"]


class DivergenceError(FloatingPointError):
    """Training stopped at ``step`` because a loss or a gradient was NaN or infinite.

    Attributes:
        step: the 1-based number of the update that failed (``trainer.step`` is one less: it was
            not done).
        reason: what was not finite (``"the training loss is nan (micro-batch 1 of 2)"``).
        checkpoint: the newest checkpoint on disk (the last good one), or ``None``.

    The message says all of it and how to find the cause: ``step 4: the training loss is nan
    (train with debug=True to name the first operation); the last good checkpoint is kept: ...``.
    """

    def __init__(
        self,
        step: int,
        reason: str,
        checkpoint: str | os.PathLike | None = None,
        out_dir: str | os.PathLike | None = None,
        debug: bool = False,
    ):
        self.step, self.reason = step, reason
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        hint = "" if debug else " (train with debug=True to name the first operation)"
        if checkpoint is not None:
            where = f"; the last good checkpoint is kept: {checkpoint}"
        elif out_dir is not None:
            where = f"; no checkpoint was saved in {out_dir} before this step"
        else:
            where = ""
        super().__init__(f"step {step}: {reason}{hint}{where}")


def non_finite_gradients(named_parameters) -> list[str]:
    """Names of the parameters whose gradient holds NaN or infinity, in the model's order."""
    bad = []
    for name, p in named_parameters:
        if p.grad is not None and not bool(B.get_array_module(p.grad).isfinite(p.grad).all()):
            bad.append(name)
    return bad
