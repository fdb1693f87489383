r"""ROUGE-N, ROUGE-L and ROUGE-Lsum, computed exactly as Google's rouge-score computes them.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

ROUGE (Lin, 2004) scores a predicted summary against a target (reference) summary by overlap,
reporting precision (how much of the prediction is in the target), recall (how much of the
target the prediction recovers) and their harmonic mean :math:`F = 2PR / (P + R)`.

* ROUGE-N counts n-grams, clipped: with :math:`c_t(g), c_p(g)` the counts of n-gram :math:`g`,

  .. math:: \text{overlap} = \sum_g \min\big(c_t(g), c_p(g)\big), \quad
            P = \frac{\text{overlap}}{\max(\#\text{pred n-grams}, 1)}, \quad
            R = \frac{\text{overlap}}{\max(\#\text{target n-grams}, 1)}

* ROUGE-L uses the longest common subsequence (in order, gaps allowed) of the two token lists:
  :math:`P = \mathrm{LCS}/|p|`, :math:`R = \mathrm{LCS}/|t|`.
* ROUGE-Lsum splits both texts into sentences at newlines and, for each target sentence, takes
  the *union* of its LCS with every predicted sentence; a token is counted at most as many times
  as it occurs in both texts ("summary-level LCS", section 3.2 of the paper).

Worked example, target ``"the cat sat on the mat"`` and prediction ``"the cat lay on the mat"``::

    ROUGE-1: overlap 5 (the x2, cat, on, mat) of 6 and 6      P = R = F = 5/6
    ROUGE-2: (the cat), (on the), (the mat) match: 3 of 5      P = R = F = 3/5
    ROUGE-L: LCS "the cat on the mat" = 5 tokens               P = R = F = 5/6

Tokenization (rouge-score's default): lowercase, replace every run of characters other than
``a-z0-9`` by a space, split; with ``use_stemmer`` every token longer than 3 characters is
Porter-stemmed (:mod:`minroots.metrics.porter`). Non-Latin text therefore yields no tokens:
two identical Chinese summaries score 0, so :meth:`RougeScorer.score` warns when a non-empty
text has no tokens. ``tokenizer="cjk"`` (:func:`rouge_tokenize_cjk`) scores Chinese, Japanese
and Korean text at the character level, as is usual for Chinese ROUGE: every Han character,
kana and Hangul syllable is a token, and Latin words and numbers stay tokens as above::

    rouge_tokenize_cjk("GNOME 磁盘分析器")  ->  ['gnome', '磁', '盘', '分', '析', '器']
    target "磁盘空间分析器", prediction "磁盘分析工具" (7 and 6 characters):
    ROUGE-1: 磁 盘 分 析 shared, overlap 4      P = 4/6, R = 4/7, F = 8/13
    ROUGE-2: (磁盘), (分析) shared: 2           P = 2/5, R = 2/6, F = 4/11

Speed: ROUGE-L's LCS length uses a bit-parallel algorithm (Allison and Dix, 1986; Hyyrö, 2004):
one big-integer update per prediction token instead of a row of the DP table, and each word is
stemmed once per scorer (a cache), where rouge-score stems every occurrence.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from typing import NamedTuple

from minroots.metrics.porter import porter_stem
from minroots.validation import shown

__all__ = [
    "Score",
    "RougeScorer",
    "rouge_tokenize",
    "rouge_tokenize_cjk",
    "lcs_length",
    "lcs_table",
]

# rouge-score replaces runs of other characters by spaces and splits on whitespace; finding the
# runs of [a-z0-9] directly gives the same tokens in one pass.
_ALPHANUMERIC_RUN = re.compile(r"[a-z0-9]+")
# rouge-score's names: rouge1 .. rouge9 (one digit; "rouge10" is refused, as rouge-score does).
_ROUGE_N = re.compile(r"rouge[1-9]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Score(NamedTuple):
    """Precision, recall and F-measure, each in [0, 1] (rouge-score's ``Score`` tuple)."""

    precision: float
    recall: float
    fmeasure: float


def _fmeasure(precision: float, recall: float) -> float:
    """Harmonic mean :math:`2PR/(P+R)`, 0 when both are 0."""
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_tokenize(text: str, stem=None) -> list[str]:
    """rouge-score's default tokenizer; ``stem`` is applied to tokens longer than 3 characters.

    >>> rouge_tokenize("The cats' 2 toys -- RUNNING!", porter_stem)
    ['the', 'cat', '2', 'toy', 'run']
    """
    tokens = _ALPHANUMERIC_RUN.findall(text.lower())
    if stem is not None:
        tokens = [stem(t) if len(t) > 3 else t for t in tokens]
    return tokens


# One CJK character (Han ideographs with extensions A and B-F, compatibility ideographs, kana,
# Hangul syllables) or one run of [a-z0-9], as rouge_tokenize keeps them.
_CJK_OR_ALNUM = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
    r"|[a-z0-9]+"
)


