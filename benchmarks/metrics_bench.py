"""Benchmark: minroots' BLEU, chrF and ROUGE against sacrebleu and rouge-score.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

Scores 10,000 sentence pairs with both libraries in the same process, interleaved (the machine's
speed drifts), and prints the median time of each, the speed-up and the largest score difference.
References are lines of a text (Shakespeare by default); hypotheses are seeded random edits of
them (words dropped, replaced, swapped), so that scores are neither 0 nor 100.

    python benchmarks/metrics_bench.py [--pairs 10000] [--repeats 3] [--data FILE]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from pathlib import Path

from minroots.metrics import RougeScorer, corpus_bleu, corpus_chrf
from minroots.metrics import bleu_tokenizers as bt

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    ROOT.parent / "shared" / "data" / "tinyshakespeare.txt",
    ROOT / "data" / "shakespeare.txt",
]


def sentence_pairs(n: int, path: Path | None, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` (hypothesis, reference) pairs: reference lines and seeded random edits of them."""
    rng = random.Random(seed)
    paths = [path] if path else [p for p in CANDIDATES if p.exists()]
    if paths:
        lines = [ln.strip() for ln in paths[0].read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if len(ln.split()) >= 3]
    else:  # no text at hand: sentences of random words
        vocab = [f"w{i}" for i in range(2000)] + [",", ".", "!", "?"]
        lines = [" ".join(rng.choices(vocab, k=rng.randint(3, 20))) for _ in range(n)]
    references = [lines[i % len(lines)] for i in range(n)]
    vocab = sorted({w for line in references for w in line.split()})
    hypotheses = []
    for ref in references:
        words = []
        for w in ref.split():
            u = rng.random()
            if u < 0.1:
                continue  # drop
            words.append(rng.choice(vocab) if u < 0.2 else w)  # replace or keep
        if len(words) > 2 and rng.random() < 0.3:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        hypotheses.append(" ".join(words))
    return hypotheses, references


def _clear_caches():
    """Forget tokenized lines, so every run tokenizes from scratch (as a fresh process would)."""
    for f in (bt.tokenize_13a, bt.tokenize_intl, bt.tokenize_zh, bt.tokenize_char):
        f.cache_clear()


def _rouge_max_diff(ours, theirs, types):
    return max(
        abs(a - b)
        for o, t in zip(ours, theirs, strict=True)
        for name in types
        for a, b in zip(o[name], t[name], strict=True)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="a text file, one sentence a line")
    args = parser.parse_args(argv)

    import sacrebleu
    from rouge_score import rouge_scorer

    hyps, refs = sentence_pairs(args.pairs, args.data)
    types = ["rouge1", "rouge2", "rougeL"]

    def rouge_pair(stemmer):
        def ours():
            scorer = RougeScorer(types, use_stemmer=stemmer)  # a fresh stem cache each run
            return [scorer.score(r, h) for h, r in zip(hyps, refs, strict=True)]

        def theirs():
            scorer = rouge_scorer.RougeScorer(types, use_stemmer=stemmer)
            return [scorer.score(r, h) for h, r in zip(hyps, refs, strict=True)]

        return ours, theirs, lambda a, b: _rouge_max_diff(a, b, types)

    cases = {
        "corpus BLEU (13a)": (
            lambda: corpus_bleu(hyps, [refs]),
            lambda: sacrebleu.corpus_bleu(hyps, [refs]),
            lambda a, b: abs(a.score - b.score),
            "sacrebleu",
        ),
        "corpus chrF": (
            lambda: corpus_chrf(hyps, [refs]),
            lambda: sacrebleu.corpus_chrf(hyps, [refs]),
            lambda a, b: abs(a.score - b.score),
            "sacrebleu",
        ),
        "corpus chrF++": (
            lambda: corpus_chrf(hyps, [refs], word_order=2),
            lambda: sacrebleu.corpus_chrf(hyps, [refs], word_order=2),
            lambda a, b: abs(a.score - b.score),
            "sacrebleu",
        ),
        "ROUGE-1/2/L": (*rouge_pair(False), "rouge-score"),
        "ROUGE-1/2/L, stemmer": (*rouge_pair(True), "rouge-score"),
    }

    print(f"{args.pairs} sentence pairs, median of {args.repeats} interleaved runs")
    header = f"{'metric':<22} {'reference':<12} {'minroots s':>10} {'reference s':>11} "
    print(header + f"{'speed-up':>8}  max |difference|")
    for name, (ours, theirs, diff, library) in cases.items():
        times_ours, times_theirs = [], []
        for _ in range(args.repeats):
            for run, times in ((ours, times_ours), (theirs, times_theirs)):
                # Each timed run starts from a collected heap and keeps no earlier result:
                # Python's cyclic garbage collector costs in proportion to the live objects,
                # which would otherwise be counted against whichever library runs next.
                _clear_caches()
                gc.collect()
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
        difference = diff(ours(), theirs())
        t_ours, t_theirs = statistics.median(times_ours), statistics.median(times_theirs)
        print(
            f"{name:<22} {library:<12} {t_ours:>10.3f} {t_theirs:>11.3f} "
            f"{t_theirs / t_ours:>7.2f}x  {difference:.3g}"
        )


if __name__ == "__main__":
    main()
