"""Tests for ROUGE, the Porter stemmer and bootstrap intervals (minroots.metrics.rouge, porter,
bootstrap), by hand and against Google's rouge-score and NLTK's PorterStemmer.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).
"""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import sentences

from minroots.metrics.bootstrap import BootstrapAggregator, bootstrap_percentiles
from minroots.metrics.porter import measure, porter_stem
from minroots.metrics.rouge import RougeScorer, Score, lcs_length, lcs_table, rouge_tokenize

ALL_TYPES = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]
# Texts that lose every token ("我", "!") are part of the checks here; the warning they raise is
# tested in tests/test_metrics_rouge_cjk.py.
pytestmark = pytest.mark.filterwarnings("ignore:RougeScorer.*no tokens:UserWarning")

# Words whose stems collide (running/runs, happiness/happy), punctuation, digits, casing, and
# non-ASCII letters that rouge-score's tokenizer drops or lowercases into ASCII (the Kelvin sign).
WORDS = [
    "the", "The", "THE", "cat", "cats", "running", "runs", "ran", "happiness", "happy", "on",
    "a", "mat", "generalizations", "relational", "caresses", "ponies", "agreed", "dying", "sky",
    "skies", "news", "3", "2019", "x1", "U.S.", "don't", "e-mail", ",", ".", "!", "--", "(hi)",
    "café", "naïve", "Kelvin\u212a", "İstanbul", "我", "\n", "\n\n", " \n",
]  # fmt: skip

text = sentences(WORDS, max_words=14)


# --- hand-checkable examples -------------------------------------------------------------------


@pytest.mark.task8_2
def test_worked_example_by_hand():
    scores = RougeScorer(["rouge1", "rouge2", "rougeL"]).score(
        "the cat sat on the mat", "the cat lay on the mat"
    )
    assert scores["rouge1"] == pytest.approx(Score(5 / 6, 5 / 6, 5 / 6))
    assert scores["rouge2"] == pytest.approx(Score(3 / 5, 3 / 5, 3 / 5))
    assert scores["rougeL"] == pytest.approx(Score(5 / 6, 5 / 6, 5 / 6))


def test_precision_recall_differ_with_lengths():
    # target 4 tokens, prediction 2 tokens, both in the target: P = 1, R = 1/2, F = 2/3
    s = RougeScorer(["rouge1"]).score("a b c d", "b d")["rouge1"]
    assert s == pytest.approx(Score(1.0, 0.5, 2 / 3))


@pytest.mark.task8_2
def test_rouge_lsum_by_hand():
    # target sentences [a b c], [d e]; prediction [a c], [e d x]
    # union LCS with sentence 1: {a, c} -> 2 hits; sentence 2: LCS "d" or "e" -> 1 hit
    s = RougeScorer(["rougeLsum"]).score("a b c\nd e", "a c\ne d x")["rougeLsum"]
    assert s.recall == pytest.approx(3 / 5) and s.precision == pytest.approx(3 / 5)


def test_rouge_lsum_reads_back_the_same_lcs_as_rouge_score():
    # target [a b]; predicted sentences [b a] and [a]. Both "a" and "b" are an LCS with [b a];
    # rouge-score's read-back picks "a" (index 0), so the union with [a]'s LCS is just {a}:
    # 1 hit, recall 1/2, precision 1/3. Picking "b" would give the union {a, b} and 2 hits.
    s = RougeScorer(["rougeLsum"]).score("a b", "b a\na")["rougeLsum"]
    assert s.recall == pytest.approx(1 / 2) and s.precision == pytest.approx(1 / 3)


def test_tokenizer_and_stemmer_examples():
    assert rouge_tokenize("The cats' 2 toys -- RUNNING!") == ["the", "cats", "2", "toys", "running"]
    assert rouge_tokenize("The cats' 2 toys -- RUNNING!", porter_stem) == [
        "the", "cat", "2", "toy", "run",
    ]  # fmt: skip
    assert [porter_stem(w) for w in ["caresses", "ponies", "ties", "hopping", "relational"]] == [
        "caress", "poni", "tie", "hop", "relat",
    ]  # fmt: skip
    assert (measure("tree"), measure("trouble"), measure("troubles"), measure("private")) == (
        0, 1, 2, 2,
    )  # fmt: skip


@settings(max_examples=100)
@given(
    a=st.lists(st.sampled_from("abcd"), max_size=25),
    b=st.lists(st.sampled_from("abcd"), max_size=25),
)
@pytest.mark.task8_2
def test_bit_parallel_lcs_equals_the_dp_table(a, b):
    assert lcs_length(a, b) == lcs_table(a, b)[-1][-1]


