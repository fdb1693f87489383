"""ROUGE on Chinese text: the character-level ``tokenizer="cjk"`` and the empty-tokens warning.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``), and chapter 10 for its use; the code
is ``minroots/metrics/rouge.py``.
"""

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minroots.metrics.rouge import RougeScorer, rouge_tokenize, rouge_tokenize_cjk

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
CJK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
)
PIECES = ["磁盘", "空间", "分析器", "工具", "的", "GNOME", "Qt", "2048", "，", "。", " ", "\n",
          "ひらがな", "カタカナ", "한국어", "library", "libraries", "(", "-"]  # fmt: skip
mixed = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


def test_character_level_scores_by_hand():
    # target 磁 盘 空 间 分 析 器 (7), prediction 磁 盘 分 析 工 具 (6)
    scores = RougeScorer(TYPES, tokenizer="cjk").score("磁盘空间分析器", "磁盘分析工具")
    assert scores["rouge1"] == pytest.approx((4 / 6, 4 / 7, 8 / 13))  # 磁 盘 分 析
    assert scores["rouge2"] == pytest.approx((2 / 5, 2 / 6, 4 / 11))  # (磁盘), (分析)
    assert scores["rougeL"] == pytest.approx((4 / 6, 4 / 7, 8 / 13))  # LCS 磁盘分析
    assert scores["rougeLsum"] == pytest.approx((4 / 6, 4 / 7, 8 / 13))


def test_cjk_tokens_by_hand():
    assert rouge_tokenize_cjk("GNOME 磁盘分析器，2 个") == [
        "gnome",
        "磁",
        "盘",
        "分",
        "析",
        "器",
        "2",
        "个",
    ]
    assert rouge_tokenize_cjk("ひらがなとカタカナ、한국어") == list("ひらがなとカタカナ한국어")
    assert rouge_tokenize_cjk("Running libraries", stem=lambda w: w[:3]) == ["run", "lib"]
    s = RougeScorer(["rouge1"], use_stemmer=True, tokenizer="cjk").score(
        "库 libraries", "library 库"
    )
    assert s["rouge1"].fmeasure == pytest.approx(1.0)  # Porter: librari = librari


def test_identical_chinese_scores_1_with_cjk_and_0_with_a_warning_by_default():
    text = "古代战争实时策略游戏"
    assert RougeScorer(TYPES, tokenizer="cjk").score(text, text)["rouge2"].fmeasure == 1.0
    with pytest.warns(UserWarning, match="no tokens.*tokenizer='cjk'") as record:
        scores = RougeScorer(TYPES).score(text, text)
    assert all(s.fmeasure == 0.0 for s in scores.values())
    assert {str(w.message).split(" ")[2] for w in record} == {"target", "prediction"}


def test_warning_only_when_a_non_blank_text_loses_every_token():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning here fails the test
        RougeScorer(TYPES).score("the cat", "the cat")
        RougeScorer(TYPES).score("", " \n")  # blank: nothing to lose
        RougeScorer(TYPES).score("GNOME 磁盘", "磁盘 GNOME")  # Latin tokens remain
        RougeScorer(TYPES, tokenizer="cjk").score("磁盘", "分析")
    with pytest.warns(UserWarning, match="prediction '磁盘'"):
        RougeScorer(["rougeLsum"]).score("disk", "磁盘")  # the Lsum-only path warns too
    with pytest.warns(UserWarning, match="target '。'"):
        RougeScorer(["rouge1"]).score("。", "a")


@given(st.text().filter(lambda t: not CJK.search(t.lower())))
def test_cjk_tokenizer_equals_the_default_on_text_without_cjk(text):
    assert rouge_tokenize_cjk(text) == rouge_tokenize(text)


def test_unknown_tokenizer_is_a_clear_error():
    with pytest.raises(TypeError, match="tokenizer must be None, 'cjk'"):
        RougeScorer(["rouge1"], tokenizer="zh")


@pytest.mark.parity
@settings(max_examples=60)
@given(target=mixed, prediction=mixed)
def test_cjk_scores_match_rouge_score_given_the_same_tokens(target, prediction):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

    class CJKTokens:  # rouge-score accepts any object with tokenize(text)
        def tokenize(self, text):
            return rouge_tokenize_cjk(text)

    theirs = rouge_scorer.RougeScorer(TYPES, tokenizer=CJKTokens()).score(target, prediction)
    ours = RougeScorer(TYPES, tokenizer="cjk").score(target, prediction)
    for name in TYPES:
        assert np.allclose(ours[name], theirs[name], rtol=0, atol=1e-12), name


def test_eval_rouge_command_takes_the_cjk_tokenizer(tmp_path, capsys):
    import argparse
    import json

    from minroots.metrics.cli import register

    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("磁盘分析工具\n", encoding="utf-8")
    ref.write_text("磁盘空间分析器\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="metric", required=True))
    argv = ["rouge", "--hyp", str(hyp), "--ref", str(ref), "--types", "rouge1", "--json"]
    args = parser.parse_args([*argv, "--tokenizer", "cjk"])
    assert args.func(args) == 0
    score = json.loads(capsys.readouterr().out)["rouge1"]["fmeasure"]
    assert score == pytest.approx(100 * 8 / 13)  # the JSON reports 0-100, as sacrebleu does
