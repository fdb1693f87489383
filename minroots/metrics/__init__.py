"""Evaluation metrics, each written out by hand and equal to the reference implementation.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``); tests in ``tests/test_metrics_*.py``,
benchmark in ``benchmarks/metrics_bench.py``.

=================  =============================================  ==========================
metric             module                                         equal to
=================  =============================================  ==========================
perplexity         :mod:`~minroots.metrics.perplexity`            exp(mean cross-entropy)
BLEU               :mod:`~minroots.metrics.bleu` (+ tokenizers)   sacrebleu
chrF / chrF++      :mod:`~minroots.metrics.chrf`                  sacrebleu
ROUGE-N/L/Lsum     :mod:`~minroots.metrics.rouge` (+ ``porter``)  Google's rouge-score
confidence bounds  :mod:`~minroots.metrics.bootstrap`             rouge-score's aggregator
=================  =============================================  ==========================

>>> from minroots.metrics import corpus_bleu, RougeScorer
>>> round(corpus_bleu(["the cat sat on the mat"], [["the cat sat on a mat"]]).score, 2)
53.73
"""

from minroots.metrics.bleu import BLEUScore, bleu_from_statistics, corpus_bleu, sentence_bleu
from minroots.metrics.bleu_tokenizers import TOKENIZERS as BLEU_TOKENIZERS
from minroots.metrics.bootstrap import AggregateScore, BootstrapAggregator
from minroots.metrics.chrf import CHRFScore, corpus_chrf, sentence_chrf
from minroots.metrics.perplexity import PerplexityResult, perplexity, perplexity_from_logits
from minroots.metrics.porter import porter_stem
from minroots.metrics.rouge import RougeScorer, Score

__all__ = [
    "perplexity",
    "perplexity_from_logits",
    "PerplexityResult",
    "corpus_bleu",
    "sentence_bleu",
    "bleu_from_statistics",
    "BLEUScore",
    "BLEU_TOKENIZERS",
    "corpus_chrf",
    "sentence_chrf",
    "CHRFScore",
    "RougeScorer",
    "Score",
    "BootstrapAggregator",
    "AggregateScore",
    "porter_stem",
]
