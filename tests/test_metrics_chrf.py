"""Tests for chrF and chrF++ (minroots.metrics.chrf), by hand and against sacrebleu's CHRF.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import sentences

from minroots.metrics.chrf import char_ngrams, chrf_words, corpus_chrf, sentence_chrf

WORDS = [
    "the", "The", "cat", "cats", "sat", "on", "a", "mat", "dog", "(hi)", "end.", "x,y", "don't",
    "3.5", "1,000", "!", ",", ".", "-", "--", "café", "naïve", "我", "喜欢", "猫", "。", "ｈｉ",
    "\t", "  ",
]  # fmt: skip

sentence = sentences(WORDS, max_words=10)


@st.composite
def corpora(draw):
    n = draw(st.integers(1, 4))
    n_refs = draw(st.integers(1, 3))
    refs = [[draw(sentence) for _ in range(n)] for _ in range(n_refs)]
    hyps = [draw(st.one_of(sentence, st.sampled_from(refs[0]))) for _ in range(n)]
    return hyps, refs


@pytest.mark.task8_4
def test_worked_example_by_hand():
    # "ab" vs "abc", orders 1-2: P = (1 + 1)/2, R = (2/3 + 1/2)/2 = 7/12, beta 2
    p, r = 1.0, 7 / 12
    expected = 100 * 5 * p * r / (4 * p + r)
    assert corpus_chrf(["ab"], [["abc"]], char_order=2).score == pytest.approx(expected)
    assert round(expected, 2) == 63.64


@pytest.mark.task8_4
def test_char_and_word_ngrams_examples():
    counts = char_ngrams("ab a", 3)
    assert counts[0] == {"a": 2, "b": 1}
    assert counts[1] == {"ab": 1, "ba": 1}
    assert counts[2] == {"aba": 1}
    assert char_ngrams("ab a", 2, include_whitespace=True)[1] == {"ab": 1, "b ": 1, " a": 1}
    assert chrf_words("Hello, (world) x.") == ["Hello", ",", "(world", ")", "x", "."]


@pytest.mark.task8_4
def test_chrf_plus_plus_by_hand():
    # char 1-grams a,b,c vs a,b,d: P = R = 2/3; word 1-grams ab,c vs ab,d: P = R = 1/2
    # mean P = mean R = 7/12, and F_beta of equal P and R is that same value
    score = corpus_chrf(["ab c"], [["ab d"]], char_order=1, word_order=1)
    assert score.score == pytest.approx(100 * 7 / 12)
    assert score.format().startswith("chrF2+ = 58.33")


@pytest.mark.task8_4
def test_multiple_references_take_the_best():
    one = sentence_chrf("the cat sat", ["a dog ran"]).score
    both = sentence_chrf("the cat sat", ["a dog ran", "the cat sat"]).score
    assert both == pytest.approx(100.0) and one < 50


@pytest.mark.task8_4
@given(corpus=corpora(), word_order=st.sampled_from([0, 2]))
def test_identical_text_scores_100_and_scores_lie_in_range(corpus, word_order):
    hyps, refs = corpus
    score = corpus_chrf(hyps, refs, word_order=word_order).score
    assert 0.0 <= score <= 100.0 + 1e-9
    if any("".join(h.split()) for h in hyps):
        assert corpus_chrf(hyps, [hyps], word_order=word_order).score == pytest.approx(100.0)


def test_signature():
    score = corpus_chrf(["a"], [["a"]], word_order=2, lowercase=True)
    assert score.signature.startswith("nrefs:1|case:lc|eff:yes|nc:6|nw:2|space:no|version:")
    assert score.to_dict()["name"] == "chrF2++"


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="references\\[0\\] has 2 lines but hypotheses has 1"):
        corpus_chrf(["a"], [["a", "b"]])
    with pytest.raises(TypeError, match="hypotheses\\[0\\] must be a string"):
        corpus_chrf([None], [["a"]])
    with pytest.raises(ValueError, match=r"char_order must be an integer in \[0, 100\]"):
        corpus_chrf(["a"], [["a"]], char_order=-1)
    with pytest.raises(ValueError, match=r"char_order \+ word_order must be at least 1"):
        corpus_chrf(["a"], [["a"]], char_order=0, word_order=0)
    with pytest.raises(
        ValueError, match=r"word_order must be an integer in \[0, 100\].*got 10000000"
    ):
        corpus_chrf(["a"], [["a"]], word_order=10**7)  # would build ten million counters per line
    with pytest.raises(ValueError, match="beta must be a finite number >= 0, got nan"):
        corpus_chrf(["a"], [["a"]], beta=float("nan"))


@pytest.mark.parity
@pytest.mark.parametrize("word_order", [0, 1, 2])
@settings(max_examples=30)
@given(
    corpus=corpora(),
    char_order=st.integers(1, 6),
    beta=st.sampled_from([1, 2, 3]),
    lowercase=st.booleans(),
    whitespace=st.booleans(),
    eps=st.booleans(),
)
def test_corpus_chrf_matches_sacrebleu(
    word_order, corpus, char_order, beta, lowercase, whitespace, eps
):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = corpus
    options = dict(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase)
    theirs = sacrebleu.metrics.CHRF(**options, whitespace=whitespace, eps_smoothing=eps)
    theirs = theirs.corpus_score(hyps, refs)
    ours = corpus_chrf(hyps, refs, **options, whitespace=whitespace, eps_smoothing=eps)
    assert abs(ours.score - theirs.score) <= 1e-9
    assert str(ours) == str(theirs)


@pytest.mark.parity
@settings(max_examples=30)
@given(hyp=sentence, refs=st.lists(sentence, min_size=1, max_size=3))
def test_sentence_chrf_matches_sacrebleu(hyp, refs):
    sacrebleu = pytest.importorskip("sacrebleu")
    assert sentence_chrf(hyp, refs, word_order=2).score == pytest.approx(
        sacrebleu.sentence_chrf(hyp, refs, word_order=2).score, abs=1e-9
    )
