"""Tests for the ``eval bleu|chrf|rouge`` sub-commands (minroots.metrics.cli).

Book chapter 8, "Evaluation" (``book/08_evaluation.md``). The parser is built here the way the
top-level ``minroots`` command builds it: an ``eval`` sub-parsers object handed to ``register``.
"""

import argparse
import json

import pytest

from minroots.metrics import RougeScorer, corpus_bleu, corpus_chrf
from minroots.metrics.cli import read_lines, register

HYPS = ["the cat sat on the mat", "a dog barked loudly", "it is raining today"]
REFS = ["the cat sat on a mat", "the dog barked loudly", "it rains today"]
REFS2 = ["a cat was on the mat", "a dog was barking", "today it is raining"]


def run(argv):
    parser = argparse.ArgumentParser(prog="minroots eval")
    register(parser.add_subparsers(dest="metric", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def files(tmp_path):
    def write(name, lines, end="\n"):
        path = tmp_path / name
        path.write_text("\n".join(lines) + end, encoding="utf-8")
        return str(path)

    return write


def test_bleu_prints_the_sacrebleu_style_line(files, capsys):
    hyp, ref = files("hyp.txt", HYPS), files("ref.txt", REFS)
    assert run(["bleu", "--hyp", hyp, "--ref", ref]) == 0
    out = capsys.readouterr().out.strip()
    expected = corpus_bleu(HYPS, [REFS])
    assert out == expected.format(signature=True)
    assert out.startswith("BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_bleu_json_with_two_references_and_options(files, capsys):
    hyp, ref, ref2 = files("h", HYPS), files("r1", REFS), files("r2", REFS2, end="")
    argv = ["bleu", "--hyp", hyp, "--ref", ref, "--ref", ref2, "--json", "-tok", "intl", "-lc"]
    assert run(argv) == 0
    result = json.loads(capsys.readouterr().out)
    expected = corpus_bleu(HYPS, [REFS, REFS2], tokenize="intl", lowercase=True)
    assert result["score"] == pytest.approx(expected.score, abs=1e-12)
    assert result["counts"] == expected.counts
    assert "nrefs:2" in result["signature"] and "case:lc" in result["signature"]


def test_chrf(files, capsys):
    hyp, ref = files("hyp.txt", HYPS), files("ref.txt", REFS)
    assert run(["chrf", "--hyp", hyp, "--ref", ref, "--word-order", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["name"] == "chrF2++"
    assert result["score"] == pytest.approx(corpus_chrf(HYPS, [REFS], word_order=2).score)


def test_rouge_means_and_bootstrap(files, capsys):
    hyp, ref = files("hyp.txt", HYPS), files("ref.txt", REFS)
    argv = ["rouge", "--hyp", hyp, "--ref", ref, "--types", "rouge1,rougeL", "--stemmer"]
    assert run([*argv, "--json", "--bootstrap", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    scorer = RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    f1 = [scorer.score(r, h)["rouge1"].fmeasure for h, r in zip(HYPS, REFS, strict=True)]
    assert result["rouge1"]["fmeasure"] == pytest.approx(100 * sum(f1) / len(f1))  # 0-100
    assert result["rouge1"]["fmeasure_low"] <= result["rouge1"]["fmeasure"] + 1e-12
    assert result["rouge1"]["fmeasure"] <= result["rouge1"]["fmeasure_high"] + 1e-12
    assert run(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["rouge1", "rougeL"]
    assert f"F = {result['rouge1']['fmeasure']:.2f}" in lines[0]  # the text shows the JSON's scale


def test_rouge_sentence_separator_feeds_rouge_lsum(files, capsys):
    hyp = files("hyp.txt", ["b a <n> c"])
    ref = files("ref.txt", ["a b <n> c"])
    base = ["rouge", "--hyp", hyp, "--ref", ref, "--types", "rougeLsum", "--json"]
    run(base)
    plain = json.loads(capsys.readouterr().out)["rougeLsum"]["fmeasure"]
    run([*base, "--sentence-separator", "<n>"])
    split = json.loads(capsys.readouterr().out)["rougeLsum"]["fmeasure"]
    expected = RougeScorer(["rougeLsum"]).score("a b \n c", "b a \n c")["rougeLsum"].fmeasure
    assert split == pytest.approx(100 * expected) and plain != split


def test_bad_files_give_clear_errors(files, tmp_path):
    hyp, ref = files("hyp.txt", HYPS), files("short.txt", REFS[:2])
    with pytest.raises(ValueError, match="short.txt has 2 lines but .*hyp.txt has 3"):
        run(["bleu", "--hyp", hyp, "--ref", ref])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        run(["chrf", "--hyp", str(empty), "--ref", ref])
    with pytest.raises(FileNotFoundError, match="file not found: .*missing.txt"):
        run(["rouge", "--hyp", hyp, "--ref", str(tmp_path / "missing.txt")])
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        read_lines(str(binary))
    with pytest.raises(ValueError, match="unknown ROUGE type 'rougeX'"):
        run(["rouge", "--hyp", hyp, "--ref", hyp, "--types", "rouge1,rougeX"])
    with pytest.raises(SystemExit):  # argparse rejects an unknown tokenizer name
        run(["bleu", "--hyp", hyp, "--ref", hyp, "--tokenize", "moses"])


def test_read_lines_keeps_empty_lines_and_drops_the_final_newline(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("a\n\nb\n", encoding="utf-8")
    assert read_lines(str(path)) == ["a", "", "b"]
    path.write_text("a\r\nb", encoding="utf-8")
    assert read_lines(str(path)) == ["a", "b"]
