"""Tests for the byte-level BPE tokenizer and split patterns (minroots/tokenizers/bpe.py,
patterns.py). Comparisons with tiktoken / Hugging Face are in test_tokenizers_parity.py."""

import json
import os
import pydoc_data
import warnings
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import TRICKY_TEXT, unicode_text

from minroots.tokenizers import BPETokenizer, load, split, train_tokenizer_file
from minroots.tokenizers.bpe import count_pairs, merge_pair, reference_train


def _docs_text() -> str:
    """About 750 KB of English reference documentation that ships with Python itself."""
    path = Path(pydoc_data.__file__).with_name("topics.py")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trained():
    """A gpt2-pattern tokenizer with 600 tokens trained on 60 KB of documentation."""
    tok = BPETokenizer(pattern="gpt2")
    tok.train(_docs_text()[:60_000], 600, special_tokens=["<|endoftext|>"], show_progress=False)
    return tok


# --- the building blocks, by hand ---------------------------------------------------------------
@pytest.mark.task6_1
def test_count_pairs_and_merge_pair_by_hand():
    assert count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge_pair([5, 5, 5], (5, 5), 6) == [6, 5]


@pytest.mark.task6_1
def test_count_pairs_adds_weights_into_existing_counts():
    counts = count_pairs([1, 2, 1, 2], weight=3)
    assert counts == {(1, 2): 6, (2, 1): 3}
    assert count_pairs([2, 1, 7], counts) is counts  # adds into the dict it was given
    assert counts == {(1, 2): 6, (2, 1): 4, (1, 7): 1}
    assert count_pairs([5]) == {} and count_pairs([]) == {}


@pytest.mark.task6_1
@given(st.lists(st.integers(0, 3), max_size=40), st.integers(0, 3), st.integers(0, 3))
def test_merge_pair_undoes_by_expanding_and_never_overlaps(ids, a, b):
    out = merge_pair(ids, (a, b), 99)
    expanded = [t for x in out for t in ((a, b) if x == 99 else (x,))]
    assert expanded == ids  # merging loses nothing
    assert len(out) == len(ids) - out.count(99)
    assert (a, b) not in count_pairs(out) or a == b  # every occurrence was merged (aaa -> Za)


@pytest.mark.task6_2
def test_training_hand_checkable_example():
    tok = BPETokenizer(pattern="basic")
    tok.train("aaabdaaabac", 259, min_frequency=1, show_progress=False)
    # The Wikipedia example: (a, a) -> Z=256; (a, b) -> Y=257 (count 2, ties with (Z, a) -> the
    # smaller pair (97, 98) wins over (256, 97)); then (Z, Y) -> X=258.
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.vocab[258] == b"aaab"
    assert tok.decode([258, 100]) == "aaabd"


@pytest.mark.task6_3
def test_encode_applies_merges_by_rank_not_left_to_right():
    # merges: (l, l) first, then (h, e), then (e, l): "hell" -> [h,e,ll] -> [he, ll]; a greedy
    # left-to-right merger would have used (e, l) on "ell" before (l, l).
    vocab = {i: bytes([i]) for i in range(256)}
    vocab |= {256: b"ll", 257: b"he", 258: b"el"}
    tok = BPETokenizer.__new__(BPETokenizer)
    tok._setup("basic", vocab, [(108, 108), (104, 101), (101, 108)], {})
    assert tok.encode("hell") == [257, 256]
    assert tok.encode("ell") == [101, 256]


@pytest.mark.task6_3
def test_a_pre_token_equal_to_a_token_is_merged_when_the_merges_say_otherwise():
    # merges (b, c), (a, b), (ab, c): "abc" has the token 258 = abc, but the merges give
    # [a, bc] ((b, c) ranks first, and no merge joins a with bc). tiktoken's lookup (a pre-token
    # in the vocabulary is that token) would give [258]: with a merges list there is no lookup.
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"bc", 257: b"ab", 258: b"abc"}
    tok = BPETokenizer.__new__(BPETokenizer)
    tok._setup("basic", vocab, [(98, 99), (97, 98), (257, 99)], {})
    assert tok.encode("abc") == [97, 256]
    assert tok.encode("ab") == [257]


def test_untrained_tokenizer_is_plain_utf8_bytes():
    tok = BPETokenizer()
    assert tok.vocab_size == 256
    assert tok.encode("hé🙂") == list("hé🙂".encode())
    assert tok.pieces("hé") == [(104, b"h"), (195, b"\xc3"), (169, b"\xa9")]


