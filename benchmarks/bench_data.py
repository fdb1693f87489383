"""Benchmark minroots.data against PyTorch's data utilities (same process, interleaved).

Book chapter 7, "Training" (``book/07_training.md``).

Measures, on the bundled Shakespeare corpus (about 1 MB, character-level):

1. loading a TextDataset: first time (tokenize + write the cache) and from the cache;
2. random (x, y) blocks: ``TextDataset.get_batch`` vs nanoGPT's PyTorch ``get_batch``
   (``torch.randint`` + ``torch.stack`` of slices);
3. one epoch of shuffled non-overlapping blocks: ``minroots.data.DataLoader`` vs
   ``torch.utils.data.DataLoader`` (``num_workers=0``) on the same blocks;
4. padding sequence pairs: ``collate_pairs`` vs ``torch.nn.utils.rnn.pad_sequence``.

Each pair of implementations runs alternately, ``--repeats`` rounds; the table gives the median
time per call and the ratio minroots / PyTorch (below 1 means minroots is faster). Run::

    python benchmarks/bench_data.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from minroots.data import DataLoader, PairDataset, TextDataset, collate_pairs, load_corpus


def _time(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def interleaved(a, b, number: int, repeats: int) -> tuple[float, float]:
    """Median seconds per call of ``a`` and ``b``, timed alternately."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(_time(a, number))
        tb.append(_time(b, number))
    return statistics.median(ta), statistics.median(tb)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    text = load_corpus("shakespeare")
    rows = []

    # 1. load: tokenize + cache write vs cache read (no PyTorch counterpart: minroots only)
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm = [], []
        for r in range(args.repeats):
            sub = f"{tmp}/{r}"
            cold.append(_time(lambda s=sub: TextDataset(text, block_size=256, cache_dir=s), 1))
            warm.append(_time(lambda s=sub: TextDataset(text, block_size=256, cache_dir=s), 1))
        rows.append(
            (
                "TextDataset load: cold vs cached (both ours)",
                statistics.median(cold),
                statistics.median(warm),
                "cached",
            )
        )
        ds = TextDataset(text, block_size=256, cache_dir=tmp)

    # 2. random blocks, B=64, T=256
    B, T = 64, 256
    data_t = torch.from_numpy(np.asarray(ds.train, dtype=np.int64))
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)

    def torch_get_batch():
        ix = torch.randint(len(data_t) - T, (B,), generator=gen)
        x = torch.stack([data_t[i : i + T] for i in ix])
        y = torch.stack([data_t[i + 1 : i + 1 + T] for i in ix])
        return x, y

    a, b = interleaved(lambda: ds.get_batch("train", B, rng), torch_get_batch, 200, args.repeats)
    rows.append((f"get_batch B={B} T={T}", a, b, "torch"))

    # 3. one shuffled epoch of non-overlapping blocks, batch 32
    blocks = ds.blocks("train")

    def ours_epoch():
        for _ in DataLoader(blocks, batch_size=32, shuffle=True, seed=0):
            pass

    torch_loader = torch.utils.data.DataLoader(
        blocks, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )

    def torch_epoch():
        for _ in torch_loader:
            pass

    a, b = interleaved(ours_epoch, torch_epoch, 1, args.repeats)
    rows.append((f"DataLoader epoch ({len(blocks)} blocks, B=32)", a, b, "torch"))

    # 4. padding a batch of 64 translation pairs
    pairs = PairDataset("en_es")
    items = [pairs[i] for i in range(64)]
    items_t = [(torch.from_numpy(s), torch.from_numpy(t)) for s, t in items]

    def torch_pad():
        src = torch.nn.utils.rnn.pad_sequence([s for s, _ in items_t], True, pairs.pad_id)
        tgt = torch.nn.utils.rnn.pad_sequence([t for _, t in items_t], True, pairs.pad_id)
        return src, src != pairs.pad_id, tgt[:, :-1], tgt[:, 1:], tgt[:, 1:] != pairs.pad_id

    a, b = interleaved(lambda: collate_pairs(items, pairs.pad_id), torch_pad, 200, args.repeats)
    rows.append(("pad 64 pairs + masks", a, b, "torch"))

    print(f"minroots.data vs PyTorch {torch.__version__} (median of {args.repeats}, interleaved)")
    print(f"{'benchmark':<40} {'minroots':>12} {'reference':>12} {'ratio':>7}  reference is")
    for name, a, b, ref in rows:
        print(f"{name:<40} {a * 1e3:>10.3f}ms {b * 1e3:>10.3f}ms {a / b:>7.2f}  {ref}")


if __name__ == "__main__":
    main()
