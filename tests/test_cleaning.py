"""Tests for text cleaning and UTF-8 file handling (minroots/tokenizers/cleaning.py)."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minroots.tokenizers.cleaning import (
    DEFAULT_STEPS,
    InvalidUTF8Error,
    clean,
    clean_file,
    collapse_whitespace,
    dedup_documents,
    dedup_lines,
    drop_short_lines,
    lowercase,
    normalize_newlines,
    normalize_unicode,
    read_text,
    remove_control,
    remove_zero_width,
    strip_html,
    write_text,
)


def test_default_pipeline_by_hand():
    assert clean("Cafe\u0301\u200b  au   lait\r\n") == "Café au lait\n"
    assert DEFAULT_STEPS[0] == "nfc"


def test_each_step_by_hand():
    assert normalize_unicode("e\u0301") == "é"
    assert normalize_unicode("ﬁ①Ａ", "NFKC") == "fi1A"
    assert normalize_unicode("ﬁ") == "ﬁ"  # NFC keeps compatibility characters
    assert normalize_newlines("a\r\nb\rc\n") == "a\nb\nc\n"
    assert remove_control("a\x00b\x1bc\x7f\td\n") == "abc\td\n"
    assert remove_zero_width("a\u200bb\ufeffc\u00add") == "abcd"
    family = "👨\u200d👩\u200d👧"
    assert remove_zero_width(family) == family
    assert remove_zero_width(family, keep_joiners=False) == "👨👩👧"
    assert collapse_whitespace("a \t b  \n\n\n\nc  \nd") == "a b\n\nc\nd"
    assert lowercase("ÄB") == "äb"
    assert strip_html("<p>Hi &amp; <b>bye</b></p>") == "Hi & bye"
    assert strip_html("a<script>var x = '<p>';</script>b<!-- c -->d") == "abd"
    assert strip_html("&lt;b&gt;") == "<b>"
    assert strip_html("one<br>two") == "one\ntwo"
    assert drop_short_lines("long enough line\nshort\n\n12\nanother long one", 10) == (
        "long enough line\n\nanother long one"
    )
    assert dedup_lines("header\na\nheader\n\n\nb\nheader") == "header\na\n\n\nb"
    assert dedup_documents(["x", "y", "x", "z", "y"]) == ["x", "y", "z"]


def test_clean_with_named_and_parametrized_steps():
    text = "<p>Page 1</p>\n<p>The Quick Brown Fox</p>"
    steps = ["strip_html", ("drop_short_lines", {"min_chars": 8}), "lowercase"]
    assert clean(text, steps) == "\n\nthe quick brown fox"  # blank lines are kept
    assert clean(text, [*steps, str.strip]) == "the quick brown fox"
    assert clean("AbC", steps=[str.swapcase]) == "aBc"
    assert clean("x", steps=[]) == "x"


@given(st.text())
def test_default_pipeline_properties(text):
    out = clean(text)
    assert clean(out) == out  # idempotent
    assert unicodedata.is_normalized("NFC", out)
    assert "\r" not in out and "\u200b" not in out
    assert not any(unicodedata.category(c) == "Cc" and c not in "\t\n" for c in out)
    assert "  " not in out and "\n\n\n" not in out


@given(st.text())
def test_visible_text_survives_default_pipeline(text):
    # Letters and digits are never removed, only recomposed by NFC.
    def alnum(s):
        return [c for c in unicodedata.normalize("NFC", s) if c.isalnum()]

    assert alnum(clean(text)) == alnum(text)


def test_file_round_trip(tmp_path):
    path = tmp_path / "t.txt"
    text = "héllo\r\n🙂 中文\n"
    write_text(path, text)
    assert path.read_bytes() == text.encode("utf-8")  # no newline translation
    assert read_text(path) == text
    out = tmp_path / "clean.txt"
    assert clean_file(path, out) == "héllo\n🙂 中文\n"
    assert read_text(out) == "héllo\n🙂 中文\n"


def test_invalid_utf8_is_reported_with_position_or_replaced(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\nab\xffcd\n\xc3")
    with pytest.raises(InvalidUTF8Error, match=r"b'\\xff' at byte offset 5 \(line 2, byte 3"):
        read_text(path)
    try:
        read_text(path)
    except InvalidUTF8Error as e:
        assert (e.position, e.line, e.column) == (5, 2, 3)
    assert read_text(path, errors="replace") == "ok\nab\ufffdcd\n\ufffd"
    with pytest.raises(ValueError, match="errors='replace'"):
        clean_file(path, tmp_path / "out.txt")


def test_bad_input(tmp_path):
    with pytest.raises(TypeError, match="text must be a str"):
        clean(b"bytes")
    with pytest.raises(ValueError, match="unknown step 'nope'"):
        clean("x", steps=["nope"])
    with pytest.raises(TypeError, match="each step"):
        clean("x", steps=[3])
    with pytest.raises(ValueError, match="form must be"):
        normalize_unicode("x", "NFX")
    with pytest.raises(ValueError, match="min_chars"):
        drop_short_lines("x", -1)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="errors must be"):
        read_text(tmp_path / "missing.txt", errors="ignore")
    with pytest.raises(ValueError, match="lone surrogate.*position 1"):
        write_text(tmp_path / "s.txt", "a\ud800b")
    with pytest.raises(TypeError, match=r"docs\[1\]"):
        dedup_documents(["a", 1])