# --- properties --------------------------------------------------------------------------------


@given(target=text, extra_before=text, extra_after=text, n=st.integers(1, 3))
def test_prediction_containing_the_target_has_recall_1(target, extra_before, extra_after, n):
    prediction = f"{extra_before} {target} {extra_after}"
    scorer = RougeScorer([f"rouge{n}", "rougeL"])
    scores = scorer.score(target, prediction)
    if len(rouge_tokenize(target)) >= n:
        assert scores[f"rouge{n}"].recall == pytest.approx(1.0)
    if rouge_tokenize(target):
        assert scores["rougeL"].recall == pytest.approx(1.0)


@given(target=text, prediction=text, stem=st.booleans())
def test_scores_lie_in_0_1_and_identical_text_scores_1(target, prediction, stem):
    scorer = RougeScorer(ALL_TYPES, use_stemmer=stem)
    for s in scorer.score(target, prediction).values():
        assert all(0.0 <= v <= 1.0 + 1e-12 for v in s)
    n_tokens = len(rouge_tokenize(target))
    for name, s in scorer.score(target, target).items():
        n = int(name[5:]) if name[5:].isdigit() else 1  # rougeN needs N tokens
        if n_tokens >= n:
            assert s.fmeasure == pytest.approx(1.0), name


def test_score_multi_takes_the_best_target():
    scorer = RougeScorer(["rouge1"])
    best = scorer.score_multi(["x y z", "the cat sat", "the cat"], "the cat sat")
    assert best["rouge1"].fmeasure == pytest.approx(1.0)


def test_split_summaries_and_custom_tokenizer():
    # Two sentences in swapped order: the summary-level LCS credits both, plain LCS only one.
    target, prediction = "a b. c d.", "c d. a b."
    split = RougeScorer(["rougeL", "rougeLsum"], split_summaries=True).score(target, prediction)
    assert split["rougeLsum"].fmeasure == pytest.approx(1.0)
    assert split["rougeL"].fmeasure == pytest.approx(0.5)

    class Characters:
        def tokenize(self, text):
            return [c for c in text if not c.isspace()]

    s = RougeScorer(["rouge1"], tokenizer=Characters()).score("ab c", "cab")["rouge1"]
    assert s.fmeasure == pytest.approx(1.0)


def test_rouge_n_takes_one_digit_like_rouge_score():
    tokens = " ".join("abcdefghijklm")
    assert RougeScorer(["rouge9"]).score(tokens, tokens)["rouge9"].fmeasure == pytest.approx(1.0)
    for name in ("rouge10", "rouge12", "rouge0", "rouge01", "rouge"):
        with pytest.raises(ValueError, match=f"unknown ROUGE type '{name}'.*'rouge1' to 'rouge9'"):
            RougeScorer([name])


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="unknown ROUGE type 'rouge0'"):
        RougeScorer(["rouge0"])
    with pytest.raises(ValueError, match="unknown ROUGE type 'bleu'"):
        RougeScorer(["rouge1", "bleu"])
    with pytest.raises(TypeError, match="list of names"):
        RougeScorer("rouge1")
    with pytest.raises(TypeError, match="prediction must be a string"):
        RougeScorer(["rouge1"]).score("a", None)
    with pytest.raises(ValueError, match="at least one target"):
        RougeScorer(["rouge1"]).score_multi([], "a")
    with pytest.raises(ValueError, match="confidence_interval"):
        BootstrapAggregator(confidence_interval=1.5)
    with pytest.raises(ValueError, match="no scores were added"):
        BootstrapAggregator().aggregate()


def test_bootstrap_interval_brackets_the_mean():
    values = np.random.default_rng(0).random((200, 3))
    low, mid, high = bootstrap_percentiles(values, 0.95, 300, rng=1)
    assert np.all(low < values.mean(0)) and np.all(values.mean(0) < high)
    assert np.allclose(mid, values.mean(0), atol=0.02)
    # the same seed gives the same interval
    assert np.array_equal(bootstrap_percentiles(values, 0.95, 300, rng=1)[0], low)


# --- parity with rouge-score and NLTK ------------------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize("use_stemmer", [False, True])
@settings(max_examples=60)
@given(target=text, prediction=text)
def test_rouge_matches_rouge_score(use_stemmer, target, prediction):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    theirs = rouge_scorer.RougeScorer(ALL_TYPES, use_stemmer=use_stemmer).score(target, prediction)
    ours = RougeScorer(ALL_TYPES, use_stemmer=use_stemmer).score(target, prediction)
    for name in ALL_TYPES:
        assert np.allclose(ours[name], theirs[name], rtol=0, atol=1e-12), name


