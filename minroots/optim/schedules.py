r"""Learning-rate schedules: constant, linear warmup + cosine decay, linear decay, inverse square root.

Book chapter 5, "Optimizers" (``book/05_optimizers.md``); used by the Trainer of chapter 7.

A schedule is a function ``lr_at(step) -> float`` of the 0-based optimizer step (``lr_at(0)`` is
the learning rate of the first update). Each schedule here is a small frozen dataclass that is
callable and JSON-describable (:meth:`Schedule.config`); any plain function works too.
:class:`LRScheduler` applies a schedule to an optimizer with torch's protocol: it sets the
learning rate of step 0 when created, and ``scheduler.step()`` after each ``optimizer.step()``
moves to the next.

Warmup: Adam's :math:`\hat v_t` is a poor estimate during the first steps, so large early steps
can diverge; the learning rate therefore ramps up linearly over ``warmup_steps`` steps,
:math:`\eta_s = \eta\,\frac{s + 1}{W + 1}` for :math:`s < W` (nanoGPT's ramp: it never uses a
zero learning rate, and reaches :math:`\eta` at :math:`s = W`).

Torch equivalents (checked step by step in ``tests/test_optim_schedules.py``):

=====================  ========================================================================
schedule               torch
=====================  ========================================================================
ConstantSchedule       ``LambdaLR(opt, lambda s: 1.0)``
CosineSchedule         ``SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W),
                       CosineAnnealingLR(T_max=S-W, eta_min=min_lr)], milestones=[W])``
LinearSchedule         ``LinearLR(start_factor=1, end_factor=min_lr/lr, total_iters=S)``
InverseSqrtSchedule    ``LambdaLR`` with the Transformer paper's formula
=====================  ========================================================================
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from minroots.validation import as_value_error, integer, one_of, real

__all__ = [
    "Schedule",
    "ConstantSchedule",
    "CosineSchedule",
    "LinearSchedule",
    "InverseSqrtSchedule",
    "get_schedule",
    "LRScheduler",
]


# A schedule refuses any bad value with a ValueError (a wrong type too), as it always has.
def _count(where: str, name: str, value, low: int = 0) -> int:
    return as_value_error(integer, where, name, value, low=low)


def _rate(where: str, name: str, value) -> float:
    return as_value_error(real, where, name, value, low=0)


class Schedule:
    """Base class: ``lr_at(step)`` (also ``schedule(step)``) and a JSON ``config()``."""

    name = "schedule"

    def lr_at(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        return self.lr_at(step)

    def config(self) -> dict:
        """``{"name": ..., <fields>}``: rebuild with ``get_schedule(**config)``."""
        return {"name": self.name, **dataclasses.asdict(self)}

    def _check_step(self, step) -> int:
        return _count(f"{type(self).__name__}.lr_at", "step", step)

    def _warmup(self, lr: float, step: int, warmup_steps: int) -> float:
        r""":math:`\eta\,(s + 1) / (W + 1)`, the linear ramp for :math:`s < W`."""
        return lr * (step + 1) / (warmup_steps + 1)


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    r"""A constant learning rate after an optional linear warmup.

    .. math:: \eta_s = \eta\,\min\Big(1, \frac{s + 1}{W + 1}\Big)

    Example: ``ConstantSchedule(0.1, warmup_steps=4)`` gives 0.02, 0.04, 0.06, 0.08, 0.1, 0.1, ...
    """

    lr: float  # eta, the learning rate
    warmup_steps: int = 0  # W, steps of linear ramp from eta/(W+1) up to eta

    name = "constant"

    def __post_init__(self):
        _rate("ConstantSchedule", "lr", self.lr)
        _count("ConstantSchedule", "warmup_steps", self.warmup_steps)

    def lr_at(self, step: int) -> float:
        step = self._check_step(step)
        if step < self.warmup_steps:
            return self._warmup(self.lr, step, self.warmup_steps)
        return float(self.lr)


@dataclass(frozen=True)
class _WarmupDecay(Schedule):
    """Shared by the cosine and linear schedules: a warmup to ``lr``, a decay to ``min_lr`` at
    ``total_steps``, then ``min_lr``; subclasses give the decay's shape in ``_decay``."""

    lr: float  # eta, the peak learning rate
    total_steps: int  # S, the step at which the rate reaches min_lr
    warmup_steps: int = 0  # W, linear ramp before the decay
    min_lr: float = 0.0  # eta_min, the floor (often lr / 10)

    def __post_init__(self):
        where = type(self).__name__
        _rate(where, "lr", self.lr)
        _rate(where, "min_lr", self.min_lr)
        _count(where, "warmup_steps", self.warmup_steps)
        _count(where, "total_steps", self.total_steps, low=self.warmup_steps + 1)
        if self.min_lr > self.lr:
            raise ValueError(f"{where}: min_lr must be <= lr, got min_lr={self.min_lr} > {self.lr}")

    def lr_at(self, step: int) -> float:
        step = self._check_step(step)
        w = self.warmup_steps
        if step < w:
            return self._warmup(self.lr, step, w)
        decay = self.total_steps - w
        if step - w >= decay:
            return float(self.min_lr)  # exactly the floor (pi * k / decay may round below pi)
        return self._decay(step - w, decay)

    def _decay(self, t: int, decay: int) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class CosineSchedule(_WarmupDecay):
    r"""Linear warmup, then half a cosine from ``lr`` down to ``min_lr`` at ``total_steps``.

    With peak :math:`\eta`, floor :math:`\eta_{\min}`, warmup :math:`W` and :math:`S` total steps:

    .. math::

        \eta_s = \begin{cases}
            \eta\,\frac{s + 1}{W + 1} & s < W \\
            \eta_{\min} + (\eta - \eta_{\min})\,
                \frac{1 + \cos\big(\pi\,\min(s - W,\, S - W) / (S - W)\big)}{2} & s \ge W
        \end{cases}

    so the rate is :math:`\eta` at :math:`s = W`, :math:`(\eta + \eta_{\min})/2` halfway through the
    decay, and stays at :math:`\eta_{\min}` from :math:`s = S` on (GPT-2/3 and nanoGPT use this).

    Example: ``CosineSchedule(1.0, total_steps=4)`` gives 1.0, 0.854, 0.5, 0.146, 0.0, 0.0, ...
    """

    name = "cosine"

    def _decay(self, t: int, decay: int) -> float:
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * t / decay)) / 2


