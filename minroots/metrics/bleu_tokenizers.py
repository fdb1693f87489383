"""The tokenizers BLEU runs before counting n-grams, rule for rule as sacrebleu runs them.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

BLEU counts word n-grams, so its score depends on how a line is cut into words. sacrebleu fixed
that choice (Post, 2018, "A Call for Clarity in Reporting BLEU Scores") by shipping the
tokenizers below and printing the one used in the score's signature. Each function here takes
one line and returns the line with single spaces between tokens, exactly as sacrebleu returns it:

========  ==========================================================================
``13a``   mteval-v13a.pl, the WMT default: split off punctuation and symbols, keep
          ``.``/``,`` inside numbers (``3.14``), split ``-`` after a digit.
``intl``  mteval-v14.pl ``--international-tokenization``: the same idea with Unicode
          classes (``\\p{P}`` punctuation, ``\\p{S}`` symbols, ``\\p{N}`` numbers).
``zh``    every CJK character is its own token, the rest as ``13a``.
``char``  every character is a token (whitespace dropped).
``none``  the line as it is: split on whitespace only.
========  ==========================================================================

>>> tokenize_13a("Hello, world! It costs $3.50-4.")
'Hello , world ! It costs $ 3.50 - 4 .'

Each tokenizer keeps an LRU cache of the lines it has seen, as sacrebleu does: references are
often scored many times (one per system), and repeated lines are common.
"""

from __future__ import annotations

import re
from functools import lru_cache

import regex

from minroots.validation import shown

__all__ = [
    "TOKENIZERS",
    "get_tokenizer",
    "tokenize_13a",
    "tokenize_intl",
    "tokenize_zh",
    "tokenize_char",
    "tokenize_none",
]

_CACHE = 2**16

# --- the regular expressions of mteval-v13a (shared by 13a and zh) -------------------------------
# Step 1 puts spaces around each of these ASCII characters: { | } ~ [ \ ] ^ _ ` space ! " # $ % &
# ( ) * + : ; < = > ? @ /   (sacrebleu's class is [\{-\~\[-\` -\&\(-\+\:-\@\/]). A one-character
# class replaced by " c " is a per-character mapping, so str.translate does it in one C pass.
_13A_SYMBOLS = (
    [chr(c) for c in range(ord("{"), ord("~") + 1)]
    + [chr(c) for c in range(ord("["), ord("`") + 1)]
    + [chr(c) for c in range(ord(" "), ord("&") + 1)]
    + [chr(c) for c in range(ord("("), ord("+") + 1)]
    + [chr(c) for c in range(ord(":"), ord("@") + 1)]
    + ["/"]
)
_13A_TABLE = str.maketrans({c: f" {c} " for c in _13A_SYMBOLS})
# Steps 2-4 depend on neighbours, so they stay regular expressions (the same ones, same order).
_PERIOD_COMMA_AFTER_NON_DIGIT = re.compile(r"([^0-9])([\.,])")  # "a." -> "a . "
_PERIOD_COMMA_BEFORE_NON_DIGIT = re.compile(r"([\.,])([^0-9])")  # ".a" -> " . a"
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")  # "3-" -> "3 - "


def _mteval_post(line: str) -> str:
    """The language-dependent part of mteval-v13a, shared by ``13a`` and ``zh``.

    >>> _mteval_post(" 3.5-4, ok. ")
    '3.5 - 4 , ok .'
    """
    line = line.translate(_13A_TABLE)
    # The two period/comma rules cannot fire without a period or comma, nor the dash rule without
    # a dash: skipping them then changes nothing and saves most of the regex time.
    if "." in line or "," in line:
        line = _PERIOD_COMMA_AFTER_NON_DIGIT.sub(r"\1 \2 ", line)
        line = _PERIOD_COMMA_BEFORE_NON_DIGIT.sub(r" \1 \2", line)
    if "-" in line:
        line = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return " ".join(line.split())


@lru_cache(maxsize=_CACHE)
def tokenize_13a(line: str) -> str:
    """mteval-v13a tokenization (sacrebleu's default ``13a``).

    First the language-independent part: drop ``<skipped>``, join words hyphenated across a line
    break, turn newlines into spaces and unescape ``&quot; &amp; &lt; &gt;``. Then
    :func:`_mteval_post` on the line padded with one space at each end.

    >>> tokenize_13a("It's 1,000.5 &amp; more!")
    "It's 1,000.5 & more !"
    """
    line = line.replace("<skipped>", "")
    line = line.replace("-\n", "")
    line = line.replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"')
        line = line.replace("&amp;", "&")
        line = line.replace("&lt;", "<")
        line = line.replace("&gt;", ">")
    return _mteval_post(f" {line} ")


