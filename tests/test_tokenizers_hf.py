"""Hugging Face tokenizer folders both ways: minroots' tokenizers written by ``save_pretrained`` give
identical ids in ``tokenizers`` and ``transformers.AutoTokenizer`` on a mixed English / Chinese /
emoji text, Hugging Face byte-level BPE files (GPT-2 style and Qwen style) read by
``minroots.tokenizers.from_pretrained`` give identical ids too, the character tokenizer is exported
exactly, and what cannot be represented is refused by name."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from strategies import unicode_text

from minroots.tokenizers import BPETokenizer, CharTokenizer, from_pretrained
from minroots.tokenizers.patterns import GPT4_PATTERN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Qwen 2's split regex, as its tokenizer.json writes it (Llama 3's has \p{N}{1,3} for \p{N})
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
                 r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")  # fmt: skip
MIXED = ("Hello, world! It's 2024: naïve café, 3.14159. 你好，世界！这是一个中文句子。"
         "Emoji: 🙂👨‍👩‍👧🎉 ok\n\n  tabs\tand   spaces\r\n<|endoftext|> the end")  # fmt: skip


def _corpus() -> str:
    with open(os.path.join(REPO, "data", "shakespeare.txt"), encoding="utf-8") as f:
        english = f.read()[:20000]
    return english + "你好世界，这是中文。数字 12345，表情 🙂👨‍👩‍👧🎉！" * 40


@pytest.fixture(scope="module")
def trained():
    """minroots BPE tokenizers trained on English + Chinese + emoji, one per split pattern."""
    text = _corpus()
    return {p: BPETokenizer(pattern=p).train(text, 400, special_tokens=["<|endoftext|>"],
                                             show_progress=False) for p in ("gpt2", "gpt4", "gpt4o")}  # fmt: skip


# ------------------------------------------------------------------ minroots -> Hugging Face
@pytest.mark.parity
@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "gpt4o"])
def test_saved_bpe_gives_identical_ids_in_tokenizers_and_transformers(trained, pattern, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = trained[pattern]
    tok.save_pretrained(tmp_path)
    ours = tok.encode(MIXED, allowed_special="all")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert hf.encode(MIXED).ids == ours
    assert auto(MIXED)["input_ids"] == ours
    assert auto.decode(ours) == MIXED == hf.decode(ours, skip_special_tokens=False)
    back = from_pretrained(tmp_path)  # and back: the same ids again
    assert back.encode(MIXED, allowed_special="all") == ours
    assert back.special_tokens == tok.special_tokens


@pytest.mark.parity
@given(text=unicode_text)
def test_saved_bpe_agrees_with_tokenizers_on_any_text(trained, tmp_path_factory, text):
    tokenizers = pytest.importorskip("tokenizers")
    folder = tmp_path_factory.mktemp("gpt4")
    trained["gpt4"].save_pretrained(folder)
    hf = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert hf.encode(text).ids == trained["gpt4"].encode(text, allowed_special="all")


@pytest.mark.parity
def test_char_tokenizer_is_exported_exactly(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    text = MIXED.replace("<|endoftext|>", "")
    tok = CharTokenizer.from_text(text)
    tok.save_pretrained(tmp_path / "strict")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "strict" / "tokenizer.json"))
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "strict")
    assert hf.encode(text).ids == auto(text)["input_ids"] == tok.encode(text)
    assert auto.decode(tok.encode(text)) == text == hf.decode(tok.encode(text))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("§")
    with pytest.raises(Exception, match="Missing"):  # unk="error" stays an error in tokenizers
        hf.encode("§")
    assert from_pretrained(tmp_path / "strict").chars == tok.chars
    lenient = CharTokenizer.from_text(text, unk="replace")
    lenient.save_pretrained(tmp_path / "replace")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "replace" / "tokenizer.json"))
    assert hf.encode("a§b").ids == lenient.encode("a§b")
    assert from_pretrained(tmp_path / "replace").unk == "replace"


# ------------------------------------------------------------------ Hugging Face -> minroots
@pytest.fixture(scope="module")
def hf_files(tmp_path_factory):
    """Byte-level BPE files trained by ``tokenizers``: GPT-2 style (ByteLevel's regex) and Qwen
    style (a Split by Qwen 2's regex, then ByteLevel), with special tokens."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("hf")
    specials = ["<|endoftext|>", "<|im_start|>"]
    gpt2 = tokenizers.ByteLevelBPETokenizer()
    gpt2.train_from_iterator([_corpus()], vocab_size=400, special_tokens=specials,
                             show_progress=False)  # fmt: skip
    gpt2.save(str(folder / "gpt2.json"))
    qwen = tokenizers.Tokenizer(models.BPE())
    qwen.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])  # fmt: skip
    qwen.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    qwen.train_from_iterator([_corpus()], trainer)
    qwen.save(str(folder / "qwen.json"))
    return folder


@pytest.mark.parity
@pytest.mark.parametrize("style", ["gpt2", "qwen"])
def test_hugging_face_bpe_files_give_identical_ids(hf_files, style):
    tokenizers = pytest.importorskip("tokenizers")
    path = hf_files / f"{style}.json"
    hf = tokenizers.Tokenizer.from_file(str(path))
    tok = from_pretrained(path)
    assert isinstance(tok, BPETokenizer)
    assert tok.encode(MIXED, allowed_special="all") == hf.encode(MIXED).ids
    assert tok.special_tokens == {"<|endoftext|>": 0, "<|im_start|>": 1}


@pytest.mark.parity
@given(text=unicode_text)
def test_qwen_style_file_agrees_on_any_text(hf_files, text):
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(hf_files / "qwen.json"))
    assert (
        from_pretrained(hf_files / "qwen.json").encode(text, allowed_special="all")
        == hf.encode(text).ids
    )


# ------------------------------------------------------------------ what cannot be represented
def _write(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_unrepresentable_tokenizers_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="unk='ignore' drops unknown characters"):
        CharTokenizer("ab", unk="ignore").save_pretrained(tmp_path)
    ranks = BPETokenizer.from_tiktoken_ranks({bytes([b]): b for b in range(256)}, GPT4_PATTERN)
    with pytest.raises(ValueError, match="built from tiktoken ranks and has no merge list"):
        ranks.save_pretrained(tmp_path)
    base = BPETokenizer().train("aaab abab " * 20, 260, show_progress=False)
    base.save_pretrained(tmp_path / "ok")
    data = json.loads((tmp_path / "ok" / "tokenizer.json").read_text(encoding="utf-8"))
    bad = {
        "normalizer": ({"type": "NFC"}, "a normalizer \\(NFC\\) is not supported"),
        "model": ({"type": "Unigram", "vocab": []}, "model.type 'Unigram' is not supported"),
        "pre_tokenizer": ({"type": "Whitespace"}, "expected a ByteLevel pre_tokenizer"),
    }
    for field, (value, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            from_pretrained(_write(tmp_path / f"{field}.json", {**data, field: value}))
    ignore = {**data, "model": {**data["model"], "ignore_merges": True}}
    with pytest.raises(ValueError, match="model.ignore_merges=True is not supported"):
        from_pretrained(_write(tmp_path / "ignore.json", ignore))
    possessive = {**data, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": GPT4_PATTERN}, "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}}  # fmt: skip
    with pytest.raises(ValueError, match="Hugging Face reads as a repetition"):
        from_pretrained(_write(tmp_path / "possessive.json", possessive))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        from_pretrained(tmp_path / "absent")
