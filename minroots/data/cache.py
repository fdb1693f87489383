"""Tokenize once: token ids cached as ``.npy`` files, keyed by the text and the tokenizer.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); tests in ``tests/test_data_cache.py``
(pieces, streamed file) and ``tests/test_data_text_dataset.py`` (keys, hits, memory-mapping).

Encoding a megabyte of text in Python takes a noticeable fraction of a second (and a BPE
tokenizer much longer), and a training run reads the same ids again and again. So
:func:`cached_encode` stores the ids the first time and loads them afterwards:

- the file name is a *key*: the sha256 of the text's UTF-8 bytes together with the tokenizer's
  saved form (its type and ``to_dict()``), so a changed text or vocabulary is a new file and a
  stale cache can never be read;
- ids are stored in the smallest unsigned dtype that holds the vocabulary (``uint8`` for a
  character vocabulary under 256, else ``uint16`` or ``uint32``): 1 MB of text is 1 MB on disk;
- files are written to a temporary name and renamed, so a crash never leaves half a file;
- beside each ``ids-<key>.npy`` a small ``ids-<key>.json`` records the key, the file's size and its
  BLAKE2b checksum. A cache file that does not match (empty, cut short, edited, or written by
  another program) is never used: a warning says so and the text is encoded again;
- the text is encoded in pieces of about 4 Mi characters, streamed into the file, where the
  tokenizer allows it (``_piece_bounds``): the first pass over a 100 MB corpus then peaks
  at about 2.5 times the corpus in memory (the text and its ids), not 17 times;
- a file larger than ``mmap_bytes`` is memory-mapped (read lazily from disk) instead of read.

The cache folder is, in order: the ``cache_dir`` argument, the ``MINROOTS_CACHE`` environment
variable, ``$XDG_CACHE_HOME/minroots``, ``~/.cache/minroots`` — never inside the package.

Example::

    >>> import tempfile
    >>> from minroots.tokenizers import CharTokenizer
    >>> tok = CharTokenizer.from_text("hello")
    >>> folder = tempfile.mkdtemp()
    >>> cached_encode("hello", tok, cache_dir=folder)   # encodes, writes <folder>/ids-<key>.npy
    array([1, 0, 2, 2, 3], dtype=uint8)
    >>> cached_encode("hello", tok, cache_dir=folder)   # loads the file; no encoding
    array([1, 0, 2, 2, 3], dtype=uint8)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from minroots.persistence import file_digest, read_json, write_json

__all__ = ["default_cache_dir", "cache_key", "ids_dtype", "cached_encode", "tokenizer_identity"]

MMAP_BYTES = 64 * 2**20  # memory-map cached ids larger than 64 MiB
PIECE_CHARS = 2**22  # characters encoded at a time on a first pass (see _encoded_pieces)


def default_cache_dir() -> Path:
    """``$MINROOTS_CACHE``, else ``$XDG_CACHE_HOME/minroots``, else ``~/.cache/minroots``."""
    if os.environ.get("MINROOTS_CACHE"):
        return Path(os.environ["MINROOTS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minroots"


def tokenizer_identity(tokenizer) -> str | None:
    """A string that changes whenever the tokenizer's mapping may change; ``None`` if unknown."""
    to_dict = getattr(tokenizer, "to_dict", None)
    if to_dict is None:
        return None
    kind = getattr(tokenizer, "type_name", type(tokenizer).__qualname__)
    return json.dumps({"type": kind, **to_dict()}, sort_keys=True, ensure_ascii=False)