@pytest.mark.parity
@settings(max_examples=30)
@given(targets=st.lists(text, min_size=1, max_size=4), prediction=text)
def test_score_multi_matches_rouge_score(targets, prediction):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    theirs = rouge_scorer.RougeScorer(ALL_TYPES, use_stemmer=True).score_multi(targets, prediction)
    ours = RougeScorer(ALL_TYPES, use_stemmer=True).score_multi(targets, prediction)
    for name in ALL_TYPES:
        assert np.allclose(ours[name], theirs[name], rtol=0, atol=1e-12), name


@pytest.mark.parity
@pytest.mark.parametrize("name", ["rouge0", "rouge10", "rouge12", "rougeX", "rouge1 "])
def test_rouge_types_refused_like_rouge_score(name):
    """rouge-score refuses these names when it scores; minroots when the scorer is built."""
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    with pytest.raises(ValueError, match="rouge"):
        rouge_scorer.RougeScorer([name]).score("a b c", "a b c")
    with pytest.raises(ValueError, match=f"unknown ROUGE type {name!r}"):
        RougeScorer([name])


def _suffix_words(count: int, seed: int = 0) -> list[str]:
    """Random stems followed by the suffixes Porter's rules look for, so every rule is hit."""
    suffixes = [
        "s", "sses", "ies", "ss", "ed", "eed", "ied", "ing", "at", "bl", "iz", "y", "ational",
        "tional", "enci", "anci", "izer", "bli", "abli", "alli", "entli", "eli", "ousli",
        "ization", "ation", "ator", "alism", "iveness", "fulness", "ousness", "aliti", "iviti",
        "biliti", "fulli", "logi", "icate", "ative", "alize", "iciti", "ical", "ful", "ness",
        "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "sion",
        "tion", "ou", "ism", "ate", "iti", "ous", "ive", "ize", "e", "ll", "yy", "ying",
    ]  # fmt: skip
    rng = random.Random(seed)
    letters = "aeiouybcdfghlmnprstvwxz"
    words = []
    for _ in range(count):
        stem = "".join(rng.choice(letters) for _ in range(rng.randint(0, 7)))
        word = stem + rng.choice(suffixes) + (rng.choice(suffixes) if rng.random() < 0.3 else "")
        words.append(word)
    return words


@pytest.mark.parity
def test_porter_stemmer_matches_nltk():
    porter = pytest.importorskip("nltk.stem.porter")
    nltk_stem = porter.PorterStemmer().stem  # NLTK_EXTENSIONS: the mode rouge-score uses
    words = _suffix_words(20000) + ["y" * k for k in range(1, 9)] + [
        "sky", "skies", "dying", "lying", "tying", "news", "innings", "outings", "cannings",
        "howe", "proceed", "exceed", "succeed", "enjoy", "happy", "spy", "ties", "cries",
        "archaeology", "generalizations", "syzygy", "by", "is", "1234s", "x1ing",
    ]  # fmt: skip
    wrong = [(w, nltk_stem(w), porter_stem(w)) for w in words if nltk_stem(w) != porter_stem(w)]
    assert wrong == []


@pytest.mark.parity
@settings(max_examples=200)
@given(word=st.text(alphabet="aeiouybcdlnrstz", min_size=1, max_size=14))
def test_porter_stemmer_matches_nltk_on_random_words(word):
    porter = pytest.importorskip("nltk.stem.porter")
    assert porter_stem(word) == porter.PorterStemmer().stem(word)


@pytest.mark.parity
def test_bootstrap_matches_rouge_score_with_the_same_draws():
    pytest.importorskip("rouge_score")
    from rouge_score import rouge_scorer, scoring

    rng = random.Random(0)
    pairs = [
        (" ".join(rng.choices(WORDS[:20], k=8)), " ".join(rng.choices(WORDS[:20], k=6)))
        for _ in range(40)
    ]
    types = ["rouge1", "rougeL"]
    ours = BootstrapAggregator(n_samples=200, rng=np.random.RandomState(7))
    theirs = scoring.BootstrapAggregator(n_samples=200)
    for target, prediction in pairs:
        ours.add_scores(RougeScorer(types).score(target, prediction))
        theirs.add_scores(rouge_scorer.RougeScorer(types).score(target, prediction))
    state = np.random.get_state()  # noqa: NPY002 - rouge-score uses the legacy global generator
    np.random.seed(7)  # noqa: NPY002
    try:
        expected = theirs.aggregate()
    finally:
        np.random.set_state(state)  # noqa: NPY002
    got = ours.aggregate()
    for name in types:
        for bound in ("low", "mid", "high"):
            assert np.allclose(
                getattr(got[name], bound), getattr(expected[name], bound), atol=1e-12
            )
