"""``minroots eval perplexity|bleu|chrf|rouge``: score a checkpoint on text, or outputs on references.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``); tests in ``tests/test_cli.py`` and
``tests/test_metrics_cli.py``.

``perplexity`` scores a trained checkpoint on a UTF-8 text file. The others score a file of
outputs: each file holds one sentence (or summary) per line, and line ``i`` of every ``--ref``
file is a reference for line ``i`` of ``--hyp``::

    minroots eval perplexity --checkpoint runs/default --input held_out.txt [--json]
    minroots eval bleu  --hyp out.txt --ref ref.txt [--ref ref2.txt] [--tokenize intl] [--json]
    minroots eval chrf  --hyp out.txt --ref ref.txt [--word-order 2]
    minroots eval rouge --hyp out.txt --ref ref.txt [--types rouge1,rougeL] [--stemmer]
    minroots eval rouge --hyp out.txt --ref ref.txt --tokenizer cjk   # Chinese: per character

Every score they print, as text or JSON, is on one scale, 0-100: ROUGE's fractions (as
rouge-score and :class:`~minroots.metrics.rouge.RougeScorer` return them) are multiplied by 100.

:func:`register` adds ``eval`` to the ``minroots`` sub-commands; :func:`register_scores` adds
``bleu``, ``chrf`` and ``rouge`` to an ``eval`` sub-parsers object. Each command's ``func`` prints
the score and returns the exit code. Bad input raises ValueError or FileNotFoundError with a
message naming the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from functools import partial

import numpy as np

from minroots.cli.arguments import int_in, non_negative_float, positive_int
from minroots.cli.generate import unknown_character
from minroots.metrics.bleu import SMOOTH_METHODS, corpus_bleu
from minroots.metrics.bleu_tokenizers import TOKENIZERS
from minroots.metrics.bootstrap import MAX_SAMPLES, BootstrapAggregator
from minroots.metrics.chrf import corpus_chrf
from minroots.metrics.perplexity import perplexity
from minroots.metrics.rouge import RougeScorer
from minroots.training.checkpoint import load_model, load_tokenizer

__all__ = ["register", "register_scores", "read_lines"]

# the options of each metric: argparse dests that are also the metric function's keywords
BLEU_OPTIONS = ("tokenize", "smooth_method", "smooth_value", "lowercase", "force")
CHRF_OPTIONS = ("char_order", "word_order", "beta", "lowercase", "whitespace", "eps_smoothing")


def register(subparsers) -> None:
    """Add ``eval`` (``perplexity``, ``bleu``, ``chrf``, ``rouge``) to the ``minroots`` commands."""
    ev = subparsers.add_parser("eval", help="evaluate: perplexity, bleu, chrf, rouge",
                               description="Evaluate a model or a file of outputs.")  # fmt: skip
    ev_sub = ev.add_subparsers(dest="eval_command", metavar="METRIC", required=True)
    ppl = ev_sub.add_parser("perplexity", help="a checkpoint's perplexity on a text file",
                            description="Perplexity of a trained checkpoint on a UTF-8 text "
                            "file (sliding window).")  # fmt: skip
    ppl.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run's output folder or a checkpoint folder")  # fmt: skip
    ppl.add_argument("--input", required=True, metavar="FILE", help="UTF-8 text to score")
    ppl.add_argument("--stride", type=positive_int, default=None, metavar="N",
                     help="window step (default block_size // 2)")  # fmt: skip
    ppl.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                     help="windows per model call (%(default)s)")  # fmt: skip
    ppl.add_argument("--json", action="store_true", help="print the result as JSON")
    ppl.set_defaults(func=run_perplexity)
    register_scores(ev_sub)


def register_scores(eval_subparsers) -> None:
    """Add the ``bleu``, ``chrf`` and ``rouge`` commands to an argparse sub-parsers object."""
    bleu = eval_subparsers.add_parser(
        "bleu", help="corpus BLEU (sacrebleu-compatible)",
        description="Corpus BLEU of a file of outputs against reference files, equal to "
        "sacrebleu's; prints sacrebleu's line with its signature, or JSON (score 0-100).",
    )  # fmt: skip
    _add_io(bleu)
    bleu.add_argument("--tokenize", "-tok", choices=sorted(TOKENIZERS), default="13a",
                      help="how the text is cut into words before counting n-grams: 13a (WMT's "
                      "default), intl (Unicode punctuation), zh (Chinese characters), char, "
                      "none (already tokenized); default %(default)s")  # fmt: skip
    bleu.add_argument("--smooth-method", "-s", choices=list(SMOOTH_METHODS), default="exp",
                      help="what replaces a zero n-gram precision: exp (halved each time), floor, "
                      "add-k, or none; default %(default)s")  # fmt: skip
    bleu.add_argument(
        "--smooth-value",
        type=non_negative_float,
        default=None,
        help="for floor (0.1) and add-k (1)",
    )
    bleu.add_argument("--lowercase", "-lc", action="store_true", help="case-insensitive BLEU")
    bleu.add_argument("--force", action="store_true", help="accept text that looks tokenized")
    bleu.set_defaults(func=partial(_score_files, metric=corpus_bleu, options=BLEU_OPTIONS))

    chrf = eval_subparsers.add_parser(
        "chrf", help="chrF / chrF++ (sacrebleu-compatible)",
        description="chrF (character n-grams) or chrF++ (plus word n-grams) of a file of outputs "
        "against reference files, equal to sacrebleu's; prints its line, or JSON (score 0-100).",
    )  # fmt: skip
    _add_io(chrf)
    chrf.add_argument("--char-order", type=int_in(0, 100), default=6,
                      help="character n-gram order (6)")  # fmt: skip
    chrf.add_argument("--word-order", type=int_in(0, 100), default=0, help="word n-gram order: 0 "
                      "for chrF (the default), 2 for chrF++")  # fmt: skip
    chrf.add_argument("--beta", type=int_in(0, 100), default=2, help="recall weight (2)")
    chrf.add_argument("--lowercase", "-lc", action="store_true", help="case-insensitive chrF")
    chrf.add_argument("--whitespace", action="store_true", help="keep spaces in char n-grams")
    chrf.add_argument("--eps-smoothing", action="store_true", help="chrF++.py-style smoothing")
    chrf.set_defaults(func=partial(_score_files, metric=corpus_chrf, options=CHRF_OPTIONS))

    rouge = eval_subparsers.add_parser(
        "rouge", help="ROUGE (rouge-score-compatible)",
        description="Mean ROUGE precision, recall and F over the lines of a file of outputs "
        "against reference files (the best reference per line), equal to rouge-score's; prints "
        "one line per type, or JSON; both on the 0-100 scale of BLEU and chrF.",
    )  # fmt: skip
    _add_io(rouge)
    rouge.add_argument(
        "--types",
        default="rouge1,rouge2,rougeL,rougeLsum",
        help="comma-separated ROUGE types: rouge1 to rouge9, rougeL, rougeLsum (default %(default)s)",
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
        "--bootstrap",
        type=int_in(0, MAX_SAMPLES),
        default=0,
        metavar="N",
        help=f"add a 95%% CI from N resamples (at most {MAX_SAMPLES:,})",
    )
    rouge.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    rouge.set_defaults(func=run_rouge)


# --- minroots eval perplexity -------------------------------------------------------------------
def run_perplexity(args) -> int:
    """A checkpoint's perplexity on a text file, as a line or as JSON."""
    model = load_model(args.checkpoint)
    tokenizer = load_tokenizer(args.checkpoint)
    try:
        with open(args.input, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"--input: file {args.input!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"--input: {args.input!r} is not UTF-8 text ({exc.reason})") from None
    try:
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    except ValueError as e:
        unknown = unknown_character(tokenizer, text)
        if unknown is None:
            raise ValueError(f"--input {args.input}: {e}") from None
        where, char = unknown
        line = text.count("\n", 0, where) + 1
        raise ValueError(
            f"--input {args.input}: character {char!r} (U+{ord(char):04X}) on line {line} is not "
            "in the checkpoint's vocabulary; remove such characters from the file, or score a "
            "checkpoint whose tokenizer knows them (a byte-level BPE tokenizer knows every one)"
        ) from None
    if ids.size < 2:
        raise ValueError(f"--input: {args.input!r} has {ids.size} tokens; at least 2 are needed")
    result = perplexity(model, ids, stride=args.stride, batch_size=args.batch_size,
                        num_bytes=len(text.encode("utf-8")))  # fmt: skip
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=1))
    else:
        print(
            f"perplexity {result.perplexity:.4f}  nll {result.nll:.4f} nats/token  "
            f"{result.bits_per_token:.4f} bits/token  {result.bits_per_byte:.4f} bits/byte  "
            f"({result.num_tokens} tokens)"
        )
    return 0


