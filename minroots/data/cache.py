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
- files are written to a temporary name and renamed, so a crash never leaves half a file;
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
from pathlib import Path

import numpy as np

__all__ = ["default_cache_dir", "cache_key", "ids_dtype", "cached_encode"]

MMAP_BYTES = 64 * 2**20  # memory-map cached ids larger than 64 MiB


def default_cache_dir() -> Path:
    """``$MINROOTS_CACHE``, else ``$XDG_CACHE_HOME/minroots``, else ``~/.cache/minroots``."""
    if os.environ.get("MINROOTS_CACHE"):
        return Path(os.environ["MINROOTS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minroots"


def _tokenizer_identity(tokenizer) -> str | None:
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
    identity = _tokenizer_identity(tokenizer)
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
        raise ValueError(
            f"tokenizer produced ids outside [0, {tokenizer.vocab_size}): check its vocab_size"
        )
    return ids.astype(ids_dtype(tokenizer.vocab_size))


def _atomic_save(path: Path, ids: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, ids)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if mmap_bytes is None:
        mmap_bytes = MMAP_BYTES
    key = cache_key(text, tokenizer) if use_cache else None
    if key is None:
        return _encode(text, tokenizer)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / f"ids-{key}.npy"
    if path.is_file():
        try:
            large = path.stat().st_size > mmap_bytes
            return np.load(path, mmap_mode="r" if large else None, allow_pickle=False)
        except (ValueError, OSError):
            pass  # unreadable (e.g. truncated by hand): rebuild it below
    ids = _encode(text, tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save(path, ids)
    if ids.nbytes > mmap_bytes:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    return ids
