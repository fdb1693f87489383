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
file as it was. :func:`save_arrays` and :func:`write_json` both write this way.
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
from safetensors import safe_open
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
        save_file(host, tmp, metadata=meta)


def load_arrays(path, *, tied: bool = True) -> tuple[dict, dict]:
    """Read a safetensors file: ``(name -> NumPy array, metadata dict)``.

    With ``tied=True`` (the default) the aliases recorded by :func:`save_arrays` are added back
    (:func:`retie`); ``tied=False`` returns only the arrays stored in the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no weights file at {path!r}")
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    if tied and TIED_KEY in metadata:
        retie(arrays, json.loads(metadata[TIED_KEY]))
    return arrays, metadata


# --- atomic writes --------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside ``path``; when the block ends without an error, make that file
    ``path`` (fsync, rename, fsync of the folder). On an error the temporary file is removed and
    ``path`` is left as it was::

        with atomic_file("run/notes.txt") as tmp:
            Path(tmp).write_text(text)      # "run/notes.txt" is the old file or the new one
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_dir(folder or ".")


def write_json(path, data, *, indent: int = 1) -> None:
    """Write ``data`` as JSON to ``path``, atomically (:func:`atomic_file`)."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)


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