# --- mteval-v14 international tokenization -------------------------------------------------------
_INTL_RULES = (
    (regex.compile(r"(\P{N})(\p{P})"), r"\1 \2 "),  # punctuation after a non-number
    (regex.compile(r"(\p{P})(\P{N})"), r" \1 \2"),  # punctuation before a non-number
    (regex.compile(r"(\p{S})"), r" \1 "),  # every symbol
)


@lru_cache(maxsize=_CACHE)
def tokenize_intl(line: str) -> str:
    """mteval-v14 international tokenization (``intl``), with Unicode character classes.

    Punctuation is split off unless it sits between two numbers (``1,000`` stays); every symbol
    (``$``, ``€``, ``+``) is split off. As in mteval-v14, a number followed by a final period keeps
    its period (``in 2019.`` -> ``in 2019.``) because the line is not padded with spaces.

    >>> tokenize_intl("Prices rose 3.5% in 2019.")
    'Prices rose 3.5 % in 2019.'
    """
    for pattern, replacement in _INTL_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


# --- Chinese ---------------------------------------------------------------------------------------
# The code-point ranges sacrebleu treats as Chinese characters. sacrebleu writes two of them as
# u'\u20000' and u'\u2f800', meaning the astral code points U+20000 and U+2F800; but Python reads
# '\u2000' followed by '0', and compares strings. A single character c then satisfies
# '\u20000' <= c <= '\u2a6d6' exactly when U+2001 <= c <= U+2A6D (general punctuation, arrows,
# maths symbols, ...), and '\u2f800' <= c <= '\u2fa1d' when U+2F81 <= c <= U+2FA1. We reproduce
# those ranges as sacrebleu really applies them, so that scores agree.
_ZH_RANGES = (
    (0x3400, 0x4DB5),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FA5),  # CJK Unified Ideographs
    (0x9FA6, 0x9FBB),  # CJK Unified Ideographs, release 4.1
    (0xF900, 0xFA2D),  # CJK Compatibility Ideographs
    (0xFA30, 0xFA6A),
    (0xFA70, 0xFAD9),
    (0x2001, 0x2A6D),  # sacrebleu's "\u20000-\u2a6d6" as Python compares it (see above)
    (0x2F81, 0x2FA1),  # sacrebleu's "\u2f800-\u2fa1d" as Python compares it
    (0xFF00, 0xFFEF),  # full-width ASCII and punctuation, half-width kana, Hangul
    (0x2E80, 0x2EFF),  # CJK Radicals Supplement
    (0x3000, 0x303F),  # CJK punctuation
    (0x31C0, 0x31EF),  # CJK strokes
    (0x2F00, 0x2FDF),  # Kangxi Radicals
    (0x2FF0, 0x2FFF),  # ideographic description characters
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31BF),  # Bopomofo extended
    (0xFE10, 0xFE1F),  # vertical forms
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0x2600, 0x26FF),  # miscellaneous symbols
    (0x2700, 0x27BF),  # dingbats
    (0x3200, 0x32FF),  # enclosed CJK letters
    (0x3300, 0x33FF),  # CJK compatibility
)
# One character class of all ranges: surrounding each match with spaces is what sacrebleu's
# character-by-character loop does.
_ZH_CHAR = re.compile(
    "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in _ZH_RANGES) + "]"
)


def is_chinese_char(char: str) -> bool:
    """True if sacrebleu's ``zh`` tokenizer makes ``char`` a token of its own."""
    code = ord(char)
    return any(a <= code <= b for a, b in _ZH_RANGES)


@lru_cache(maxsize=_CACHE)
def tokenize_zh(line: str) -> str:
    """Chinese tokenization (``zh``): each CJK character is a token, the rest as mteval-v13a.

    >>> tokenize_zh("我喜欢NLP, 真的.")
    '我 喜 欢 NLP , 真 的 .'
    """
    line = _ZH_CHAR.sub(r" \g<0> ", line.strip())
    return _mteval_post(line)


@lru_cache(maxsize=_CACHE)
def tokenize_char(line: str) -> str:
    """Character tokenization (``char``): every non-space character is a token.

    >>> tokenize_char("ab c")
    'a b c'
    """
    # sacrebleu joins every character (spaces too) with spaces; after BLEU's whitespace split that
    # leaves exactly the non-space characters, which is what this returns.
    return " ".join("".join(line.split()))


def tokenize_none(line: str) -> str:
    """No tokenization (``none``): BLEU then splits the line on whitespace only."""
    return line


TOKENIZERS = {
    "13a": tokenize_13a,
    "intl": tokenize_intl,
    "zh": tokenize_zh,
    "char": tokenize_char,
    "none": tokenize_none,
}


def get_tokenizer(name: str):
    """The tokenizer function called ``name`` (one of :data:`TOKENIZERS`)."""
    if not isinstance(name, str) or name not in TOKENIZERS:
        raise ValueError(f"BLEU: tokenize must be one of {sorted(TOKENIZERS)}, got {shown(name)}")
    return TOKENIZERS[name]
