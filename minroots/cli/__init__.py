"""The ``minroots`` command line: one module per command, registered in :data:`COMMANDS`.

Book chapter 7, "Training" (``book/07_training.md``), for ``train``; chapter 9 for ``generate``;
chapter 6 (``book/06_tokenizers.md``) for ``tokenizer train``; chapter 8
(``book/08_evaluation.md``) for ``eval``; "Exercises and assignments" (``book/assignments.md``)
for ``assignments``; chapter 10 (``book/10_applications.md``) for ``finetune`` and ``chat``.
Tests in ``tests/test_cli.py``, ``tests/test_metrics_cli.py``, ``tests/test_assignments.py``,
``tests/test_posttrain_finetune.py`` and ``tests/test_chat_cli.py``.

::

    minroots train                                   # the default preset: a char-level GPT on
                                                     # the bundled Shakespeare, a few minutes
    minroots train --preset tiny --out runs/t max_steps=50 lr=3e-3
    minroots train --config my_run.toml --resume
    minroots generate --checkpoint runs/default --prompt "ROMEO:" --max-new-tokens 200
    minroots tokenizer train --input corpus.txt --vocab-size 4096 --out tok.json
    minroots eval perplexity --checkpoint runs/default --input held_out.txt
    minroots eval bleu --hyp out.txt --ref ref.txt
    minroots assignments make --out student/
    minroots finetune --preset chat                  # chapter 10: a chat model in minutes
    minroots chat --checkpoint runs/chat

A run is described by a TOML file with four tables (see ``minroots/presets/default.toml`` and
:mod:`minroots.training.run_config`): ``[data]``, ``[model]``, ``[train]`` and ``[sample]``.
``--config FILE`` changes the preset's values; ``key=value`` arguments change single values, e.g.
``max_steps=100`` or ``model.n_layer=2`` (values are read as TOML: ``3e-4`` is a number, ``none``
is None, anything else that is not TOML is a string).

**Adding a command** is one line here: write ``minroots/cli/<name>.py`` with a function
``register(subparsers)`` that adds the command's parser and sets ``func`` on it (a function of the
parsed arguments that returns the exit status, by convention the module's ``run``), and add
``"<name>"`` to :data:`COMMANDS`. A command with sub-commands (``eval bleu``) sets ``func`` on
each of them.

Errors the user can fix (a missing file, an unknown key, a wrong type) print one line,
``minroots: error: ...``, and exit with status 2; a run that diverges exits with status 1. An
unknown option points at the help of the command it was given to (``minroots train --help``),
with the command's hint if it has one (``unrecognized_hint`` in its module). When the reader of
the output goes away (``minroots generate ... | head``) the command stops quietly with status 141,
as a command-line tool killed by SIGPIPE does.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
import warnings

import minroots.installation  # noqa: F401 - first: a folder that hides the package says so
from minroots import __version__
from minroots.training.divergence import DivergenceError
from minroots.training.run_config import list_presets, load_run_config, parse_override

__all__ = ["main", "build_parser", "COMMANDS", "load_run_config", "parse_override", "list_presets"]

PROG = "minroots"

# The commands, in the order `minroots --help` lists them: the modules minroots/cli/<name>.py.
COMMANDS = [
    "train",
    "generate",
    "tokenizer",
    "eval",
    "assignments",
    "export",
    "serve",
    "quantize",
    "finetune",
    "chat",
]


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (``minroots: error: ...``) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``minroots`` argument parser with the sub-command of every module in :data:`COMMANDS`."""
    parser = _Parser(prog=PROG, description="Build, train, evaluate and use Transformer language "
                     "models from scratch.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"minroots {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def _one_line(exc: BaseException) -> str:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(message).split()) or type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a damaged checkpoint skipped, a cache rebuilt) as ``minroots: warning: ...``."""
    print(f"{PROG}: warning: {_one_line(message)}", file=file or sys.stderr)


def _command_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The parser of the (sub-)command that ``args`` selected: ``minroots eval bleu``'s, ..."""
    while parser._subparsers is not None:
        action = parser._subparsers._group_actions[0]
        name = getattr(args, action.dest, None)
        if name not in action.choices:
            break
        parser = action.choices[name]
    return parser


def _unrecognized(parser, args, extras: list[str], argv: list[str]) -> None:
    """Exit with the usage error of the command that got ``extras``, with its module's hint."""
    module = importlib.import_module(f"{__name__}.{args.command}")
    hint = getattr(module, "unrecognized_hint", lambda extras, argv: "")(extras, argv)
    _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _quiet_stdout() -> None:
    """Point stdout at the null device, so that Python's last flush cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout is not a file (a test's capture): nothing will flush into a closed pipe


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 training failed, 2 bad input)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            _unrecognized(parser, args, extras, argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return int(exc.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except BrokenPipeError:  # `minroots generate ... | head`: the reader has gone; stop quietly
        _quiet_stdout()
        return 128 + 13  # what a shell reports for a tool killed by SIGPIPE (signal 13)
    except DivergenceError as exc:
        print(f"{PROG}: training failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{PROG}: interrupted {exc}".rstrip(), file=sys.stderr)
        return 130
