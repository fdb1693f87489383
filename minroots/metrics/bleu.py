r"""BLEU, computed exactly as sacrebleu computes it.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

BLEU (Papineni et al., 2002) scores a corpus of hypotheses (system outputs) against one or more
references per sentence by counting n-grams, :math:`n = 1 \dots N` (:math:`N = 4`):

.. math::

    p_n = \frac{\sum_{s} \sum_{g \in \text{ngrams}_n(h_s)} \min\big(c_{h_s}(g),\,
          \max_{r \in R_s} c_r(g)\big)}{\sum_s \sum_{g \in \text{ngrams}_n(h_s)} c_{h_s}(g)}
    \qquad \text{(clipped precision, summed over the whole corpus)}

    \mathrm{BP} = \begin{cases} 1 & c \ge r \\ e^{\,1 - r/c} & 0 < c < r \\ 0 & c = 0\end{cases}
    \qquad
    \mathrm{BLEU} = \mathrm{BP} \cdot \exp\Big(\frac{1}{N}\sum_{n=1}^{N} \log p_n\Big)

where :math:`c` is the total hypothesis length in tokens and :math:`r` the sum, over sentences,
of the reference length closest to the hypothesis length (the shorter one on a tie). Counts are
summed over the corpus *before* dividing: corpus BLEU is not the mean of sentence BLEUs.

Worked example (one sentence, 13a tokens)::

    hypothesis  "the cat sat on the mat"       6 tokens
    reference   "the cat sat on a mat"         6 tokens
    1-grams  5/6 match (the, cat, sat, on, mat; the second "the" is clipped to the ref's one)
    2-grams  3/5 (the cat, cat sat, sat on)   3-grams 2/4   4-grams 1/3
    BLEU = 1.0 * exp((log 5/6 + log 3/5 + log 2/4 + log 1/3) / 4) = 0.5373 -> 53.73

A zero precision makes the geometric mean zero, which is harsh on single sentences. Smoothing
(Chen and Cherry, 2014) changes a zero count :math:`m_n = 0` of :math:`t_n` n-grams into:

* ``none``: nothing (a zero precision gives BLEU 0);
* ``floor``: :math:`p_n = \epsilon / t_n` (:math:`\epsilon = 0.1` by default);
* ``add-k``: for :math:`n > 1` add :math:`k` (default 1) to every match count and total;
* ``exp`` (default, NIST's mteval): the :math:`i`-th zero precision becomes :math:`1/(2^i t_n)`.

With ``use_effective_order`` the mean runs only over the orders the hypothesis has n-grams for
(a 2-word sentence is scored on 1- and 2-grams): what ``sentence_bleu`` does by default.

Exactly as sacrebleu: the score is a float in [0, 100], not rounded (its string form shows two
decimals); with ``add-k`` the reported ``counts`` and ``totals`` of orders above one include the
added ``k``, as sacrebleu reports them.

The same names mean the same thing: :func:`corpus_bleu` and :func:`sentence_bleu` default to
``exp`` smoothing like sacrebleu's functions, and :func:`bleu_from_statistics` to ``none`` like
sacrebleu's ``BLEU.compute_bleu``. The options of :func:`corpus_bleu` and :func:`sentence_bleu`
are keyword-only: sacrebleu takes them in another order (``smooth_method`` third, where minroots
had ``tokenize``), so a positional call would silently mean something else.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field

from minroots import __version__
from minroots.metrics._inputs import check_hypotheses, check_sentence, segment_references
from minroots.metrics.bleu_tokenizers import get_tokenizer
from minroots.validation import as_value_error, capped_int, one_of, real_number

__all__ = [
    "BLEUScore",
    "SMOOTH_METHODS",
    "corpus_bleu",
    "sentence_bleu",
    "bleu_statistics",
    "bleu_from_statistics",
    "ngram_counts",
]

# The smoothing methods and their default values (None: the method takes no value).
SMOOTH_METHODS = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}

MAX_NGRAM_ORDER = 4

# sacrebleu's floor for log(0): keeps the formula finite, and exp(-9999999999 / N) is 0.0.
_LOG_ZERO = -9999999999


@dataclass
class BLEUScore:
    """A BLEU score with the statistics it was computed from.

    ``score`` is in [0, 100]; ``counts[n-1]`` / ``totals[n-1]`` are the clipped matches and the
    hypothesis n-grams of order n, ``precisions`` the smoothed precisions in percent, ``bp`` the
    brevity penalty and ``sys_len`` / ``ref_len`` the hypothesis and effective reference lengths.
    ``str(score)`` reads like sacrebleu's::

        BLEU = 53.73 83.3/60.0/50.0/33.3 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)
    """

    score: float
    counts: list
    totals: list
    precisions: list[float]
    bp: float
    sys_len: int
    ref_len: int
    signature: str = field(default="", compare=False)
    name: str = field(default="BLEU", compare=False)

    @property
    def ratio(self) -> float:
        """Hypothesis length over reference length (0 when the reference is empty)."""
        return self.sys_len / self.ref_len if self.ref_len else 0

    def format(self, width: int = 2, signature: bool = False, score_only: bool = False) -> str:
        """The score line as sacrebleu prints it (``signature=True`` puts the signature in)."""
        score = f"{self.score:.{width}f}"
        if score_only:
            return score
        name = f"{self.name}|{self.signature}" if signature and self.signature else self.name
        precisions = "/".join(f"{p:.1f}" for p in self.precisions)
        return (
            f"{name} = {score} {precisions} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
            f"hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})"
        )

    def to_dict(self) -> dict:
        """The fields as plain Python values (for ``json.dumps``)."""
        return {
            "name": self.name,
            "score": self.score,
            "counts": list(self.counts),
            "totals": list(self.totals),
            "precisions": list(self.precisions),
            "bp": self.bp,
            "ratio": self.ratio,
            "sys_len": self.sys_len,
            "ref_len": self.ref_len,
            "signature": self.signature,
        }

    def __str__(self) -> str:
        return self.format()


def ngram_counts(tokens: list[str], max_order: int) -> list[Counter]:
    """Count the n-grams of ``tokens`` for each order 1..max_order (one Counter per order).

    >>> ngram_counts(["a", "b", "a", "b"], 2)
    [Counter({'a': 2, 'b': 2}), Counter({('a', 'b'): 2, ('b', 'a'): 1})]
    """
    counts = [Counter(tokens)]
    for n in range(2, max_order + 1):
        # zip(t, t[1:], ..., t[n-1:]) yields the n-grams as tuples, and Counter counts them in C.
        counts.append(Counter(zip(*[tokens[i:] for i in range(n)], strict=False)))
    return counts


def _closest_ref_len(hyp_len: int, ref_lens: list[int]) -> int:
    """The reference length closest to ``hyp_len``; the shorter one on a tie."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