@dataclass(frozen=True)
class LinearSchedule(_WarmupDecay):
    r"""Linear warmup, then a straight line from ``lr`` down to ``min_lr`` at ``total_steps``.

    .. math::

        \eta_s = \begin{cases}
            \eta\,\frac{s + 1}{W + 1} & s < W \\
            \eta + (\eta_{\min} - \eta)\,\frac{\min(s - W,\, S - W)}{S - W} & s \ge W
        \end{cases}

    (BERT's schedule, with :math:`\eta_{\min} = 0`.)

    Example: ``LinearSchedule(1.0, total_steps=4)`` gives 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, ...
    """

    name = "linear"

    def _decay(self, t: int, decay: int) -> float:
        return self.lr + (self.min_lr - self.lr) * t / decay


@dataclass(frozen=True)
class InverseSqrtSchedule(Schedule):
    r"""Linear warmup to ``lr``, then decay as :math:`1/\sqrt{\text{step}}`: the "Noam" schedule of
    "Attention Is All You Need".

    With :math:`n = s + 1` (the 1-based update number) and warmup :math:`W \ge 1`:

    .. math::

        \eta_s = \eta\,\min\Big(\frac{n}{W},\ \sqrt{\frac{W}{n}}\Big)

    The paper writes it as :math:`d_{\text{model}}^{-0.5}\,\min(n^{-0.5},\, n\,W^{-1.5})`, which is
    the same with peak :math:`\eta = d_{\text{model}}^{-0.5} W^{-0.5}`: see :meth:`noam`.

    Example: ``InverseSqrtSchedule(1.0, warmup_steps=4)`` gives 0.25, 0.5, 0.75, 1.0, then
    :math:`\sqrt{4/5} = 0.894`, :math:`\sqrt{4/6} = 0.816`, ...
    """

    lr: float  # eta, the peak learning rate (reached at update W)
    warmup_steps: int  # W, steps of linear ramp (the paper uses 4000)

    name = "inverse_sqrt"

    def __post_init__(self):
        _rate("InverseSqrtSchedule", "lr", self.lr)
        _count("InverseSqrtSchedule", "warmup_steps", self.warmup_steps, low=1)

    @classmethod
    def noam(cls, d_model: int, warmup_steps: int = 4000, factor: float = 1.0):
        r"""The paper's parametrisation: peak :math:`\text{factor}\cdot d_{\text{model}}^{-0.5}
        W^{-0.5}` (about 7e-4 for :math:`d_{\text{model}} = 512, W = 4000`)."""
        _count("InverseSqrtSchedule.noam", "d_model", d_model, low=1)
        _count("InverseSqrtSchedule.noam", "warmup_steps", warmup_steps, low=1)
        _rate("InverseSqrtSchedule.noam", "factor", factor)
        return cls(lr=factor * d_model**-0.5 * warmup_steps**-0.5, warmup_steps=warmup_steps)

    def lr_at(self, step: int) -> float:
        n = self._check_step(step) + 1
        w = self.warmup_steps
        return self.lr * min(n / w, math.sqrt(w / n))