# --- round trips --------------------------------------------------------------------------------
@pytest.mark.task6_3
@given(unicode_text)
def test_round_trip_trained(trained, text):
    ids = trained.encode(text, disallowed_special=())
    assert trained.decode(ids) == text
    assert all(0 <= i < trained.vocab_size for i in ids)
    ids = trained.encode(text, allowed_special="all")
    assert trained.decode(ids) == text
    assert all(0 <= i < trained.vocab_size for i in ids)


@pytest.mark.task6_3
@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "gpt4o", "basic", r"\p{L}+|\p{N}"])
@settings(max_examples=15)
@given(text=unicode_text)
def test_round_trip_every_pattern(pattern, text):
    tok = _small_tokenizer(pattern)
    assert tok.decode(tok.encode(text, disallowed_special=())) == text


_SMALL = {}


def _small_tokenizer(pattern):
    if pattern not in _SMALL:
        tok = BPETokenizer(pattern=pattern)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok.train(_docs_text()[:8000] + "".join(TRICKY_TEXT) * 3, 400, show_progress=False)
        _SMALL[pattern] = tok
    return _SMALL[pattern]


@settings(max_examples=50)
@given(st.binary(max_size=30).map(lambda b: list(b)))
def test_decode_any_ids_replaces_invalid_utf8(trained, ids):
    raw = b"".join(trained.id_to_token(i) for i in ids)
    assert trained.decode(ids) == raw.decode("utf-8", errors="replace")


@pytest.mark.task6_3
@settings(max_examples=30)
@given(st.text(alphabet="hel wordHLW!\n", max_size=400))
def test_both_merge_loops_match_the_textbook_loop(text):
    tok = _small_tokenizer("basic")
    ids = list(text.encode())
    assert tok._merge_long(list(ids)) == _simple_merge(tok, ids)  # heap, for long chunks
    short = text[:150]
    assert tok._encode_chunk(short) == _simple_merge(tok, list(short.encode()))


def _simple_merge(tok, ids):
    """Textbook encoding: apply the lowest-rank pair, leftmost first, until none is left."""
    ids = list(ids)
    while True:
        cands = [(tok._pair_rank[p], i) for i, p in enumerate(zip(ids, ids[1:], strict=False))
                 if p in tok._pair_rank]  # fmt: skip
        if not cands:
            return ids
        _, i = min(cands)
        ids[i : i + 2] = [tok._pair_new[(ids[i], ids[i + 1])]]


