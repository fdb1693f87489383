"""Benchmark: per-token generation time with the key/value cache, at short and long context.

Book chapter 9, "Generation" (``book/09_generation.md``);
results in ``benchmarks/README.md``.

Run:  python benchmarks/generation.py [--contexts 32 512] [--tokens 32] [--rounds 5]

For each context length L a prompt of L tokens is prefilled, then ``--tokens`` new tokens are
sampled one at a time; the per-token time is the median of the decoding steps (the prefill is
excluded). The contexts are measured in interleaved rounds (the machine's speed drifts) and each
keeps its best round. With a cache each step costs one position's projections plus attention over
L keys, so the time should barely grow with L (target: at 512 within 1.5x of 32). The uncached
column recomputes the whole context every step, for contrast.
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", nargs="+", type=int, default=[32, 512])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
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


if __name__ == "__main__":
    main()
