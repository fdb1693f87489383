r"""Hugging Face tokenizer directories in both directions: :func:`from_pretrained` and
:func:`save_pretrained` (``tokenizer.json`` + ``tokenizer_config.json``).

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``), with chapter 6's tokenizers
(``book/06_tokenizers.md``); tests in ``tests/test_tokenizers_hf.py``.

A ``tokenizer.json`` describes a pipeline: a normalizer, a pre-tokenizer (how text is cut before
the model), the model (BPE, WordPiece, WordLevel, ...), a post-processor and a decoder, plus the
added tokens. minroots writes and reads two of them:

- :class:`~minroots.tokenizers.bpe.BPETokenizer` as byte-level BPE: the model ``BPE`` with the
  vocabulary and merges written in GPT-2's printable byte characters (:mod:`.interop`), the split
  pattern as a ``Split`` by its regex followed by ``ByteLevel`` (or ``ByteLevel``'s own regex for
  GPT-2's pattern; ``_oniguruma`` says how GPT-4's is written), the special tokens as added tokens (``special: true``, matched anywhere in a
  text, as ``encode(text, allowed_special="all")`` does), and the ``ByteLevel`` decoder. Reading
  accepts the same forms (GPT-2, RoBERTa-style byte-level BPE, Qwen 2/3 and Llama 3 files without
  a normalizer or ``ignore_merges``; :func:`.interop.read_hf_json`).
- :class:`~minroots.tokenizers.char.CharTokenizer` **exactly**, as a ``WordLevel`` model over its
  characters behind a ``Split`` that isolates every character, with the ``Fuse`` decoder (no
  spaces added between tokens). ``unk="replace"`` becomes the model's ``unk_token``;
  ``unk="error"`` stays an error in Hugging Face too (``WordLevel`` refuses an unknown character
  when its unknown token is not in the vocabulary). Only ``unk="ignore"``, which drops characters,
  has no equivalent; it is refused.

``tokenizer_config.json`` tells ``transformers.AutoTokenizer`` to load ``tokenizer.json`` as a fast
tokenizer, with no extra spaces cleaned on decoding. Nothing adds tokens on its own (no BOS or EOS
post-processor), so ``AutoTokenizer(text)["input_ids"]`` equals minroots' ids.
"""

from __future__ import annotations

import os

from minroots.persistence import read_json, write_json
from minroots.tokenizers.base import Tokenizer
from minroots.tokenizers.bpe import BPETokenizer
from minroots.tokenizers.char import CharTokenizer
from minroots.tokenizers.interop import POSSESSIVE_INTERVAL, bytes_to_token
from minroots.tokenizers.patterns import GPT2_ORIGINAL_PATTERN, GPT2_PATTERN
from minroots.validation import shown

__all__ = ["from_pretrained", "save_pretrained", "to_hf_json"]

TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
_ONE_CHARACTER = r"[\s\S]"  # the Split regex of a char tokenizer: every character alone


def _added(token: str, i: int) -> dict:
    return {"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}  # fmt: skip


def _bpe_json(tok: BPETokenizer) -> dict:
    if tok.merges is None:
        raise ValueError(
            "save_pretrained: this BPETokenizer was built from tiktoken ranks and has no merge "
            "list, which Hugging Face's BPE needs; train one with minroots or read a tokenizer.json"
        )
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    if tok.pattern in (GPT2_PATTERN, GPT2_ORIGINAL_PATTERN):  # ByteLevel's own regex is GPT-2's
        pre = {**byte_level, "use_regex": True}
    else:
        split = {"type": "Split", "pattern": {"Regex": _oniguruma(tok.pattern)},
                 "behavior": "Isolated", "invert": False}  # fmt: skip
        pre = {"type": "Sequence", "pretokenizers": [split, {**byte_level, "use_regex": False}]}
    vocab = {bytes_to_token(b): i for i, b in sorted(tok.vocab.items())}
    name = {i: bytes_to_token(b) for i, b in tok.vocab.items()}
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
             "ignore_merges": False, "vocab": vocab,
             "merges": [[name[a], name[b]] for a, b in tok.merges]}  # fmt: skip
    added = [_added(s, i) for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])]
    return {"normalizer": None, "pre_tokenizer": pre, "post_processor": None,
            "decoder": {**byte_level, "use_regex": True}, "model": model, "added_tokens": added}  # fmt: skip


def _oniguruma(pattern: str) -> str:
    r"""``pattern`` as Hugging Face's regex engine (Oniguruma) reads it the same.

    Oniguruma reads an interval followed by ``+`` (GPT-4's ``\p{N}{1,3}+``) as "one or more runs
    of one to three digits", where tiktoken and Python's ``regex`` read a possessive interval. At
    the end of an alternative, as in GPT-4's pattern, the greedy ``\p{N}{1,3}`` matches the same
    as the possessive one, so it is written that way; elsewhere they may differ, and a pattern
    with another possessive interval is refused.
    """
    pattern = pattern.replace(r"\p{N}{1,3}+|", r"\p{N}{1,3}|")
    if POSSESSIVE_INTERVAL.search(pattern):
        raise ValueError(f"save_pretrained: the split pattern {pattern!r} has a possessive "
                         "interval ({n,m}+), which Hugging Face's regex engine reads as a "
                         "repetition; write it without the '+'")  # fmt: skip
    return pattern


