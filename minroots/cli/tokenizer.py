"""``minroots tokenizer train``: a byte-level BPE tokenizer from text files, saved as JSON.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); tests in ``tests/test_cli.py``.

::

    minroots tokenizer train --input corpus.txt --vocab-size 4096 --out tok.json
"""

from __future__ import annotations

import time

from minroots.cli.arguments import positive_int
from minroots.tokenizers import train_tokenizer_file

__all__ = ["register", "run_train"]


def register(subparsers) -> None:
    """Add ``tokenizer`` (with its sub-command ``train``) to the ``minroots`` sub-commands."""
    tok = subparsers.add_parser("tokenizer", help="tokenizer tools (train)",
                                description="Tokenizer tools.")  # fmt: skip
    tok_sub = tok.add_subparsers(dest="tokenizer_command", metavar="COMMAND", required=True)
    train = tok_sub.add_parser("train", help="train a byte-level BPE tokenizer on text files",
                               description="Train a byte-level BPE tokenizer (GPT-2 style) and "
                               "save it as JSON.")  # fmt: skip
    train.add_argument("--input", required=True, nargs="+", metavar="FILE",
                       help="UTF-8 text file(s) to learn the merges from")  # fmt: skip
    train.add_argument("--vocab-size", required=True, type=positive_int, metavar="N",
                       help="size of the vocabulary, at least 256 (the bytes)")  # fmt: skip
    train.add_argument("--out", required=True, metavar="FILE", help="where to save the JSON")
    train.add_argument("--pattern", default="gpt2", help="split pattern (%(default)s)")
    train.add_argument("--min-frequency", type=positive_int, default=2, metavar="N",
                       help="merge only pairs seen at least N times (%(default)s)")  # fmt: skip
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)


def run_train(args) -> int:
    """Train the tokenizer, save it and say how long it took."""
    start = time.perf_counter()
    tok = train_tokenizer_file(args.input, args.vocab_size, args.out, pattern=args.pattern,
                               min_frequency=args.min_frequency,
                               show_progress=not args.quiet)  # fmt: skip
    print(
        f"trained a byte-level BPE tokenizer with {tok.vocab_size} tokens in "
        f"{time.perf_counter() - start:.1f} s; saved to {args.out}"
    )
    return 0