def rouge_tokenize_cjk(text: str, stem=None) -> list[str]:
    """Character-level tokens for CJK text; Latin words and numbers as in :func:`rouge_tokenize`.

    Each Han character, kana or Hangul syllable is one token; runs of ``a-z0-9`` (after
    lowercasing) are tokens too, stemmed like rouge-score's when ``stem`` is given; everything
    else (punctuation, full-width forms: fold them first with
    :func:`minroots.tokenizers.cleaning.fold_width`) separates tokens.

    >>> rouge_tokenize_cjk("GNOME 磁盘分析器，2 个")
    ['gnome', '磁', '盘', '分', '析', '器', '2', '个']
    """
    tokens = _CJK_OR_ALNUM.findall(text.lower())
    if stem is not None:
        tokens = [stem(t) if len(t) > 3 else t for t in tokens]
    return tokens


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of ``a`` and ``b``, bit-parallel.

    Bit ``i`` of ``v`` stands for ``a[i]``; a 0 bit marks a position where the LCS grows. For
    each ``y`` in ``b``, with ``u = v & match[y]`` (the 1 bits of ``v`` where ``a[i] == y``)::

        v = (v + u) | (v - u)

    the addition carries each matched bit to the next 1 bit on its left (Hyyrö, 2004). At the
    end the LCS length is the number of 0 bits among the low ``len(a)`` bits.

    >>> lcs_length("ABCBDAB", "BDCABA")
    4
    """
    if not a or not b:
        return 0
    match: dict = {}
    for i, x in enumerate(a):
        match[x] = match.get(x, 0) | (1 << i)
    mask = (1 << len(a)) - 1
    v = mask
    for y in b:
        u = v & match.get(y, 0)
        if u:
            v = ((v + u) | (v - u)) & mask
    return len(a) - v.bit_count()


def lcs_table(ref: list, can: list) -> list[list[int]]:
    r"""The dynamic-programming table: ``t[i][j]`` = LCS length of ``ref[:i]`` and ``can[:j]``.

    .. math:: t_{i,j} = \begin{cases} t_{i-1,j-1} + 1 & \text{ref}_i = \text{can}_j \\
              \max(t_{i-1,j},\, t_{i,j-1}) & \text{otherwise} \end{cases}
    """
    table = [[0] * (len(can) + 1)]
    for r in ref:
        above = table[-1]
        row = [0]
        for j, c in enumerate(can):
            if r == c:
                row.append(above[j] + 1)
            else:
                left, up = row[j], above[j + 1]
                row.append(left if left > up else up)
        table.append(row)
    return table


def _lcs_indices(ref: list, can: list) -> list[int]:
    """Indices into ``ref`` of one LCS, read back from the table as rouge-score reads it.

    Which LCS is chosen matters for ROUGE-Lsum's union, so ties go the same way: step left
    (in ``can``) only when that keeps a strictly longer LCS, otherwise step up (in ``ref``).
    """
    t = lcs_table(ref, can)
    i, j = len(ref), len(can)
    indices = []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            indices.append(i - 1)
            i -= 1
            j -= 1
        elif t[i][j - 1] > t[i - 1][j]:
            j -= 1
        else:
            i -= 1
    indices.reverse()
    return indices


def _ngrams(tokens: list[str], n: int) -> list:
    """The n-grams of ``tokens`` in order: the tokens themselves for n = 1, tuples otherwise."""
    if n == 1:
        return tokens
    if n == 2:
        return list(zip(tokens, tokens[1:], strict=False))
    return list(zip(*[tokens[i:] for i in range(n)], strict=False))


def _clipped_overlap(a: list, b: list) -> int:
    r""":math:`\sum_g \min(c_a(g), c_b(g))`, the number of n-grams ``a`` and ``b`` share.

    Sets do most of the work in C: n-grams present on only one side are dropped first, and when
    neither side repeats an n-gram (most sentences) the overlap is just the size of the
    intersection. Otherwise only the shared n-grams are counted.
    """
    set_a, set_b = set(a), set(b)
    common = set_a & set_b
    if not common:
        return 0
    if len(set_a) == len(a) and len(set_b) == len(b):
        return len(common)
    if len(a) + len(b) <= 64:  # short texts: list.count (a C loop) beats building two Counters
        return sum(min(a.count(g), b.count(g)) for g in common)
    count_a, count_b = Counter(a), Counter(b)
    return sum(min(count_a[g], count_b[g]) for g in common)


def _score_ngrams(target: list[str], prediction: list[str], n: int) -> Score:
    target_ngrams = _ngrams(target, n)
    prediction_ngrams = _ngrams(prediction, n)
    overlap = _clipped_overlap(target_ngrams, prediction_ngrams)
    precision = overlap / max(len(prediction_ngrams), 1)
    recall = overlap / max(len(target_ngrams), 1)
    return Score(precision, recall, _fmeasure(precision, recall))


def _score_lcs(target: list[str], prediction: list[str]) -> Score:
    if not target or not prediction:
        return Score(0.0, 0.0, 0.0)
    lcs = lcs_length(target, prediction)
    precision = lcs / len(prediction)
    recall = lcs / len(target)
    return Score(precision, recall, _fmeasure(precision, recall))


def _score_summary_lcs(target_sents: list[list[str]], pred_sents: list[list[str]]) -> Score:
    """ROUGE-Lsum: union LCS of each target sentence with all predicted sentences."""
    if not target_sents or not pred_sents:
        return Score(0.0, 0.0, 0.0)
    m = sum(map(len, target_sents))
    n = sum(map(len, pred_sents))
    if not n or not m:
        return Score(0.0, 0.0, 0.0)
    # Tokens left to credit, so that no token counts more often than it occurs on either side.
    left_in_target = Counter(t for s in target_sents for t in s)
    left_in_pred = Counter(t for s in pred_sents for t in s)
    hits = 0
    for ref in target_sents:
        union = sorted(set().union(*[_lcs_indices(ref, can) for can in pred_sents]))
        for token in (ref[i] for i in union):
            if left_in_pred[token] > 0 and left_in_target[token] > 0:
                hits += 1
                left_in_pred[token] -= 1
                left_in_target[token] -= 1
    recall = hits / m
    precision = hits / n
    return Score(precision, recall, _fmeasure(precision, recall))


def _plan_step(rouge_type: str) -> tuple[str, str, int]:
    """What a ROUGE type computes: ``("rouge2", "n", 2)``, ``("rougeL", "lcs", 0)``, ..."""
    if rouge_type == "rougeL":
        return rouge_type, "lcs", 0
    if rouge_type == "rougeLsum":
        return rouge_type, "lsum", 0
    return rouge_type, "n", int(rouge_type[5:])


class RougeScorer:
    """Compute ROUGE scores between a target and a prediction (rouge-score's ``RougeScorer``).

    Args:
        rouge_types: names among ``"rouge1"`` to ``"rouge9"`` (n-grams of 1 to 9 tokens),
            ``"rougeL"`` and ``"rougeLsum"``: rouge-score's names, which it reads with
            ``rouge[0-9]$`` (so ``"rouge10"`` is an error in both libraries, not 10-grams).
        use_stemmer: Porter-stem tokens longer than 3 characters.
        split_summaries: for ROUGE-Lsum, split sentences at ``.``, ``!`` or ``?`` followed by
            whitespace (in addition to newlines). rouge-score uses NLTK's punkt model here, which
            handles abbreviations; this simple rule does not, so scores may differ from it.
        tokenizer: ``None`` (rouge-score's tokenizer: ``a-z0-9`` only), ``"cjk"`` (one token
            per Chinese, Japanese or Korean character, :func:`rouge_tokenize_cjk`), or an object
            with a ``tokenize(text) -> list[str]`` method to use instead.

    With the default tokenizer, a target or prediction that is not blank but has no tokens (it
    is written in another script) raises a ``UserWarning``: it would score 0 whatever it says.

    >>> scorer = RougeScorer(["rouge1", "rougeL"])
    >>> scorer.score("the cat sat on the mat", "the cat lay on the mat")["rouge1"].fmeasure
    0.8333333333333334
    """

    def __init__(self, rouge_types, use_stemmer=False, split_summaries=False, tokenizer=None):
        if isinstance(rouge_types, str):
            raise TypeError(f"RougeScorer: rouge_types must be a list of names, got the str "
                            f"{rouge_types!r} (write [{rouge_types!r}])")  # fmt: skip
        self.rouge_types = list(rouge_types)
        if not self.rouge_types:
            raise ValueError("RougeScorer: rouge_types must name at least one ROUGE type, got none")
        for name in self.rouge_types:
            if name not in ("rougeL", "rougeLsum") and not (
                isinstance(name, str) and _ROUGE_N.fullmatch(name)
            ):
                raise ValueError(
                    f"RougeScorer: unknown ROUGE type {name!r}: expected 'rouge1' to 'rouge9' (one "
                    "digit, as in rouge-score), 'rougeL' or 'rougeLsum'"
                )
        # What each type needs, worked out once: ("n", N), ("lcs", 0) or ("lsum", 0).
        self._plan = [_plan_step(name) for name in self.rouge_types]
        self._needs_tokens = any(kind != "lsum" for _, kind, _ in self._plan)
        if (
            tokenizer is not None
            and tokenizer != "cjk"
            and not callable(getattr(tokenizer, "tokenize", None))
        ):
            raise TypeError(
                f"RougeScorer: tokenizer must be None, 'cjk' or an object with a tokenize(text) "
                f"method, got {shown(tokenizer)}"
            )
        self.use_stemmer = use_stemmer
        self.split_summaries = split_summaries
        self._tokenizer = tokenizer
        self._stems: dict[str, str] = {}

    def _stem(self, token: str) -> str:
        stem = self._stems.get(token)
        if stem is None:
            stem = self._stems[token] = porter_stem(token)
        return stem

    def tokenize(self, text: str) -> list[str]:
        """The tokens ROUGE compares (see :func:`rouge_tokenize`)."""
        stem = self._stem if self.use_stemmer else None
        if self._tokenizer == "cjk":
            return rouge_tokenize_cjk(text, stem)
        if self._tokenizer is not None:
            return self._tokenizer.tokenize(text)
        return rouge_tokenize(text, stem)

    def _warn_if_no_tokens(self, name: str, text: str, num_tokens: int) -> None:
        """The default tokenizer drops non-Latin scripts: say so instead of scoring 0 silently."""
        if self._tokenizer is None and num_tokens == 0 and text.strip():
            warnings.warn(
                f"RougeScorer: the {name} {text[:30]!r} has no tokens under rouge-score's default "
                "tokenizer (it keeps only a-z and 0-9), so it scores 0; for Chinese, Japanese or "
                "Korean text pass tokenizer='cjk'",
                UserWarning,
                stacklevel=3,
            )

    def _sentences(self, text: str) -> list[str]:
        sentences = text.split("\n")
        if self.split_summaries:
            sentences = [s for line in sentences for s in _SENTENCE_END.split(line)]
        return [s for s in sentences if len(s)]

    def score(self, target: str, prediction: str) -> dict[str, Score]:
        """A :class:`Score` per ROUGE type for one target and one prediction."""
        for name, value in (("target", target), ("prediction", prediction)):
            if not isinstance(value, str):
                raise TypeError(f"RougeScorer.score: {name} must be a string, got "
                                f"{type(value).__name__}")  # fmt: skip
        target_tokens = prediction_tokens = None
        if self._needs_tokens:
            target_tokens = self.tokenize(target)
            prediction_tokens = self.tokenize(prediction)
            self._warn_if_no_tokens("target", target, len(target_tokens))
            self._warn_if_no_tokens("prediction", prediction, len(prediction_tokens))
        result = {}
        for rouge_type, kind, n in self._plan:
            if kind == "n":
                result[rouge_type] = _score_ngrams(target_tokens, prediction_tokens, n)
            elif kind == "lcs":
                result[rouge_type] = _score_lcs(target_tokens, prediction_tokens)
            else:
                target_sents = [self.tokenize(s) for s in self._sentences(target)]
                pred_sents = [self.tokenize(s) for s in self._sentences(prediction)]
                if not self._needs_tokens:
                    self._warn_if_no_tokens("target", target, sum(map(len, target_sents)))
                    self._warn_if_no_tokens("prediction", prediction, sum(map(len, pred_sents)))
                result[rouge_type] = _score_summary_lcs(target_sents, pred_sents)
        return result

    def score_multi(self, targets, prediction: str) -> dict[str, Score]:
        """Score against several targets; per ROUGE type keep the target with the best F."""
        if isinstance(targets, str):
            raise TypeError("RougeScorer.score_multi: targets must be a list of strings, got a str "
                            "(wrap a single target: [target])")  # fmt: skip
        targets = list(targets)
        if not targets:
            raise ValueError("RougeScorer.score_multi: targets must hold at least one target string, "
                             "got none")  # fmt: skip
        per_target = [self.score(t, prediction) for t in targets]
        best = {}
        for rouge_type in self.rouge_types:
            # max() keeps the first of equal maxima, as numpy.argmax does in rouge-score.
            best_index = max(range(len(targets)), key=lambda k: per_target[k][rouge_type].fmeasure)
            best[rouge_type] = per_target[best_index][rouge_type]
        return best