# --- minroots eval bleu|chrf|rouge --------------------------------------------------------------
def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 text file, without their line endings; an empty file is an error."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"read_lines: file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"read_lines: {path} is a directory, expected a text file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"read_lines: {path} is not valid UTF-8 text ({exc.reason})") from None
    if not text:
        raise ValueError(f"read_lines: {path} is empty")
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
                f"--ref: {path} has {len(lines)} lines but {hyp_path} has {len(hypotheses)}; "
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
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON (scores 0-100, as in the text output)")  # fmt: skip


def _score_files(args, metric, options) -> int:
    """``metric(hypotheses, references, **options)`` on ``--hyp`` and ``--ref``, each option's
    value the argument of that name; print sacrebleu's line (with its signature) or JSON."""
    hypotheses, references = _read_corpus(args.hyp, args.ref)
    score = metric(hypotheses, references, **{name: getattr(args, name) for name in options})
    print(json.dumps(score.to_dict(), indent=1) if args.json else score.format(signature=True))
    return 0


def run_rouge(args) -> int:
    """Mean ROUGE precision, recall and F over the lines (with a bootstrap interval if asked)."""
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
    # one scale for every score the command line prints: 0-100, as BLEU and chrF (rouge-score's
    # and RougeScorer's fractions times 100)
    result = {t: {field: 100 * v for field, v in s.items()} for t, s in result.items()}
    if args.json:
        print(json.dumps({"stemmer": args.stemmer, "lines": len(predictions), **result}, indent=1))
        return 0
    for rouge_type, s in result.items():
        line = (
            f"{rouge_type:<10} P = {s['precision']:.2f}  R = {s['recall']:.2f}  "
            f"F = {s['fmeasure']:.2f}"
        )
        if "fmeasure_low" in s:
            line += f"  (95% CI {s['fmeasure_low']:.2f}-{s['fmeasure_high']:.2f})"
        print(line)
    return 0
