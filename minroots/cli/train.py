"""``minroots train``: train a GPT from a preset, a TOML config and ``key=value`` overrides.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_cli.py``.

::

    minroots train                                   # the default preset, a few minutes
    minroots train --preset tiny --out runs/t max_steps=50 lr=3e-3
    minroots train --config my_run.toml --resume
    mpirun -np 2 minroots train --preset tiny        # one model trained by 2 processes

The run's tables are read by :func:`minroots.training.run_config.load_run_config`; this module
builds the dataset, the model and the :class:`~minroots.training.Trainer`, trains, and prints the
validation perplexity and a sample. Under ``mpirun``/``srun`` every rank runs this command;
rank 0 alone prints and writes (chapter 13, ``book/13_training_at_scale.md``), and a rank that
dies stops the others with a message naming the checkpoint to resume from.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import time

from minroots.backend import manual_seed
from minroots.cli.generate import stream_sample
from minroots.distributed.communicator import CommunicationError
from minroots.nn import TransformerConfig, TransformerModel
from minroots.training.checkpoint import latest_checkpoint
from minroots.training.config import TrainerConfig
from minroots.training.run_config import TABLES, build_dataset, load_run_config
from minroots.training.trainer import Trainer

__all__ = ["register", "run", "unrecognized_hint"]


def register(subparsers) -> None:
    """Add ``train`` to the ``minroots`` sub-commands."""
    train = subparsers.add_parser(
        "train", help="train a GPT (no arguments: the default preset on the bundled Shakespeare)",
        description="Train a GPT from a preset, a TOML config and key=value overrides; print the "
        "validation perplexity and a generated sample at the end.",
        epilog="examples: minroots train | minroots train --preset tiny max_steps=50 | "
        "minroots train --config run.toml model.n_layer=2 lr=3e-4",
    )  # fmt: skip
    train.add_argument("--config", metavar="FILE.toml", help="a TOML file with [data], [model], "
                       "[train], [sample] tables changing the preset's values")  # fmt: skip
    train.add_argument("--preset", default="default", metavar="NAME",
                       help="a bundled preset: %(default)s (the default), tiny (seconds), "
                       "tang (Tang poems, minutes), llama or llama-tiny (the same with a "
                       "Llama-style model, book chapter 12)")  # fmt: skip
    train.add_argument("--out", metavar="DIR", help="output folder (default runs/<preset>); a "
                       "folder that holds a run is never replaced without --overwrite")  # fmt: skip
    train.add_argument("--resume", action="store_true", help="continue the run saved in the "
                       "output folder from its latest checkpoint")  # fmt: skip
    train.add_argument("--overwrite", action="store_true", help="replace the run already in "
                       "the output folder (without it, training there again is refused)")  # fmt: skip
    train.add_argument("--ignore-fingerprint", action="store_true", help="with --resume: go on "
                       "even if the checkpoint was trained with another tokenizer")  # fmt: skip
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="change one setting, e.g. max_steps=100 or model.n_embd=64")  # fmt: skip
    train.set_defaults(func=run)


def unrecognized_hint(extras: list[str], argv: list[str]) -> str:
    """For ``minroots train --steps 10``: ``"; settings are key=value: did you mean max_steps=10?"``.

    Settings are ``key=value`` arguments, not options; an unknown option whose name is (close to)
    a setting's gets that setting suggested, with the value that followed it.
    """
    option = next((e for e in extras if e.startswith("--")), None)
    if option is None:
        return ""
    name, _, value = option[2:].partition("=")
    name = name.replace("-", "_")
    if not value:  # the value is the next argument, unless that is an option or a setting
        after = argv[argv.index(option) + 1 :][:1]
        usable = after and not after[0].startswith("-") and "=" not in after[0]
        value = after[0] if usable else "..."
    keys = [key for table in TABLES.values() for key in _field_names(table)]
    close = [name] if name in keys else difflib.get_close_matches(name, keys, n=1)
    if not close:
        return "; settings are written key=value, e.g. max_steps=100"
    return f"; settings are written key=value: did you mean {close[0]}={value}?"


def _field_names(table) -> list[str]:
    return [f.name for f in dataclasses.fields(table)]


def _trainer_config(args, train: dict) -> TrainerConfig:
    """The ``[train]`` table with ``--out``/``--overwrite`` applied; refuses to clobber a run.

    The run-folder policy, the same as the :class:`~minroots.training.Trainer`'s: a folder that
    holds another run's checkpoints is never replaced silently, whether it was named with
    ``--out`` or is the preset's default ``runs/<preset>``. Training again there needs
    ``--resume`` (continue it) or ``--overwrite`` (start afresh); ``--out DIR`` trains elsewhere.
    """
    if args.out is not None:
        train["out_dir"] = args.out
    if "out_dir" not in train:  # the CLI's own folder per preset
        train["out_dir"] = os.path.join("runs", args.preset)
    if args.overwrite:
        train["overwrite"] = True
    tcfg = TrainerConfig.from_dict(train)
    if not args.resume and not tcfg.overwrite and tcfg.out_dir is not None:
        latest = latest_checkpoint(tcfg.out_dir)
        if latest is not None:
            raise FileExistsError(
                f"--out: {tcfg.out_dir} already holds a run (latest checkpoint {latest.name}); add "
                "--resume to continue it, --overwrite to replace it, or --out DIR to train into "
                "another folder"
            )
    return tcfg


def run(args) -> int:
    """Train a model from a preset/config, then report and sample."""
    config = load_run_config(args.preset, args.config, args.overrides)
    tcfg = _trainer_config(args, config["train"])
    model_table = dict(config["model"])
    dataset = build_dataset(config["data"], model_table.get("block_size", 128), tcfg.seed)
    vocab = model_table.setdefault("vocab_size", dataset.vocab_size)
    if vocab < dataset.vocab_size:
        raise ValueError(
            f"[model]: vocab_size={vocab} is smaller than the data's {dataset.vocab_size}"
        )
    manual_seed(tcfg.seed)
    model = TransformerModel(TransformerConfig(**model_table))
    trainer = Trainer(model, dataset, config=tcfg)
    if args.resume:
        trainer.resume(ignore_fingerprint=args.ignore_fingerprint)
    c = model.config
    say = print if trainer.world.is_main else _silent  # rank 0 alone speaks (chapter 13)
    ranks = f" on {trainer.world.size} ranks" if trainer.world.size > 1 else ""
    say(
        f"minroots train: {config['data'].corpus} ({dataset.num_tokens:,} tokens, vocabulary "
        f"{dataset.vocab_size}); GPT with {model.num_parameters():,} parameters (n_layer={c.n_layer}, "
        f"n_head={c.n_head}, n_embd={c.n_embd}, block_size={c.block_size}); {trainer.total_steps} "
        f"steps of {trainer.sequences_per_step} x {c.block_size} tokens{ranks}; writing to "
        f"{tcfg.out_dir}",
        flush=True,
    )
    start = time.perf_counter()
    try:
        history = trainer.train()
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted_note(trainer)) from None
    except CommunicationError as exc:  # another rank died: end the whole job, say how to resume
        trainer.world.fail(f"{exc}; {_interrupted_note(trainer)}")
    elapsed = time.perf_counter() - start
    last = history.last_val
    if last is None:  # eval_interval = 0: evaluate once now, so there is a number to report
        last = trainer.evaluate()
    say(
        f"done: {trainer.step} steps in {elapsed:.1f} s; validation loss {last['val_loss']:.4f} "
        f"nats/token, validation perplexity {last['val_perplexity']:.2f}"
    )
    if tcfg.out_dir is not None:
        say(f"checkpoint: {tcfg.out_dir} (minroots generate --checkpoint {tcfg.out_dir})")
    if config["sample"].max_new_tokens > 0 and trainer.world.is_main:
        print("sample:")
        stream_sample(model, dataset.tokenizer, config["sample"])
    return 0


def _silent(*args, **kwargs) -> None:
    """``print`` on the ranks that do not speak."""


def _interrupted_note(trainer) -> str:
    """Where an interrupted run stopped and how to continue it."""
    where = f"at step {trainer.step} of {trainer.total_steps}"
    latest = trainer.last_checkpoint()
    if latest is None:
        return (
            f"{where}; no checkpoint was saved yet (save_interval = {trainer.config.save_interval})"
        )
    return f"{where}; to continue from {latest}, run the same command with --resume"
