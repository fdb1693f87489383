"""``minroots chat``: talk to a fine-tuned checkpoint in the terminal, or through a pipe.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.6); tests in ``tests/test_chat_cli.py``.

::

    minroots chat --checkpoint runs/chat
    printf 'Hello\\nWhat is AI?\\n/exit\\n' | minroots chat --checkpoint runs/chat --seed 0

Each line read is a user message; the reply is printed as it is generated. ``/reset`` starts a
new conversation, ``/exit`` (or the end of the input) quits. When the conversation no longer
fits the model's context, the oldest turns are dropped and a note says so. Notes and the banner
go to standard error, so piped output holds only the replies, one line each.
"""

from __future__ import annotations

import sys

from minroots.backend import manual_seed
from minroots.chat.session import ChatSession
from minroots.chat.template import ChatTemplate
from minroots.cli.arguments import positive_int
from minroots.training.checkpoint import load_model

__all__ = ["register", "run"]

COMMANDS_HELP = "/reset starts over, /exit quits"


def register(subparsers) -> None:
    """Add ``chat`` to the ``minroots`` sub-commands."""
    p = subparsers.add_parser(
        "chat", help="chat with a fine-tuned checkpoint (streams replies; works on piped input)",
        description="Chat with a checkpoint that has a chat template (made by minroots "
        f"finetune). Each input line is a message; {COMMANDS_HELP}.",
        epilog="example: printf 'Hello\\n/exit\\n' | minroots chat --checkpoint runs/chat",
    )  # fmt: skip
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a fine-tuned run's folder (its latest checkpoint) or a checkpoint")  # fmt: skip
    p.add_argument("--system", metavar="TEXT", help="a system message kept at the start")
    p.add_argument("--max-new-tokens", type=positive_int, default=200, metavar="N",
                   help="longest reply in tokens (%(default)s)")  # fmt: skip
    p.add_argument("--temperature", type=float, default=0.7, metavar="T",
                   help="sampling temperature, 0 for greedy (%(default)s)")  # fmt: skip
    p.add_argument("--top-k", type=positive_int, default=20, metavar="K",
                   help="sample among the K most likely tokens (%(default)s)")  # fmt: skip
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="sample among the most likely tokens holding probability P")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, metavar="S", help="fix the sampling")
    p.set_defaults(func=run)


def run(args, stdin=None, stdout=None, stderr=None) -> int:
    """Read messages until ``/exit`` or the end of input, printing each reply as it comes."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    template = ChatTemplate.load(args.checkpoint)
    if template is None:
        raise ValueError(
            f"--checkpoint: {args.checkpoint!r} has no chat template (chat_template.json): "
            f"fine-tune it first, e.g. minroots finetune --checkpoint {args.checkpoint} --out "
            "runs/chat"
        )
    model = load_model(args.checkpoint)
    if args.seed is not None:
        manual_seed(args.seed)
    session = ChatSession(model, template, system=args.system,
                          max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                          top_k=args.top_k, top_p=args.top_p)  # fmt: skip
    tty = stdin.isatty()
    print(f"minroots chat: {args.checkpoint} (context {session.block_size} tokens); "
          f"{COMMANDS_HELP}", file=stderr, flush=True)  # fmt: skip
    while True:
        if tty:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line:  # end of input
            break
        text = line.strip()
        if not text:
            continue
        if text == "/exit":
            break
        if text == "/reset":
            session.reset()
            print("(a new conversation)", file=stderr, flush=True)
            continue
        if text.startswith("/"):
            print(f"(unknown command {text.split()[0]!r}: {COMMANDS_HELP})", file=stderr,
                  flush=True)  # fmt: skip
            continue
        _reply(session, text, stdout, stderr, tty)
    return 0


def _reply(session: ChatSession, text: str, stdout, stderr, tty: bool) -> None:
    try:
        dropped = session.ask(text)
    except ValueError as exc:
        print(f"({exc})", file=stderr, flush=True)
        return
    if dropped:
        print(f"(dropped the {dropped} oldest message{'s' * (dropped > 1)} to stay within the "
              f"{session.block_size}-token context)", file=stderr, flush=True)  # fmt: skip
    if tty:
        stdout.write("assistant> ")
    for piece in session.stream_reply():
        stdout.write(piece)
        stdout.flush()
    stdout.write("\n")
    stdout.flush()
