"""``minroots train``: train a GPT from a preset, a TOML config and ``key=value`` overrides.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_cli.py``.

::

    minroots train                                   # the default preset, a few minutes
    minroots train --preset tiny --out runs/t max_steps=50 lr=3e-3
    minroots train --config my_run.toml --resume

The run's tables are read by :func:`minroots.training.run_config.load_run_config`; this module
builds the dataset, the model and the :class:`~minroots.training.Trainer`, trains, and prints the
validation perplexity and a sample.
"""

from __future__ import annotations

import os
import time

from minroots.backend import manual_seed
from minroots.cli.generate import stream_sample
from minroots.nn import TransformerConfig, TransformerModel
from minroots.training.checkpoint import latest_checkpoint
from minroots.training.config import TrainerConfig
from minroots.training.run_config import build_dataset, load_run_config
from minroots.training.trainer import Trainer

__all__ = ["register", "run"]


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
                       help="a bundled preset: %(default)s (the default) or tiny (seconds)")  # fmt: skip
    train.add_argument("--out", metavar="DIR", help="output folder (default runs/<preset>)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in the "
                       "output folder from its latest checkpoint")  # fmt: skip
    train.add_argument("--overwrite", action="store_true", help="replace another run's "
                       "checkpoints in --out")  # fmt: skip
    train.add_argument("--ignore-fingerprint", action="store_true", help="with --resume: go on "
                       "even if the checkpoint was trained with another tokenizer")  # fmt: skip
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="change one setting, e.g. max_steps=100 or model.n_embd=64")  # fmt: skip
    train.set_defaults(func=run)


def _trainer_config(args, train: dict) -> TrainerConfig:
    """The ``[train]`` table with ``--out``/``--overwrite`` applied; refuses to clobber a run."""
    if args.out is not None:
        train["out_dir"] = args.out
    if "out_dir" not in train:  # the CLI's own folder per preset: rerunning a preset replaces it
        train["out_dir"] = os.path.join("runs", args.preset)
        train.setdefault("overwrite", True)
    if args.overwrite:
        train["overwrite"] = True
    tcfg = TrainerConfig.from_dict(train)
    if not args.resume and not tcfg.overwrite and tcfg.out_dir is not None:
        latest = latest_checkpoint(tcfg.out_dir)
        if latest is not None:
            raise FileExistsError(
                f"--out: {tcfg.out_dir} already holds a run (latest checkpoint {latest.name}); add "
                "--resume to continue it or --overwrite to replace it"
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
    print(
        f"minroots train: {config['data'].corpus} ({dataset.num_tokens:,} tokens, vocabulary "
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
    if config["sample"].max_new_tokens > 0:
        print("sample:")
        stream_sample(model, dataset.tokenizer, config["sample"])
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
