r"""A tokenized text corpus, split into train/validation, serving ``(x, y)`` blocks.

Book chapter 7, "Training" (``book/07_training.md``); data preparation in chapter 6
(``book/06_tokenizers.md``).

A language model learns to predict token ``t + 1`` from tokens ``0 .. t``. From a corpus of
token ids ``d`` and a block size ``T``, one training example starting at position ``s`` is

.. math::

    x = d[s : s + T], \qquad y = d[s + 1 : s + T + 1],

so ``y[t]`` is the token that follows ``x[t]``. Worked example with ``d = [5, 6, 7, 8, 9]``,
``T = 3`` and ``s = 1``: ``x = [6, 7, 8]``, ``y = [7, 8, 9]``.

The split is contiguous and deterministic: the first ``1 - val_fraction`` of the ids train, the
last ``val_fraction`` validate (no shuffling, so no sentence is half in each split, and the
same text always gives the same split). With ``val_pieces=k`` the text is first cut into ``k``
equal pieces and the last ``val_fraction`` of *each* piece validates: the held-out text then
comes from all over the corpus (all eight plays of the Shakespeare corpus, rather than only the
last one, whose new characters and names measure something else). Two ways to draw examples:

- ``get_batch(split, batch_size, rng)``: ``batch_size`` random starting positions anywhere in the
  split (nanoGPT's way; an "epoch" is not defined);
- ``dataset[i]`` / ``len(dataset)``: the ``i``-th of the non-overlapping blocks of the training
  split, for :class:`~minroots.data.DataLoader` epochs; ``dataset.blocks("val")`` gives the
  validation blocks the same way.
"""

from __future__ import annotations

import os

import numpy as np

from minroots.data.cache import cached_encode
from minroots.data.corpus import corpus_path, list_corpora, load_corpus
from minroots.tokenizers import CharTokenizer
from minroots.validation import shown

__all__ = ["TextDataset", "Blocks", "split_point", "split_ranges"]

_SPLITS = ("train", "val")


def split_point(n: int, val_fraction: float) -> int:
    """Number of leading ids that train: ``n - floor(n * val_fraction)``.

    Example: ``split_point(1000, 0.1) -> 900`` (ids 0..899 train, 900..999 validate).
    """
    return n - int(n * val_fraction)


