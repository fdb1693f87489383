"""``minroots finetune``: turn a pretrained run into a chat model (full fine-tuning or LoRA).

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``); tests in ``tests/test_posttrain_finetune.py``.

::

    minroots finetune --preset chat                  # the arc: pretrain (or reuse) runs/chat_base,
                                                     # fine-tune on dialogue_en, a few minutes
    minroots finetune --checkpoint runs/chat_base --data chats.jsonl --out runs/mychat
    minroots finetune --preset chat --lora-rank 8 --out runs/chat_lora
    minroots finetune --out runs/chat --resume

The run's tables come from :func:`minroots.posttrain.finetune_config.load_finetune_config`; the
work is :func:`minroots.posttrain.finetune.finetune`. At the end it prints the held-out answer
loss of the base model and of the fine-tuned one, and the replies to the ``[sample]`` prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from minroots.backend import manual_seed
from minroots.chat.session import ChatSession
from minroots.cli.arguments import positive_int
from minroots.posttrain.finetune import FINETUNE_FILE, finetune
from minroots.posttrain.finetune_config import load_finetune_config
from minroots.training.checkpoint import latest_checkpoint
from minroots.training.config import TrainerConfig

__all__ = ["register", "run"]


def register(subparsers) -> None:
    """Add ``finetune`` to the ``minroots`` sub-commands."""
    p = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained run into a chat model (SFT, optionally LoRA)",
        description="Fine-tune a pretrained checkpoint on conversations with the loss on the "
        "assistant's replies; print the held-out answer loss before and after, and sample replies.",
        epilog="examples: minroots finetune --preset chat | minroots finetune --checkpoint "
        "runs/chat_base --data chats.jsonl --out runs/mychat --lora-rank 8",
    )  # fmt: skip
    p.add_argument("--checkpoint", metavar="RUN", help="the pretrained run or checkpoint (default: "
                   "the preset's [base] run, trained first if it has no checkpoint)")  # fmt: skip
    p.add_argument("--data", metavar="FILE|NAME", help="a JSONL file of conversations or "
                   "prompt/response pairs, or a bundled pair corpus (default: the preset's)")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<preset>)")
    p.add_argument("--lora-rank", type=positive_int, metavar="R",
                   help="train LoRA adapters of rank R instead of every weight")  # fmt: skip
    p.add_argument("--preset", default="chat", metavar="NAME",
                   help="a bundled fine-tuning preset (%(default)s)")  # fmt: skip
    p.add_argument("--config", metavar="FILE.toml", help="a TOML file with [base], [finetune], "
                   "[train], [sample] tables changing the preset's values")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder")
    p.add_argument("--overwrite", action="store_true", help="replace another run in --out")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="change one setting, e.g. max_steps=100 or lora_alpha=8")  # fmt: skip
    p.set_defaults(func=run)


def _base_checkpoint(args, run: dict, out_dir: str) -> str:
    """``--checkpoint``, the base recorded by a run being resumed, or the preset's [base] run
    (pretrained here first when it holds no checkpoint)."""
    if args.checkpoint is not None:
        return args.checkpoint
    record = Path(out_dir) / FINETUNE_FILE
    if args.resume and record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))["base_checkpoint"]
    base = run["base"]
    if latest_checkpoint(base.out_dir) is not None:
        print(f"minroots finetune: reusing the pretrained run {base.out_dir}", flush=True)
        return base.out_dir
    print(f"minroots finetune: no pretrained run in {base.out_dir} yet; training it first with "
          f"the preset {base.preset!r} (minroots train --preset {base.preset})", flush=True)  # fmt: skip
    from minroots.cli import train as train_cli

    train_cli.run(argparse.Namespace(preset=base.preset, config=None, out=base.out_dir,
                                     resume=False, overwrite=False, overrides=[]))  # fmt: skip
    return base.out_dir


def run(args) -> int:
    """Fine-tune, report the answer loss before and after, and sample replies."""
    config = load_finetune_config(args.preset, args.config, args.overrides)
    settings = config["finetune"]
    if args.data is not None:
        settings.data = args.data
    if args.lora_rank is not None:
        settings.lora_rank = args.lora_rank
    train = dict(config["train"])
    train["out_dir"] = args.out or train.get("out_dir") or os.path.join("runs", args.preset)
    if args.overwrite:
        train["overwrite"] = True
    tcfg = TrainerConfig.from_dict(train)
    checkpoint = _base_checkpoint(args, config, tcfg.out_dir)
    kind = "full fine-tuning" if settings.lora_rank is None else f"LoRA rank {settings.lora_rank}"
    print(f"minroots finetune: {checkpoint} on {settings.data} ({kind}, loss on mask="
          f"{settings.mask!r}); {tcfg.max_steps} steps of {tcfg.batch_size} blocks; writing to "
          f"{tcfg.out_dir}", flush=True)  # fmt: skip
    start = time.perf_counter()
    result = finetune(checkpoint, settings, tcfg, resume=args.resume,
                      log=lambda line: print(f"  {line}", flush=True))  # fmt: skip
    b, a = result.before, result.after
    print(
        f"done: {result.trainer.step} steps in {time.perf_counter() - start:.1f} s. Held-out "
        f"answer loss over {a['tokens']:,} reply tokens: base {b['loss']:.4f} nats/token "
        f"(perplexity {b['perplexity']:.2f}), fine-tuned {a['loss']:.4f} (perplexity "
        f"{a['perplexity']:.2f})"
    )
    print(f"checkpoint: {tcfg.out_dir} (chat with it: minroots chat --checkpoint {tcfg.out_dir})")
    _print_samples(result, config["sample"])
    return 0


def _print_samples(result, sample, out=None) -> None:
    """The replies of the fine-tuned model to the ``[sample]`` prompts, streamed."""
    out = out or sys.stdout
    if sample.seed is not None:
        manual_seed(sample.seed)
    print("sample replies:", file=out)
    for prompt in sample.prompts:
        session = ChatSession(result.chat_model, result.template,
                              max_new_tokens=sample.max_new_tokens, temperature=sample.temperature,
                              top_k=sample.top_k)  # fmt: skip
        out.write(f"  user:      {prompt}\n  assistant: ")
        for piece in session.reply(prompt):
            out.write(piece)
            out.flush()
        out.write("\n")
    out.flush()
