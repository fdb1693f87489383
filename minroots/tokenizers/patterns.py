r"""Pre-tokenization: the regex split patterns that cut text into words before BPE.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

Byte-level BPE never merges across the boundaries of a *pre-token*. The split pattern decides
those boundaries, and with them what a token can be: with GPT-2's pattern a token never spans a
letter and a digit, and a space sticks to the word that follows it::

    split("Hello world, it's 2024!", "gpt2")
    # -> ['Hello', ' world', ',', ' it', "'s", ' 2024', '!']
    split("Hello world, it's 2024!", "gpt4")
    # -> ['Hello', ' world', ',', ' it', "'s", ' ', '202', '4', '!']

The named patterns (``PATTERNS``):

- ``"basic"``: no split at all, the whole text is one pre-token (minbpe's ``BasicTokenizer``).
  Simple, but merges can then cross words, and encoding long texts gets slow.
- ``"gpt2"``: GPT-2's pattern in the form tiktoken uses (``r50k_base``): contractions, runs of
  letters, runs of digits, runs of other symbols (each with one optional leading space), and
  whitespace.
- ``"gpt2-original"``: the same as OpenAI's 2019 ``encoder.py`` and Hugging Face's ``ByteLevel``
  pre-tokenizer write it; it splits every text the same way as ``"gpt2"``.
- ``"gpt4"``: GPT-4's ``cl100k_base``: case-insensitive contractions, numbers in groups of at most
  three digits, a letter run may take one leading non-letter, newlines grouped.
- ``"gpt4o"``: ``o200k_base``: like ``gpt4`` but aware of upper/lower case inside words.

The patterns use the `regex` package (not `re`): it has Unicode classes such as ``\p{L}``
(any letter) and possessive quantifiers (``++``).

Any other regex can be a pattern too, but a word that is not one of the names (``"gpt-4"``) is
refused as a typo rather than taken for a regex that matches only that word. A regex that is not
one of the named patterns may come from a file of unknown origin and backtrack catastrophically
(``(?:a|aa)+$`` takes exponential time), so ``findall`` runs it with a time limit that grows
with the text.

**Unicode versions: where the split can differ from tiktoken's.** Which characters are letters
(``\p{L}``), digits (``\p{N}``), marks or spaces is looked up in a table of some version of the
Unicode standard, and each library carries its own: the `regex` package follows the newest one
(`regex` 2026.11: Unicode 18.0), tiktoken 0.14 has the Rust `regex` crate's (Unicode 16.0).
The contract: **a text splits the same in minroots and tiktoken when every character of it has
the same class in both tables**, which holds for every character assigned by Unicode 16.0 except
those in ``UNICODE_RECLASSIFIED`` (with a `regex` older than Unicode 16.0, the characters
added since its version differ the other way round). The characters that differ today are

* those assigned after Unicode 16.0 (about 17,800, e.g. U+0558, U+A7CE, the Sidetic letters at
  U+10940, Tolong Siki at U+11DB0, CJK Extension J): letters and digits for `regex`, unassigned
  (so "other symbols") for tiktoken;
* U+0295 ``ʕ``, a lower-case letter (Ll) in Unicode 16.0 and an "other letter" (Lo) since 17.0,
  which only the case-aware ``gpt4o`` pattern sees.

With GPT-2's own vocabulary the ids still agree (no merge crosses those boundaries), but a
vocabulary trained by minroots on such text and exported with
:meth:`~minroots.tokenizers.bpe.BPETokenizer.to_tiktoken_ranks` can encode
``"ab\U00011DB0\U00011DB1 cd\U00010940x"`` to other ids in tiktoken than in minroots.
``tests/test_tokenizers_parity.py`` scans every code point's class in both libraries and fails on
any other difference (a new release of either library that changes more characters); it also
pins that example.
"""

from __future__ import annotations

import re

import regex

from minroots.validation import did_you_mean