_SCHEDULES = {
    "constant": ConstantSchedule,
    "cosine": CosineSchedule,
    "linear": LinearSchedule,
    "inverse_sqrt": InverseSqrtSchedule,
}


def get_schedule(name: str, **kwargs) -> Schedule:
    """Build a schedule by name: ``"constant"``, ``"cosine"``, ``"linear"``, ``"inverse_sqrt"``,
    or ``"noam"`` (``d_model``, ``warmup_steps``, ``factor``: :meth:`InverseSqrtSchedule.noam`).

    >>> get_schedule("cosine", lr=6e-4, total_steps=5000, warmup_steps=100, min_lr=6e-5)
    CosineSchedule(lr=0.0006, total_steps=5000, warmup_steps=100, min_lr=6e-05)
    """
    if name == "noam":
        return InverseSqrtSchedule.noam(**kwargs)
    one_of("get_schedule", "name", name, sorted([*_SCHEDULES, "noam"]))
    try:
        return _SCHEDULES[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f"get_schedule({name!r}): {exc}") from None


class LRScheduler:
    """Drives an optimizer's learning rate from a schedule, with torch's stepping protocol.

    >>> from minroots.optim import SGD
    >>> p = minroots.tensor(np.zeros(2), requires_grad=True)
    >>> opt = SGD([p], lr=1.0)
    >>> sched = LRScheduler(opt, CosineSchedule(6e-4, total_steps=5000, warmup_steps=100))
    >>> for step in range(3):
    ...     p.grad = np.ones(2)          # loss.backward() would set it
    ...     opt.step(); opt.zero_grad()
    ...     sched.step()                 # after the optimizer, as in torch
    >>> sched.get_last_lr()              # the warmup's 4th step: 6e-4 * 4 / 101
    [2.376237623762376e-05]

    Creating it sets every group's ``lr`` to ``schedule(0)``; the k-th ``step()`` sets
    ``schedule(k)``. A group with an ``"lr_scale"`` entry gets ``schedule(k) * lr_scale`` (e.g.
    a smaller rate for embeddings). ``last_step`` is torch's ``last_epoch``.

    Args:
        optimizer: a :class:`minroots.optim.Optimizer`.
        schedule: a :class:`Schedule` or any callable ``lr_at(step) -> float``.
    """

    def __init__(self, optimizer, schedule):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(
                f"LRScheduler: optimizer must be a minroots.optim.Optimizer, got "
                f"{type(optimizer).__name__}"
            )
        if not callable(schedule):
            raise TypeError(
                f"LRScheduler: schedule must be a Schedule or a callable lr_at(step), got "
                f"{type(schedule).__name__}"
            )
        self.optimizer = optimizer
        self.schedule = schedule
        self.last_step = 0
        self._apply()

    def _apply(self) -> None:
        lr = float(self.schedule(self.last_step))
        if not (lr >= 0 and math.isfinite(lr)):
            raise ValueError(f"LRScheduler: the schedule gave lr={lr!r} at step {self.last_step}")
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Move to the next step's learning rate (call after ``optimizer.step()``)."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group, as last set."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """JSON-able: ``{"last_step": int, "schedule": config or None}`` (None for a plain
        function, which cannot be described)."""
        config = self.schedule.config() if isinstance(self.schedule, Schedule) else None
        return {"last_step": self.last_step, "schedule": config}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from a saved step (the schedule itself must be the same one)."""
        if not isinstance(state_dict, dict) or "last_step" not in state_dict:
            raise ValueError("LRScheduler.load_state_dict: expected a dict with a 'last_step' key")
        saved = state_dict.get("schedule")
        mine = self.schedule.config() if isinstance(self.schedule, Schedule) else None
        if saved is not None and mine is not None and saved != mine:
            raise ValueError(
                f"LRScheduler.load_state_dict: the state was saved with schedule {saved}, "
                f"but this scheduler has {mine}"
            )
        self.last_step = _count("LRScheduler", "last_step", state_dict["last_step"])
        self._apply()

    def __repr__(self) -> str:
        return f"LRScheduler(schedule={self.schedule!r}, last_step={self.last_step})"
