"""Tests for BLEU and its tokenizers (minroots.metrics.bleu, minroots.metrics.bleu_tokenizers).

Book chapter 8, "Evaluation" (``book/08_evaluation.md``). Parity tests compare with sacrebleu on
hypothesis-generated corpora: punctuation, digits, casing, escaped entities, CJK text, empty lines.
"""

import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import sentences

from minroots.metrics import bleu_tokenizers as bt
from minroots.metrics.bleu import (
    SMOOTH_METHODS,
    bleu_from_statistics,
    bleu_statistics,
    corpus_bleu,
    ngram_counts,
    sentence_bleu,
)

TOKENIZERS = ["13a", "intl", "zh", "char", "none"]
SMOOTHING = list(SMOOTH_METHODS)

# Words chosen to exercise the tokenizers' rules: punctuation inside and around words, numbers
# with separators, dashes after digits, HTML entities, symbols, mixed case, CJK and punctuation
# that sacrebleu's zh tokenizer treats as Chinese (U+2001..U+2A6D, e.g. the dash and quotes).
WORDS = [
    "the", "The", "THE", "cat", "Cat", "sat", "on", "a", "mat", "dog", "barked", "and", "ran",
    ".", ",", "!", "?", ";", ":", "'", '"', "(", ")", "-", "--", "...", "/", "$", "%", "&",
    "3.5", "1,000", "2019.", "5-4", "U.S.", "e-mail", "don't", "(hi)", "end.", "x,y", "4-",
    "&amp;", "&quot;", "&lt;b&gt;", "<skipped>", "€5", "+", "=", "©", "½", "١٢", "café",
    "我", "喜欢", "猫", "。", "，", "世界", "ｈｉ", "—", "’", "“", "…", "→", "★", "タ", "한",
    "\t", "-\n", "\n",
]  # fmt: skip

sentence = sentences(WORDS, max_words=12, separators=[" ", " ", " ", "", "  "])


@st.composite
def corpora(draw, max_refs=3):
    """(hypotheses, references): 1-5 sentences; 1-3 reference streams; later streams may hold
    None (a sentence with fewer references); some hypotheses derived from their reference."""
    n = draw(st.integers(1, 5))
    n_refs = draw(st.integers(1, max_refs))
    refs = [[draw(sentence) for _ in range(n)]]
    for _ in range(n_refs - 1):
        refs.append([draw(st.one_of(sentence, st.none())) for _ in range(n)])
    hyps = []
    for i in range(n):
        if draw(st.booleans()):  # an edited copy of the first reference: many matches
            ref_words = refs[0][i].split(" ")
            keep = draw(st.lists(st.booleans(), min_size=len(ref_words), max_size=len(ref_words)))
            hyps.append(" ".join(w for w, k in zip(ref_words, keep, strict=True) if k))
        else:
            hyps.append(draw(sentence))
    return hyps, refs


def assert_same_bleu(ours, theirs):
    assert math.isclose(ours.score, theirs.score, rel_tol=0, abs_tol=1e-9), (ours, theirs)
    assert ours.counts == theirs.counts
    assert ours.totals == theirs.totals
    assert ours.sys_len == theirs.sys_len and ours.ref_len == theirs.ref_len
    assert ours.bp == pytest.approx(theirs.bp, abs=1e-12)
    assert ours.precisions == pytest.approx(theirs.precisions, abs=1e-9)
    assert str(ours) == str(theirs)  # sacrebleu's string form, digit for digit


# --- hand-checkable examples -------------------------------------------------------------------


@pytest.mark.task8_1
def test_worked_example_by_hand():
    # the cat sat on the mat / the cat sat on a mat: 5/6, 3/5, 2/4, 1/3 matches, equal lengths
    result = corpus_bleu(["the cat sat on the mat"], [["the cat sat on a mat"]])
    assert result.counts == [5, 3, 2, 1]
    assert result.totals == [6, 5, 4, 3]
    assert result.bp == 1.0
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert result.score == pytest.approx(expected, abs=1e-12)
    assert str(result) == (
        "BLEU = 53.73 83.3/60.0/50.0/33.3 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)"
    )


