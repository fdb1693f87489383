"""Tokenizers: text to integer ids and back, and the text cleaning that comes before.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

Read the files in this order; each adds one idea to the previous:

- ``base.py``: the interface every tokenizer shares; :func:`load` reads any saved tokenizer.
- ``char.py``: :class:`CharTokenizer`, one id per character.
- ``patterns.py``: the regex split patterns (GPT-2, GPT-4, ...) that cut text into pre-tokens.
- ``bpe_training.py``: the BPE training algorithm: count pairs, merge the most frequent, fast.
- ``bpe.py``: :class:`BPETokenizer`, byte-level BPE with tiktoken-exact encoding and special
  tokens; :func:`train_tokenizer_file` for the command line.
- ``interop.py``: GPT-2's byte <-> character table; reading tiktoken, GPT-2 and Hugging Face data.
- ``cleaning.py``: text cleaning steps and :func:`~minroots.tokenizers.cleaning.clean`.
- ``pretrained.py``: Hugging Face ``tokenizer.json`` folders both ways (book chapter 12,
  ``book/12_modern_decoder.md``): :func:`from_pretrained`, ``tokenizer.save_pretrained(path)``.
"""

from minroots.tokenizers import cleaning
from minroots.tokenizers.base import Tokenizer, load
from minroots.tokenizers.bpe import BPETokenizer, train_tokenizer_file
from minroots.tokenizers.char import CharTokenizer
from minroots.tokenizers.patterns import PATTERNS, split
from minroots.tokenizers.pretrained import from_pretrained

__all__ = [
    "Tokenizer",
    "CharTokenizer",
    "BPETokenizer",
    "train_tokenizer_file",
    "load",
    "split",
    "PATTERNS",
    "cleaning",
]
__all__ += ["from_pretrained"]  # Hugging Face tokenizer folders (book chapter 12)
