"""The former home of ``minroots eval bleu|chrf|rouge``, now in ``minroots/cli/eval.py``.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``); tests in ``tests/test_metrics_cli.py``.

Kept so that ``from minroots.metrics.cli import register, read_lines`` goes on working:
``register`` adds ``bleu``, ``chrf`` and ``rouge`` to an ``eval`` sub-parsers object
(:func:`minroots.cli.eval.register_scores`).
"""

from minroots.cli.eval import read_lines
from minroots.cli.eval import register_scores as register

__all__ = ["register", "read_lines"]