class _Preprocess:
    """Lowercase (optionally) and tokenize a line, as sacrebleu does before counting."""

    def __init__(self, tokenize: str, lowercase: bool):
        self.tokenizer = get_tokenizer(tokenize)
        self.lowercase = lowercase

    def __call__(self, line: str) -> list[str]:
        if self.lowercase:
            line = line.lower()
        return self.tokenizer(line.rstrip()).split()


def _reference_info(refs: list[list[str]], max_order: int) -> tuple[list[Counter], list[int]]:
    """Merge the n-gram counts of several references: each n-gram keeps its largest count."""
    merged = ngram_counts(refs[0], max_order)
    for ref in refs[1:]:
        for n, counts in enumerate(ngram_counts(ref, max_order)):
            target = merged[n]
            for gram, count in counts.items():
                if count > target.get(gram, 0):
                    target[gram] = count
    return merged, [len(r) for r in refs]


def _segment_statistics(hyp: list[str], ref_counts, ref_lens, max_order: int) -> list[int]:
    """``[hyp_len, ref_len, correct_1..N, total_1..N]`` for one hypothesis."""
    hyp_len = len(hyp)
    correct = [0] * max_order
    total = [0] * max_order
    for n, counts in enumerate(ngram_counts(hyp, max_order)):
        ref = ref_counts[n]
        matched = 0
        for gram, count in counts.items():
            in_ref = ref.get(gram)
            if in_ref:
                matched += count if count < in_ref else in_ref
        correct[n] = matched
        total[n] = max(hyp_len - n, 0)  # the number of n-grams: sum(counts.values())
    return [hyp_len, _closest_ref_len(hyp_len, ref_lens)] + correct + total


