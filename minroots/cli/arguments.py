"""argparse value types shared by the ``minroots`` commands: whole and real numbers within bounds.

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

__all__ = ["positive_int", "positive_float", "non_negative_float", "probability", "int_in"]


def positive_int(text: str) -> int:
    """The integer ``text`` holds, which must be >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_float(text: str) -> float:
    """The finite number ``text`` holds, which must be > 0."""
    value = _number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return value


def _finite(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """The finite number ``text`` holds, which must be >= 0 (``nan`` and ``inf`` are refused).

    >>> non_negative_float("nan")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a finite number, got nan
    """
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value}")
    return value


def probability(text: str) -> float:
    """The number ``text`` holds, which must lie in (0, 1] (a top-p mass)."""
    value = _finite(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number > 0 and <= 1, got {value}")
    return value


def int_in(low: int, high: int):
    """An argparse type for an integer in ``[low, high]`` (a count with a ceiling).

    >>> int_in(0, 100_000)("1000000000")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected an integer in [0, 100000], got 1000000000
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {value}")
        return value

    parse.__name__ = f"integer in [{low}, {high}]"
    return parse
