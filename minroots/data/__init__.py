"""Data: the bundled corpora, tokenized datasets and batching.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``), and chapter 7, "Training"
(``book/07_training.md``).

- ``corpus.py``: :func:`load_corpus`, :func:`load_pairs`, :func:`list_corpora` — the corpora in
  ``data/`` (installed as ``minroots.corpora``) or your own files.
- ``cache.py``: :func:`cached_encode` — tokenize once, keep the ids as ``.npy``.
- ``text_dataset.py``: :class:`TextDataset` — train/validation split, random ``(x, y)`` blocks.
- ``dataloader.py``: :class:`DataLoader` — batches in epochs, shuffled, resumable.
- ``pairs.py``: :class:`PairDataset`, :func:`pad_sequences`, :func:`collate_pairs` — sequence
  pairs with padding and masks.

Example::

    from minroots.data import DataLoader, TextDataset

    ds = TextDataset("shakespeare", block_size=128)
    x, y = ds.get_batch("train", 16, rng=np.random.default_rng(0))   # (16, 128) each
    loader = DataLoader(ds, batch_size=16, shuffle=True, seed=0)
"""

from minroots.data.cache import cached_encode, default_cache_dir
from minroots.data.corpus import DEFAULT_CORPUS, corpus_path, list_corpora, load_corpus, load_pairs
from minroots.data.dataloader import DataLoader, default_collate
from minroots.data.pairs import PairDataset, collate_pairs, pad_sequences
from minroots.data.text_dataset import Blocks, TextDataset

__all__ = [
    "DEFAULT_CORPUS",
    "list_corpora",
    "corpus_path",
    "load_corpus",
    "load_pairs",
    "cached_encode",
    "default_cache_dir",
    "TextDataset",
    "Blocks",
    "DataLoader",
    "default_collate",
    "PairDataset",
    "pad_sequences",
    "collate_pairs",
]
