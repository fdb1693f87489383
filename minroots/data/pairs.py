"""Sequence pairs (translation, summarization, dialogue): tokenized, padded, masked.

Book chapter 10, "Applications" (``book/10_applications.md``); data preparation in chapter 6
(``book/06_tokenizers.md``).

An encoder–decoder model reads a *source* sequence and learns to produce a *target*. Pairs have
different lengths, so a batch is padded to its longest member with a ``pad_id`` and carries a
*mask* that is ``True`` on real tokens and ``False`` on padding (attention ignores padded keys;
the loss ignores padded labels). The decoder is trained by teacher forcing: it reads the target
shifted right (starting with ``bos_id``) and predicts it shifted left (ending with ``eos_id``)::

    target ids      [BOS, 7, 8, EOS]
    target_input    [BOS, 7, 8]        what the decoder reads
    target_output   [7,   8, EOS]      what it must predict at each position

Worked example of :func:`pad_sequences` with ``pad_id=0``::

    [[5, 6, 7], [8]]  ->  ids  [[5, 6, 7], [8, 0, 0]]
                          mask [[T, T, T], [T, F, F]]

The special ids follow the tokenizer's vocabulary: ``pad_id = V``, ``bos_id = V + 1``,
``eos_id = V + 2`` for a tokenizer of ``V`` ids, so ``PairDataset.vocab_size = V + 3``.
"""

from __future__ import annotations

import os

import numpy as np

from minroots.data.corpus import load_pairs
from minroots.tokenizers import CharTokenizer
from minroots.validation import shown

__all__ = ["pad_sequences", "collate_pairs", "PairDataset"]


