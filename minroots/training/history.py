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
(``tail -f``), and a crash loses at most the line being written: :meth:`History.read` drops a
torn last line (half a line, left by a crash or a full disk) with a warning, and
:meth:`History.append_to` cuts it off the file before appending
(:func:`minroots.persistence.append_line`). The loss curve
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
import warnings

from minroots.persistence import append_line, atomic_file, write_text

__all__ = ["History", "HISTORY_KEYS"]

HISTORY_KEYS = ("step", "train_loss", "val_loss", "val_perplexity", "lr", "tokens_per_s")
HISTORY_KEYS += ("skipped", "loss_scale")  # fp16 steps skipped on overflow (chapter 13)


class History(list):
    """A list of record dicts (see the module docstring) with helpers to save and plot them."""

    def add(self, step: int, **values) -> dict:
        """Append a record for ``step``; keys not given are ``None``. Returns the record."""
        unknown = set(values) - set(HISTORY_KEYS)
        if unknown:
            raise KeyError(f"History.add: every key must be one of {', '.join(HISTORY_KEYS)}, got "
                           f"unknown keys {sorted(unknown)}")  # fmt: skip
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
        """Append one record to a JSON-lines file and flush it to the operating system.

        A torn last line (from a crash) is cut off first, with a warning.
        """
        cut = append_line(path, self.dumps(record))
        if cut:
            warnings.warn(f"History.append_to: cut a torn last line ({cut} bytes, left by an "
                          f"interrupted write) off {os.fspath(path)!r}", UserWarning,
                          stacklevel=2)  # fmt: skip

    def write(self, path: str | os.PathLike) -> None:
        """(Re)write the whole file, atomically (temporary file, then rename)."""
        write_text(path, "".join(self.dumps(r) for r in self))

    @classmethod
    def read(cls, path: str | os.PathLike) -> History:
        """Read a ``history.jsonl`` file (a missing file gives an empty history).

        A torn last line is dropped with a warning; any other line that is not a JSON object is
        a one-line ``ValueError`` naming the file and the line.
        """
        history = cls()
        if not os.path.isfile(path):
            return history
        where = repr(os.fspath(path))
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        last = max((k for k, line in enumerate(lines) if line.strip()), default=-1)
        for k, raw in enumerate(lines):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):  # JSON and UTF-8 errors are ValueErrors
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                if k == last:
                    warnings.warn(f"History.read: {where}, line {k + 1} is torn (an interrupted "
                                  "write); dropped it", UserWarning, stacklevel=2)  # fmt: skip
                    break
                raise ValueError(f"History.read: {where}, line {k + 1} must be a JSON record with "
                                 f"an integer step, got {raw[:60]!r}; only a torn last line is "
                                 "dropped, so mend or delete this one")  # fmt: skip
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
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png")
