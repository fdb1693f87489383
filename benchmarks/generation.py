"""Benchmark: per-token generation time with the key/value cache, at short and long context.

Book chapter 9, "Generation" (``book/09_generation.md``) and chapter 12 (``book/12_modern_decoder.md``);
results in ``benchmarks/README.md``.

Run:  python benchmarks/generation.py [--contexts 32 512] [--tokens 32] [--rounds 5]
                                     [--window-tokens 50 100 200] [--window-block 64]

For each context length L a prompt of L tokens is prefilled, then ``--tokens`` new tokens are
sampled one at a time; the per-token time is the median of the decoding steps (the prefill is
excluded). The contexts are measured in interleaved rounds (the machine's speed drifts) and each
keeps its best round. With a cache each step costs one position's projections plus attention over
L keys, so the time should barely grow with L (target: at 512 within 1.5x of 32). The uncached
column recomputes the whole context every step, for contrast.

Past the context window (``--window-tokens``, book chapter 12): a GPT with learned positions and a
Llama-style model with rotary positions, both of block size ``--window-block``, generate 50, 100
and 200 tokens from a one-token prompt. The GPT recomputes its cropped window for every token
past ``block_size`` (the time per token jumps there and stays high); the rotary model keeps a
sliding-window cache, so its time per token stays flat. Reported: total seconds per count, and
the median ms per token of the last 50 tokens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "2"

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minroots.generation import stream  # noqa: E402
from minroots.nn import TransformerConfig, TransformerModel  # noqa: E402


def per_token_ms(model, context: int, n_tokens: int, use_cache: bool) -> float:
    prompt = np.random.default_rng(0).integers(0, model.config.vocab_size, (1, context))
    stamps = [time.perf_counter()]
    for _ in stream(
        model, prompt, n_tokens, temperature=1.0, top_k=20, seed=0, use_cache=use_cache
    ):
        stamps.append(time.perf_counter())
    steps = np.diff(stamps)[1:]  # drop the first: it includes the prefill
    return 1e3 * statistics.median(steps)


def past_the_window(block: int, counts: list[int], rounds: int, n_layer: int, n_embd: int) -> None:
    """Seconds for ``counts`` new tokens from a one-token prompt, learned vs rotary positions."""
    shape = dict(vocab_size=65, block_size=block, n_layer=n_layer, n_head=4, n_embd=n_embd)
    models = {"learned (GPT)": TransformerModel(TransformerConfig(**shape)),
              "rotary (Llama)": TransformerModel(TransformerConfig.from_arch("llama", **shape))}  # fmt: skip
    print(f"\npast the window: block_size {block}, a one-token prompt")
    print(f"{'positions':<15} {'tokens':>6} {'seconds':>8} {'ms/token, last 50':>18}")
    for name, model in models.items():
        list(stream(model, np.array([[0]]), 4, seed=0))  # warm-up (masks, rotary tables)
        for n in counts:
            best = None
            for _ in range(rounds):
                stamps = [time.perf_counter()]
                for _ in stream(model, np.array([[0]]), n, temperature=1.0, top_k=20, seed=0):
                    stamps.append(time.perf_counter())
                total, last = stamps[-1] - stamps[0], 1e3 * statistics.median(np.diff(stamps)[-50:])
                best = (total, last) if best is None or total < best[0] else best
            print(f"{name:<15} {n:6d} {best[0]:8.2f} {best[1]:18.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", nargs="+", type=int, default=[32, 512])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--window-tokens", nargs="*", type=int, default=[50, 100, 200],
                        help="token counts generated past the window (none: skip that table)")  # fmt: skip
    parser.add_argument("--window-block", type=int, default=64)
    args = parser.parse_args(argv)
    block = max(args.contexts) + args.tokens
    model = TransformerModel(TransformerConfig(vocab_size=65, block_size=block, n_layer=args.n_layer,
                                               n_head=4, n_embd=args.n_embd))  # fmt: skip
    print(f"model: {model.num_parameters():,} parameters, block_size {block}")
    print(f"{'context':>8} {'cached ms/token':>16} {'uncached ms/token':>18}")
    for ctx in args.contexts:
        per_token_ms(model, ctx, 4, True)  # warm-up
    cached = {ctx: [] for ctx in args.contexts}
    for _ in range(args.rounds):
        for ctx in args.contexts:
            cached[ctx].append(per_token_ms(model, ctx, args.tokens, True))
    base = min(cached[args.contexts[0]])
    for ctx in args.contexts:
        uncached = per_token_ms(model, ctx, max(4, args.tokens // 4), False)
        best = min(cached[ctx])
        print(f"{ctx:8d} {best:16.2f} {uncached:18.2f}   ({best / base:.2f}x the first context)")
    if args.window_tokens:
        past_the_window(args.window_block, args.window_tokens, args.rounds, args.n_layer,
                        args.n_embd)  # fmt: skip


if __name__ == "__main__":
    main()
