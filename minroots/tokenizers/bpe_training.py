"""Training byte-level BPE: count adjacent pairs, merge the most frequent one, repeat.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``), section 6.3; tests in
``tests/test_tokenizers_bpe.py``. :meth:`BPETokenizer.train <minroots.tokenizers.bpe.BPETokenizer.train>`
calls this module and installs what it learns; encoding with the merges is in ``bpe.py``.

**The algorithm.** Start from the 256 byte tokens. Repeatedly find the adjacent pair of tokens
that occurs most often in the corpus, give it a new id, and replace it everywhere. With the pair
``(104, 105)`` ("h", "i") counted 3 times::

    words ["hi", "hip", "ha"]  ->  ids [[104, 105], [104, 105, 112], [104, 97]]
    pair counts {(104, 105): 2, (105, 112): 1, (104, 97): 1}   best: (104, 105) -> new id 256
    words after the merge  [[256], [256, 112], [104, 97]]

:func:`count_pairs` and :func:`merge_pair` are the two steps, written plainly;
:func:`reference_train` is the textbook loop built from them (re-count everything per merge).

Three ideas make :func:`train_merges` fast enough in pure Python (``PERFORMANCE.md`` has the
numbers):

1. Text is first cut into *pre-tokens* by a regex (:mod:`~minroots.tokenizers.patterns`);
   merges never cross them, and the training loop sees each *distinct* pre-token once, with
   its frequency (:func:`count_words`): the bundled Shakespeare (about 1 MB) has 284,546
   pre-tokens but 15,648 distinct.
2. Pair counts are kept up to date *incrementally*: a merge only touches the words that
   contain the merged pair (an index pair -> words finds them), subtracting their old pairs and
   adding their new ones. The corpus is never re-scanned.
3. The best pair comes from a heap (priority queue) of ``(-count, pair)`` entries. Counts of
   existing pairs only ever go down, so an entry whose count is stale is recognised when it is
   popped and pushed back with its current count ("lazy deletion").

**Ties** are broken deterministically: among pairs with the same count, the smallest pair
``(left id, right id)`` in tuple order wins, in both trainers; the tests check they agree.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import pairwise

import regex

from minroots.tokenizers.cleaning import read_text

__all__ = [
    "count_pairs",
    "merge_pair",
    "reference_train",
    "train_merges",
    "count_words",
    "merged_vocab",
]


# --- the two steps of BPE, written plainly (used by reference_train and the tests) --------------
def count_pairs(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Add ``weight`` to the count of every adjacent pair of ``ids``.

    ``[1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}``
    """
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each occurrence of ``pair`` in ``ids``, scanning left to right, by ``new_id``.

    ``merge_pair([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4]``; ``merge_pair([5, 5, 5], (5, 5), 6)
    -> [6, 5]`` (occurrences do not overlap).
    """
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def reference_train(word_counts: dict[str, int], num_merges: int) -> list[tuple[int, int]]:
    """The slow textbook trainer: re-count every pair before each merge.

    ``word_counts`` maps each pre-token to its frequency; returns the merges in order (the
    k-th creates id ``256 + k``). Same tie rule as
    :func:`~minroots.tokenizers.bpe_training.train_merges`: highest count, then the smallest pair.

    >>> reference_train({"aaabdaaabac": 1}, 3)     # Wikipedia's example: aa, ab, then aa+ab
    [(97, 97), (97, 98), (256, 257)]
    """
    words = [list(w.encode("utf-8")) for w in word_counts]
    freqs = list(word_counts.values())
    merges = []
    for k in range(num_merges):
        counts: dict = {}
        for w, f in zip(words, freqs, strict=True):
            count_pairs(w, counts, f)
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append(pair)
        words = [merge_pair(w, pair, 256 + k) for w in words]
    return merges


# --- the fast trainer -----------------------------------------------------------------------------
def train_merges(word_counts: dict[str, int], num_merges: int, min_frequency: int, progress):
    """The fast trainer (see the module docstring); returns merges, each with its count.

    ``[((a, b), count), ...]``: the k-th merge creates id ``256 + k``. Stops early when no pair
    occurs ``min_frequency`` times. ``progress.update(1)`` is called after each merge.
    """
    words = [list(w.encode("utf-8")) for w in word_counts]
    freqs = list(word_counts.values())
    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}  # pair -> indices of words that contain it
    for i, (w, f) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(w):
            pair_counts[pair] = pair_counts.get(pair, 0) + f
            where.setdefault(pair, set()).add(i)
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[tuple[int, int], int]] = []
    while len(merges) < num_merges:
        # Pop until an entry's count is current; stale ones go back with their real count.
        while heap:
            neg, pair = heapq.heappop(heap)
            count = pair_counts.get(pair, 0)
            if count == -neg:
                break
            if count > 0:
                heapq.heappush(heap, (-count, pair))
        else:
            break  # no pairs left: every word is a single token
        if count < min_frequency:
            break
        new_id = 256 + len(merges)
        merges.append((pair, count))
        a, b = pair
        new_pairs = set()
        for i in where.pop(pair):
            w = words[i]
            # merge_pair, inlined: this loop is the hot spot of training.
            out, j, n = [], 0, len(w)
            while j < n:
                if w[j] == a and j < n - 1 and w[j + 1] == b:
                    out.append(new_id)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            f = freqs[i]
            for p in pairwise(w):
                pair_counts[p] -= f
            for p in pairwise(out):
                pair_counts[p] = pair_counts.get(p, 0) + f
                if p[0] == new_id or p[1] == new_id:
                    where.setdefault(p, set()).add(i)
                    new_pairs.add(p)
            words[i] = out
        del pair_counts[pair]
        for p in new_pairs:
            heapq.heappush(heap, (-pair_counts[p], p))
        progress.update(1)
    return merges


def merged_vocab(merges: Iterable[tuple[int, int]]) -> dict[int, bytes]:
    """Id -> bytes of the 256 byte tokens and of each merge's new token, in merge order.

    >>> merged_vocab([(104, 105), (256, 33)])[257]
    b'hi!'
    """
    vocab = {i: bytes([i]) for i in range(256)}
    for k, (a, b) in enumerate(merges):
        vocab[256 + k] = vocab[a] + vocab[b]
    return vocab


# --- from a corpus to the words the trainer counts ------------------------------------------------
def count_words(texts_or_files, split: Callable[[str], list[str]], specials=()) -> Counter:
    """How often each pre-token occurs: every text (or file) cut at the special tokens (which are
    dropped), then ``split`` into pre-tokens.

    >>> count_words("hi hi<|x|> ho", str.split, specials=["<|x|>"])
    Counter({'hi': 2, 'ho': 1})
    """
    cut = _special_splitter(specials)
    word_counts: Counter = Counter()
    for text in _iter_texts(texts_or_files):
        for piece in cut(text) if cut else [text]:
            word_counts.update(split(piece))
    return word_counts


def _special_splitter(specials):
    """A function that cuts text at the special tokens (dropping them), or None if none."""
    if not specials:
        return None
    alts = sorted(specials, key=lambda s: (-len(s), s))
    return regex.compile("|".join(regex.escape(s) for s in alts)).split


def _iter_texts(texts_or_files):
    """Yield texts from a text, a path, or an iterable of both (paths read as strict UTF-8)."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        texts_or_files = [texts_or_files]
    elif isinstance(texts_or_files, (bytes, bytearray)):
        raise TypeError("BPETokenizer.train: texts_or_files must hold str or paths, got bytes "
                        "(decode them first)")  # fmt: skip
    try:
        items = iter(texts_or_files)
    except TypeError:
        raise TypeError(
            "BPETokenizer.train: texts_or_files must be a str, a path or an iterable of them, got "
            f"{type(texts_or_files).__name__}"
        ) from None
    for k, item in enumerate(items):
        if isinstance(item, str):
            yield item
        elif isinstance(item, os.PathLike):
            yield read_text(item)
        else:
            raise TypeError(
                f"BPETokenizer.train: texts_or_files[{k}] must be a str or a path, got "
                f"{type(item).__name__}"
            )
