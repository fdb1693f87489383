"""Reading and writing other libraries' byte-level BPE files: OpenAI GPT-2, Hugging Face, tiktoken.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

Byte-level BPE vocabularies are stored as *text*, so the 256 byte values need printable names.
GPT-2 chose a fixed byte -> character table (:func:`bytes_to_unicode`): printable Latin-1
bytes stand for themselves and the others (space, newline, control bytes, ...) are shifted to
U+0100 and above. A space becomes ``"Ġ"`` and a newline ``"Ċ"``, so the GPT-2 token for
``" the"`` is written ``"Ġthe"``::

    bytes_to_unicode()[ord(" ")]      # -> 'Ġ'
    token_to_bytes("Ġthe")           # -> b' the'

This module turns other libraries' data into plain Python data (``vocab: dict[int, bytes]``,
merges as id pairs, special tokens, the split pattern) and checks what they require; the
constructors :meth:`BPETokenizer.from_gpt2_files <minroots.tokenizers.bpe.BPETokenizer.from_gpt2_files>`,
``from_hf_json`` and ``from_tiktoken_ranks`` build a tokenizer from what it returns, and
``to_tiktoken_ranks`` gives tiktoken its data back. Tests in ``tests/test_tokenizers_parity.py``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from itertools import pairwise

from minroots.persistence import read_json
from minroots.tokenizers.patterns import GPT2_ORIGINAL_PATTERN

__all__ = [
    "bytes_to_unicode",
    "token_to_bytes",
    "bytes_to_token",
    "read_gpt2_files",
    "read_hf_json",
    "read_tiktoken_ranks",
    "check_tiktoken_order",
    "POSSESSIVE_INTERVAL",
]

# An interval followed by "+": possessive for tiktoken and Python's regex, a repetition of the
# interval for Hugging Face's Oniguruma, so a tokenizer.json holding one splits differently.
POSSESSIVE_INTERVAL = re.compile(r"(?<!\\)\{\d+(?:,\d*)?\}\+")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte value 0..255 to one printable character.

    Bytes that are printable Latin-1 (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) map to themselves;
    the remaining 68 bytes map, in increasing order, to U+0100, U+0101, ... So byte 0 -> 'Ā'
    (U+0100), byte 32 (space) -> 'Ġ' (U+0120), byte 10 (newline) -> 'Ċ' (U+010A).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in keep}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return dict(sorted(table.items()))


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def bytes_to_token(data: bytes) -> str:
    """Write bytes in GPT-2's printable form: ``b' the'`` -> ``'Ġthe'``."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in data)


def token_to_bytes(token: str) -> bytes:
    """Inverse of :func:`bytes_to_token`; raises ``ValueError`` on a character outside the table."""
    table = _unicode_to_bytes()
    try:
        return bytes(table[c] for c in token)
    except KeyError as e:
        raise ValueError(
            f"token_to_bytes: token {token!r} has character {e.args[0]!r}, which is not a byte-level "
            "character"
        ) from None


def _read_json(path, what: str):
    path = os.fspath(path)
    if not os.path.isfile(path) and not os.path.isdir(path):
        raise FileNotFoundError(f"{what}: no such file {path!r}")
    return read_json(path, what)


def _parse_merges(lines, vocab_ids: dict[str, int], what: str) -> list[tuple[int, int]]:
    """Merges written as ``"Ġ t"`` strings (or ``["Ġ", "t"]`` lists) -> pairs of token ids."""
    merges = []
    for k, line in enumerate(lines):
        parts = line.split(" ") if isinstance(line, str) else line
        if len(parts) != 2:
            raise ValueError(f"{what}: merge {k} {line!r} is not two tokens separated by a space")
        try:
            merges.append((vocab_ids[parts[0]], vocab_ids[parts[1]]))
        except KeyError as e:
            raise ValueError(
                f"{what}: merge {k} {line!r} uses unknown token {e.args[0]!r}"
            ) from None
    return merges


def read_gpt2_files(encoder_json, vocab_bpe, special_tokens=("<|endoftext|>",)):
    """Parse OpenAI's GPT-2 ``encoder.json`` (token -> id) and ``vocab.bpe`` (merges, in rank order).

    Returns ``(vocab, merges, specials, pattern)`` with ``vocab: dict[int, bytes]`` (without the
    special tokens), ``merges: list[tuple[int, int]]`` and ``specials: dict[str, int]``.
    """
    encoder = _read_json(encoder_json, "read_gpt2_files")
    if not isinstance(encoder, dict):
        raise ValueError(f"read_gpt2_files: {os.fspath(encoder_json)!r} must hold a JSON object, got "
                         f"{type(encoder).__name__}")  # fmt: skip
    path = os.fspath(vocab_bpe)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_gpt2_files: no such file {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as exc:
        raise ValueError(f"read_gpt2_files: {path!r} is not UTF-8 text (byte {exc.start}: "
                         f"{exc.reason})") from None  # fmt: skip
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    lines = [line for line in lines if line]
    specials = {s: encoder.pop(s) for s in special_tokens if s in encoder}
    vocab = {i: token_to_bytes(t) for t, i in encoder.items()}
    merges = _parse_merges(lines, encoder, f"read_gpt2_files: {path!r}")
    return vocab, merges, specials, GPT2_ORIGINAL_PATTERN


def read_hf_json(path):
    """Parse a Hugging Face ``tokenizer.json`` holding a byte-level BPE model.

    Supported: model type ``BPE`` without dropout, prefixes or suffixes; no normalizer; a
    ``ByteLevel`` pre-tokenizer using GPT-2's regex without a prefix space, or a ``Split`` by a
    regex followed by ``ByteLevel`` without one (``_hf_split_pattern``). Anything else raises
    ``ValueError`` naming the field, rather than silently tokenizing differently.
    Returns ``(vocab, merges, specials, pattern)`` like :func:`read_gpt2_files`; added tokens
    marked ``special`` become special tokens.
    """
    what = f"read_hf_json: {os.fspath(path)!r}"
    data = _read_json(path, "read_hf_json")
    try:
        return _hf_parts(data, what)
    except (KeyError, TypeError, AttributeError) as exc:  # a field missing or of another type
        detail = f"missing the field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"read_hf_json: {os.fspath(path)!r} is not a byte-level BPE tokenizer.json "
                         f"({detail})") from None  # fmt: skip


