"""The token-id cache's first pass: text encoded in pieces and streamed into the ``.npy`` file.

Source: ``minroots/data/cache.py`` (book chapter 6). The pieces must give exactly the ids of the
whole text: checked with hypothesis over texts and cut sizes, for the character tokenizer (cut
anywhere) and for BPE with each named split pattern (cut after a safe newline), with the edge
cases of newlines next to spaces, ``"\\r"``, ``"/"``, punctuation and marks. Other cache
behaviour (keys, hits, memory-mapping) is tested in ``tests/test_data_text_dataset.py``.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minroots.data import cache as C
from minroots.data import cached_encode
from minroots.tokenizers import BPETokenizer, CharTokenizer
from minroots.tokenizers.patterns import split

# Characters around which the split patterns behave differently: newline and carriage return,
# spaces and tabs, "/" (gpt4o's symbol runs take it after newlines), "'" (contractions),
# punctuation, digits, upper/lower case, a combining mark, a non-ASCII letter, and U+001C (a
# space for Python's str.isspace but not for the regex \s).
ALPHABET = ["\n", "\n", "\n", "\r", " ", " ", "\t", "/", "'", "!", ".", "1", "2", "a", "b", "s",
            "A", "B", "\u0301", "é", "\x1c"]  # fmt: skip
NAMED = ["gpt2", "gpt2-original", "gpt4", "gpt4o"]

# ... and fragments where a cut would be wrong, so that hypothesis meets them often
FRAGMENTS = ["!\n/", ".\n'", " \n", "\r\n", "a\n\u0301", "\n\n"]
texts = st.lists(st.sampled_from(ALPHABET + FRAGMENTS), max_size=40).map("".join)


def _random_text(n: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(ALPHABET) for _ in range(n))


def _training_text() -> str:
    return _random_text(4000, 0) + " ab\nab/\n!\n\n 's\n"


@pytest.fixture(scope="module")
def bpe_tokenizers():
    """A small BPE vocabulary per named pattern, trained on the test alphabet (so that merges of
    newlines, spaces and punctuation exist and a wrong cut changes the ids)."""
    text = _training_text()
    return {
        name: BPETokenizer(pattern=name).train(text, 420, min_frequency=1, show_progress=False)
        for name in NAMED
    }


def _pieces_ids(text, tok, size):
    parts = list(C._encoded_pieces(text, tok, size))
    return np.concatenate(parts).tolist() if parts else []


def _check_bounds(text, bounds):
    """The pieces are non-empty (except for an empty text), in order, and cover the text."""
    assert bounds[0][0] == 0 and bounds[-1][1] == len(text)
    for (_, stop), (start, _) in zip(bounds, bounds[1:], strict=False):
        assert stop == start
    assert all(a < b for a, b in bounds) or text == ""


def test_hand_example_char_pieces():
    tok = CharTokenizer.from_text("abcdefg")
    assert list(C._piece_bounds("abcdefg", tok, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert _pieces_ids("abcdefg", tok, 3) == tok.encode("abcdefg")


def test_hand_example_bpe_cuts_only_after_a_safe_newline(bpe_tokenizers):
    tok = bpe_tokenizers["gpt2"]
    text = "ab\ncd \nef\n/g\n\nh\ni"
    # a cut after "\n" needs a non-space before it and a non-space other than "/" after it:
    # not after "cd \n" (space before), "ef\n" ("/" after) or the first "\n" of "\n\n"
    assert list(C._piece_bounds(text, tok, 1)) == [(0, 3), (3, 16), (16, 17)]
    # why "/": gpt4o's symbol runs take the newlines and slashes that follow them
    assert split("a!\n/b", "gpt4o") == ["a", "!\n/", "b"]
    assert list(C._piece_bounds("a!\n/b", bpe_tokenizers["gpt4o"], 1)) == [(0, 5)]


@given(text=texts, size=st.integers(1, 12))
def test_char_pieces_equal_the_whole_text(text, size):
    tok = CharTokenizer.from_text(text + "x")
    bounds = list(C._piece_bounds(text, tok, size))
    _check_bounds(text, bounds)
    assert all(b - a <= size for a, b in bounds)
    assert _pieces_ids(text, tok, size) == tok.encode(text)


@pytest.mark.parametrize("name", NAMED)
@settings(max_examples=150)  # cheap examples; more of them reach the rarer newline neighbours
@given(text=texts, size=st.integers(1, 12))
def test_bpe_pieces_equal_the_whole_text(bpe_tokenizers, name, text, size):
    tok = bpe_tokenizers[name]
    bounds = list(C._piece_bounds(text, tok, size))
    _check_bounds(text, bounds)
    # each cut is a pre-token boundary of the whole text, and the two sides split as before
    for _start, stop in bounds:
        if stop < len(text):
            assert split(text, name) == split(text[:stop], name) + split(text[stop:], name)
    assert _pieces_ids(text, tok, size) == tok.encode(text)


@pytest.mark.parametrize("name", NAMED)
def test_bpe_pieces_are_actually_cut(bpe_tokenizers, name):
    text = _random_text(3000, 1)
    bounds = list(C._piece_bounds(text, bpe_tokenizers[name], 50))
    assert len(bounds) > 10
    assert _pieces_ids(text, bpe_tokenizers[name], 50) == bpe_tokenizers[name].encode(text)


def test_unsafe_tokenizers_get_one_piece(bpe_tokenizers):
    text = "ab\ncd\nef\n" * 20
    basic = BPETokenizer(pattern="basic").train(text, 262, min_frequency=1, show_progress=False)
    custom = BPETokenizer(pattern=r"\S+|\s+").train(text, 259, min_frequency=1, show_progress=False)
    newline_special = BPETokenizer(pattern="gpt2", special_tokens=["<|x\n|>"])
    for tok in (basic, custom, newline_special):
        assert list(C._piece_bounds(text, tok, 4)) == [(0, len(text))]
    assert len(list(C._piece_bounds(text, bpe_tokenizers["gpt2"], 4))) > 1


@given(st.lists(st.lists(st.integers(0, 65535), max_size=20), max_size=5))
def test_streamed_file_is_what_np_save_writes(tmp_path_factory, parts):
    path = tmp_path_factory.mktemp("npy") / "ids.npy"
    pieces = [np.asarray(p, dtype=np.uint16) for p in parts]
    C._atomic_save(path, iter(pieces), np.dtype(np.uint16))
    joined = np.concatenate(pieces) if pieces else np.zeros(0, np.uint16)
    expected = io.BytesIO()
    np.save(expected, joined)
    assert path.read_bytes() == expected.getvalue()
    assert [p.name for p in path.parent.iterdir()] == ["ids.npy"]  # no temp file left


def test_cached_encode_in_many_pieces(bpe_tokenizers, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "PIECE_CHARS", 64)
    text = _random_text(2000, 2)
    for tok in (CharTokenizer.from_text(text), bpe_tokenizers["gpt4"]):
        assert len(list(C._piece_bounds(text, tok, C.PIECE_CHARS))) > 5
        ids = cached_encode(text, tok, cache_dir=tmp_path)
        assert ids.dtype == C.ids_dtype(tok.vocab_size)
        assert ids.tolist() == tok.encode(text)
        assert cached_encode(text, tok, cache_dir=tmp_path).tolist() == ids.tolist()  # a hit
        uncached = cached_encode(text, tok, use_cache=False)
        assert uncached.dtype == ids.dtype and uncached.tolist() == ids.tolist()


def test_bad_ids_in_a_later_piece_leave_no_file(tmp_path, monkeypatch):
    class Liar(CharTokenizer):
        def encode(self, text):
            return [99 if c == "z" else i for c, i in zip(text, super().encode(text), strict=True)]

    monkeypatch.setattr(C, "PIECE_CHARS", 4)
    tok = Liar.from_text("abcz")
    with pytest.raises(ValueError, match="outside"):
        cached_encode("abcabcabcz", tok, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
