"""``minroots export``: a trained run (or one checkpoint) as a Hugging Face model folder.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_cli_export.py``.

::

    minroots export --checkpoint runs/llama --out hf/llama

writes ``config.json`` and ``model.safetensors`` (:func:`minroots.nn.pretrained.save_pretrained`:
a model with learned positions becomes ``gpt2``, one with rotary positions ``llama``, ``qwen2`` or
``qwen3``), ``tokenizer.json`` and ``tokenizer_config.json``
(:func:`minroots.tokenizers.pretrained.save_pretrained`), ``generation_config.json`` (sampling at
minroots generate's temperature, at most ``block_size`` tokens) and ``README.md``, a model card
with the architecture, the training settings and the validation loss at the exported step. The
folder then opens with ``transformers.AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained``, and with ``minroots.nn.from_pretrained``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from minroots.persistence import atomic_file
from minroots.training.checkpoint import load_model, load_tokenizer, resolve_checkpoint
from minroots.training.history import History

__all__ = ["register", "run", "model_card"]

_EXPORTED = ("config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json")


def register(subparsers) -> None:
    """Add ``export`` to the ``minroots`` sub-commands."""
    cmd = subparsers.add_parser(
        "export", help="write a trained run as a Hugging Face model folder",
        description="Write a run's latest checkpoint (or a given checkpoint) as a Hugging Face "
        "folder: model, tokenizer, generation config and a model card.",
        epilog="example: minroots export --checkpoint runs/llama --out hf/llama",
    )  # fmt: skip
    cmd.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run's output folder (its latest checkpoint) or a checkpoint folder")  # fmt: skip
    cmd.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    cmd.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    cmd.set_defaults(func=run)


def run(args) -> int:
    """Export the checkpoint and print where it went."""
    folder = resolve_checkpoint(args.checkpoint)
    out = Path(args.out)
    if not args.overwrite and any((out / name).exists() for name in _EXPORTED):
        raise FileExistsError(f"--out: {out} already holds a model; add --overwrite to replace it")
    model = load_model(folder)
    try:
        tokenizer = load_tokenizer(folder)
    except FileNotFoundError:
        tokenizer = None
        print(f"minroots export: {folder} has no tokenizer.json; exporting the model alone",
              file=sys.stderr)  # fmt: skip
    eos = "<|endoftext|>" if "<|endoftext|>" in getattr(tokenizer, "special_tokens", {}) else None
    generation = {"do_sample": True, "temperature": 0.8, "max_length": model.config.block_size}
    if eos is not None:
        generation["eos_token_id"] = tokenizer.special_tokens[eos]
    model_type = model.save_pretrained(out, generation_config=generation)
    if tokenizer is not None:
        tokenizer.save_pretrained(out, model_max_length=model.config.block_size, eos_token=eos)
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    card = model_card(model, model_type, tokenizer, state, _validation(folder, state.get("step")))
    with atomic_file(out / "README.md") as tmp:
        Path(tmp).write_text(card, encoding="utf-8")
    print(f"minroots export: {folder} -> {out} ({model_type}, {model.num_parameters():,} "
          f"parameters); open it with transformers.AutoModelForCausalLM.from_pretrained({str(out)!r})")  # fmt: skip
    return 0


def _validation(folder: Path, step) -> dict | None:
    """The last evaluation at or before ``step`` in the run's ``history.jsonl``, if there is one."""
    path = folder.parent.parent / "history.jsonl"
    if step is None or not path.is_file():
        return None
    evaluated = [
        r for r in History.read(path) if r.get("val_loss") is not None and r["step"] <= step
    ]
    return evaluated[-1] if evaluated else None


def model_card(model, model_type: str, tokenizer, state: dict, validation: dict | None) -> str:
    """The ``README.md`` of an exported model: what it is, how it was trained, how to load it."""
    c = model.config
    arch = ", ".join(f"{k}={getattr(c, k)!r}" for k in ("n_layer", "n_head", "n_embd", "block_size",
                     "norm", "position", "mlp", "n_kv_head", "qk_norm", "tie_weights"))  # fmt: skip
    train = state.get("config", {})
    settings = ", ".join(f"{k}={train[k]!r}" for k in ("max_steps", "batch_size", "lr", "schedule",
                         "warmup", "min_lr", "weight_decay", "seed") if k in train)  # fmt: skip
    if validation is None:
        val = "no evaluation was recorded"
    else:
        val = (f"{validation['val_loss']:.4f} nats/token (perplexity "
               f"{validation['val_perplexity']:.2f}) at step {validation['step']}")  # fmt: skip
    tok = type(tokenizer).__name__ if tokenizer is not None else "none exported"
    return f"""---
library_name: transformers
tags: [minroots, {model_type}]
---
# A {model_type} model trained with minroots

{model.num_parameters():,} parameters, trained from scratch with minroots for
{state.get("step")} steps ({state.get("tokens_seen", 0):,} tokens).

- architecture: {arch}
- training: {settings}
- validation loss: {val}
- tokenizer: {tok} ({getattr(tokenizer, "vocab_size", 0)} ids)

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
```

It also opens in minroots: `minroots.nn.from_pretrained("path/to/this/folder")`.
"""