def _hf_parts(data, what: str):
    """The parts of a parsed Hugging Face ``tokenizer.json`` (see :func:`read_hf_json`)."""
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise ValueError(f"{what}: expected model.type 'BPE'")
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "unk_token"):
        if model.get(key):
            raise ValueError(f"{what}: model.{key}={model[key]!r} is not supported")
    if data.get("normalizer"):
        raise ValueError(
            f"{what}: a normalizer ({data['normalizer'].get('type')}) is not supported"
        )
    pattern = _hf_split_pattern(data.get("pre_tokenizer") or {}, what)
    if model.get("ignore_merges"):
        raise ValueError(f"{what}: model.ignore_merges=True is not supported")
    vocab_ids = dict(model["vocab"])
    specials = {}
    for added in data.get("added_tokens") or []:
        if added.get("special"):
            specials[added["content"]] = added["id"]
            if vocab_ids.get(added["content"]) == added["id"]:
                del vocab_ids[added["content"]]
    vocab = {i: token_to_bytes(t) for t, i in vocab_ids.items()}
    merges = _parse_merges(model.get("merges") or [], vocab_ids, what)
    return vocab, merges, specials, pattern


def _hf_split_pattern(pre: dict, what: str) -> str:
    """The split regex of a byte-level pre-tokenizer: ``ByteLevel`` with GPT-2's built-in regex,
    or ``Sequence[Split(Regex), ByteLevel(use_regex=False)]`` (Qwen 2/3, Llama 3, and what
    :func:`minroots.tokenizers.pretrained.save_pretrained` writes for other patterns)."""
    kind = pre.get("type")
    if kind == "ByteLevel":
        if pre.get("add_prefix_space"):
            raise ValueError(f"{what}: pre_tokenizer.add_prefix_space=True is not supported")
        if pre.get("use_regex", True) is False:
            raise ValueError(f"{what}: pre_tokenizer.use_regex=False is not supported")
        return GPT2_ORIGINAL_PATTERN
    steps = pre.get("pretokenizers") or []
    if kind == "Sequence" and [s.get("type") for s in steps] == ["Split", "ByteLevel"]:
        split, byte_level = steps
        pattern = (split.get("pattern") or {}).get("Regex")
        if (
            not isinstance(pattern, str)
            or split.get("behavior") != "Isolated"
            or split.get("invert")
        ):
            raise ValueError(f"{what}: only a Split by a Regex with behavior 'Isolated' (not "
                             f"inverted) is supported, got {split!r}")  # fmt: skip
        if POSSESSIVE_INTERVAL.search(pattern):
            raise ValueError(f"{what}: the Split regex {pattern!r} has an interval followed by "
                             "'+', which Hugging Face reads as a repetition and Python's regex as "
                             "possessive; minroots cannot split the same way")  # fmt: skip
        if byte_level.get("add_prefix_space") or byte_level.get("use_regex", True):
            raise ValueError(f"{what}: the ByteLevel step after Split must have "
                             "add_prefix_space=False and use_regex=False, got add_prefix_space="
                             f"{byte_level.get('add_prefix_space')!r} and use_regex="
                             f"{byte_level.get('use_regex', True)!r}")  # fmt: skip
        return pattern
    raise ValueError(f"{what}: expected a ByteLevel pre_tokenizer, or a Sequence of Split and "
                     f"ByteLevel, got {kind!r}")  # fmt: skip


def read_tiktoken_ranks(mergeable_ranks: dict[bytes, int], pattern: str, special_tokens=None):
    """tiktoken's data (``encoding._mergeable_ranks``, ``encoding._pat_str``, special tokens) as
    ``(vocab, merges, specials, pattern)``: a token's rank is its id, and there is no merge list
    (tiktoken merges two adjacent tokens whenever their concatenation is a token)."""
    if not isinstance(mergeable_ranks, dict):
        raise TypeError(f"from_tiktoken_ranks: mergeable_ranks must be a dict, got "
                        f"{type(mergeable_ranks).__name__}")  # fmt: skip
    vocab = {i: b for b, i in mergeable_ranks.items()}
    if len(vocab) != len(mergeable_ranks):
        raise ValueError("from_tiktoken_ranks: mergeable_ranks must give each token a rank of its "
                         "own, got two tokens with one rank")  # fmt: skip
    return vocab, [], dict(special_tokens or {}), pattern


def check_tiktoken_order(merged_ids) -> None:
    """tiktoken uses a token's id as its merge rank, so the ids of merged tokens, taken in merge
    order, must increase (true for tokenizers trained by minroots, GPT-2, and HF byte-level BPE).

    >>> check_tiktoken_order([256, 257, 258])
    >>> check_tiktoken_order([257, 256])
    Traceback (most recent call last):
    ValueError: to_tiktoken_ranks: ids of merged tokens do not follow the merge order, so tiktoken (which merges by id) would merge in a different order
    """
    if any(x >= y for x, y in pairwise(merged_ids)):
        raise ValueError(
            "to_tiktoken_ranks: ids of merged tokens do not follow the merge order, so tiktoken "
            "(which merges by id) would merge in a different order"
        )
