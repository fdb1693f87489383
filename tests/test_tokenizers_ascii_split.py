"""The ASCII forms of the split patterns (``minroots/tokenizers/ascii_split.py``): the same
pre-tokens as the `regex` patterns on every ASCII text, and the BPE tokenizer's ids unchanged."""

from __future__ import annotations

import itertools

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from minroots.tokenizers import BPETokenizer
from minroots.tokenizers.ascii_split import ASCII_FORMS, ascii_findall
from minroots.tokenizers.patterns import GPT2_PATTERN, PATTERNS

FORMS = [name for name, pattern in PATTERNS.items() if pattern in ASCII_FORMS]
ASCII = [chr(c) for c in range(128)]
# the characters the patterns treat differently: letters, digits, quotes, contraction letters,
# every kind of ASCII whitespace (and \x1c-\x1f, which re's \s has but Unicode's does not)
TRICKY = "aZ09 '\n\t\r\x0b\x0c\x1c\x1f.,!-sdmtlvreSDMTLVRE"


@pytest.fixture(params=FORMS)
def pair(request):
    pattern = PATTERNS[request.param]
    fast = ascii_findall(pattern)
    if fast is None:
        pytest.skip("this Python's re has no possessive quantifiers (3.10)")
    return regex.compile(pattern).findall, fast


def test_the_named_patterns_have_ascii_forms():
    assert {"gpt2", "gpt2-original", "gpt4"} <= set(FORMS)
    assert ascii_findall(r"\p{L}+|[\s\S]") is None  # a custom pattern has none


def test_every_pair_of_ascii_characters_splits_the_same(pair):
    unicode, fast = pair
    for a, b in itertools.product(ASCII, repeat=2):
        assert fast(a + b) == unicode(a + b), repr(a + b)


@given(text=st.text(alphabet=TRICKY, max_size=40))
def test_random_ascii_texts_split_the_same(text):
    for pattern in ASCII_FORMS:
        fast = ascii_findall(pattern)
        if fast is not None:
            assert fast(text) == regex.compile(pattern).findall(text)


def test_the_tokenizer_uses_the_regex_split_for_other_text():
    tok = BPETokenizer("gpt2")
    text = "naïve café: 3\u00a0000 €, x\u2028y  \n"
    assert tok._split(text) == regex.compile(GPT2_PATTERN).findall(text)
    ascii_text = "It's 2024!\r\n  done \x0b\x1c ok"
    assert tok._split(ascii_text) == regex.compile(GPT2_PATTERN).findall(ascii_text)
    assert tok.decode(tok.encode(text)) == text
