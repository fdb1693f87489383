"""Width folding for CJK text (``fold_width``) against NFKC, by hand and with hypothesis.

Book chapter 6, section 6.9 (``book/06_tokenizers.md``); the code is
``minroots/tokenizers/cleaning.py``.
"""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from minroots.data import load_corpus
from minroots.tokenizers.cleaning import STEPS, clean, fold_width

FULL_WIDTH_ALNUM = [chr(c) for c in range(0xFF01, 0xFF5F) if chr(c).isalnum()]  # ０-９ Ａ-Ｚ ａ-ｚ
FULL_WIDTH_PUNCT = [chr(c) for c in range(0xFF01, 0xFF5F) if not chr(c).isalnum()] + ["\u3000"]
HALF_WIDTH = [chr(c) for c in range(0xFF61, 0xFFEF) if unicodedata.category(chr(c)) != "Cn"]
PLAIN = list("abcXYZ019 ,.!?") + list(
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"
)


def test_hand_examples():
    assert fold_width("ＧＰＴ－２，１９８７年") == "GPT－2，1987年"  # punctuation kept
    assert fold_width("ＧＰＴ－２，１９８７年", punctuation=True) == "GPT-2,1987年"
    assert fold_width("ｶﾞｷﾞ｡｢ﾊﾝｶｸ｣") == "ガギ。「ハンカク」"  # half-width kana, voiced marks joined
    assert fold_width("①ﬁ²　") == "①ﬁ²　"  # not width: untouched (NFKC would give '1fi2 ')
    assert unicodedata.normalize("NFKC", "①ﬁ²　") == "1fi2 "
    assert fold_width("力\uff9e") == "力\u3099"  # a voiced mark after a Han character stays apart


def test_nfkc_would_change_chinese_punctuation_but_fold_width_does_not():
    line = "两株桃杏映篱斜，妆点商山副使家！"
    assert fold_width(line) == line
    assert unicodedata.normalize("NFKC", line) == "两株桃杏映篱斜,妆点商山副使家!"


def test_song_authors_dates_fold_to_ascii_digits():
    text = load_corpus("song100")
    assert "柳开（９４６－９９９）" in text
    folded = clean(text, steps=["fold_width"])
    assert "柳开（946－999）" in folded  # digits ASCII, brackets and dash as Chinese writes them
    assert not any("\uff10" <= c <= "\uff19" for c in folded)
    assert len(folded) == len(text)  # one character for one: the poems' lines are unchanged
    assert STEPS["fold_width"] is fold_width


@given(st.text(alphabet=st.sampled_from(FULL_WIDTH_ALNUM + FULL_WIDTH_PUNCT + HALF_WIDTH + PLAIN)))
def test_fold_width_with_punctuation_is_nfkc_on_width_forms(text):
    assert fold_width(text, punctuation=True) == unicodedata.normalize("NFKC", text)


@given(st.text(alphabet=st.sampled_from(FULL_WIDTH_ALNUM + HALF_WIDTH + PLAIN)))
def test_fold_width_is_nfkc_without_full_width_punctuation_and_idempotent(text):
    folded = fold_width(text)
    assert folded == unicodedata.normalize("NFKC", text)
    assert fold_width(folded) == folded