@pytest.mark.task8_1
def test_brevity_penalty_and_closest_reference_length():
    # hypothesis of 2 tokens; references of 3 and 1 tokens: both 1 away, the shorter one wins
    result = corpus_bleu(["a b"], [["a b c"], ["a"]], use_effective_order=True)
    assert result.ref_len == 1 and result.bp == 1.0
    result = corpus_bleu(["a b"], [["a b c d"]], use_effective_order=True)
    assert result.bp == pytest.approx(math.exp(1 - 4 / 2))
    assert result.score == pytest.approx(100 * math.exp(-1))


@pytest.mark.task8_1
def test_smoothing_by_hand():
    # 1-grams 2/3 match, 2-grams 0/2, 3-grams 0/1, no 4-grams
    correct, total = [2, 0, 0, 0], [3, 2, 1, 0]
    exp = bleu_from_statistics(correct, total, 3, 3, "exp", effective_order=True)
    assert exp.precisions[:3] == pytest.approx([200 / 3, 100 / (2 * 2), 100 / (4 * 1)])
    floor = bleu_from_statistics(correct, total, 3, 3, "floor", effective_order=True)
    assert floor.precisions[:3] == pytest.approx([200 / 3, 10 / 2, 10 / 1])
    addk = bleu_from_statistics(correct, total, 3, 3, "add-k", effective_order=True)
    assert addk.precisions == pytest.approx([200 / 3, 100 / 3, 100 / 2, 100 / 1])
    assert addk.counts == [2, 1, 1, 1] and addk.totals == [3, 3, 2, 1]  # as sacrebleu reports
    none = bleu_from_statistics(correct, total, 3, 3, "none", effective_order=True)
    assert none.score == pytest.approx(0.0, abs=1e-300)


@pytest.mark.task8_1
def test_ngram_counts_example():
    counts = ngram_counts(["a", "b", "a", "b"], 3)
    assert counts[0] == {"a": 2, "b": 2}
    assert counts[1] == {("a", "b"): 2, ("b", "a"): 1}
    assert counts[2] == {("a", "b", "a"): 1, ("b", "a", "b"): 1}


def test_tokenizer_examples():
    assert bt.tokenize_13a("Hello, world! It costs $3.50-4.") == (
        "Hello , world ! It costs $ 3.50 - 4 ."
    )
    assert bt.tokenize_intl("Prices rose 3.5% in 2019.") == "Prices rose 3.5 % in 2019."
    assert bt.tokenize_zh("我喜欢NLP, 真的.") == "我 喜 欢 NLP , 真 的 ."
    assert bt.tokenize_char("ab c") == "a b c"
    assert bt.tokenize_none(" a  b ") == " a  b "


# --- properties --------------------------------------------------------------------------------


@given(corpus=corpora(), tokenize=st.sampled_from(TOKENIZERS))
def test_corpus_against_itself_is_100(corpus, tokenize):
    hyps, _ = corpus
    if not any(bt.get_tokenizer(tokenize)(h).split() for h in hyps):
        return  # no tokens at all: BLEU is 0 by definition
    result = corpus_bleu(hyps, [hyps], tokenize=tokenize, use_effective_order=True)
    assert result.score == pytest.approx(100.0, abs=1e-9)


@given(
    corpus=corpora(),
    tokenize=st.sampled_from(TOKENIZERS),
    smooth=st.sampled_from(SMOOTHING),
    eff=st.booleans(),
)
def test_bleu_lies_in_0_100(corpus, tokenize, smooth, eff):
    hyps, refs = corpus
    result = corpus_bleu(
        hyps, refs, tokenize=tokenize, smooth_method=smooth, use_effective_order=eff
    )
    assert 0.0 <= result.score <= 100.0 + 1e-9
    assert 0.0 <= result.bp <= 1.0