__all__ = [
    "GPT2_PATTERN",
    "GPT2_ORIGINAL_PATTERN",
    "GPT4_PATTERN",
    "GPT4O_PATTERN",
    "BASIC_PATTERN",
    "PATTERNS",
    "resolve_pattern",
    "compile_pattern",
    "split",
    "findall",
]

GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
GPT2_ORIGINAL_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
GPT4O_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
# Matches any whole text (including newlines) in one piece: "no pre-tokenization".
BASIC_PATTERN = r"""[\s\S]+"""

# Characters assigned in both libraries' Unicode tables but classed differently (see "Unicode
# versions" above): U+0295, Ll in Unicode 16.0 (tiktoken 0.14), Lo since Unicode 17.0.
UNICODE_RECLASSIFIED = frozenset("\u0295")
__all__ += ["UNICODE_RECLASSIFIED"]

PATTERNS: dict[str, str] = {
    "basic": BASIC_PATTERN,
    "gpt2": GPT2_PATTERN,
    "gpt2-original": GPT2_ORIGINAL_PATTERN,
    "gpt4": GPT4_PATTERN,
    "gpt4o": GPT4O_PATTERN,
}


_NAME_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")  # a word: meant as a name, not as a regex


def resolve_pattern(pattern: str) -> str:
    """Return the regex for a pattern name (``"gpt2"``, ...), or ``pattern`` itself (a regex).

    Raises ``TypeError`` for a non-string and ``ValueError`` for a regex that does not compile
    or a word that is not one of the names:

    >>> resolve_pattern("gpt-4")
    Traceback (most recent call last):
    ValueError: resolve_pattern: pattern must be one of 'basic', 'gpt2', 'gpt2-original', 'gpt4', 'gpt4o' or a regex, got 'gpt-4' (did you mean 'gpt4'?)
    """
    if not isinstance(pattern, str):
        raise TypeError(f"resolve_pattern: pattern must be a str (a name or a regex), got "
                        f"{type(pattern).__name__}")  # fmt: skip
    if pattern not in PATTERNS and _NAME_LIKE.fullmatch(pattern):
        names = ", ".join(repr(name) for name in PATTERNS)
        raise ValueError(f"resolve_pattern: pattern must be one of {names} or a regex, got "
                         f"{pattern!r}{did_you_mean(pattern, PATTERNS)}")  # fmt: skip
    pat = PATTERNS.get(pattern, pattern)
    compile_pattern(pat)
    return pat


def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a split regex with the `regex` package, with a clear error for a bad one."""
    try:
        return regex.compile(pattern)
    except (regex.error, RecursionError, OverflowError) as e:
        raise ValueError(f"compile_pattern: pattern must be a valid regex, got {pattern[:80]!r} "
                         f"({e})") from None  # fmt: skip


def time_limit(n_chars: int) -> float:
    """Seconds a split of ``n_chars`` characters may take: 2 s plus 20 µs a character (the named
    patterns split millions of characters a second, so only runaway backtracking gets there)."""
    return 2.0 + 2e-5 * n_chars


def findall(compiled: regex.Pattern, text: str, limit: bool = True) -> list[str]:
    """``compiled.findall(text)``, stopped after :func:`time_limit` seconds when ``limit``.

    A regex that backtracks catastrophically raises a one-line ``ValueError`` instead of hanging.
    """
    if not limit:
        return compiled.findall(text)
    try:
        return compiled.findall(text, timeout=time_limit(len(text)))
    except TimeoutError:
        names = ", ".join(PATTERNS)
        raise ValueError(f"split: the pattern must split text in about linear time, got no result "
                         f"within {time_limit(len(text)):.0f} s on {len(text)} characters "
                         f"(catastrophic backtracking in {compiled.pattern[:60]!r}?); use a named "
                         f"pattern ({names})") from None  # fmt: skip


def split(text: str, pattern: str = "gpt2") -> list[str]:
    """Cut ``text`` into pre-tokens with a named pattern or a regex (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"split: text must be a str, got {type(text).__name__}")
    regex_text = resolve_pattern(pattern)
    return findall(compile_pattern(regex_text), text, limit=pattern not in PATTERNS)