MAX_ORDER = 100  # n-gram orders above this are typos (BLEU uses 4), and would cost memory


def _check_options(where, tokenize, smooth_method, smooth_value, max_ngram_order):
    get_tokenizer(tokenize)  # raises a ValueError naming the choices
    one_of(where, "smooth_method", smooth_method, list(SMOOTH_METHODS))
    if smooth_value is not None:
        real_number(where, "smooth_value", smooth_value, low=0)
    as_value_error(capped_int, where, "max_ngram_order", max_ngram_order, high=MAX_ORDER,
                   why="BLEU uses 4")  # fmt: skip


def bleu_statistics(
    hypotheses,
    references,
    tokenize: str = "13a",
    lowercase: bool = False,
    max_ngram_order: int = MAX_NGRAM_ORDER,
) -> list[list[int]]:
    """Per-sentence sufficient statistics ``[hyp_len, ref_len, correct..., total...]``.

    Summing them column-wise and calling :func:`bleu_from_statistics` gives corpus BLEU; keeping
    them per sentence is what bootstrap resampling and paired significance tests need.
    """
    hypotheses = check_hypotheses(hypotheses, where="bleu_statistics")
    per_segment = segment_references(hypotheses, references, "bleu_statistics")
    _check_options("bleu_statistics", tokenize, "none", None, max_ngram_order)
    prep = _Preprocess(tokenize, lowercase)
    stats = []
    for hyp, refs in zip(hypotheses, per_segment, strict=True):
        ref_counts, ref_lens = _reference_info([prep(r) for r in refs], max_ngram_order)
        stats.append(_segment_statistics(prep(hyp), ref_counts, ref_lens, max_ngram_order))
    return stats


def bleu_from_statistics(
    correct: list,
    total: list,
    sys_len: int,
    ref_len: int,
    smooth_method: str = "none",
    smooth_value: float | None = None,
    effective_order: bool = False,
    max_ngram_order: int = MAX_NGRAM_ORDER,
) -> BLEUScore:
    """BLEU from corpus-level counts: brevity penalty, smoothed precisions, geometric mean.

    The arguments and their defaults are those of sacrebleu's ``BLEU.compute_bleu``: no
    smoothing unless asked (``corpus_bleu`` asks for ``exp``).

    >>> bleu_from_statistics([5, 3, 2, 1], [6, 5, 4, 3], 6, 6).score  # doctest: +ELLIPSIS
    53.7284965911...
    """
    _check_options("bleu_from_statistics", "none", smooth_method, smooth_value, max_ngram_order)
    if smooth_value is None:
        smooth_value = SMOOTH_METHODS[smooth_method]
    correct, total = list(correct), list(total)

    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0

    precisions = [0.0] * max_ngram_order
    if not any(correct):  # no matching n-gram at all: BLEU is 0 whatever the smoothing
        return BLEUScore(0.0, correct, total, precisions, bp, sys_len, ref_len)

    smooth_mteval = 1.0
    eff_order = max_ngram_order
    for n in range(1, max_ngram_order + 1):
        if smooth_method == "add-k" and n > 1:
            correct[n - 1] += smooth_value
            total[n - 1] += smooth_value
        if total[n - 1] == 0:  # no n-grams of this order (nor of any higher one)
            break
        if effective_order:
            eff_order = n
        if correct[n - 1] == 0:
            if smooth_method == "exp":
                smooth_mteval *= 2
                precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1])
            elif smooth_method == "floor":
                precisions[n - 1] = 100.0 * smooth_value / total[n - 1]
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]

    log_sum = sum([math.log(p) if p != 0.0 else _LOG_ZERO for p in precisions[:eff_order]])
    score = bp * math.exp(log_sum / eff_order)
    return BLEUScore(score, correct, total, precisions, bp, sys_len, ref_len)


def _signature(nrefs, lowercase, effective_order, tokenize, smooth_method, smooth_value) -> str:
    """sacrebleu's reproducibility signature, with minroots' version."""
    smooth = smooth_method
    default = SMOOTH_METHODS[smooth_method]
    if default is not None:
        smooth += f"[{(default if smooth_value is None else smooth_value):.2f}]"
    return (
        f"nrefs:{nrefs}|case:{'lc' if lowercase else 'mixed'}|"
        f"eff:{'yes' if effective_order else 'no'}|tok:{tokenize}|smooth:{smooth}|"
        f"version:minroots-{__version__}"
    )


