"""Optimizers, learning-rate schedules and gradient clipping.

Book chapter 5, "Optimizers" (``book/05_optimizers.md``).

- :mod:`~minroots.optim.optimizer`: the base class (parameter groups, state, save/load).
- :mod:`~minroots.optim.sgd`: SGD with momentum, Nesterov and weight decay.
- :mod:`~minroots.optim.adam`: Adam and AdamW.
- :mod:`~minroots.optim.schedules`: constant, warmup + cosine, linear, inverse-sqrt ("Noam").
- :mod:`~minroots.optim.clip`: ``clip_grad_norm_``.

Each matches its ``torch.optim`` counterpart (``tests/test_optim*.py`` compare them step by step).
"""

from minroots.optim.adam import Adam, AdamW
from minroots.optim.clip import clip_grad_norm_
from minroots.optim.optimizer import Optimizer, load_state, weight_decay_groups
from minroots.optim.schedules import (
    ConstantSchedule,
    CosineSchedule,
    InverseSqrtSchedule,
    LinearSchedule,
    LRScheduler,
    Schedule,
    get_schedule,
)
from minroots.optim.sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "weight_decay_groups",
    "load_state",
    "clip_grad_norm_",
    "Schedule",
    "ConstantSchedule",
    "CosineSchedule",
    "LinearSchedule",
    "InverseSqrtSchedule",
    "get_schedule",
    "LRScheduler",
]
