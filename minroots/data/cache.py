"""Tokenize once: token ids cached as ``.npy`` files, keyed by the text and the tokenizer.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

Encoding a megabyte of text in Python takes a noticeable fraction of a second (and a BPE
tokenizer much longer), and a training run reads the same ids again and again. So
:func:`cached_encode` stores the ids the first time and loads them afterwards:

- the file name is a *key*: the sha256 of the text's UTF-8 bytes together with the tokenizer's
  saved form (its type and ``to_dict()``), so a changed text or vocabulary is a new file and a
  stale cache can never be read;
- ids are stored in the smallest unsigned dtype that holds the vocabulary (``uint8`` for a
  character vocabulary under 256, else ``uint16`` or ``uint32``): 1 MB of text is 1 MB on disk;
- files are written to a temporary name and renamed, so a crash never leaves half a file
  (:func:`minroots.persistence.atomic_file`);
- beside each ``ids-<key>.npy`` a small ``ids-<key>.json`` records the key, the file's size and its
  BLAKE2b checksum. A cache file that does not match (empty, cut short, edited, or written by
  another program) is never used: a warning says so and the text is encoded again;
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
import warnings
from pathlib import Path

import numpy as np

from minroots.persistence import atomic_file, file_digest, read_json, write_json

__all__ = ["default_cache_dir", "cache_key", "ids_dtype", "cached_encode", "tokenizer_identity"]

MMAP_BYTES = 64 * 2**20  # memory-map cached ids larger than 64 MiB


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
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= tokenizer.vocab_size):
        raise ValueError(f"cached_encode: the tokenizer's ids must lie in [0, vocab_size="
                         f"{tokenizer.vocab_size}), got ids from {ids.min()} to {ids.max()}")  # fmt: skip
    return ids.astype(ids_dtype(tokenizer.vocab_size))


def _save(path: Path, key: str, ids: np.ndarray) -> None:
    """Write the ids, then their checksum file; each atomically."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, ids)
    record = {"format": 1, "key": key, "bytes": path.stat().st_size, "blake2b": file_digest(path)}
    write_json(_record_path(path), record)


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")


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
    ids = _encode(text, tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    _save(path, key, ids)
    if ids.nbytes > mmap_bytes:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    return ids
