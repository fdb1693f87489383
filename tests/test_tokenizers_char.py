"""Tests for CharTokenizer and the shared save/load (minroots/tokenizers/char.py, base.py)."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minroots.tokenizers import CharTokenizer, load


def test_hand_checkable_example():
    tok = CharTokenizer.from_text("hello")
    assert tok.chars == ["e", "h", "l", "o"]
    assert tok.vocab_size == 4 == len(tok)
    assert tok.encode("hell") == [1, 0, 2, 2]
    assert tok.decode([2, 3]) == "lo"
    assert tok.token_to_id("o") == 3
    assert tok.id_to_token(1) == "h"
    assert tok.encode_batch(["he", "lo"]) == [[1, 0], [2, 3]]
    assert tok.decode_batch([[1, 0], [2, 3]]) == ["he", "lo"]


@given(st.text())
def test_round_trip_any_text(text):
    tok = CharTokenizer.from_text(text + "x")
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


def test_from_text_accepts_several_texts():
    tok = CharTokenizer.from_text(["ab", "ca"])
    assert tok.chars == ["a", "b", "c"]


def test_unknown_character_modes():
    strict = CharTokenizer("ab")
    with pytest.raises(ValueError, match=r"'z'.*position 1"):
        strict.encode("az")
    rep = CharTokenizer("ab", unk="replace")
    assert rep.vocab_size == 3
    assert rep.encode("azb") == [0, 2, 1]
    assert rep.decode(rep.encode("azb")) == "a\ufffdb"
    ign = CharTokenizer("ab", unk="ignore")
    assert ign.encode("azb") == [0, 1]


@pytest.mark.parametrize("unk", ["error", "replace"])
def test_save_load_round_trip(tmp_path, unk):
    tok = CharTokenizer.from_text('hé "llo"\n\t🙂', unk=unk)
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "char"
    for loaded in (load(path), CharTokenizer.load(path)):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.chars == tok.chars and loaded.unk == unk
        assert loaded.encode('"llo" 🙂') == tok.encode('"llo" 🙂')


def test_bad_input():
    tok = CharTokenizer("ab")
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(b"ab")
    with pytest.raises(TypeError, match="texts"):
        tok.encode_batch("ab")
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([2])
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="repeat"):
        CharTokenizer("aba")
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="unk must be"):
        CharTokenizer("ab", unk="skip")
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer("")
    with pytest.raises(KeyError, match="'z'"):
        tok.token_to_id("z")


def test_load_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json' is not valid JSON"):
        load(bad)
    bad.write_text('{"type": "nope"}', encoding="utf-8")
    with pytest.raises(
        ValueError, match="type must be one of 'added_tokens', 'bpe', 'char', got 'nope'"
    ):
        load(bad)
    bad.write_text('{"type": "char"}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid 'char' tokenizer: missing the field 'chars'"):
        load(bad)
