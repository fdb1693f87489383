r"""chrF and chrF++: character n-gram F-scores, computed exactly as sacrebleu computes them.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

chrF (Popović, 2015) needs no tokenizer: it compares the *character* n-grams of hypothesis and
reference, :math:`n = 1 \dots 6`, with whitespace removed. chrF++ (Popović, 2017) adds word
unigrams and bigrams (``word_order=2``). For each order :math:`n` the corpus counts give

.. math::

    P_n = \frac{m_n}{h_n}, \qquad R_n = \frac{m_n}{r_n}, \qquad
    \mathrm{chrF}_\beta = 100 \cdot \frac{(1 + \beta^2)\, \bar P \bar R}{\beta^2 \bar P + \bar R}

where :math:`h_n, r_n` count hypothesis and reference n-grams, :math:`m_n` the clipped matches,
and :math:`\bar P, \bar R` average :math:`P_n, R_n` over the orders that occur in both (sacrebleu's
"effective order"). :math:`\beta = 2` weighs recall twice as much as precision. With several
references, each sentence keeps the statistics of its best-scoring reference.

Worked example, ``char_order=2, word_order=0``: hypothesis ``"ab"``, reference ``"abc"``::

    1-grams: h = 2 (a, b), r = 3 (a, b, c), m = 2     P1 = 1,  R1 = 2/3
    2-grams: h = 1 (ab),   r = 2 (ab, bc),  m = 1     P2 = 1,  R2 = 1/2
    P = 1, R = 7/12;  chrF2 = 100 * 5 * 7/12 / (4 + 7/12) = 63.64

With ``eps_smoothing=True`` the score is instead the mean over *all* orders of the per-order F
scores, with a tiny epsilon for empty orders (as chrF++.py, Moses and NLTK compute it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import add

from minroots import __version__
from minroots.metrics._inputs import check_hypotheses, check_sentence, segment_references
from minroots.validation import as_value_error, capped_int, real

MAX_ORDER = 100  # n-gram orders above this are typos (chrF uses 6), and would cost memory

__all__ = ["CHRFScore", "corpus_chrf", "sentence_chrf", "char_ngrams", "chrf_words"]

_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_EPS = 1e-16


@dataclass
class CHRFScore:
    """A chrF score in [0, 100]; ``name`` is ``chrF2`` (or ``chrF2++`` with word n-grams)."""

    score: float
    char_order: int
    word_order: int
    beta: int
    signature: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return f"chrF{self.beta}" + "+" * self.word_order

    def format(self, width: int = 2, signature: bool = False, score_only: bool = False) -> str:
        """The score line as sacrebleu prints it, e.g. ``chrF2 = 63.64``."""
        score = f"{self.score:.{width}f}"
        if score_only:
            return score
        name = f"{self.name}|{self.signature}" if signature and self.signature else self.name
        return f"{name} = {score}"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "score": self.score,
            "char_order": self.char_order,
            "word_order": self.word_order,
            "beta": self.beta,
            "signature": self.signature,
        }

    def __str__(self) -> str:
        return self.format()


def char_ngrams(line: str, max_order: int, include_whitespace: bool = False) -> list[Counter]:
    """Character n-gram counts of orders 1..max_order (whitespace removed unless asked).

    >>> char_ngrams("ab a", 2)
    [Counter({'a': 2, 'b': 1}), Counter({'ab': 1, 'ba': 1})]
    """
    if max_order < 1:
        return []
    if not include_whitespace:
        line = "".join(line.split())
    counts = [Counter(line)]
    if max_order >= 2:
        pairs = list(map(add, line, line[1:]))  # "abc" -> ["ab", "bc"], built in C
        counts.append(Counter(pairs))
        grams = pairs
        for n in range(3, max_order + 1):
            # Grow each (n-1)-gram by the character that follows it: grams[i] + line[i + n - 1].
            grams = list(map(add, grams, line[n - 1 :]))
            counts.append(Counter(grams))
    return counts


def chrf_words(line: str) -> list[str]:
    """chrF++'s word split: whitespace, then one punctuation mark split off each word's end.

    A final punctuation mark is split off first; otherwise a leading one (so ``"(hi)"`` gives
    ``["(hi", ")"]``, as in sacrebleu and the original chrF++.py).

    >>> chrf_words("Hello, (world) x.")
    ['Hello', ',', '(world', ')', 'x', '.']
    """
    words = []
    for w in line.split():
        if len(w) == 1:
            words.append(w)
        elif w[-1] in _PUNCTUATION:
            words += [w[:-1], w[-1]]
        elif w[0] in _PUNCTUATION:
            words += [w[0], w[1:]]
        else:
            words.append(w)
    return words


def _word_ngrams(words: list[str], max_order: int) -> list[Counter]:
    """Word n-gram counts of orders 1..max_order, each n-gram joined by single spaces."""
    return [
        Counter([" ".join(words[i : i + n]) for i in range(len(words) - n + 1)])
        for n in range(1, max_order + 1)
    ]


class _CHRF:
    """The options of one chrF computation, and the per-sentence statistics it needs."""

    def __init__(self, char_order, word_order, beta, lowercase, whitespace, eps_smoothing):
        for name, value in (("char_order", char_order), ("word_order", word_order)):
            as_value_error(capped_int, "corpus_chrf", name, value, low=0, high=MAX_ORDER,
                           why="chrF uses 6 and 2")  # fmt: skip
        if char_order + word_order == 0:
            raise ValueError("corpus_chrf: char_order + word_order must be at least 1, got 0 + 0")
        as_value_error(real, "corpus_chrf", "beta", beta, low=0)
        self.char_order, self.word_order, self.beta = char_order, word_order, beta
        self.lowercase, self.whitespace, self.eps_smoothing = lowercase, whitespace, eps_smoothing

    def ngrams(self, line: str) -> list[Counter]:
        if self.lowercase:
            line = line.lower()
        counts = char_ngrams(line, self.char_order, self.whitespace)
        if self.word_order > 0:
            counts += _word_ngrams(chrf_words(line), self.word_order)
        return counts

    @staticmethod
    def _match(hyp: Counter, ref: Counter) -> list[int]:
        """``[hyp n-grams, ref n-grams, matches]`` for one order."""
        matched = hyp_count = 0
        for gram, count in hyp.items():
            hyp_count += count
            in_ref = ref.get(gram)
            if in_ref:
                matched += count if count < in_ref else in_ref
        # As sacrebleu: an order the reference lacks counts no hypothesis n-grams.
        return [hyp_count if ref else 0, sum(ref.values()), matched]

    def f_score(self, stats: list) -> float:
        """The chrF score (0..100) of flattened ``[h, r, m] * orders`` statistics."""
        factor = self.beta**2
        score = avg_prec = avg_rec = 0.0
        effective_order = 0
        orders = self.char_order + self.word_order
        for i in range(orders):
            n_hyp, n_ref, n_match = stats[3 * i : 3 * i + 3]
            prec = n_match / n_hyp if n_hyp > 0 else _EPS
            rec = n_match / n_ref if n_ref > 0 else _EPS
            denom = factor * prec + rec
            score += ((1 + factor) * prec * rec / denom) if denom > 0 else _EPS
            if n_hyp > 0 and n_ref > 0:
                avg_prec += prec
                avg_rec += rec
                effective_order += 1
        if self.eps_smoothing:
            return 100 * score / orders
        if effective_order == 0:
            return 0.0
        avg_prec /= effective_order
        avg_rec /= effective_order
        if avg_prec + avg_rec:
            # The same operations in the same order as sacrebleu, so the floats agree exactly.
            score = (1 + factor) * avg_prec * avg_rec
            score /= (factor * avg_prec) + avg_rec
            return 100 * score
        return 0.0

    def segment_statistics(self, hyp: str, refs: list[str]) -> list[int]:
        """The statistics of ``hyp`` against its best reference (highest sentence chrF)."""
        hyp_ngrams = self.ngrams(hyp)
        best_stats, best_f = [], -1.0
        for ref in refs:
            stats = []
            for h, r in zip(hyp_ngrams, self.ngrams(ref), strict=True):
                stats += self._match(h, r)
            f = self.f_score(stats)
            if f > best_f:
                best_f, best_stats = f, stats
        return best_stats

    def signature(self, nrefs) -> str:
        return (
            f"nrefs:{nrefs}|case:{'lc' if self.lowercase else 'mixed'}|"
            f"eff:{'no' if self.eps_smoothing else 'yes'}|nc:{self.char_order}|"
            f"nw:{self.word_order}|space:{'yes' if self.whitespace else 'no'}|"
            f"version:minroots-{__version__}"
        )


def corpus_chrf(
    hypotheses,
    references,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    *,
    lowercase: bool = False,
    whitespace: bool = False,
    eps_smoothing: bool = False,
) -> CHRFScore:
    """Corpus chrF (``word_order=0``) or chrF++ (``word_order=2``), equal to sacrebleu's CHRF.

    ``references`` is a list of reference streams aligned with ``hypotheses``, as for
    :func:`~minroots.metrics.bleu.corpus_bleu`. ``whitespace=True`` keeps spaces inside character
    n-grams (sacrebleu's ``remove_whitespace=False``). The options after ``beta`` are
    keyword-only: the sixth positional argument of sacrebleu's ``corpus_chrf`` is
    ``remove_whitespace``, the opposite of ``whitespace``, so a positional call would silently
    mean something else.

    >>> round(corpus_chrf(["ab"], [["abc"]], char_order=2).score, 2)
    63.64
    """
    metric = _CHRF(char_order, word_order, beta, lowercase, whitespace, eps_smoothing)
    hypotheses = check_hypotheses(hypotheses, where="corpus_chrf")
    per_segment = segment_references(hypotheses, references, "corpus_chrf")
    totals = [0] * (3 * (char_order + word_order))
    for hyp, refs in zip(hypotheses, per_segment, strict=True):
        for i, value in enumerate(metric.segment_statistics(hyp, refs)):
            totals[i] += value
    nrefs = {len(refs) for refs in per_segment}
    return CHRFScore(
        metric.f_score(totals),
        char_order,
        word_order,
        beta,
        signature=metric.signature(nrefs.pop() if len(nrefs) == 1 else "var"),
    )


def sentence_chrf(
    hypothesis: str,
    references,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    *,
    lowercase: bool = False,
    whitespace: bool = False,
    eps_smoothing: bool = False,
) -> CHRFScore:
    """chrF of one hypothesis against a list of reference strings (the best one counts)."""
    hypothesis, references = check_sentence(hypothesis, references, "sentence_chrf")
    return corpus_chrf(
        [hypothesis],
        [[ref] for ref in references],
        char_order=char_order,
        word_order=word_order,
        beta=beta,
        lowercase=lowercase,
        whitespace=whitespace,
        eps_smoothing=eps_smoothing,
    )
