"""Callbacks: small objects the Trainer calls at fixed points, to plot, print or stop early.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_training_trainer.py``.

The trainer calls, on every callback that defines them:

- ``on_step_end(trainer, step, logs)`` after each optimizer update; ``logs`` has ``"loss"``
  (this step's training loss) and ``"lr"`` (the learning rate it used);
- ``on_evaluate(trainer, step, metrics)`` after each evaluation; ``metrics`` has ``"val_loss"``
  and ``"val_perplexity"``;
- ``on_save(trainer, step, path)`` after a checkpoint is written to the folder ``path``.

A callback stops training by returning ``True`` (or by setting ``trainer.should_stop = True``);
the trainer then saves a checkpoint and returns its history. Any object with some of these
methods works; :class:`Callback` only documents them.

>>> from minroots import Trainer, TransformerModel
>>> class PrintStep(Callback):
...     def on_step_end(self, trainer, step, logs):
...         print("step", step, "lr", f"{logs['lr']:.0e}")
>>> model = TransformerModel(vocab_size=76, block_size=16, n_layer=1, n_embd=16)
>>> trainer = Trainer(model, "shakespeare", callbacks=[PrintStep(), EarlyStopping(patience=3)],
...                   max_steps=2, warmup=0, schedule="constant", log_interval=0, out_dir=None)
>>> history = trainer.train()
step 1 lr 1e-03
step 2 lr 1e-03
"""

from __future__ import annotations

import math

from minroots.validation import shown

__all__ = ["Callback", "EarlyStopping", "LambdaCallback"]


class Callback:
    """Base class with do-nothing hooks; override the ones you need. Return True to stop."""

    def on_step_end(self, trainer, step: int, logs: dict) -> bool | None:
        return None

    def on_evaluate(self, trainer, step: int, metrics: dict) -> bool | None:
        return None

    def on_save(self, trainer, step: int, path) -> bool | None:
        return None


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_step_end=lambda t, s, logs: ...)``."""

    def __init__(self, on_step_end=None, on_evaluate=None, on_save=None):
        for name, fn in (("on_step_end", on_step_end), ("on_evaluate", on_evaluate),
                         ("on_save", on_save)):  # fmt: skip
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: {name} must be callable, got {shown(fn)}")
                setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` evaluations.

    Example with ``patience=2``: validation losses 2.0, 1.8, 1.85, 1.81 stop after the fourth
    evaluation (two in a row without going below 1.8).
    """

    def __init__(self, patience: int = 3, min_delta: float = 0.0):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(
                f"EarlyStopping: patience must be an integer >= 1, got {shown(patience)}"
            )
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(
                f"EarlyStopping: min_delta must be a number >= 0, got {shown(min_delta)}"
            )
        self.patience = patience
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.bad_evaluations = 0

    def on_evaluate(self, trainer, step: int, metrics: dict) -> bool:
        loss = metrics["val_loss"]
        if loss < self.best - self.min_delta:
            self.best, self.bad_evaluations = loss, 0
        else:
            self.bad_evaluations += 1
        return self.bad_evaluations >= self.patience
