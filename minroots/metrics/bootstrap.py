r"""Bootstrap confidence intervals for a corpus score (rouge-score's ``BootstrapAggregator``).

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

A corpus mean of per-sentence scores is an estimate: another test set of the same kind would
give another number. The bootstrap (Efron, 1979) estimates how much it would move by resampling
the test set itself: draw :math:`N` sentences *with replacement* from the :math:`N` we have,
take the mean, repeat :math:`B` times (1000 by default), and read percentiles off the :math:`B`
means. For a 95% interval::

    low  = 2.5th percentile of the B resampled means
    mid  = 50th percentile (the median; close to the plain mean)
    high = 97.5th percentile

>>> from minroots.metrics.rouge import Score
>>> agg = BootstrapAggregator(n_samples=200, rng=0)
>>> for f in [0.2, 0.4, 0.6, 0.8]:
...     agg.add_scores({"rouge1": Score(f, f, f)})
>>> ci = agg.aggregate()["rouge1"]
>>> ci.low.fmeasure < 0.5 < ci.high.fmeasure
True

Passing ``rng=numpy.random.RandomState(seed)`` draws exactly the indices rouge-score draws after
``numpy.random.seed(seed)``, so the two give identical intervals.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import numpy as np

from minroots.backend import rng as backend_rng
from minroots.validation import as_value_error, capped_int, real

MAX_SAMPLES = 100_000  # resamples; each holds a row of scores, so 10**9 would exhaust memory

__all__ = ["AggregateScore", "BootstrapAggregator", "bootstrap_percentiles"]


class AggregateScore(NamedTuple):
    """The low, mid and high bounds of a confidence interval, each a score tuple."""

    low: tuple
    mid: tuple
    high: tuple


def _resolve_rng(rng):
    """A NumPy generator from ``rng``: None (minroots' seeded one), an int seed, or a generator."""
    if rng is None:
        return backend_rng("numpy")
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        "BootstrapAggregator: rng must be None, an int seed, numpy.random.Generator or "
        "numpy.random.RandomState, "
        f"got {type(rng).__name__}"
    )


def bootstrap_percentiles(
    matrix, confidence_interval: float = 0.95, n_samples: int = 1000, rng=None
) -> np.ndarray:
    """Percentiles ``(3, K)`` (low, mid, high) of bootstrap means of ``matrix`` ``(N, K)``."""
    where = "bootstrap_percentiles"
    as_value_error(real, where, "confidence_interval", confidence_interval, low=0, high=1)
    as_value_error(capped_int, where, "n_samples", n_samples, high=MAX_SAMPLES)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"{where}: matrix must have shape (N, K) with N >= 1, got {matrix.shape}")
    generator = _resolve_rng(rng)
    n = matrix.shape[0]
    sample_mean = np.zeros((n_samples, matrix.shape[1]))
    for i in range(n_samples):
        if isinstance(generator, np.random.RandomState):
            index = generator.randint(0, n, size=n)  # what numpy.random.choice(n, n) draws
        else:
            index = generator.integers(0, n, size=n)
        sample_mean[i, :] = np.mean(matrix[index, :], axis=0)
    delta = (1 - confidence_interval) / 2
    q = 100 * np.array([delta, 0.5, 1 - delta])
    return np.percentile(sample_mean, q, axis=0)


def _like(example, values: np.ndarray):
    """``values`` in the form of ``example``: the same named tuple, a tuple, or a float."""
    values = [float(v) for v in values]
    if hasattr(type(example), "_fields"):  # a named tuple such as Score
        return type(example)(*values)
    if np.ndim(example) == 0:
        return values[0]
    return tuple(values)


class BootstrapAggregator:
    """Collect per-example score dicts, then give a confidence interval per score type.

    Args:
        confidence_interval: the interval's coverage, in [0, 1] (0.95: 2.5th to 97.5th).
        n_samples: the number of bootstrap resamples.
        rng: None (minroots' seeded generator), an int seed, a ``numpy.random.Generator``, or a
            ``numpy.random.RandomState`` (to reproduce rouge-score's draws).
    """

    def __init__(self, confidence_interval: float = 0.95, n_samples: int = 1000, rng=None):
        where = "BootstrapAggregator"
        as_value_error(real, where, "confidence_interval", confidence_interval, low=0, high=1)
        as_value_error(capped_int, where, "n_samples", n_samples, high=MAX_SAMPLES,
                       why="1,000 is usual; the interval hardly moves past 10,000")  # fmt: skip
        self.confidence_interval = confidence_interval
        self.n_samples = int(n_samples)
        self._rng = _resolve_rng(rng)
        self._scores: dict[str, list] = defaultdict(list)

    def add_scores(self, scores: dict) -> None:
        """Add one example's scores, e.g. the dict :meth:`RougeScorer.score` returns."""
        for score_type, score in scores.items():
            self._scores[score_type].append(score)

    def aggregate(self) -> dict[str, AggregateScore]:
        """An :class:`AggregateScore` (low, mid, high) per score type added so far."""
        if not self._scores:
            raise ValueError("aggregate: no scores were added (call add_scores first)")
        result = {}
        for score_type, scores in self._scores.items():
            matrix = np.vstack([np.asarray(s, dtype=np.float64) for s in scores])
            bounds = bootstrap_percentiles(
                matrix, self.confidence_interval, self.n_samples, self._rng
            )
            low, mid, high = (_like(scores[0], bounds[j, :]) for j in range(3))
            result[score_type] = AggregateScore(low=low, mid=mid, high=high)
        return result
