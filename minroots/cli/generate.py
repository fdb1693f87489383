"""``minroots generate``: continue a prompt with a trained checkpoint, printing text as it comes.

Book chapter 9, "Generation" (``book/09_generation.md``); the sliding-window cache past the
context is chapter 12 (``book/12_modern_decoder.md``). Tests in ``tests/test_cli.py``.

::

    minroots generate --checkpoint runs/default --prompt "ROMEO:" --max-new-tokens 200

Each run samples afresh: without ``--seed`` a new seed is drawn and printed to stderr after the
text, and ``--seed S`` repeats the sample drawn with ``S``.

:func:`stream_sample` is also how ``minroots train`` prints its sample at the end of a run.
"""

from __future__ import annotations

import secrets
import sys

from minroots.cli.arguments import non_negative_float, positive_int, probability
from minroots.generation import stream
from minroots.training.checkpoint import load_model, load_tokenizer
from minroots.training.run_config import SampleSettings

__all__ = ["register", "run", "stream_sample", "unknown_character"]

_PAST_THE_WINDOW = (
    "Past the context window (block_size tokens): a model with learned positions (GPT-2 style) "
    "has no position vector beyond it, so each new token recomputes the last block_size tokens "
    "without the key/value cache (block_size positions of work instead of one); a model with "
    'rotary positions (position = "rope", e.g. --preset llama) keeps a sliding-window cache '
    "and each token costs the same however long the text grows."
)


def register(subparsers) -> None:
    """Add ``generate`` to the ``minroots`` sub-commands."""
    gen = subparsers.add_parser("generate", help="continue a prompt with a trained model "
                                "(streams text)", description="Load a checkpoint (a run's folder "
                                "or one checkpoint) and print a continuation of the prompt as it "
                                "is generated.", epilog=_PAST_THE_WINDOW)  # fmt: skip
    gen.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run's output folder (its latest checkpoint) or a checkpoint folder")  # fmt: skip
    gen.add_argument("--prompt", default="\n", metavar="TEXT", help="text to continue "
                     "(default: a newline)")  # fmt: skip
    gen.add_argument("--max-new-tokens", type=int, default=200, metavar="N",
                     help="tokens to generate (%(default)s)")  # fmt: skip
    gen.add_argument("--temperature", type=non_negative_float, default=0.8, metavar="T",
                     help="sampling temperature, 0 for greedy (%(default)s)")  # fmt: skip
    gen.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                     help="sample among the K most likely tokens only")  # fmt: skip
    gen.add_argument("--top-p", type=probability, default=None, metavar="P",
                     help="sample among the most likely tokens holding probability P")  # fmt: skip
    gen.add_argument("--seed", type=int, default=None, metavar="S", help="seed of the sampling "
                     "(default: a fresh one each run, printed to stderr after the text so that the "
                     "sample can be repeated)")  # fmt: skip
    gen.set_defaults(func=run)


def run(args) -> int:
    """Load the checkpoint's model and tokenizer and stream a continuation of ``--prompt``."""
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens: must be >= 0, got {args.max_new_tokens}")
    model = load_model(args.checkpoint)
    tokenizer = load_tokenizer(args.checkpoint)
    # fresh randomness unless --seed, and the seed said after the text, so that it can be repeated
    seed = secrets.randbits(32) if args.seed is None else args.seed
    sample = SampleSettings(prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            seed=seed)  # fmt: skip
    stream_sample(model, tokenizer, sample)
    if args.seed is None:
        print(f"minroots generate: seed {seed} (--seed {seed} repeats this sample)",
              file=sys.stderr)  # fmt: skip
    return 0


def unknown_character(tokenizer, text: str) -> tuple[int, str] | None:
    """``(position, character)`` of the first character of ``text`` that a character-level
    tokenizer does not know, or ``None`` (also for tokenizers without a character list)."""
    known = getattr(tokenizer, "chars", None)
    if known is None:
        return None
    known = set(known)
    return next(((i, c) for i, c in enumerate(text) if c not in known), None)


def stream_sample(model, tokenizer, sample: SampleSettings, out=None) -> str:
    """Print the prompt and then each generated piece of text as soon as it is known."""
    out = out or sys.stdout
    try:
        prompt_ids = tokenizer.encode(sample.prompt)
    except ValueError as e:
        unknown = unknown_character(tokenizer, sample.prompt)
        if unknown is None:
            raise ValueError(f"--prompt: {e}") from None
        where, char = unknown
        raise ValueError(
            f"--prompt: character {char!r} (U+{ord(char):04X}) at position {where} is not in "
            "this checkpoint's vocabulary; leave it out: the checkpoint knows only the "
            f"characters {''.join(tokenizer.chars)!r}"
        ) from None
    if not prompt_ids:
        raise ValueError(f"--prompt: must encode to at least one token, got {sample.prompt!r}")
    ids, shown = [], ""
    out.write(sample.prompt)
    out.flush()
    for token in stream(model, prompt_ids, sample.max_new_tokens, temperature=sample.temperature,
                        top_k=sample.top_k, top_p=sample.top_p, seed=sample.seed):  # fmt: skip
        ids.append(int(token))
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            continue
        out.write(text[len(shown) :])
        out.flush()
        shown = text
    out.write("\n")
    out.flush()
    return sample.prompt + shown
