r"""Gradient accumulation: the gradient of one large batch, computed one micro-batch at a time.

Book chapter 7, "Training" (``book/07_training.md``), section 7.2; tests in
``tests/test_training_trainer.py``.

With :math:`m` micro-batches :math:`(x_i, y_i)` of :math:`b` sequences each, the loss of the whole
batch of :math:`mb` sequences is the mean of the micro-batch losses (each already a mean over its
:math:`b` sequences), and the gradient of a mean is the mean of the gradients:

.. math::
    L = \frac1m \sum_{i=1}^{m} L(\theta; x_i, y_i), \qquad
    \nabla_\theta L = \sum_{i=1}^{m} \nabla_\theta \Big(\frac1m L(\theta; x_i, y_i)\Big)

So each micro-batch's loss is scaled by :math:`1/m` before ``backward``, and the gradients *add up*
in ``.grad``: exactly the gradient of the large batch, with the activations of only one micro-batch
in memory at a time.

Worked example: a batch with losses 1.0 and 3.0 has mean 2.0; two micro-batches of one sequence
give :math:`\tfrac12 \cdot 1.0 + \tfrac12 \cdot 3.0 = 2.0`, and their gradients add the same way.
"""

from __future__ import annotations

import math

from minroots.validation import shown

__all__ = ["accumulate_gradients", "loss_of"]


def loss_of(out):
    """The scalar loss Tensor from ``model(x, y)``, which returns ``(logits, loss)`` or ``loss``."""
    loss = out[1] if isinstance(out, tuple) else out
    if loss is None or not hasattr(loss, "backward"):
        raise TypeError(
            "accumulate_gradients: model(x, y) must return (logits, loss) or loss, with loss a "
            f"scalar Tensor; got {type(loss).__name__}"
        )
    return loss


def accumulate_gradients(model, x, y, micro_batches: int, loss_scale: float = 1.0) -> float:
    r"""Add :math:`\nabla_\theta L` of the batch ``(x, y)`` (``(m b, T)`` each) into every ``.grad``,
    one micro-batch of ``b`` rows at a time; return the batch loss :math:`L`, the mean of the
    micro-batch losses.

    ``model(x_i, y_i)`` returns ``(logits, loss)`` (or ``loss``), the loss a mean over its rows.
    A loss that is NaN or infinite raises ``FloatingPointError`` naming the micro-batch, before its
    ``backward``. ``loss_scale`` :math:`s` multiplies what is backpropagated (the gradients come
    out :math:`s` times larger; fp16 loss scaling, chapter 13); the returned loss is unscaled.
    """
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, int) or micro_batches < 1:
        raise ValueError(
            f"accumulate_gradients: micro_batches must be an integer >= 1, got {shown(micro_batches)}"
        )
    if len(x) != len(y) or len(x) % micro_batches:
        raise ValueError(
            f"accumulate_gradients: x and y need the same number of rows, divisible by "
            f"micro_batches={micro_batches}; got {len(x)} and {len(y)}"
        )
    b = len(x) // micro_batches
    total = 0.0
    for i in range(micro_batches):
        loss = loss_of(model(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]))  # rows of (b, T)
        value = float(loss.data)
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the training loss is {value} (micro-batch {i + 1} of {micro_batches})"
            )
        (loss * (loss_scale / micro_batches)).backward()
        total += value
    return total / micro_batches
