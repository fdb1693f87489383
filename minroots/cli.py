"""The ``minroots`` command line: train, generate, train a tokenizer, evaluate, assignments.

Book chapter 7, "Training" (``book/07_training.md``), for ``train``; chapter 9 for ``generate``;
chapter 6 (``book/06_tokenizers.md``) for ``tokenizer train``; chapter 8
(``book/08_evaluation.md``) for ``eval``. Tests in ``tests/test_cli.py``.

::

    minroots train                                   # the default preset: a char-level GPT on
                                                     # the bundled Shakespeare, a few minutes
    minroots train --preset tiny --out runs/t max_steps=50 lr=3e-3
    minroots train --config my_run.toml --resume
    minroots generate --checkpoint runs/default --prompt "ROMEO:" --max-new-tokens 200
    minroots tokenizer train --input corpus.txt --vocab-size 4096 --out tok.json
    minroots eval perplexity --checkpoint runs/default --input held_out.txt
    minroots eval bleu --hyp out.txt --ref ref.txt

A run is described by a TOML file with four tables (see ``minroots/presets/default.toml``):
``[data]`` (corpus, tokenizer), ``[model]`` (:class:`~minroots.nn.TransformerConfig` fields),
``[train]`` (:class:`~minroots.training.TrainerConfig` fields) and ``[sample]`` (the text printed
at the end). ``--config FILE`` changes the preset's values; ``key=value`` arguments change single
values, e.g. ``max_steps=100`` or ``model.n_layer=2`` (values are read as TOML: ``3e-4`` is a
number, ``none`` is None, anything else that is not TOML is a string).

Errors the user can fix (a missing file, an unknown key, a wrong type) print one line,
``minroots: error: ...``, and exit with status 2; a run that diverges exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources

__all__ = ["main", "build_parser", "load_run_config", "parse_override", "list_presets"]

PROG = "minroots"


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (``minroots: error: ...``) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


# --- run configuration: [data], [model], [train], [sample] --------------------------------------
@dataclass
class DataSettings:
    """The ``[data]`` table of a run."""

    corpus: str = "shakespeare"  # a bundled corpus name or a path to a UTF-8 text file
    tokenizer: str = "char"  # "char" (one id per character) or a tokenizer JSON file
    val_fraction: float = 0.1  # share of the text held out for validation
    val_pieces: int = 1  # hold out the end of each of this many equal pieces of the text
    max_chars: int | None = None  # use only the first this many characters (quick runs)
    cache_dir: str | None = None  # where token ids are cached (default: the user cache folder)


@dataclass
class SampleSettings:
    """The ``[sample]`` table: the text generated at the end of ``minroots train``."""

    prompt: str = "\n"  # text the sample continues
    max_new_tokens: int = 300  # tokens to generate (0: no sample)
    temperature: float = 0.8  # below 1: more conservative, 0: greedy
    top_k: int | None = None  # sample only among the k most likely tokens
    top_p: float | None = None  # ... or the smallest set with this much probability
    seed: int | None = 0  # seeds the sampling (None: minroots' global generator)


def _model_fields() -> list[str]:
    from minroots.nn import TransformerConfig

    return [f.name for f in dataclasses.fields(TransformerConfig)]


def _tables():
    from minroots.nn import TransformerConfig
    from minroots.training import TrainerConfig

    return {"data": DataSettings, "model": TransformerConfig, "train": TrainerConfig,
            "sample": SampleSettings}  # fmt: skip


def list_presets() -> list[str]:
    """Names of the bundled presets (``minroots/presets/*.toml``)."""
    folder = resources.files("minroots") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _preset_path(name: str):
    path = resources.files("minroots") / "presets" / f"{name}.toml"
    if not path.is_file():
        raise ValueError(
            f"--preset: unknown preset {name!r}; available: {', '.join(list_presets())}"
        )
    return path


def parse_override(item: str) -> tuple[str | None, str, object]:
    """``"model.n_layer=2"`` -> ``("model", "n_layer", 2)``; ``"lr=3e-4"`` -> ``(None, "lr", 0.0003)``.

    The value is read as a TOML value when it is one (numbers, ``true``, ``[0.9, 0.95]``,
    ``"quoted"``); ``none``/``null`` mean None; anything else is kept as a string.
    """
    from minroots.training.config import tomllib

    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value (e.g. max_steps=100)")
    key, raw = item.split("=", 1)
    key = key.strip()
    table, _, name = key.rpartition(".")
    if not name:
        raise ValueError(f"override {item!r} has no key before '='")
    if raw.strip().lower() in ("none", "null"):
        value = None
    else:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
    return (table or None), name, value


def _apply_override(run: dict, item: str) -> None:
    tables = _tables()
    table, name, value = parse_override(item)
    if table is None:
        owners = [
            t for t, cls in tables.items() if name in {f.name for f in dataclasses.fields(cls)}
        ]
        if len(owners) > 1:
            raise ValueError(
                f"override {item!r}: {name!r} is a key of {' and '.join(owners)}; write e.g. "
                f"{owners[0]}.{name}=..."
            )
        if not owners:
            every = [f.name for cls in tables.values() for f in dataclasses.fields(cls)]
            close = difflib.get_close_matches(name, every, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"override {item!r}: unknown key {name!r}{hint}")
        table = owners[0]
    if table not in tables:
        raise ValueError(
            f"override {item!r}: unknown table {table!r}; tables are {', '.join(tables)}"
        )
    run.setdefault(table, {})[name] = value


def load_run_config(preset: str = "default", config: str | None = None, overrides=()) -> dict:
    """The four tables of a run: the preset, changed by a TOML file, changed by ``key=value``s.

    Returns ``{"data": DataSettings, "model": dict, "train": dict, "sample": SampleSettings}``
    (model and train stay dicts: ``vocab_size`` and ``out_dir`` are filled in later). Unknown
    tables or keys and wrong types raise with the file and key named.
    """
    from minroots.training.config import check_fields, load_toml

    tables = _tables()
    run: dict = {name: {} for name in tables}

    def merge(data: dict, source: str) -> None:
        for table, values in data.items():
            if table not in tables:
                raise ValueError(
                    f"{source}: unknown table [{table}]; tables are "
                    + ", ".join(f"[{t}]" for t in tables)
                )
            if not isinstance(values, dict):
                raise ValueError(f"{source}: {table} must be a table ([{table}]), got {values!r}")
            run[table].update(values)

    merge(load_toml(_preset_path(preset)), f"preset {preset!r}")
    if config is not None:
        merge(load_toml(config), config)
    for item in overrides:
        _apply_override(run, item)
    for table, cls in tables.items():
        run[table] = check_fields(cls, run[table], where=f"[{table}]")
    run["data"] = DataSettings(**run["data"])
    run["sample"] = SampleSettings(**run["sample"])
    return run


# --- minroots train ------------------------------------------------------------------------------
def _build_dataset(data: DataSettings, block_size: int, seed: int):
    from minroots.data import TextDataset, load_corpus

    text = load_corpus(data.corpus)
    if data.max_chars is not None:
        if data.max_chars < 2:
            raise ValueError(f"[data]: max_chars must be >= 2, got {data.max_chars}")
        text = text[: data.max_chars]
    tokenizer = None
    if data.tokenizer != "char":
        from minroots.tokenizers import load

        tokenizer = load(data.tokenizer)
    return TextDataset(text, tokenizer=tokenizer, block_size=block_size,
                       val_fraction=data.val_fraction, val_pieces=data.val_pieces,
                       cache_dir=data.cache_dir, seed=seed)  # fmt: skip


def _stream_sample(model, tokenizer, sample: SampleSettings, out=None) -> str:
    """Print the prompt and then each generated piece of text as soon as it is known."""
    from minroots.generation import stream

    out = out or sys.stdout
    try:
        prompt_ids = tokenizer.encode(sample.prompt)
    except ValueError as e:
        known = getattr(tokenizer, "chars", None)
        hint = f"; this checkpoint knows only the characters {''.join(known)!r}" if known else ""
        raise ValueError(f"--prompt: {e}{hint}") from None
    if not prompt_ids:
        raise ValueError("the prompt encodes to no tokens; give a non-empty --prompt")
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


def cmd_train(args) -> int:
    """``minroots train``: train a model from a preset/config, then report and sample."""
    import minroots
    from minroots.nn import TransformerConfig, TransformerModel
    from minroots.training import Trainer, TrainerConfig, latest_checkpoint

    run = load_run_config(args.preset, args.config, args.overrides)
    train = run["train"]
    if args.out is not None:
        train["out_dir"] = args.out
    default_dir = "out_dir" not in train
    if default_dir:  # the CLI's own folder per preset: rerunning a preset replaces its last run
        train["out_dir"] = os.path.join("runs", args.preset)
        train.setdefault("overwrite", True)
    if args.overwrite:
        train["overwrite"] = True
    tcfg = TrainerConfig.from_dict(train)
    if not args.resume and not tcfg.overwrite and tcfg.out_dir is not None:
        latest = latest_checkpoint(tcfg.out_dir)
        if latest is not None:
            raise FileExistsError(
                f"--out {tcfg.out_dir} already holds a run (latest checkpoint {latest.name}); add "
                "--resume to continue it or --overwrite to replace it"
            )

    model_table = dict(run["model"])
    dataset = _build_dataset(run["data"], model_table.get("block_size", 128), tcfg.seed)
    vocab = model_table.setdefault("vocab_size", dataset.vocab_size)
    if vocab < dataset.vocab_size:
        raise ValueError(
            f"[model]: vocab_size={vocab} is smaller than the data's {dataset.vocab_size}"
        )
    minroots.manual_seed(tcfg.seed)
    model = TransformerModel(TransformerConfig(**model_table))
    trainer = Trainer(model, dataset, config=tcfg)
    if args.resume:
        trainer.resume()
    c = model.config
    print(
        f"minroots train: {run['data'].corpus} ({dataset.num_tokens:,} tokens, vocabulary "
        f"{dataset.vocab_size}); GPT with {model.num_parameters():,} parameters (n_layer={c.n_layer}, "
        f"n_head={c.n_head}, n_embd={c.n_embd}, block_size={c.block_size}); {trainer.total_steps} "
        f"steps of {trainer.sequences_per_step} x {c.block_size} tokens; writing to {tcfg.out_dir}",
        flush=True,
    )
    start = time.perf_counter()
    try:
        history = trainer.train()
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted_note(trainer)) from None
    elapsed = time.perf_counter() - start
    last = history.last_val
    if last is None:  # eval_interval = 0: evaluate once now, so there is a number to report
        last = trainer.evaluate()
    print(
        f"done: {trainer.step} steps in {elapsed:.1f} s; validation loss {last['val_loss']:.4f} "
        f"nats/token, validation perplexity {last['val_perplexity']:.2f}"
    )
    if tcfg.out_dir is not None:
        print(f"checkpoint: {tcfg.out_dir} (minroots generate --checkpoint {tcfg.out_dir})")
    if run["sample"].max_new_tokens > 0:
        print("sample:")
        _stream_sample(model, dataset.tokenizer, run["sample"])
    return 0


def _interrupted_note(trainer) -> str:
    """Where an interrupted run stopped and how to continue it."""
    where = f"at step {trainer.step} of {trainer.total_steps}"
    latest = trainer.last_checkpoint()
    if latest is None:
        return (
            f"{where}; no checkpoint was saved yet (save_interval = {trainer.config.save_interval})"
        )
    return f"{where}; to continue from {latest}, run the same command with --resume"


# --- minroots generate ---------------------------------------------------------------------------
def cmd_generate(args) -> int:
    """``minroots generate``: continue a prompt with a trained checkpoint, streaming the text."""
    from minroots.training import load_model, load_tokenizer

    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    model = load_model(args.checkpoint)
    tokenizer = load_tokenizer(args.checkpoint)
    sample = SampleSettings(prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            seed=args.seed)  # fmt: skip
    _stream_sample(model, tokenizer, sample)
    return 0


# --- minroots tokenizer train -------------------------------------------------------------------
def cmd_tokenizer_train(args) -> int:
    """``minroots tokenizer train``: a byte-level BPE tokenizer from text files, saved as JSON."""
    from minroots.tokenizers import train_tokenizer_file

    start = time.perf_counter()
    tok = train_tokenizer_file(args.input, args.vocab_size, args.out, pattern=args.pattern,
                               min_frequency=args.min_frequency,
                               show_progress=not args.quiet)  # fmt: skip
    print(
        f"trained a byte-level BPE tokenizer with {tok.vocab_size} tokens in "
        f"{time.perf_counter() - start:.1f} s; saved to {args.out}"
    )
    return 0


# --- minroots eval perplexity -------------------------------------------------------------------
def cmd_eval_perplexity(args) -> int:
    """``minroots eval perplexity``: a checkpoint's perplexity on a text file."""
    import numpy as np

    from minroots.metrics import perplexity
    from minroots.training import load_model, load_tokenizer

    model = load_model(args.checkpoint)
    tokenizer = load_tokenizer(args.checkpoint)
    try:
        with open(args.input, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"--input: file {args.input!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"--input: {args.input!r} is not UTF-8 text ({exc.reason})") from None
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
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


# --- the parser ----------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``minroots`` argument parser with its sub-commands."""
    from minroots import __version__

    parser = _Parser(prog=PROG, description="Build, train, evaluate and use Transformer language "
                     "models from scratch.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"minroots {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train", help="train a GPT (no arguments: the default preset on the bundled Shakespeare)",
        description="Train a GPT from a preset, a TOML config and key=value overrides; print the "
        "validation perplexity and a generated sample at the end.",
        epilog="examples: minroots train | minroots train --preset tiny max_steps=50 | "
        "minroots train --config run.toml model.n_layer=2 lr=3e-4",
    )  # fmt: skip
    train.add_argument("--config", metavar="FILE.toml", help="a TOML file with [data], [model], "
                       "[train], [sample] tables changing the preset's values")  # fmt: skip
    train.add_argument("--preset", default="default", metavar="NAME",
                       help="a bundled preset: %(default)s (the default) or tiny (seconds)")  # fmt: skip
    train.add_argument("--out", metavar="DIR", help="output folder (default runs/<preset>)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in the "
                       "output folder from its latest checkpoint")  # fmt: skip
    train.add_argument("--overwrite", action="store_true", help="replace another run's "
                       "checkpoints in --out")  # fmt: skip
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="change one setting, e.g. max_steps=100 or model.n_embd=64")  # fmt: skip
    train.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help="continue a prompt with a trained model (streams text)",
                         description="Load a checkpoint (a run's folder or one checkpoint) and "
                         "print a continuation of the prompt as it is generated.")  # fmt: skip
    gen.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run's output folder (its latest checkpoint) or a checkpoint folder")  # fmt: skip
    gen.add_argument("--prompt", default="\n", metavar="TEXT", help="text to continue "
                     "(default: a newline)")  # fmt: skip
    gen.add_argument("--max-new-tokens", type=int, default=200, metavar="N",
                     help="tokens to generate (%(default)s)")  # fmt: skip
    gen.add_argument("--temperature", type=float, default=0.8, metavar="T",
                     help="sampling temperature, 0 for greedy (%(default)s)")  # fmt: skip
    gen.add_argument("--top-k", type=_positive_int, default=None, metavar="K",
                     help="sample among the K most likely tokens only")  # fmt: skip
    gen.add_argument("--top-p", type=float, default=None, metavar="P",
                     help="sample among the most likely tokens holding probability P")  # fmt: skip
    gen.add_argument("--seed", type=int, default=None, metavar="S", help="fix the sampling")
    gen.set_defaults(func=cmd_generate)

    tok = sub.add_parser("tokenizer", help="tokenizer tools (train)",
                         description="Tokenizer tools.")  # fmt: skip
    tok_sub = tok.add_subparsers(dest="tokenizer_command", metavar="COMMAND", required=True)
    tok_train = tok_sub.add_parser("train", help="train a byte-level BPE tokenizer on text files",
                                   description="Train a byte-level BPE tokenizer (GPT-2 style) "
                                   "and save it as JSON.")  # fmt: skip
    tok_train.add_argument("--input", required=True, nargs="+", metavar="FILE",
                           help="UTF-8 text file(s) to learn the merges from")  # fmt: skip
    tok_train.add_argument("--vocab-size", required=True, type=_positive_int, metavar="N",
                           help="size of the vocabulary, at least 256 (the bytes)")  # fmt: skip
    tok_train.add_argument("--out", required=True, metavar="FILE", help="where to save the JSON")
    tok_train.add_argument("--pattern", default="gpt2", help="split pattern (%(default)s)")
    tok_train.add_argument("--min-frequency", type=_positive_int, default=2, metavar="N",
                           help="merge only pairs seen at least N times (%(default)s)")  # fmt: skip
    tok_train.add_argument("--quiet", action="store_true", help="no progress bar")
    tok_train.set_defaults(func=cmd_tokenizer_train)

    ev = sub.add_parser("eval", help="evaluate: perplexity, bleu, chrf, rouge",
                        description="Evaluate a model or a file of outputs.")  # fmt: skip
    ev_sub = ev.add_subparsers(dest="eval_command", metavar="METRIC", required=True)
    ppl = ev_sub.add_parser("perplexity", help="a checkpoint's perplexity on a text file",
                            description="Perplexity of a trained checkpoint on a UTF-8 text "
                            "file (sliding window).")  # fmt: skip
    ppl.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run's output folder or a checkpoint folder")  # fmt: skip
    ppl.add_argument("--input", required=True, metavar="FILE", help="UTF-8 text to score")
    ppl.add_argument("--stride", type=_positive_int, default=None, metavar="N",
                     help="window step (default block_size // 2)")  # fmt: skip
    ppl.add_argument("--batch-size", type=_positive_int, default=8, metavar="N",
                     help="windows per model call (%(default)s)")  # fmt: skip
    ppl.add_argument("--json", action="store_true", help="print the result as JSON")
    ppl.set_defaults(func=cmd_eval_perplexity)
    from minroots.assignments.cli import register as register_assignments
    from minroots.metrics.cli import register as register_metrics

    register_metrics(ev_sub)
    register_assignments(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(message).split()) or type(exc).__name__


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 training failed, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except FloatingPointError as exc:
        print(f"{PROG}: training failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{PROG}: interrupted {exc}".rstrip(), file=sys.stderr)
        return 130
