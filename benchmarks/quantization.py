"""Benchmark: a trained run at 32, 8 and 4 bits: file size, resident memory, held-out perplexity,
tokens/s.

Book chapter 14, "Deployment" (``book/14_deployment.md``); results in ``benchmarks/README.md``.

Run:  minroots train --out runs/default        # the default preset, a few minutes
      python benchmarks/quantization.py --run runs/default [--tokens 60] [--batch 16] [--wide]

For each width the checkpoint is quantized (:mod:`minroots.nn.quantized`, int4 in groups of
``--group-size``) into a temporary folder, then measured:

- **file**: the size of ``model.safetensors``;
- **weights held**: bytes of the loaded model's arrays (exact), and what ``tracemalloc`` sees
  still allocated after loading (the same, plus a little: no float copy of the weights survives);
- **RSS**: the resident memory a fresh process gains by loading the model. At the default
  model's 2.4 MB this drowns in the allocator's reuse of freed memory (the loader builds the
  float layers first, then swaps in the quantized ones), so ``--wide`` adds a table for a random
  model of GPT-2 small's width and depth (12 layers x 768, about 85 M weights in linear layers),
  where the resident memory visibly follows the bits;
- **perplexity**: on the preset's validation split (the text the run validated on);
- **tokens/s**: greedy decoding of ``--tokens`` tokens (by default all within the context, so
  each step is one cached position), one sequence (:func:`minroots.generation.generate`), and
  ``--batch`` sequences decoded together by the serving engine (:class:`minroots.serve.Engine`),
  best of ``--rounds``.

File sizes, memory and perplexities are deterministic; times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minroots import TransformerModel  # noqa: E402
from minroots.generation import generate  # noqa: E402
from minroots.metrics.perplexity import perplexity  # noqa: E402
from minroots.nn.quantized import quantize_model, quantized_nbytes  # noqa: E402
from minroots.serve import Engine, SamplingParams, Sequence  # noqa: E402
from minroots.training.checkpoint import load_model, load_tokenizer, resolve_checkpoint  # noqa: E402
from minroots.training.integrity import write_manifest  # noqa: E402
from minroots.training.run_config import build_dataset, load_run_config  # noqa: E402

RSS_SCRIPT = """
import sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
import gc
from minroots.training.checkpoint import load_model
load_model(sys.argv[1]).h  # import everything once
gc.collect()
before = rss()
model = load_model(sys.argv[1])
gc.collect()
print(rss() - before)
"""


def rss_delta(folder: Path) -> int | None:
    """Resident bytes a fresh process gains by loading the model (Linux only, else None)."""
    if not Path("/proc/self/status").exists():
        return None
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    # glibc's malloc keeps freed blocks of a few MB for reuse (its mmap threshold grows as they
    # are freed), so the float layers the loader builds and drops would stay resident and hide
    # what the model holds: a fixed threshold returns every freed array to the system
    env = {**os.environ, "PYTHONPATH": root, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(folder)], capture_output=True,
                         text=True, env=env, check=True)  # fmt: skip
    return int(out.stdout.strip())


def held_after_load(folder: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        model = load_model(folder)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del model
    return held


def tokens_per_second(model, prompt, n_tokens: int, batch: int, rounds: int) -> tuple[float, float]:
    """Best-of-``rounds`` greedy tokens/s: one sequence, and ``batch`` sequences together."""
    single = together = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        generate(model, np.array(prompt), n_tokens, temperature=0)
        single = max(single, n_tokens / (time.perf_counter() - t))
        engine = Engine(model, max_batch=batch)
        for _ in range(batch):
            engine.submit(Sequence(prompt, SamplingParams(n_tokens, temperature=0)))
        t = time.perf_counter()
        while not engine.idle:
            engine.step()
        together = max(together, batch * n_tokens / (time.perf_counter() - t))
    return single, together


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/default", help="a trained run or checkpoint")
    parser.add_argument("--preset", default="default", help="the run's preset (its data split)")
    parser.add_argument("--group-size", type=int, default=32, help="int4 group size (32)")
    parser.add_argument("--tokens", type=int, default=60, help="tokens decoded per sequence (60)")
    parser.add_argument("--batch", type=int, default=16, help="sequences decoded together")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds, best kept")
    parser.add_argument("--max-val-tokens", type=int, default=None,
                        help="score only the first N validation tokens (a quick look)")  # fmt: skip
    parser.add_argument("--wide", action="store_true",
                        help="add the RSS of a random 12 x 768 model at 32, 8 and 4 bits")  # fmt: skip
    parser.add_argument("--wide-layers", type=int, default=12, help="layers of --wide (12)")
    args = parser.parse_args(argv)
    source = resolve_checkpoint(args.run)
    tokenizer = load_tokenizer(source)
    float_model = load_model(source)
    run = load_run_config(args.preset)
    val = build_dataset(run["data"], float_model.config.block_size, 0).val
    if args.max_val_tokens:
        val = val[: args.max_val_tokens]
    prompt = tokenizer.encode("\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bits in (32, 8, 4):
            folder = source
            if bits < 32:
                folder = Path(tmp) / f"int{bits}"
                model = quantize_model(load_model(source), bits, args.group_size)
                model.save(folder)
                write_manifest(folder)  # as minroots quantize does: loading verifies the files
            model = load_model(folder)
            ppl = perplexity(model, val, batch_size=16, progress=False).perplexity
            single, batched = tokens_per_second(model, prompt, args.tokens, args.batch, args.rounds)
            rows.append((bits, os.path.getsize(folder / "model.safetensors"),
                         quantized_nbytes(model), held_after_load(folder), rss_delta(folder),
                         ppl, single, batched))  # fmt: skip
    print(f"checkpoint {source} ({float_model.num_parameters():,} parameters); perplexity on "
          f"{len(val):,} validation tokens; {args.tokens} tokens per sequence, batch {args.batch}")  # fmt: skip
    print()
    print("| bits | file (bytes) | weights held (exact / tracemalloc) | RSS after load | "
          "held-out perplexity | tokens/s, 1 sequence | tokens/s, batch of "
          f"{args.batch} |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for bits, size, exact, held, rss, ppl, single, batched in rows:
        rss_text = "n/a" if rss is None else f"{rss / 2**20:.2f} MiB"
        print(f"| {bits} | {size:,} | {exact:,} / {held:,} | {rss_text} | {ppl:.4f} | "
              f"{single:,.0f} | {batched:,.0f} |")  # fmt: skip
    if args.wide:
        wide_table(float_model.config.vocab_size, args.wide_layers, args.group_size)


def wide_table(vocab_size: int, n_layer: int, group_size: int) -> None:
    """File size and RSS gained on loading, for a random model of GPT-2 small's shape."""
    print()
    print(f"random model, {n_layer} layers x 768, vocabulary {vocab_size}, block 64:")
    print()
    print("| bits | file (bytes) | weights held (exact) | RSS gained on loading |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for bits in (32, 8, 4):
            model = TransformerModel(vocab_size=vocab_size, block_size=64, n_layer=n_layer,
                                     n_head=12, n_embd=768)  # fmt: skip
            if bits < 32:
                quantize_model(model, bits, group_size)
            folder = Path(tmp) / f"w{bits}"
            model.save(folder)
            exact = quantized_nbytes(model)
            del model
            gc.collect()
            rss = rss_delta(folder)
            rss_text = "n/a" if rss is None else f"{rss / 2**20:,.1f} MiB"
            size = os.path.getsize(folder / "model.safetensors")
            print(f"| {bits} | {size:,} | {exact:,} | {rss_text} |")


if __name__ == "__main__":
    main()
