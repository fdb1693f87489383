r"""Dynamic loss scaling: keep float16 gradients out of underflow, and skip the steps that overflow.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_mixed_precision.py``.

float16 represents magnitudes from about :math:`6 \cdot 10^{-8}` (smallest subnormal) to
:math:`65504`. Gradients of a language model are often around :math:`10^{-6}` to
:math:`10^{-9}`: many would round to zero. Multiplying the loss by a scale :math:`s` multiplies
every gradient by :math:`s` (the chain rule is linear), lifting them into range; dividing the
float32 gradients by :math:`s` before the optimizer step undoes it exactly (for a power of two):

.. math::
    g = \frac{1}{s} \nabla_\theta (s L)

Too large an :math:`s` overflows some gradient to :math:`\infty` (or NaN). *Dynamic* scaling
(Micikevicius et al., 2018; PyTorch's ``GradScaler``) finds the largest safe scale by trial:

- a step whose gradients are not all finite is **skipped** (the weights are not touched) and
  :math:`s \leftarrow s \cdot \tfrac12`;
- after ``growth_interval`` good steps in a row, :math:`s \leftarrow 2 s`.

Worked example: from :math:`s = 2^{16}`, one overflow gives :math:`2^{15}`; 2000 good steps later
it tries :math:`2^{16}` again.

>>> scaler = LossScaler(init_scale=8.0, growth_interval=2)
>>> scaler.update(found_inf=True); scaler.scale
4.0
>>> scaler.update(found_inf=False); scaler.update(found_inf=False); scaler.scale
8.0
"""

from __future__ import annotations

from minroots import backend as B
from minroots.validation import integer, real

__all__ = ["LossScaler", "unscale_gradients"]


def unscale_gradients(params, scale: float) -> bool:
    """Divide every ``.grad`` by ``scale`` in place; return True when all of them are finite."""
    finite = True
    inv = 1.0 / scale
    for p in params:
        if p.grad is None:
            continue
        p.grad *= p.grad.dtype.type(inv)
        finite = finite and bool(B.get_array_module(p.grad).isfinite(p.grad).all())
    return finite


class LossScaler:
    """The scale :math:`s` and its updates (defaults: PyTorch's ``GradScaler``)."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000):  # fmt: skip
        where = "LossScaler"
        self.scale = real(where, "init_scale", init_scale, low=0, low_open=True)
        self.growth_factor = real(where, "growth_factor", growth_factor, low=1, low_open=True)
        self.backoff_factor = real(where, "backoff_factor", backoff_factor, low=0, high=1,
                                   low_open=True, high_open=True)  # fmt: skip
        self.growth_interval = integer(where, "growth_interval", growth_interval, low=1)
        self.good_steps = 0  # finite steps since the last change of scale
        self.skipped = 0  # steps skipped so far

    def update(self, found_inf: bool) -> None:
        """After a step: halve on overflow (and count the skip), grow after a run of good steps."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1
            return
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0

    def state_dict(self) -> dict:
        """The scale and its counters, JSON-able (saved in the Trainer's checkpoints)."""
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`LossScaler.state_dict`."""
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])
        self.skipped = int(state.get("skipped", 0))
