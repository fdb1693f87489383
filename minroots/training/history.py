r"""The training history: one record per logged or evaluated step, as JSON lines and a loss curve.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_training_trainer.py``.

Every record has the same eight keys; a value that was not measured at that step is ``None``
(``null`` in the file)::

    {"step": 250, "train_loss": 2.01, "val_loss": 2.07, "val_perplexity": 7.92, "lr": 0.00098,
     "tokens_per_s": 9120.4, "skipped": null, "loss_scale": null}

(``skipped`` and ``loss_scale`` are set only by fp16 training, when a step's gradients
overflowed and the step was skipped; chapter 13, ``book/13_training_at_scale.md``.)

``val_perplexity`` is :math:`e^{\text{val\_loss}}` (the loss is in nats per token). The file
``history.jsonl`` grows by one line per record, so it can be read while training runs
(``tail -f``), and a crash loses at most the line being written. The loss curve
(``loss_curve.png``) plots both losses against the step, drawn with matplotlib's Agg canvas:
no window, no global pyplot state, so it works on servers and inside notebooks alike.

>>> h = History()
>>> h.add(step=10, train_loss=3.2, lr=1e-3)
{'step': 10, 'train_loss': 3.2, 'val_loss': None, 'val_perplexity': None, 'lr': 0.001, 'tokens_per_s': None, 'skipped': None, 'loss_scale': None}
>>> h.train_losses
[(10, 3.2)]
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["History", "HISTORY_KEYS"]

HISTORY_KEYS = ("step", "train_loss", "val_loss", "val_perplexity", "lr", "tokens_per_s")
HISTORY_KEYS += ("skipped", "loss_scale")  # fp16 steps skipped on overflow (chapter 13)


class History(list):
    """A list of record dicts (see the module docstring) with helpers to save and plot them."""

    def add(self, step: int, **values) -> dict:
        """Append a record for ``step``; keys not given are ``None``. Returns the record."""
        unknown = set(values) - set(HISTORY_KEYS)
        if unknown:
            raise KeyError(f"History.add: unknown keys {sorted(unknown)}; known: {HISTORY_KEYS}")
        record = {key: values.get(key) for key in HISTORY_KEYS}
        record["step"] = int(step)
        self.append(record)
        return record

    # --- columns, for plots and tutorials -----------------------------------------------------
    def _column(self, key: str) -> list[tuple[int, float]]:
        return [(r["step"], r[key]) for r in self if r.get(key) is not None]

    @property
    def train_losses(self) -> list[tuple[int, float]]:
        """``(step, train_loss)`` for every record that has one."""
        return self._column("train_loss")

    @property
    def val_losses(self) -> list[tuple[int, float]]:
        """``(step, val_loss)`` for every evaluation."""
        return self._column("val_loss")

    @property
    def last_val(self) -> dict | None:
        """The most recent record with a validation loss (or ``None`` before any evaluation)."""
        return next((r for r in reversed(self) if r.get("val_loss") is not None), None)

    # --- files ----------------------------------------------------------------------------
    @staticmethod
    def dumps(record: dict) -> str:
        """One JSON line; NaN and infinities become ``null`` (JSON has no such numbers)."""
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        return json.dumps(clean) + "\n"

    def append_to(self, path: str | os.PathLike, record: dict) -> None:
        """Append one record to a JSON-lines file and flush it to the operating system."""
        with open(path, "a", encoding="utf-8") as f:
            f.write(self.dumps(record))

    def write(self, path: str | os.PathLike) -> None:
        """(Re)write the whole file, atomically (temporary file, then rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(self.dumps(r) for r in self)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> History:
        """Read a ``history.jsonl`` file (a missing file gives an empty history)."""
        history = cls()
        if not os.path.isfile(path):
            return history
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"{os.fspath(path)}, line {number}: not valid JSON") from None
                history.append({key: record.get(key) for key in HISTORY_KEYS})
        return history

    def plot(self, path: str | os.PathLike, title: str = "minroots training") -> None:
        """Draw train and validation loss against the step into a PNG file (atomically)."""
        # imported here: matplotlib takes about a second to import, and most uses of the package
        # (and of a History) never draw
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for pairs, label, style in (
            (self.train_losses, "train", "-"),
            (self.val_losses, "validation", "o-"),
        ):
            if pairs:
                steps, losses = zip(*pairs, strict=True)
                ax.plot(steps, losses, style, label=label, markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats per token)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if self.train_losses or self.val_losses:
            ax.legend()
        fig.tight_layout()
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