# --- training properties ------------------------------------------------------------------------
@pytest.mark.task6_2
@settings(max_examples=40)
@given(st.text(alphabet="ab c\nd", max_size=300), st.integers(1, 40))
def test_fast_training_equals_slow_reference(text, num_merges):
    tok = BPETokenizer(pattern="gpt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok.train(text, 256 + num_merges, min_frequency=1, show_progress=False)
    expected = reference_train(Counter(split(text, "gpt2")), num_merges)
    assert tok.merges == expected
    assert tok.vocab_size == 256 + len(expected)


@pytest.mark.task6_2
def test_each_merge_was_the_most_frequent_pair(trained):
    words = Counter(split(_docs_text()[:60_000].replace("<|endoftext|>", ""), "gpt2"))
    seqs = {w: list(w.encode()) for w in words}
    for k, pair in enumerate(trained.merges):
        counts = {}
        for w, f in words.items():
            count_pairs(seqs[w], counts, f)
        best = max(counts.values())
        assert counts[pair] == best == trained.merge_counts[k], f"merge {k}"
        assert pair == min(p for p, c in counts.items() if c == best), f"tie rule at merge {k}"
        if k >= 60:  # the full check is quadratic; 60 merges show the invariant
            break
        seqs = {w: merge_pair(s, pair, 256 + k) for w, s in seqs.items()}


@pytest.mark.task6_2
def test_vocab_size_is_exactly_as_asked(trained):
    assert trained.vocab_size == 600
    assert len(trained.merges) == 600 - 256 - 1
    assert trained.special_tokens == {"<|endoftext|>": 599}
    assert max(trained.vocab) == 598


def test_runs_out_of_pairs_with_a_warning():
    tok = BPETokenizer(pattern="gpt2")
    with pytest.warns(UserWarning, match=r"stopped after 2 of 44 merges.*vocab_size is 258"):
        tok.train("ab ab ab", 300, show_progress=False)
    assert tok.vocab_size == 258
    assert tok.encode("ab ab") == [256, 257]


def test_min_frequency_stops_early():
    with pytest.warns(UserWarning, match="min_frequency=3"):
        tok = BPETokenizer().train("xy xy zw", 300, min_frequency=3, show_progress=False)
    assert tok.merges == []


def test_special_tokens_are_cut_out_of_training_text():
    tok = BPETokenizer(pattern="basic")
    text = "ab<|endoftext|>ab<|endoftext|>ab"
    tok.train(text, 258, special_tokens=["<|endoftext|>"], show_progress=False)
    assert tok.merges == [(97, 98)]  # 'ab' only: no merge touches the special token's text
    assert tok.encode(text, allowed_special="all") == [256, 257, 256, 257, 256]


def test_train_from_files_and_iterables(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("hello hello hello", encoding="utf-8")
    a = BPETokenizer().train([f, "hello"], 260, show_progress=False)
    b = BPETokenizer().train("hello hello hello" + " " + "hello", 260, show_progress=False)
    c = BPETokenizer().train(["hello hello hello", "hello"], 260, show_progress=False)
    assert a.merges == c.merges
    assert a.merges[:2] == b.merges[:2]


def test_train_tokenizer_file(tmp_path):
    src = tmp_path / "corpus.txt"
    src.write_text(_docs_text()[:20_000], encoding="utf-8")
    out = tmp_path / "tok.json"
    tok = train_tokenizer_file(str(src), 400, out, show_progress=False)
    loaded = load(out)
    assert loaded.vocab_size == 400 == tok.vocab_size
    assert loaded.special_tokens == {"<|endoftext|>": 399}
    sample = _docs_text()[30_000:31_000]
    assert loaded.encode(sample) == tok.encode(sample)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        train_tokenizer_file(tmp_path / "nope.txt", 300, out)


# --- special tokens -----------------------------------------------------------------------------
def test_special_tokens_like_tiktoken():
    tok = BPETokenizer(special_tokens=["<|endoftext|>", "<|pad|>"])
    assert tok.special_tokens == {"<|endoftext|>": 256, "<|pad|>": 257}
    text = "hi<|endoftext|>yo"
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>' at position 2"):
        tok.encode(text)
    assert tok.encode(text, allowed_special="all") == [104, 105, 256, 121, 111]
    assert tok.encode(text, allowed_special={"<|endoftext|>"}) == [104, 105, 256, 121, 111]
    as_text = tok.encode(text, disallowed_special=())
    assert as_text == list(text.encode()) == tok.encode_ordinary(text)
    # allowed one, the other still disallowed by default
    with pytest.raises(ValueError, match="pad"):
        tok.encode("<|pad|><|endoftext|>", allowed_special={"<|endoftext|>"})
    assert tok.decode([256, 257]) == "<|endoftext|><|pad|>"
    assert tok.token_to_id("<|pad|>") == 257
    with pytest.raises(
        ValueError, match="allowed_special must hold special tokens of this tokenizer"
    ):
        tok.encode("x", allowed_special={"<|nope|>"})


def test_token_to_id_and_id_to_token_are_inverses(trained):
    for i in range(trained.vocab_size):  # learned tokens and the special one
        assert trained.token_to_id(trained.id_to_token(i)) == i
    assert trained.id_to_token(600 - 1) == b"<|endoftext|>"
    assert trained.token_to_id(b"<|endoftext|>") == trained.token_to_id("<|endoftext|>") == 599
    with pytest.raises(KeyError, match="not in the vocabulary"):
        trained.token_to_id(b"<|endoftext|")


def test_surrogates_are_joined_or_replaced_before_encoding(trained):
    assert trained.encode("\ud83d\udc4d") == trained.encode("👍")  # a pair: its character
    assert trained.encode("a\ud83d b") == trained.encode("a\ufffd b")  # a lone half: U+FFFD
    assert trained.encode_ordinary("\udc4d\ud83d") == trained.encode_ordinary("\ufffd\ufffd")
    assert trained.decode(trained.encode("\ud83d\udc4d")) == "👍"


def test_batches_take_the_special_token_options(trained):
    texts = ["a<|endoftext|>b", "c"]
    assert trained.encode_batch(texts, allowed_special="all") == [
        trained.encode(t, allowed_special="all") for t in texts
    ]
    assert trained.encode_ordinary_batch(texts) == [trained.encode_ordinary(t) for t in texts]
    as_text = trained.encode_batch(texts, disallowed_special=())
    assert as_text == trained.encode_ordinary_batch(texts)
    with pytest.raises(ValueError, match="special token"):
        trained.encode_batch(texts)
    for method in (trained.encode_batch, trained.encode_ordinary_batch):
        with pytest.raises(TypeError, match="single str"):
            method("abc")


def test_special_token_collisions_raise():
    with pytest.raises(ValueError, match="collides with learned token 97"):
        BPETokenizer(special_tokens=["a"])
    ranks = {bytes([i]): i for i in range(256)} | {b"ab": 256}
    with pytest.raises(ValueError, match="'ab' collides with learned token 256"):
        BPETokenizer.from_tiktoken_ranks(ranks, "gpt2", {"ab": 300})
    with pytest.raises(ValueError, match="has id 256, which is already the token"):
        BPETokenizer.from_tiktoken_ranks(ranks, "gpt2", {"<|x|>": 256})


# --- saving, showing, bad input -----------------------------------------------------------------
def test_save_load_round_trip(tmp_path, trained):
    path = tmp_path / "bpe.json"
    trained.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "bpe" and data["pattern_name"] == "gpt2"
    assert data["vocab"][32] == "Ġ"  # GPT-2's printable name for the space byte
    for tok in (load(path), BPETokenizer.load(path)):
        assert tok.merges == trained.merges
        assert tok.special_tokens == trained.special_tokens
        sample = "Hello <|endoftext|> wörld 🙂\n"
        assert tok.encode(sample, allowed_special="all") == trained.encode(
            sample, allowed_special="all"
        )


def test_show_lists_tokens_with_bytes(trained):
    table = trained.show("The cat")
    lines = table.splitlines()
    assert lines[0].split() == ["id", "token", "text"]
    assert len(lines) == 1 + len(trained.encode("The cat"))
    assert "'The'" in table and "Ġ" in table
    assert b"".join(b for _, b in trained.pieces("The cat")) == b"The cat"


def test_split_patterns_by_hand():
    text = "Hello world, it's 2024!"
    assert split(text, "gpt2") == ["Hello", " world", ",", " it", "'s", " 2024", "!"]
    assert split(text, "gpt4") == ["Hello", " world", ",", " it", "'s", " ", "202", "4", "!"]
    assert split(text, "basic") == [text]


@given(unicode_text)
def test_gpt2_pattern_forms_agree_and_cover_the_text(text):
    a = split(text, "gpt2")
    assert a == split(text, "gpt2-original")
    for name in ("gpt2", "gpt4", "gpt4o", "basic"):
        assert "".join(split(text, name)) == text


def test_bad_input(tmp_path, trained):
    with pytest.raises(TypeError, match="text must be a str"):
        trained.encode(b"bytes")
    with pytest.raises(TypeError, match="text must be a str"):
        trained.encode(None)
    with pytest.raises(ValueError, match="vocab_size must be >= 256"):
        BPETokenizer().train("abc", 200, show_progress=False)
    with pytest.raises(ValueError, match=r"vocab_size must be >= 256.*2 special"):
        BPETokenizer().train("abc", 257, special_tokens=["<a>", "<b>"], show_progress=False)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        BPETokenizer().train("abc", 300.0, show_progress=False)
    with pytest.raises(TypeError, match=r"texts_or_files\[1\]"):
        BPETokenizer().train(["abc", 3], 300, show_progress=False)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        BPETokenizer().train(tmp_path / "missing.txt", 300, show_progress=False)
    with pytest.raises(ValueError, match="pattern must be a valid regex"):
        BPETokenizer(pattern="(unclosed")
    with pytest.raises(ValueError, match="capturing groups"):
        BPETokenizer(pattern=r"(\w+)|\s")
    with pytest.raises(TypeError, match="pattern must be a str"):
        BPETokenizer(pattern=None)
    with pytest.raises(ValueError, match="ids must be ints"):
        trained.decode([trained.vocab_size])
    with pytest.raises(ValueError, match="ids must be ints"):
        trained.decode([-1])
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "bpe", "pattern": "gpt2", "vocab": ["a"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="256 single bytes"):
        load(bad)
    bad.write_text('{"type": "bpe"', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json. is not valid JSON"):
        load(bad)
    with pytest.raises(FileNotFoundError):
        BPETokenizer.from_hf_json(tmp_path / "none.json")
    with pytest.raises(FileNotFoundError):
        BPETokenizer.from_gpt2_files(tmp_path / "e.json", tmp_path / "v.bpe")


def test_invalid_utf8_training_file_is_reported(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_bytes(b"good line\nbad \xff byte")
    with pytest.raises(ValueError, match=r"offset 14 \(line 2"):
        BPETokenizer().train(f, 300, show_progress=False)
    assert os.path.exists(f)