def split_ranges(n: int, val_fraction: float, pieces: int = 1) -> tuple[list, list]:
    """``(train_ranges, val_ranges)``: cut ``n`` ids into ``pieces`` equal pieces, and hold out the
    last ``val_fraction`` of each.

    Example: ``split_ranges(1000, 0.1, 2) -> ([(0, 450), (500, 950)], [(450, 500), (950, 1000)])``.
    """
    bounds = [n * k // pieces for k in range(pieces + 1)]
    train, val = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        cut = lo + split_point(hi - lo, val_fraction)
        train.append((lo, cut))
        val.append((cut, hi))
    return train, val


class Blocks:
    """The non-overlapping ``(x, y)`` blocks of one split, as a read-only sequence.

    Block ``i`` starts at ``i * block_size``; there are ``(len(ids) - 1) // block_size`` of them
    (``y`` needs one id past the block). Items are ``int64`` arrays of shape ``(block_size,)``.
    """

    def __init__(self, ids: np.ndarray, block_size: int):
        self.ids = ids
        self.block_size = block_size

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.block_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"Blocks: index must be an int, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"Blocks: block index {i} out of range for {n} blocks")
        s = (int(i) % n) * self.block_size
        chunk = np.asarray(self.ids[s : s + self.block_size + 1], dtype=np.int64)
        return chunk[:-1], chunk[1:]


class TextDataset:
    """Token ids of a corpus with a deterministic train/validation split.

    Args:
        source: a bundled corpus name (``"shakespeare"``), a path to a UTF-8 file (a
            ``os.PathLike``, or a one-line ``str`` naming an existing file), or the text itself.
        tokenizer: anything with ``encode``, ``decode`` and ``vocab_size``; default a
            :class:`~minroots.tokenizers.CharTokenizer` built from the whole text.
        block_size: tokens per example ``T`` (the model's context length).
        val_fraction: share of the ids, taken from the end, that validate (``0 <= f < 1``).
        val_pieces: cut the ids into this many equal pieces and hold out the end of each
            (default 1: one held-out block at the end of the text).
        cache_dir: where token ids are cached (see :mod:`minroots.data.cache`).
        seed: seeds the generator ``get_batch`` uses when it is given no ``rng``.
        use_cache: ``False`` tokenizes every time and writes no cache file.

    Example::

        >>> ds = TextDataset("shakespeare", block_size=64, use_cache=False)
        >>> x, y = ds.get_batch("train", 8, np.random.default_rng(0))
        >>> x.shape, y.shape, bool((x[:, 1:] == y[:, :-1]).all())   # y is x shifted by one
        ((8, 64), (8, 64), True)
    """

    def __init__(
        self,
        source: str | os.PathLike,
        tokenizer=None,
        block_size: int = 128,
        val_fraction: float = 0.1,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        use_cache: bool = True,
        val_pieces: int = 1,
    ):
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise TypeError(
                f"TextDataset: block_size must be an int, got {type(block_size).__name__}"
            )
        if block_size < 1:
            raise ValueError(f"TextDataset: block_size must be at least 1, got {block_size}")
        if (
            isinstance(val_fraction, bool)
            or not isinstance(val_fraction, (int, float))
            or not (0 <= val_fraction < 1)
        ):
            raise ValueError(
                f"TextDataset: val_fraction must be a number in [0, 1), got {shown(val_fraction)}"
            )
        if (
            isinstance(val_pieces, bool)
            or not isinstance(val_pieces, (int, np.integer))
            or val_pieces < 1
        ):
            raise ValueError(
                f"TextDataset: val_pieces must be a positive int, got {shown(val_pieces)}"
            )
        self.text = self._resolve(source)
        if tokenizer is None:
            tokenizer = CharTokenizer.from_text(self.text)
        self.tokenizer = tokenizer
        self.block_size = int(block_size)
        self.val_fraction = float(val_fraction)
        self.ids = cached_encode(self.text, tokenizer, cache_dir=cache_dir, use_cache=use_cache)
        self.val_pieces = int(val_pieces)
        self._splits = self._cut(self.ids, self.val_fraction, self.val_pieces)
        self._rng = np.random.default_rng(seed)
        self._check_lengths(source)

    @staticmethod
    def _resolve(source) -> str:
        if isinstance(source, os.PathLike):
            return load_corpus(source)
        if not isinstance(source, str):
            raise TypeError(
                f"TextDataset: source must be a corpus name, a file path or text, got "
                f"{type(source).__name__}"
            )
        if source in list_corpora():
            return load_corpus(source)
        if "\n" not in source and len(source) < 4096 and os.path.isfile(source):
            return load_corpus(source)
        if not source:
            raise ValueError(
                "TextDataset: source is an empty string; expected text, a corpus name or a path"
            )
        return source

    def _check_lengths(self, source) -> None:
        need = self.block_size + 1
        for split in _SPLITS if self.val_fraction > 0 else ("train",):
            n = len(self.split(split))
            if n < need:
                hint = ""
                if isinstance(source, str) and len(source) < 200 and "\n" not in source:
                    try:
                        corpus_path(source)
                    except FileNotFoundError as e:
                        hint = f" (if you meant a corpus name or file: {e})"
                raise ValueError(
                    f"TextDataset: the {split} split has {n} tokens; block_size={self.block_size} needs at "
                    f"least {need}: use more text, a smaller block_size or another "
                    f"val_fraction{hint}"
                )

    # --- the splits ---------------------------------------------------------------------------
    @staticmethod
    def _cut(ids, val_fraction: float, pieces: int) -> dict:
        """The ids of each split: views of ``ids`` for one piece, joined copies for several."""
        train, val = split_ranges(len(ids), val_fraction, pieces)
        out = {}
        for name, ranges in (("train", train), ("val", val)):
            if len(ranges) == 1:
                view = ids[ranges[0][0] : ranges[0][1]]
            else:
                view = np.concatenate([ids[lo:hi] for lo, hi in ranges])
            if isinstance(view, np.ndarray) and view.flags.writeable:
                view = view.view()
                view.flags.writeable = False
            out[name] = view
        return out

    def split(self, split: str) -> np.ndarray:
        """The ids of ``"train"`` or ``"val"`` (read-only; a view of the ids when ``val_pieces=1``)."""
        if split not in self._splits:
            raise ValueError(f"TextDataset: split must be 'train' or 'val', got {shown(split)}")
        return self._splits[split]

    @property
    def train(self) -> np.ndarray:
        return self.split("train")

    @property
    def val(self) -> np.ndarray:
        return self.split("val")

    def blocks(self, split: str = "train") -> Blocks:
        """The non-overlapping ``(x, y)`` blocks of a split (for :class:`DataLoader` epochs)."""
        return Blocks(self.split(split), self.block_size)

    # --- examples -----------------------------------------------------------------------------
    def get_batch(
        self, split: str, batch_size: int, rng: np.random.Generator | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``batch_size`` blocks from random positions of a split: ``(x, y)``, int64, ``(B, T)``.

        ``rng`` is a ``numpy.random.Generator`` or a seed; ``None`` uses the dataset's own
        generator (seeded by ``seed``). Every start ``s`` lies in ``[0, len(split) - T - 1]``,
        so that ``y = d[s + 1 : s + T + 1]`` stays inside the split.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(
                f"get_batch: batch_size must be an int, got {type(batch_size).__name__}"
            )
        if batch_size < 1:
            raise ValueError(f"get_batch: batch_size must be at least 1, got {batch_size}")
        if rng is None:
            rng = self._rng
        elif not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        data = self.split(split)
        T = self.block_size
        if len(data) < T + 1:
            raise ValueError(f"get_batch: the {split} split has {len(data)} tokens, fewer than "
                             "block_size + 1")  # fmt: skip
        starts = rng.integers(0, len(data) - T, size=batch_size)  # (B,)
        chunk = np.asarray(data[starts[:, None] + np.arange(T + 1)], dtype=np.int64)  # (B, T+1)
        return np.ascontiguousarray(chunk[:, :-1]), np.ascontiguousarray(chunk[:, 1:])

    def __len__(self) -> int:
        """Number of non-overlapping training blocks (one :class:`DataLoader` epoch)."""
        return len(self.blocks("train"))

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.blocks("train")[i]

    # --- tokens <-> text ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def num_tokens(self) -> int:
        return len(self.ids)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids) -> str:
        """Text of a sequence of ids (a list or a 1-D array)."""
        return self.tokenizer.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    def __repr__(self) -> str:
        return (
            f"TextDataset(tokens={self.num_tokens}, vocab_size={self.vocab_size}, "
            f"block_size={self.block_size}, train={len(self.train)}, val={len(self.val)})"
        )