def corpus_bleu(
    hypotheses,
    references,
    *,
    tokenize: str = "13a",
    smooth_method: str = "exp",
    smooth_value: float | None = None,
    lowercase: bool = False,
    force: bool = False,
    use_effective_order: bool = False,
    max_ngram_order: int = MAX_NGRAM_ORDER,
) -> BLEUScore:
    """Corpus BLEU of ``hypotheses`` against reference streams, equal to ``sacrebleu.corpus_bleu``.

    Args:
        hypotheses: one string per sentence.
        references: a list of reference streams, each a list with one string (or ``None``) per
            hypothesis: ``[refs]`` for one reference per sentence, ``[refs_a, refs_b]`` for two.

    The options below are keyword-only (sacrebleu's positional order differs):
        tokenize: ``"13a"`` (default), ``"intl"``, ``"zh"``, ``"char"`` or ``"none"``.
        smooth_method: ``"exp"`` (default), ``"floor"``, ``"add-k"`` or ``"none"``.
        smooth_value: the value for ``floor`` (0.1) or ``add-k`` (1); None for the default.
        lowercase: lowercase hypotheses and references first.
        force: do not warn about input that looks tokenized already (lines ending in ``" ."``).
        use_effective_order: average only over the n-gram orders that occur.

    >>> corpus_bleu(["the cat sat on the mat"], [["the cat sat on a mat"]]).score  # doctest: +ELLIPSIS
    53.7284965911...
    """
    _check_options("corpus_bleu", tokenize, smooth_method, smooth_value, max_ngram_order)
    hypotheses = check_hypotheses(hypotheses, where="corpus_bleu")
    per_segment = segment_references(hypotheses, references, "corpus_bleu")
    if not force and sum(h.endswith(" .") for h in hypotheses) >= 100:
        warnings.warn(
            "corpus_bleu: 100 or more hypotheses end in ' .', which looks tokenized already; "
            "BLEU expects detokenized text (pass force=True to silence this)",
            stacklevel=2,
        )
    prep = _Preprocess(tokenize, lowercase)
    totals = [0] * (2 + 2 * max_ngram_order)
    for hyp, refs in zip(hypotheses, per_segment, strict=True):
        ref_counts, ref_lens = _reference_info([prep(r) for r in refs], max_ngram_order)
        stats = _segment_statistics(prep(hyp), ref_counts, ref_lens, max_ngram_order)
        for i, value in enumerate(stats):
            totals[i] += value
    result = bleu_from_statistics(
        totals[2 : 2 + max_ngram_order],
        totals[2 + max_ngram_order :],
        totals[0],
        totals[1],
        smooth_method=smooth_method,
        smooth_value=smooth_value,
        effective_order=use_effective_order,
        max_ngram_order=max_ngram_order,
    )
    nrefs = {len(refs) for refs in per_segment}
    result.signature = _signature(
        nrefs.pop() if len(nrefs) == 1 else "var",
        lowercase,
        use_effective_order,
        tokenize,
        smooth_method,
        smooth_value,
    )
    return result


def sentence_bleu(
    hypothesis: str,
    references,
    *,
    tokenize: str = "13a",
    smooth_method: str = "exp",
    smooth_value: float | None = None,
    lowercase: bool = False,
    use_effective_order: bool = True,
    max_ngram_order: int = MAX_NGRAM_ORDER,
) -> BLEUScore:
    """BLEU of one hypothesis against its references (a list of strings), as sacrebleu's.

    Effective order is on by default: a short sentence is not scored on n-grams it cannot have.
    Here 1- and 2-grams all match, there are no 3- or 4-grams, and only the brevity penalty
    :math:`e^{1 - 3/2}` remains:

    >>> round(sentence_bleu("the cat", ["the cat sat"]).score, 4)
    60.6531
    """
    hypothesis, references = check_sentence(hypothesis, references, "sentence_bleu")
    return corpus_bleu(
        [hypothesis],
        [[ref] for ref in references],
        tokenize=tokenize,
        smooth_method=smooth_method,
        smooth_value=smooth_value,
        lowercase=lowercase,
        force=True,
        use_effective_order=use_effective_order,
        max_ngram_order=max_ngram_order,
    )
