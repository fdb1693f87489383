r"""A faster pre-token split for ASCII text: the named patterns rewritten for Python's ``re``.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); tests in
``tests/test_tokenizers_ascii_split.py``.

The split patterns of :mod:`~minroots.tokenizers.patterns` need the `regex` package for its
Unicode classes: ``\p{L}`` (a letter), ``\p{N}`` (a number). On ASCII text those classes are plain
ranges, and the standard library's ``re`` runs the same split about twice as fast (measured on
1.1 MB of Shakespeare, one thread: 41 ms against 92 ms; ``benchmarks/README.md``). So the BPE
tokenizer splits an ASCII text (``str.isascii()``, a constant-time check in CPython) with the
ASCII form of its pattern, and any other text with the pattern itself.

Why the two give the same pre-tokens on ASCII text: each class is replaced by the ASCII
characters it contains, so every alternative matches exactly the same ASCII strings:

- ``\p{L}`` -> ``[A-Za-z]``, ``\p{N}`` -> ``[0-9]``;
- ``\s`` -> ``[\t\n\x0b\x0c\r ]`` (the `regex` package's ``\s`` is Unicode's White_Space, which
  among ASCII characters holds only these six; ``re``'s ``\s`` would add ``\x1c``-``\x1f``);
- ``\S``, ``[^\s\p{L}\p{N}]`` and the like -> the complement of the same set;
- the rest (alternation order, possessive ``++``, ``(?i:...)``, ``$``) is read the same way by
  both modules. ``tests/test_tokenizers_ascii_split.py`` checks the two splits against each other on
  every pair of ASCII characters and on random ASCII texts.

Possessive quantifiers need Python 3.11's ``re``; before that (and for custom patterns) the
`regex` package is used for every text.
"""

from __future__ import annotations

import re

from minroots.tokenizers.patterns import GPT2_ORIGINAL_PATTERN, GPT2_PATTERN, GPT4_PATTERN

__all__ = ["ASCII_FORMS", "ascii_findall"]

_S = r"\t\n\x0b\x0c\r "  # White_Space among ASCII characters
_L, _N = "A-Za-z", "0-9"

#: a named pattern -> its form for ASCII text in ``re`` syntax
ASCII_FORMS = {
    GPT2_PATTERN: (
        rf"""'(?:[sdmt]|ll|ve|re)| ?[{_L}]++| ?[{_N}]++| ?[^{_S}{_L}{_N}]++|[{_S}]++$"""
        rf"""|[{_S}]+(?![^{_S}])|[{_S}]"""
    ),
    GPT2_ORIGINAL_PATTERN: (
        rf"""'s|'t|'re|'ve|'m|'ll|'d| ?[{_L}]+| ?[{_N}]+| ?[^{_S}{_L}{_N}]+|[{_S}]+(?![^{_S}])"""
        rf"""|[{_S}]+"""
    ),
    GPT4_PATTERN: (
        rf"""'(?i:[sdmt]|ll|ve|re)|[^\r\n{_L}{_N}]?+[{_L}]++|[{_N}]{{1,3}}+"""
        rf"""| ?[^{_S}{_L}{_N}]++[\r\n]*+|[{_S}]++$|[{_S}]*[\r\n]|[{_S}]+(?![^{_S}])|[{_S}]"""
    ),
}


def ascii_findall(pattern: str):
    """``findall`` of the ASCII form of ``pattern`` (a regex string), or None when there is none
    (a custom pattern, or a Python whose ``re`` lacks possessive quantifiers)."""
    form = ASCII_FORMS.get(pattern)
    if form is None:
        return None
    try:
        return re.compile(form).findall
    except re.error:  # Python 3.10: no possessive quantifiers
        return None
