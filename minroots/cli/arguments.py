"""argparse value types shared by the ``minroots`` commands: whole and real numbers above zero.

Book chapter 7, "Training" (``book/07_training.md``), where the command line is introduced; tests
in ``tests/test_cli.py`` and ``tests/test_assignments.py``.

An argparse ``type`` is a function of the argument's text; an ``ArgumentTypeError`` it raises
becomes the one-line usage error ``minroots: error: argument --top-k: expected an integer >= 1,
got 0``.

>>> positive_int("8"), positive_float("0.5")
(8, 0.5)
>>> positive_int("0")
Traceback (most recent call last):
argparse.ArgumentTypeError: expected an integer >= 1, got 0
"""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "positive_float"]


def positive_int(text: str) -> int:
    """The integer ``text`` holds, which must be >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """The finite number ``text`` holds, which must be > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return value