def _char_json(tok: CharTokenizer) -> dict:
    if tok.unk == "ignore":
        raise ValueError(
            "save_pretrained: a CharTokenizer with unk='ignore' drops unknown characters, which "
            "no Hugging Face tokenizer does; build it with unk='error' or unk='replace'"
        )
    unk = tok.unk_token if tok.unk == "replace" else "<unk>"  # absent: an error, as in minroots
    split = {"type": "Split", "pattern": {"Regex": _ONE_CHARACTER}, "behavior": "Isolated",
             "invert": False}  # fmt: skip
    model = {
        "type": "WordLevel",
        "vocab": {c: i for i, c in enumerate(tok.chars)},
        "unk_token": unk,
    }
    return {"normalizer": None, "pre_tokenizer": split, "post_processor": None,
            "decoder": {"type": "Fuse"}, "model": model, "added_tokens": []}  # fmt: skip


def to_hf_json(tokenizer: Tokenizer) -> dict:
    """The ``tokenizer.json`` of a :class:`BPETokenizer` or :class:`CharTokenizer` (see above)."""
    if isinstance(tokenizer, BPETokenizer):
        body = _bpe_json(tokenizer)
    elif isinstance(tokenizer, CharTokenizer):
        body = _char_json(tokenizer)
    else:
        raise TypeError(f"save_pretrained: cannot write a {type(tokenizer).__name__} as a Hugging "
                        "Face tokenizer (BPETokenizer and CharTokenizer can be)")  # fmt: skip
    return {"version": "1.0", "truncation": None, "padding": None, **body}


def save_pretrained(tokenizer: Tokenizer, path, model_max_length: int | None = None,
                    eos_token: str | None = None) -> None:  # fmt: skip
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` into the folder ``path``, for
    ``tokenizers.Tokenizer.from_file`` and ``transformers.AutoTokenizer.from_pretrained``."""
    folder = os.fspath(path)
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, TOKENIZER), to_hf_json(tokenizer), indent=None)
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    if model_max_length is not None:
        config["model_max_length"] = int(model_max_length)
    if eos_token is not None:
        config["eos_token"] = eos_token
    write_json(os.path.join(folder, TOKENIZER_CONFIG), config, indent=2)


def from_pretrained(path) -> Tokenizer:
    """A minroots tokenizer from a Hugging Face ``tokenizer.json`` (a folder holding one, or the
    file): byte-level BPE becomes a :class:`BPETokenizer`, a one-character ``WordLevel`` written by
    :func:`save_pretrained` a :class:`CharTokenizer`; anything else raises naming the field."""
    file = os.fspath(path)
    if os.path.isdir(file):
        file = os.path.join(file, TOKENIZER)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"from_pretrained: {file!r} not found (a folder with "
                                f"{TOKENIZER}, or the file itself; nothing is downloaded)")  # fmt: skip
    data = read_json(file, "from_pretrained")  # damaged, deep or not UTF-8: a one-line error
    kind = (data.get("model") or {}).get("type") if isinstance(data, dict) else None
    if kind == "BPE":
        return BPETokenizer.from_hf_json(file)
    if kind == "WordLevel":
        return _char_from_json(data, file)
    raise ValueError(f"{file}: model.type {kind!r} is not supported (minroots reads byte-level "
                     "'BPE' and the character-level 'WordLevel' it writes)")  # fmt: skip


def _char_from_json(data: dict, file: str) -> CharTokenizer:
    pre = data.get("pre_tokenizer") or {}
    if (pre.get("type") != "Split" or (pre.get("pattern") or {}).get("Regex") != _ONE_CHARACTER
            or pre.get("behavior") != "Isolated"):  # fmt: skip
        raise ValueError(f"{file}: a WordLevel model is read only as a character tokenizer, with "
                         f"a Split by {_ONE_CHARACTER!r} as its pre_tokenizer")  # fmt: skip
    vocab, unk = data["model"].get("vocab") or {}, data["model"].get("unk_token")
    chars = sorted(vocab, key=vocab.get)
    if [vocab[c] for c in chars] != list(range(len(chars))) or any(len(c) != 1 for c in chars):
        raise ValueError(f"{file}: the vocabulary must map single characters to ids 0, 1, 2, "
                         f"..., got {shown(dict(sorted(vocab.items(), key=lambda kv: kv[1])))}")  # fmt: skip
    if unk in vocab:
        return CharTokenizer(chars, unk="replace", unk_token=unk)
    return CharTokenizer(chars)
