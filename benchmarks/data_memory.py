"""Peak memory of the first pass over a large corpus: read, tokenize, write the id cache.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); the code measured is
``minroots/data/cache.py`` (tests: ``tests/test_data_cache.py``).

Builds a corpus of ``--mb`` megabytes (the bundled Shakespeare repeated), then, for each way of
encoding, starts a fresh Python process that loads ``TextDataset(corpus_file, tokenizer)`` with
an empty cache folder and reports its peak resident memory (``ru_maxrss``). The ways:

- ``pieces``: the text encoded in pieces of ``PIECE_CHARS`` characters streamed into the
  ``.npy`` file (what ``cached_encode`` does);
- ``whole``: the whole text encoded in one piece (one Python list of every id, as before the
  pieces were introduced).

The table gives the peak, the memory after the imports and the tokenizer were loaded (the
baseline), and (peak - baseline) / corpus size. Run::

    python benchmarks/data_memory.py --mb 100 --tokenizer char
    python benchmarks/data_memory.py --mb 100 --tokenizer bpe      # slower: BPE in Python

Cross-check one process with GNU time, e.g. ``/usr/bin/time -v python benchmarks/data_memory.py
--mb 100 --child pieces --corpus FILE --tok TOKENIZER.json`` ("Maximum resident set size").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 10**6


def _rss_now() -> int:
    """Resident memory of this process now, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(way: str, corpus: str, tok_path: str) -> None:
    """Load the dataset once with an empty cache; print one JSON line of measurements."""
    from minroots.data import TextDataset
    from minroots.data import cache as C
    from minroots.tokenizers import load

    tok = load(tok_path)
    if way == "whole":
        C.PIECE_CHARS = 2**62  # one piece: the whole text at once
    baseline = _rss_now()
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        ds = TextDataset(Path(corpus), tokenizer=tok, block_size=64, cache_dir=cache_dir)
        seconds = time.perf_counter() - start
        n_ids = len(ds.ids)
    print(json.dumps({"peak": _peak_rss(), "baseline": baseline, "ids": n_ids, "s": seconds}))


def _make_corpus(path: Path, mb: float) -> int:
    from minroots.data import load_corpus

    text = load_corpus("shakespeare")
    need = int(mb * MB)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < need:
            part = text[: need - written]
            f.write(part)
            written += len(part.encode("utf-8"))
    return path.stat().st_size


def _make_tokenizer(path: Path, kind: str) -> None:
    from minroots.data import load_corpus
    from minroots.tokenizers import BPETokenizer, CharTokenizer

    text = load_corpus("shakespeare")
    if kind == "char":
        tok = CharTokenizer.from_text(text)
    else:
        tok = BPETokenizer("gpt2").train(text[:300_000], 512, show_progress=False)
    tok.save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size in megabytes")
    parser.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    parser.add_argument("--ways", default="pieces,whole", help="comma-separated: pieces,whole")
    parser.add_argument("--child", choices=["pieces", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--tok", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.corpus, args.tok)
        return

    with tempfile.TemporaryDirectory() as tmp:
        corpus, tok_path = Path(tmp) / "corpus.txt", Path(tmp) / "tokenizer.json"
        size = _make_corpus(corpus, args.mb)
        _make_tokenizer(tok_path, args.tokenizer)
        print(f"corpus: {size / MB:.1f} MB (Shakespeare repeated), tokenizer: {args.tokenizer}")
        print(f"cross-check: /usr/bin/time -v {sys.executable} {__file__} --child pieces "
              f"--corpus <file> --tok <tokenizer.json>\n")  # fmt: skip
        print("| way | peak RSS | baseline | (peak - baseline) / corpus | ids | time |")
        print("|---|---|---|---|---|---|")
        for way in args.ways.split(","):
            cmd = [sys.executable, __file__, "--child", way, "--corpus", str(corpus)]
            out = subprocess.run(cmd + ["--tok", str(tok_path)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"data_memory: the {way} run failed:\n{out.stderr}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            ratio = (r["peak"] - r["baseline"]) / size
            print(f"| {way} | {r['peak'] / MB:.0f} MB | {r['baseline'] / MB:.0f} MB | "
                  f"{ratio:.2f}x | {r['ids']:,} | {r['s']:.1f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
