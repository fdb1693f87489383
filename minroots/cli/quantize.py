"""``minroots quantize``: a checkpoint with its linear layers stored as int8 or int4.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_quantization.py``.

::

    minroots quantize --checkpoint runs/default --bits 8 --out runs/default-int8
    minroots quantize --checkpoint runs/default --bits 4 --group-size 32 --out runs/default-int4
    minroots generate --checkpoint runs/default-int4 --prompt "ROMEO:"

The new folder is a checkpoint like any other (``generate``, ``serve``, ``eval perplexity`` and
``TransformerModel.load`` read it): ``model.safetensors`` holds integer tensors and float32
scales (:mod:`minroots.nn.quantized`), ``config.json`` says how they were made, and the other
files of the checkpoint that describe the model (the tokenizer, a chat template) are copied; the
optimizer and trainer state are not, as a quantized model is for inference. A new
``manifest.json`` holds the checksums of the new folder's files, so that loading it verifies them
as it does for any checkpoint (:mod:`minroots.training.integrity`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from minroots.cli.arguments import positive_int

__all__ = ["register", "run"]

NOT_COPIED = {
    "model.safetensors",
    "config.json",
    "optimizer.json",
    "optimizer.safetensors",
    "trainer_state.json",
    "manifest.json",
}  # fmt: skip  (a new manifest is written)


def register(subparsers) -> None:
    """Add ``quantize`` to the ``minroots`` sub-commands."""
    q = subparsers.add_parser("quantize", help="store a checkpoint's linear layers as int8 or "
                              "int4", description="Weight-only quantization: int8 with one scale "
                              "per output channel, or int4 with one scale per group of weights "
                              "(two weights per byte).")  # fmt: skip
    q.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a run's output folder (its latest checkpoint) or a checkpoint folder")  # fmt: skip
    q.add_argument("--bits", type=int, required=True, choices=(8, 4), help="8 or 4")
    q.add_argument("--group-size", type=positive_int, default=32, metavar="G",
                   help="weights per scale for --bits 4 (%(default)s; must divide the layers' "
                   "input sizes)")  # fmt: skip
    q.add_argument("--out", required=True, metavar="DIR", help="the new checkpoint folder")
    q.set_defaults(func=run)


def run(args) -> int:
    """Quantize, save, and print the sizes and the largest change of a weight."""
    from minroots.nn.quantized import quantize_model, quantized_nbytes
    from minroots.training.checkpoint import load_model, resolve_checkpoint
    from minroots.training.integrity import write_manifest

    source = resolve_checkpoint(args.checkpoint)
    out = Path(args.out)
    if out.resolve() == source.resolve():
        raise ValueError(f"--out: must be a new folder, not the checkpoint itself, got {args.out}")
    model = load_model(source)
    before = quantized_nbytes(model)
    quantize_model(model, args.bits, args.group_size if args.bits == 4 else None)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out)
    for f in sorted(source.iterdir()):
        if f.is_file() and f.name not in NOT_COPIED and not f.name.startswith("."):
            shutil.copy2(f, out / f.name)
    write_manifest(out)  # checksums of the new files: loading verifies them like any checkpoint's
    size_in = os.path.getsize(source / "model.safetensors")
    size_out = os.path.getsize(out / "model.safetensors")
    group = f", groups of {args.group_size}" if args.bits == 4 else ", per output channel"
    print(f"quantized {len(model.quantization['modules'])} linear layers to int{args.bits}{group}")
    print(f"weights in memory {before:,} -> {quantized_nbytes(model):,} bytes; file "
          f"{size_in:,} -> {size_out:,} bytes; saved to {out}")  # fmt: skip
    return 0
