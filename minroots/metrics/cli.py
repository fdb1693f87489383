"""The ``minroots eval bleu|chrf|rouge`` commands: score a file of outputs against references.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

Each file holds one sentence (or summary) per line; line ``i`` of every ``--ref`` file is a
reference for line ``i`` of ``--hyp``::

    minroots eval bleu  --hyp out.txt --ref ref.txt [--ref ref2.txt] [--tokenize intl] [--json]
    minroots eval chrf  --hyp out.txt --ref ref.txt [--word-order 2]
    minroots eval rouge --hyp out.txt --ref ref.txt [--types rouge1,rougeL] [--stemmer]
    minroots eval rouge --hyp out.txt --ref ref.txt --tokenizer cjk   # Chinese: per character

:func:`register` adds these sub-commands to the ``eval`` sub-parsers of ``minroots/cli.py``; each
sets ``func``, which prints the score and returns the exit code. Bad input raises ValueError or
FileNotFoundError with a message naming the file.
"""

from __future__ import annotations

import argparse
import json

from minroots.metrics.bleu import SMOOTH_METHODS, corpus_bleu
from minroots.metrics.bleu_tokenizers import TOKENIZERS
from minroots.metrics.bootstrap import BootstrapAggregator
from minroots.metrics.chrf import corpus_chrf
from minroots.metrics.rouge import RougeScorer

__all__ = ["register", "read_lines"]


def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 text file, without their line endings; an empty file is an error."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, expected a text file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not valid UTF-8 text ({exc.reason})") from None
    if not text:
        raise ValueError(f"{path} is empty")
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    return lines