def pad_sequences(
    sequences, pad_id: int, max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad integer sequences to one length: ``(ids, mask)``, int64 and bool, ``(B, L)``.

    ``L`` is the longest sequence's length, or ``max_len`` if given (longer sequences are then
    cut to ``max_len``). ``mask[b, t]`` is ``True`` where ``ids[b, t]`` is a real token.
    """
    seqs = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    if not seqs:
        raise ValueError("pad_sequences: sequences is empty; expected at least one sequence")
    if max_len is not None and max_len < 1:
        raise ValueError(f"pad_sequences: max_len must be at least 1, got {shown(max_len)}")
    length = max(len(s) for s in seqs) if max_len is None else int(max_len)
    ids = np.full((len(seqs), length), pad_id, dtype=np.int64)  # (B, L)
    mask = np.zeros((len(seqs), length), dtype=bool)  # (B, L)
    for b, s in enumerate(seqs):
        s = s[:length]
        ids[b, : len(s)] = s
        mask[b, : len(s)] = True
    return ids, mask


def collate_pairs(items, pad_id: int) -> dict[str, np.ndarray]:
    """Batch ``[(source_ids, target_ids), ...]`` for teacher forcing.

    Each target must start with BOS and end with EOS. Returns a dict of NumPy arrays:

    - ``source`` ``(B, S)`` int64 and ``source_mask`` ``(B, S)`` bool;
    - ``target_input`` ``(B, T)``: targets without their last token (start with BOS);
    - ``target_output`` ``(B, T)``: targets without their first token (the labels);
    - ``target_mask`` ``(B, T)`` bool: ``True`` where ``target_output`` is a real label.

    Padding positions hold ``pad_id``, in labels too: use the masks, not the ids, to skip them.
    """
    if not items:
        raise ValueError(
            "collate_pairs: items is empty; expected at least one (source, target) pair"
        )
    source, source_mask = pad_sequences([src for src, _ in items], pad_id)
    target, target_mask = pad_sequences([tgt for _, tgt in items], pad_id)
    return {
        "source": source,
        "source_mask": source_mask,
        "target_input": np.ascontiguousarray(target[:, :-1]),
        "target_output": np.ascontiguousarray(target[:, 1:]),
        "target_mask": np.ascontiguousarray(target_mask[:, 1:]),
    }


class PairDataset:
    """Tokenized ``(source, target)`` pairs with BOS/EOS markers, for a :class:`DataLoader`.

    Args:
        pairs: a bundled pair corpus name (``"en_es"``), a ``.tsv``/``.jsonl`` path, or a list
            of ``(source, target)`` strings.
        tokenizer: encodes both sides (default: a ``CharTokenizer`` built from all the text).
        target_tokenizer: a different tokenizer for the targets (default: ``tokenizer``).
        max_source_len, max_target_len: cut longer sequences (counting BOS/EOS) to this length.

    ``dataset[i]`` is ``(source_ids, target_ids)``: ``source + [EOS]`` and
    ``[BOS] + target + [EOS]`` as int64 arrays; a :class:`DataLoader` batches them with
    :meth:`collate` into padded arrays and masks.
    """

    def __init__(
        self,
        pairs,
        tokenizer=None,
        target_tokenizer=None,
        max_source_len: int | None = None,
        max_target_len: int | None = None,
    ):
        if isinstance(pairs, (str, os.PathLike)):
            pairs = load_pairs(pairs)
        pairs = [tuple(p) for p in pairs]
        if not pairs:
            raise ValueError(
                "PairDataset: pairs is empty; expected at least one (source, target) pair"
            )
        for i, p in enumerate(pairs):
            if len(p) != 2 or not all(isinstance(s, str) for s in p):
                raise TypeError(
                    f"PairDataset: pairs[{i}] must be a (source, target) pair of str, got {shown(p)}"
                )
        for name, value in (("max_source_len", max_source_len), ("max_target_len", max_target_len)):
            if value is not None and value < 2:
                raise ValueError(
                    f"PairDataset: {name} must be at least 2 (a token and EOS), got {value}"
                )
        if tokenizer is None:
            tokenizer = CharTokenizer.from_text([s for p in pairs for s in p])
        self.pairs = pairs
        self.tokenizer = tokenizer
        self.target_tokenizer = target_tokenizer or tokenizer
        V = max(self.tokenizer.vocab_size, self.target_tokenizer.vocab_size)
        self.pad_id, self.bos_id, self.eos_id = V, V + 1, V + 2
        self.max_source_len, self.max_target_len = max_source_len, max_target_len
        self._sources = [self._ids(self.tokenizer, s, False, max_source_len) for s, _ in pairs]
        self._targets = [
            self._ids(self.target_tokenizer, t, True, max_target_len) for _, t in pairs
        ]

    def _ids(self, tok, text: str, bos: bool, max_len: int | None) -> np.ndarray:
        ids = list(tok.encode(text))
        if max_len is not None:
            ids = ids[: max_len - 1 - bos]  # keep room for the markers
        ids = ([self.bos_id] if bos else []) + ids + [self.eos_id]
        return np.asarray(ids, dtype=np.int64)

    @property
    def vocab_size(self) -> int:
        """Tokenizer ids plus the three special ids (pad, BOS, EOS)."""
        return self.eos_id + 1

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self._sources[i], self._targets[i]

    def collate(self, items) -> dict[str, np.ndarray]:
        """Pad a list of items into a batch (see :func:`collate_pairs`)."""
        return collate_pairs(items, self.pad_id)

    def decode_target(self, ids) -> str:
        """Text of target ids, stopping at EOS and skipping BOS and padding."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                out.append(i)
        return self.target_tokenizer.decode(out)

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[PairDataset, PairDataset]:
        """Shuffle the pairs with ``default_rng(seed)`` and cut ``(train, val)``; same tokenizers.

        Pairs come in corpus order (e.g. Bible books), so the split shuffles first, unlike
        :class:`TextDataset`'s contiguous split of running text.
        """
        if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
            raise ValueError(f"PairDataset.split: val_fraction must be a number in (0, 1), got "
                             f"{val_fraction!r}")  # fmt: skip
        order = np.random.default_rng(seed).permutation(len(self.pairs))
        n_val = max(1, int(len(order) * val_fraction))
        if n_val >= len(order):
            raise ValueError(f"PairDataset.split: {len(order)} pairs are too few to split with "
                             f"val_fraction={val_fraction}")  # fmt: skip
        return self._subset(order[n_val:]), self._subset(order[:n_val])

    def _subset(self, index) -> PairDataset:
        sub = object.__new__(PairDataset)
        sub.__dict__.update(self.__dict__)
        sub.pairs = [self.pairs[i] for i in index]
        sub._sources = [self._sources[i] for i in index]
        sub._targets = [self._targets[i] for i in index]
        return sub

    def __repr__(self) -> str:
        return f"PairDataset(pairs={len(self)}, vocab_size={self.vocab_size})"
