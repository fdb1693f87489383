r"""Named arrays on disk: safetensors files with tied aliases and metadata, and atomic writes.

Book chapter 7, "Training" (``book/07_training.md``, section 7.5); tests in
``tests/test_persistence.py``. Every file minroots saves goes through this module: model weights
and configs (:mod:`minroots.nn.serialization`), optimizer state
(:meth:`minroots.optim.optimizer.Optimizer.save_state`) and checkpoints (:mod:`minroots.training.checkpoint`).

**safetensors.** A file is an 8-byte header length, a JSON header (each array's dtype, shape and
byte range, and a ``"__metadata__"`` dict of strings), then the raw little-endian bytes. Reading
one reads data; it cannot run code, unlike a pickle.

**Tied aliases.** A model may hold one array under two names (GPT-2's ``lm_head.weight`` *is*
``wte.weight``). :func:`save_arrays` with ``tied=True`` writes such an array once, under its first
name, and puts the other names in the metadata as JSON, ``"tied": '{"lm_head.weight":
"wte.weight"}'``; :func:`load_arrays` gives each alias back as the very same array. "The same
array" means the same object, as :meth:`minroots.nn.module.Module.state_dict` returns a shared
parameter's data under each of its names:

>>> w = np.zeros(3)
>>> untie({"wte.weight": w, "lm_head.weight": w, "bias": np.ones(2)})
({'wte.weight': array([0., 0., 0.]), 'bias': array([1., 1.])}, {'lm_head.weight': 'wte.weight'})

**Atomic writes.** :func:`atomic_file` writes under a hidden temporary name beside the real one
(``.name.tmp-<pid>``), flushes it to disk (``fsync``), renames it with ``os.replace`` (atomic within
one file system), then flushes the folder so that the rename itself survives a power cut. At every
moment the real name holds the old file or the new one, whole; a crash mid-write leaves the old
file as it was. :func:`save_arrays`, :func:`write_json` and :func:`write_text` all write this way.
An operating-system error during a write (a full disk, a file-size limit) is raised as the same
kind of ``OSError`` with a one-line message that names the file::

    OSError: 'runs/demo/history.jsonl': cannot write the file: No space left on device (ENOSPC)

**Damaged files.** Reading never shows a traceback from inside a parser: :func:`load_arrays` and
:func:`read_json` turn a truncated, empty, foreign or deeply nested file into a one-line
``ValueError`` naming it (``'model.safetensors': not a valid safetensors file (header too
small)``).

**Appending.** A file that grows by lines (``history.jsonl``) can be cut mid-line by a crash or a
full disk. :func:`append_line` first cuts such a torn last line off (:func:`cut_torn_tail`), then
appends; a failed append is undone, so the file always ends with a whole line.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import hashlib
import json
import os
import re

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from minroots import backend as B

__all__ = [
    "save_arrays",
    "load_arrays",
    "untie",
    "retie",
    "TIED_KEY",
    "write_json",
    "atomic_file",
    "fsync_file",
    "fsync_dir",
]
__all__ += [
    "read_json",
    "write_text",
    "append_line",
    "cut_torn_tail",
    "named_os_error",
    "file_digest",
]
__all__ += ["reworded_os_error"]
__all__ += ["read_jsonl"]

#: the metadata key that holds the aliases of a file written with ``tied=True``
TIED_KEY = "tied"


# --- tied aliases ---------------------------------------------------------------------------
def untie(named: dict) -> tuple[dict, dict]:
    """Split ``name -> array`` into the arrays to store (each object once, under its first name)
    and ``alias -> stored name`` for the others (see the module's example)."""
    arrays, aliases, first = {}, {}, {}
    for name, arr in named.items():
        if id(arr) in first:
            aliases[name] = first[id(arr)]
        else:
            first[id(arr)] = name
            arrays[name] = arr
    return arrays, aliases


def retie(arrays: dict, aliases: dict) -> dict:
    """Add each alias to ``arrays`` as the array of the name it points to (in place; returned).

    >>> a = retie({"wte.weight": np.zeros(2)}, {"lm_head.weight": "wte.weight"})
    >>> a["lm_head.weight"] is a["wte.weight"]
    True
    """
    for alias, name in aliases.items():
        if name in arrays:
            arrays.setdefault(alias, arrays[name])
    return arrays


# --- safetensors ----------------------------------------------------------------------------
def save_arrays(path, arrays: dict, metadata: dict | None = None, *, tied: bool = False) -> None:
    """Write ``name -> array`` (NumPy or CuPy) to the safetensors file ``path``, atomically.

    ``metadata`` values are stored as strings; ``None`` writes a file without a metadata block.
    With ``tied=True`` an array held under several names is written once and the aliases go in
    ``metadata["tied"]`` (as JSON, ``"{}"`` when there are none).
    """
    if tied:
        arrays, aliases = untie(arrays)
        metadata = {**(metadata or {}), TIED_KEY: json.dumps(aliases)}
    # C order, as safetensors stores it (np.ascontiguousarray would turn a 0-d array into 1-d)
    host = {k: np.asarray(B.to_numpy(v), order="C") for k, v in arrays.items()}
    meta = None if metadata is None else {k: str(v) for k, v in metadata.items()}
    with atomic_file(path) as tmp:
        try:
            save_file(host, tmp, metadata=meta)
        except SafetensorError as exc:  # an I/O error reported by the Rust writer
            raise _os_error_of(exc) from None


def load_arrays(path, *, tied: bool = True) -> tuple[dict, dict]:
    """Read a safetensors file: ``(name -> NumPy array, metadata dict)``.

    With ``tied=True`` (the default) the aliases recorded by :func:`save_arrays` are added back
    (:func:`retie`); ``tied=False`` returns only the arrays stored in the file.

    A damaged or foreign file (empty, truncated, a bad header, a dtype NumPy lacks such as
    bfloat16) is a one-line ``ValueError`` naming it, never the parser's own error.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_arrays: no weights file at {path!r}")
    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {k: _get_tensor(f, k, path) for k in f.keys()}
    except SafetensorError as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ")
        raise ValueError(f"{path!r}: not a valid safetensors file ({reason})") from None
    if tied and TIED_KEY in metadata:
        try:
            aliases = json.loads(metadata[TIED_KEY])
        except (ValueError, RecursionError):
            aliases = None
        if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
            raise ValueError(f"{path!r}: the metadata {TIED_KEY!r} must be a JSON object of names, "
                             f"got {metadata[TIED_KEY][:80]!r}")  # fmt: skip
        retie(arrays, aliases)
    return arrays, metadata


def _get_tensor(f, name: str, path: str):
    """One tensor of an open safetensors file; a dtype NumPy cannot hold is a clear error."""
    try:
        return f.get_tensor(name)
    except (TypeError, AttributeError):  # NumPy has no bfloat16 (without ml_dtypes), no float8
        dtype = f.get_slice(name).get_dtype()
        raise ValueError(f"{path!r}: tensor {name!r} has dtype {dtype}, which NumPy cannot hold; "
                         "convert the file to float32 or float16 first") from None  # fmt: skip


# --- atomic writes --------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside ``path``; when the block ends without an error, make that file
    ``path`` (fsync, rename, fsync of the folder). On an error the temporary file is removed and
    ``path`` is left as it was::

        with atomic_file("run/notes.txt") as tmp:
            Path(tmp).write_text(text)      # "run/notes.txt" is the old file or the new one

    An ``OSError`` on the way (a full disk) is raised again with a message naming ``path``
    (:func:`named_os_error`).
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(folder or ".")
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise named_os_error(exc, path) from None
        raise


def write_json(path, data, *, indent: int = 1) -> None:
    """Write ``data`` as JSON to ``path``, atomically (:func:`atomic_file`)."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)


def write_text(path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path``, atomically (:func:`atomic_file`)."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def fsync_file(path) -> None:
    """Flush a written file's data to the disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path) -> None:
    """Make a rename or new file inside the folder ``path`` durable (POSIX; a no-op elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- errors that name the file ----------------------------------------------------------------
def named_os_error(exc: OSError, path, action: str = "write") -> OSError:
    """``exc`` again (same class, same ``errno``), with a one-line message that names ``path``.

    >>> str(named_os_error(OSError(28, "No space left on device"), "run/h.jsonl"))
    "'run/h.jsonl': cannot write the file: No space left on device (ENOSPC)"
    """
    if getattr(exc, "minroots_named", False):  # already names its file
        return exc
    code = errno_codes.errorcode.get(exc.errno, exc.errno) if exc.errno else None
    reason = exc.strerror or str(exc)
    suffix = f" ({code})" if code else ""
    return reworded_os_error(
        exc, f"{os.fspath(path)!r}: cannot {action} the file: {reason}{suffix}"
    )


def reworded_os_error(exc: OSError, message: str) -> OSError:
    """An ``OSError`` of ``exc``'s class and ``errno`` whose ``str()`` is ``message``."""
    cls = type(exc) if type(exc).__module__ == "builtins" else OSError
    named = cls(message)
    named.errno = exc.errno  # kept for code that looks at it; str() stays the message
    named.minroots_named = True
    return named


def _os_error_of(exc: SafetensorError) -> OSError:
    """The ``OSError`` that the safetensors writer reports as ``... (os error 28)``."""
    found = re.search(r"os error (\d+)", str(exc))
    if found is None:
        return OSError(f"save_arrays: the safetensors writer failed: {exc}")
    code = int(found.group(1))
    return OSError(code, os.strerror(code))


def file_digest(path) -> str:
    """The BLAKE2b-256 hex digest of a file's bytes (as strong as SHA-256, faster), read in 1 MiB
    chunks: the checksum of checkpoint manifests and of the token-id cache.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x")
    >>> _ = open(path, "wb").write(b"abc")
    >>> file_digest(path) == hashlib.blake2b(b"abc", digest_size=32).hexdigest()
    True
    """
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --- reading JSON ------------------------------------------------------------------------------
def read_json(path, where: str = "read_json", expect: type | None = None):
    """The JSON value in the file ``path``; a missing or damaged file is a one-line error.

    ``where`` names the caller in messages; ``expect`` (e.g. ``dict``) is the type the file must
    hold. A file that is not UTF-8, not JSON, or nested too deeply for Python's parser raises a
    ``ValueError`` naming the file and what was wrong:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"step": 3')
    >>> read_json(path, "load_checkpoint")
    Traceback (most recent call last):
    ValueError: load_checkpoint: '...state.json' is not valid JSON (Expecting ',' delimiter at line 1, column 11)
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{where}: {path!r} is a folder, expected a JSON file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: {path!r} is not UTF-8 text (byte {exc.start}: "
                         f"{exc.reason})") from None  # fmt: skip
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: {path!r} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None  # fmt: skip
    except RecursionError:
        raise ValueError(f"{where}: {path!r} nests JSON arrays or objects too deeply to "
                         "read") from None  # fmt: skip
    except OSError as exc:
        raise named_os_error(exc, path, "read") from None
    if expect is not None and not isinstance(data, expect):
        names = {dict: "a JSON object", list: "a JSON array"}
        raise ValueError(f"{where}: {path!r} must hold {names.get(expect, expect.__name__)}, got "
                         f"{_json_kind(data)}")  # fmt: skip
    return data


def read_jsonl(path, label: str):
    """``(where, record)`` for each non-blank line of the JSON-lines file ``path``, where
    ``where`` is ``"<label> line <n>"`` for the caller's messages; a line that is not JSON is a
    one-line ``ValueError`` naming it."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{label} line {lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise ValueError(f"{where}: nests JSON too deeply to read") from None


def _json_kind(value) -> str:
    """``'a JSON array'``, ``'a JSON object'``, ... for messages."""
    kinds = {dict: "a JSON object", list: "a JSON array", str: "a string", bool: "true/false"}
    return kinds.get(type(value), "null" if value is None else "a number")


# --- appending lines -----------------------------------------------------------------------------
def cut_torn_tail(path) -> int:
    """Cut a file that does not end with a newline back to its last whole line; the bytes cut.

    A crash or a full disk in the middle of an append leaves half a line at the end of the file;
    appending after it would glue the next line to it. A missing file cuts nothing.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        keep, block = 0, 1 << 16
        end = size
        while end > 0:  # the last newline, read backwards in blocks
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            end = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def append_line(path, line: str) -> int:
    """Append ``line`` (which must end with a newline) to a text file, keeping it whole.

    A torn last line left by an earlier crash is cut first (:func:`cut_torn_tail`); the number of
    bytes cut is returned, so that the caller can say so. If this append fails part-way (a full
    disk), the file is cut back to what it was and a one-line ``OSError`` names it.
    """
    if not line.endswith("\n"):
        raise ValueError(f"append_line: line must end with a newline, got {line[-20:]!r}")
    path = os.fspath(path)
    try:
        cut = cut_torn_tail(path)
        before = os.path.getsize(path) if os.path.exists(path) else 0
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        except OSError:
            with contextlib.suppress(OSError), open(path, "rb+") as f:
                f.truncate(before)
            raise
    except OSError as exc:
        raise named_os_error(exc, path) from None
    return cut