def cache_key(text: str, tokenizer) -> str | None:
    """The sha256 hex digest of the text and the tokenizer's saved form.

    ``None`` for a tokenizer without ``to_dict`` (we cannot tell two of them apart, so their
    ids are not cached).
    """
    identity = tokenizer_identity(tokenizer)
    if identity is None:
        return None
    h = hashlib.sha256()
    h.update(identity.encode("utf-8"))
    h.update(b"\0")
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype holding ids ``0 .. vocab_size - 1``.

    Example: ``65 -> uint8``, ``50257 -> uint16``, ``100277 -> uint32``.
    """
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def _encode(text: str, tokenizer) -> np.ndarray:
    """All ids of ``text`` in one array (used when nothing is cached)."""
    parts = list(_encoded_pieces(text, tokenizer))
    if not parts:
        return np.zeros(0, dtype=ids_dtype(tokenizer.vocab_size))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _encoded_pieces(text: str, tokenizer, size: int | None = None):
    """The ids of ``text``, one piece of about ``size`` characters (default :data:`PIECE_CHARS`)
    at a time, each as a small unsigned array: the Python list of a piece's ids (8 bytes per id)
    is all that is ever held, never a list of every id of a 100 MB corpus (1.7 GB of peak memory
    before this)."""
    dtype = ids_dtype(tokenizer.vocab_size)
    for start, stop in _piece_bounds(text, tokenizer, size or PIECE_CHARS):
        ids = np.asarray(tokenizer.encode(text[start:stop]), dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= tokenizer.vocab_size):
            raise ValueError(f"cached_encode: the tokenizer produced ids outside [0, vocab_size="
                             f"{tokenizer.vocab_size}), from {ids.min()} to {ids.max()}; check "
                             "its vocab_size")  # fmt: skip
        yield ids.astype(dtype)


# BPE split patterns in which "\n" between two non-space characters always ends a pre-token (no
# alternative runs across it, except gpt4o's symbol runs, which may take a following "/")
_NEWLINE_SAFE = ("gpt2", "gpt2-original", "gpt4", "gpt4o")


def _piece_bounds(text: str, tokenizer, size: int):
    """``(start, stop)`` of pieces whose ids, encoded one by one, are the ids of the whole text.

    A character tokenizer may be cut anywhere. A BPE tokenizer with a named pattern may be cut
    after a ``"\n"`` that has a non-space character before it and a non-space character other
    than ``"/"`` after it: that is a boundary between pre-tokens, and the pre-tokens on either
    side do not change when the text ends (or starts) there. Any other tokenizer gets one piece.
    """
    kind = getattr(tokenizer, "type_name", None)
    anywhere = kind == "char"
    newline = (
        kind == "bpe"
        and getattr(tokenizer, "pattern_name", None) in _NEWLINE_SAFE
        and not any("\n" in s for s in getattr(tokenizer, "special_tokens", {}))
    )
    start = 0
    while (anywhere or newline) and len(text) - start > size:
        cut = start + size if anywhere else _newline_cut(text, start + size)
        if cut is None:
            break
        yield start, cut
        start = cut
    yield start, len(text)


def _newline_cut(text: str, pos: int) -> int | None:
    """The first safe cut (see ``_piece_bounds``) after a ``"\n"`` at or after ``pos``."""
    i = text.find("\n", pos)
    while 0 < i < len(text) - 1:
        after = text[i + 1]
        if not text[i - 1].isspace() and not after.isspace() and after != "/":
            return i + 1
        i = text.find("\n", i + 1)
    return None


def _atomic_save(path: Path, pieces, dtype) -> None:
    """Write the 1-D arrays ``pieces``, joined, as one ``.npy`` file (temp file, fsync, rename).

    Streamed: the header goes first with the length left open and is rewritten at the end (a
    1-D array's header takes 128 bytes whatever its length), so the file is byte for byte what
    ``np.save`` writes for the joined array, without the joined array ever being in memory.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (0,)}  # fmt: skip
            np.lib.format.write_array_header_1_0(f, header)
            data_start, n = f.tell(), 0
            for ids in pieces:
                ids.tofile(f)
                n += ids.size
            f.seek(0)
            header["shape"] = (n,)
            np.lib.format.write_array_header_1_0(f, header)
            if f.tell() != data_start:  # pragma: no cover - a 1-D header is always 128 bytes
                raise RuntimeError(f"cache: the .npy header of {n} ids changed its size")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _write_record(path: Path, key: str) -> None:
    """Write the checksum file of the ids just saved at ``path`` (atomically)."""
    record = {"format": 1, "key": key, "bytes": path.stat().st_size, "blake2b": file_digest(path)}
    write_json(_record_path(path), record)


def _load_checked(path: Path, key: str, mmap_bytes: int):
    """The cached ids if the file matches its checksum file; else ``None``, with a warning."""
    try:
        record = read_json(_record_path(path), "cached_encode", expect=dict)
        size = path.stat().st_size
        if record.get("key") != key or record.get("bytes") != size:
            reason = f"have {size} bytes, their checksum file says {record.get('bytes')}"
        elif record.get("blake2b") != file_digest(path):
            reason = "do not match their checksum"
        else:
            return np.load(path, mmap_mode="r" if size > mmap_bytes else None, allow_pickle=False)
    except FileNotFoundError:
        reason = "have no checksum file"
    except (ValueError, OSError, EOFError) as exc:  # a damaged checksum file, or .npy header
        reason = f"cannot be read ({exc})"
    warnings.warn(f"cached_encode: the cached token ids {os.fspath(path)!r} {reason} (damaged or "
                  "changed); encoding the text again", UserWarning, stacklevel=3)  # fmt: skip
    return None


def cached_encode(
    text: str,
    tokenizer,
    cache_dir: str | os.PathLike | None = None,
    mmap_bytes: int | None = None,
    use_cache: bool = True,
) -> np.ndarray:
    """Return ``tokenizer.encode(text)`` as a 1-D unsigned array, from the cache when possible.

    Args:
        text: the text to encode.
        tokenizer: anything with ``encode(str) -> list[int]`` and ``vocab_size``; its ids are
            cached only if it also has ``to_dict()`` (every minroots tokenizer does).
        cache_dir: folder for the ``.npy`` files (see the module docstring for the default).
        mmap_bytes: files larger than this are memory-mapped read-only instead of read
            (default ``MMAP_BYTES``, 64 MiB).
        use_cache: ``False`` encodes every time and writes nothing.
    """
    if not isinstance(text, str):
        raise TypeError(f"cached_encode: text must be a str, got {type(text).__name__}")
    if mmap_bytes is None:
        mmap_bytes = MMAP_BYTES
    key = cache_key(text, tokenizer) if use_cache else None
    if key is None:
        return _encode(text, tokenizer)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / f"ids-{key}.npy"
    if path.is_file():
        ids = _load_checked(path, key, mmap_bytes)
        if ids is not None:
            return ids
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save(path, _encoded_pieces(text, tokenizer), ids_dtype(tokenizer.vocab_size))
    _write_record(path, key)
    large = path.stat().st_size > mmap_bytes
    return np.load(path, mmap_mode="r" if large else None, allow_pickle=False)