def _read_corpus(hyp_path: str, ref_paths: list[str]) -> tuple[list[str], list[list[str]]]:
    hypotheses = read_lines(hyp_path)
    references = []
    for path in ref_paths:
        lines = read_lines(path)
        if len(lines) != len(hypotheses):
            raise ValueError(
                f"{path} has {len(lines)} lines but {hyp_path} has {len(hypotheses)}; "
                "each reference file needs one line per hypothesis"
            )
        references.append(lines)
    return hypotheses, references


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hyp", required=True, metavar="FILE", help="system outputs, one a line")
    parser.add_argument(
        "--ref",
        required=True,
        action="append",
        metavar="FILE",
        help="references, one a line, aligned with --hyp (repeat for several references)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _run_bleu(args) -> int:
    hypotheses, references = _read_corpus(args.hyp, args.ref)
    score = corpus_bleu(
        hypotheses,
        references,
        tokenize=args.tokenize,
        smooth_method=args.smooth_method,
        smooth_value=args.smooth_value,
        lowercase=args.lowercase,
        force=args.force,
    )
    print(json.dumps(score.to_dict(), indent=1) if args.json else score.format(signature=True))
    return 0


def _run_chrf(args) -> int:
    hypotheses, references = _read_corpus(args.hyp, args.ref)
    score = corpus_chrf(
        hypotheses,
        references,
        char_order=args.char_order,
        word_order=args.word_order,
        beta=args.beta,
        lowercase=args.lowercase,
        whitespace=args.whitespace,
        eps_smoothing=args.eps_smoothing,
    )
    print(json.dumps(score.to_dict(), indent=1) if args.json else score.format(signature=True))
    return 0


def _run_rouge(args) -> int:
    predictions, references = _read_corpus(args.hyp, args.ref)
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    tokenizer = None if args.tokenizer == "default" else args.tokenizer
    scorer = RougeScorer(types, use_stemmer=args.stemmer, split_summaries=args.split_summaries,
                         tokenizer=tokenizer)  # fmt: skip
    sep = args.sentence_separator

    def unsplit(text: str) -> str:
        return text.replace(sep, "\n") if sep else text

    per_line = []
    for i, prediction in enumerate(predictions):
        targets = [unsplit(refs[i]) for refs in references]
        per_line.append(scorer.score_multi(targets, unsplit(prediction)))
    result = {}
    for rouge_type in types:
        scores = [line[rouge_type] for line in per_line]
        result[rouge_type] = {
            field: sum(getattr(s, field) for s in scores) / len(scores)
            for field in ("precision", "recall", "fmeasure")
        }
    if args.bootstrap:
        aggregator = BootstrapAggregator(n_samples=args.bootstrap, rng=args.seed)
        for line in per_line:
            aggregator.add_scores(line)
        for rouge_type, interval in aggregator.aggregate().items():
            result[rouge_type]["fmeasure_low"] = interval.low.fmeasure
            result[rouge_type]["fmeasure_high"] = interval.high.fmeasure
    if args.json:
        print(json.dumps({"stemmer": args.stemmer, "lines": len(predictions), **result}, indent=1))
        return 0
    for rouge_type, s in result.items():
        line = (
            f"{rouge_type:<10} P = {100 * s['precision']:.2f}  R = {100 * s['recall']:.2f}  "
            f"F = {100 * s['fmeasure']:.2f}"
        )
        if "fmeasure_low" in s:
            line += f"  (95% CI {100 * s['fmeasure_low']:.2f}-{100 * s['fmeasure_high']:.2f})"
        print(line)
    return 0


def register(eval_subparsers) -> None:
    """Add the ``bleu``, ``chrf`` and ``rouge`` commands to an argparse sub-parsers object."""
    bleu = eval_subparsers.add_parser("bleu", help="corpus BLEU (sacrebleu-compatible)")
    _add_io(bleu)
    bleu.add_argument("--tokenize", "-tok", choices=sorted(TOKENIZERS), default="13a")
    bleu.add_argument("--smooth-method", "-s", choices=list(SMOOTH_METHODS), default="exp")
    bleu.add_argument(
        "--smooth-value", type=float, default=None, help="for floor (0.1) and add-k (1)"
    )
    bleu.add_argument("--lowercase", "-lc", action="store_true", help="case-insensitive BLEU")
    bleu.add_argument("--force", action="store_true", help="accept text that looks tokenized")
    bleu.set_defaults(func=_run_bleu)

    chrf = eval_subparsers.add_parser("chrf", help="chrF / chrF++ (sacrebleu-compatible)")
    _add_io(chrf)
    chrf.add_argument("--char-order", type=int, default=6, help="character n-gram order (6)")
    chrf.add_argument("--word-order", type=int, default=0, help="word n-gram order (2: chrF++)")
    chrf.add_argument("--beta", type=int, default=2, help="recall weight (2)")
    chrf.add_argument("--lowercase", "-lc", action="store_true")
    chrf.add_argument("--whitespace", action="store_true", help="keep spaces in char n-grams")
    chrf.add_argument("--eps-smoothing", action="store_true", help="chrF++.py-style smoothing")
    chrf.set_defaults(func=_run_chrf)

    rouge = eval_subparsers.add_parser("rouge", help="ROUGE (rouge-score-compatible)")
    _add_io(rouge)
    rouge.add_argument(
        "--types",
        default="rouge1,rouge2,rougeL,rougeLsum",
        help="comma-separated ROUGE types (rougeN, rougeL, rougeLsum)",
    )
    rouge.add_argument("--stemmer", action="store_true", help="Porter-stem tokens")
    rouge.add_argument("--tokenizer", choices=["default", "cjk"], default="default",
                       help="default: rouge-score's (a-z0-9 only); cjk: one token per Chinese, "
                       "Japanese or Korean character")  # fmt: skip
    rouge.add_argument(
        "--split-summaries", action="store_true", help="rougeLsum: split sentences at . ! ?"
    )
    rouge.add_argument(
        "--sentence-separator",
        default=None,
        metavar="STR",
        help="a string that marks sentence breaks inside a line (e.g. '<n>'), for rougeLsum",
    )
    rouge.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="add a 95%% CI from N resamples"
    )
    rouge.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    rouge.set_defaults(func=_run_rouge)