@given(corpus=corpora(), tokenize=st.sampled_from(TOKENIZERS))
def test_statistics_sum_to_corpus_counts(corpus, tokenize):
    hyps, refs = corpus
    stats = bleu_statistics(hyps, refs, tokenize=tokenize)
    summed = [sum(column) for column in zip(*stats, strict=True)]
    result = corpus_bleu(hyps, refs, tokenize=tokenize, smooth_method="none")
    assert summed == [result.sys_len, result.ref_len, *result.counts, *result.totals]


def test_result_fields_and_signature():
    result = corpus_bleu(["a b c d e"], [["a b c d"], ["a b"]], smooth_method="floor")
    line = result.format(signature=True)
    assert line.startswith("BLEU|nrefs:2|case:mixed|eff:no|tok:13a|smooth:floor[0.10]|version:")
    assert "minroots" in result.signature
    d = result.to_dict()
    assert d["counts"] == result.counts and d["sys_len"] == 5 and d["ref_len"] == 4
    lc = corpus_bleu(["A"], [["a"]], lowercase=True, tokenize="intl", smooth_method="add-k")
    assert (
        "case:lc" in lc.signature and "tok:intl" in lc.signature and "add-k[1.00]" in lc.signature
    )
    assert lc.score == pytest.approx(100.0)
    var = corpus_bleu(["a", "b"], [["a", "b"], ["a", None]])
    assert "nrefs:var" in var.signature


def test_tokenized_looking_input_warns_unless_forced():
    hyps = ["a b ."] * 100
    with pytest.warns(UserWarning, match="tokenized"):
        corpus_bleu(hyps, [hyps])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corpus_bleu(hyps, [hyps], force=True)


# --- bad input ---------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="references\\[0\\] has 1 lines but hypotheses has 2"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match="hypotheses\\[1\\] must be a string"):
        corpus_bleu(["a", 3], [["a", "b"]])
    with pytest.raises(TypeError, match="references\\[0\\]\\[0\\] must be a string"):
        corpus_bleu(["a"], [[b"a"]])
    with pytest.raises(TypeError, match="references\\[0\\] must be a list"):
        corpus_bleu(["a"], ["a"])
    with pytest.raises(TypeError, match="hypotheses must be a list"):
        corpus_bleu("a", [["a"]])
    with pytest.raises(ValueError, match="hypotheses must not be empty"):
        corpus_bleu([], [[]])
    with pytest.raises(ValueError, match="tokenize must be one of"):
        corpus_bleu(["a"], [["a"]], tokenize="moses")
    with pytest.raises(ValueError, match="smooth_method must be one of"):
        corpus_bleu(["a"], [["a"]], smooth_method="laplace")
    with pytest.raises(ValueError, match="has no reference"):
        corpus_bleu(["a"], [[None]])
    with pytest.raises(TypeError, match="hypothesis must be a string"):
        sentence_bleu(None, ["a"])
    with pytest.raises(TypeError, match="wrap a single reference"):
        sentence_bleu("a", "a")


# --- parity with sacrebleu ---------------------------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize("smooth", SMOOTHING)
@pytest.mark.parametrize("tokenize", TOKENIZERS)
@settings(max_examples=8)
@given(
    corpus=corpora(), lowercase=st.booleans(), eff=st.booleans(), value=st.sampled_from([None, 0.5])
)
def test_corpus_bleu_matches_sacrebleu(tokenize, smooth, corpus, lowercase, eff, value):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = corpus
    kwargs = dict(
        tokenize=tokenize,
        smooth_method=smooth,
        smooth_value=value,
        lowercase=lowercase,
        use_effective_order=eff,
    )
    theirs = sacrebleu.corpus_bleu(hyps, refs, force=True, **kwargs)
    ours = corpus_bleu(hyps, refs, force=True, **kwargs)
    assert_same_bleu(ours, theirs)


@pytest.mark.parity
@settings(max_examples=40)
@given(
    hyp=sentence,
    refs=st.lists(sentence, min_size=1, max_size=3),
    tokenize=st.sampled_from(TOKENIZERS),
    smooth=st.sampled_from(SMOOTHING),
)
def test_sentence_bleu_matches_sacrebleu(hyp, refs, tokenize, smooth):
    sacrebleu = pytest.importorskip("sacrebleu")
    theirs = sacrebleu.sentence_bleu(hyp, refs, tokenize=tokenize, smooth_method=smooth)
    ours = sentence_bleu(hyp, refs, tokenize=tokenize, smooth_method=smooth)
    assert_same_bleu(ours, theirs)


@pytest.mark.parity
@pytest.mark.parametrize("tokenize", TOKENIZERS)
@settings(max_examples=60)
@given(line=st.one_of(sentence, st.text(max_size=30)))
def test_tokenizers_match_sacrebleu(tokenize, line):
    pytest.importorskip("sacrebleu")
    from sacrebleu.metrics.bleu import _get_tokenizer

    theirs = _get_tokenizer(tokenize)()(line)
    assert bt.get_tokenizer(tokenize)(line).split() == theirs.split()


@pytest.mark.parity
def test_zh_character_ranges_match_sacrebleu_everywhere():
    """sacrebleu's Chinese-character test, compared on every code point up to U+30000."""
    pytest.importorskip("sacrebleu")
    from sacrebleu.tokenizers.tokenizer_zh import _UCODE_RANGES

    def theirs(ch):  # the comparison sacrebleu makes, without its LRU cache
        return any(start <= ch <= end for start, end in _UCODE_RANGES)

    wrong = [hex(c) for c in range(0x30000) if bt.is_chinese_char(chr(c)) != theirs(chr(c))]
    assert wrong == []


def _parameters(fn):
    import inspect

    return inspect.signature(fn).parameters.values()


def assert_same_meaning(ours, theirs):
    """Whatever can be passed to both functions means the same: minroots' positional parameters
    are a prefix of the reference's (same names), and shared names have the same defaults."""
    positional = [p.name for p in _parameters(ours) if p.kind == p.POSITIONAL_OR_KEYWORD]
    their_names = [p.name for p in _parameters(theirs) if p.name != "self"]
    assert positional == their_names[: len(positional)], (positional, their_names)
    their_defaults = {p.name: p.default for p in _parameters(theirs)}
    for p in _parameters(ours):
        if p.name in their_defaults and p.default is not p.empty:
            assert p.default == their_defaults[p.name], (ours.__name__, p.name)


@pytest.mark.parity
def test_signatures_mean_what_sacrebleus_mean():
    sacrebleu = pytest.importorskip("sacrebleu")
    from sacrebleu.metrics.bleu import BLEU

    from minroots.metrics.chrf import corpus_chrf, sentence_chrf

    assert_same_meaning(corpus_bleu, sacrebleu.corpus_bleu)
    assert_same_meaning(sentence_bleu, sacrebleu.sentence_bleu)
    assert_same_meaning(bleu_from_statistics, BLEU.compute_bleu)
    assert_same_meaning(corpus_chrf, sacrebleu.corpus_chrf)
    assert_same_meaning(sentence_chrf, sacrebleu.sentence_chrf)
    with pytest.raises(TypeError):  # sacrebleu's third positional is smooth_method
        corpus_bleu(["a b"], [["a b"]], "none")
    with pytest.raises(TypeError):  # sacrebleu's sixth positional is remove_whitespace
        corpus_chrf(["a b"], [["a b"]], 6, 0, 2, True)


@pytest.mark.parity
@pytest.mark.parametrize(
    "stats",
    [
        ([2, 0, 0, 0], [7, 6, 5, 4], 7, 6),
        ([5, 3, 0, 0], [6, 5, 4, 3], 6, 8),
        ([3, 1, 0], [3, 2, 1], 3, 3),
    ],
)
def test_bleu_from_statistics_defaults_match_compute_bleu(stats):
    pytest.importorskip("sacrebleu")
    from sacrebleu.metrics.bleu import BLEU

    order = {"max_ngram_order": len(stats[0])}
    assert_same_bleu(bleu_from_statistics(*stats, **order), BLEU.compute_bleu(*stats, **order))
    assert bleu_from_statistics(*stats, **order).score == 0.0  # a zero count, no smoothing
