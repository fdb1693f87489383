r"""Checkpoint integrity: a manifest of checksums, finite weights, the data's fingerprint, a checked state.

Book chapter 7, "Training" (``book/07_training.md``, the section on checkpoints); tests in
``tests/test_training_integrity.py``.

A checkpoint that loads must be the checkpoint that was saved. Four checks make sure of it:

- **The manifest.** :func:`write_manifest` puts ``manifest.json`` beside the other files of a
  checkpoint: the size and the BLAKE2b checksum (``hashlib.blake2b``, 32 bytes, as strong as
  SHA-256 and faster) of each one. :func:`verify_checkpoint` recomputes them before anything is
  loaded; a flipped bit, a truncated file, a file edited or added by hand is a
  :class:`CheckpointError` naming the file::

      CheckpointError: 'runs/demo/checkpoints/step-00000500/model.safetensors': does not match
      its checksum in manifest.json (the file is damaged or was changed)

  Loading a run's folder then falls back to the newest checkpoint that verifies, and says so.
- **Finite numbers.** :func:`check_finite_state` refuses to save weights or optimizer buffers that
  hold NaN or infinity (:class:`NonFiniteError`): a checkpoint is only ever a good one.
- **The fingerprint.** :func:`fingerprint` condenses the tokenizer (its saved form) and the token
  ids of the data into two checksums, stored in ``trainer_state.json``. Resuming with another
  tokenizer would give every id another meaning, so :func:`check_fingerprint` refuses it (unless
  told to go on); other data is allowed with a warning.
- **The state.** :func:`check_state` checks the fields of ``trainer_state.json`` (the step equals
  the folder's, counts are integers >= 0) before the Trainer uses them.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np

from minroots import backend as B
from minroots.data.cache import tokenizer_identity
from minroots.persistence import file_digest, read_json, write_json
from minroots.validation import describe, integer

__all__ = [
    "MANIFEST",
    "CheckpointError",
    "CheckpointWarning",
    "NonFiniteError",
    "array_digest",
    "write_manifest",
    "verify_checkpoint",
    "check_finite_state",
    "fingerprint",
    "check_fingerprint",
    "check_state",
]

MANIFEST = "manifest.json"
_FORMAT = 1
_CHUNK = 1 << 20  # bytes hashed at a time


class CheckpointError(ValueError):
    """A checkpoint is damaged, incomplete or inconsistent; the message names the file."""


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped or could not be checked (e.g. one saved without a manifest)."""


class NonFiniteError(FloatingPointError):
    """Weights or optimizer buffers hold NaN or infinity, so they are not saved."""


# --- checksums -----------------------------------------------------------------------------------
def array_digest(ids) -> str:
    """The BLAKE2b-256 hex digest of an array's dtype, shape and values (memory-mapped arrays are
    read a chunk at a time)."""
    ids = B.to_numpy(ids)
    h = hashlib.blake2b(digest_size=32)
    h.update(f"{np.dtype(ids.dtype).str}{tuple(ids.shape)}".encode())
    flat = ids.reshape(-1)
    step = max(1, _CHUNK // max(1, flat.itemsize))
    for start in range(0, flat.size, step):
        h.update(np.ascontiguousarray(flat[start : start + step]).tobytes())
    return h.hexdigest()


# --- the manifest ----------------------------------------------------------------------------------
def write_manifest(folder: str | os.PathLike) -> dict:
    """Write ``folder/manifest.json``: the size and BLAKE2b-256 digest of every file in ``folder``.

    Called by :func:`~minroots.training.checkpoint.save_checkpoint` after all other files are
    written, before the folder gets its real name. Returns the manifest.
    """
    folder = Path(folder)
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            files[p.name] = {"bytes": p.stat().st_size, "blake2b": file_digest(p)}
    manifest = {"format": _FORMAT, "hash": "blake2b-256", "files": files}
    write_json(folder / MANIFEST, manifest)
    return manifest


_verified: dict[tuple, bool] = {}  # (folder, (name, size, mtime) of each file) -> result


def verify_checkpoint(folder: str | os.PathLike) -> bool:
    """Check every file of a checkpoint against its ``manifest.json``; ``True`` when verified.

    Raises :class:`CheckpointError` naming the first file that is missing, of another size, of
    another checksum, or not listed. A checkpoint without a manifest (saved by minroots before
    manifests existed) cannot be checked: a :class:`CheckpointWarning` says so and ``False`` is
    returned. A folder already verified and unchanged since is not read again.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        warnings.warn(
            f"verify_checkpoint: {os.fspath(folder)!r} has no {MANIFEST} (saved by an older "
            "minroots?), so its files cannot be checked",
            CheckpointWarning,
            stacklevel=2,
        )
        return False
    stats = tuple(
        (p.name, st.st_size, st.st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file() and (st := p.stat())
    )
    key = (os.path.realpath(folder), stats)
    if key in _verified:
        return True
    try:
        manifest = read_json(manifest_path, "verify_checkpoint", expect=dict)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    listed = manifest.get("files")
    if manifest.get("format") != _FORMAT or not isinstance(listed, dict):
        raise CheckpointError(f"verify_checkpoint: {os.fspath(manifest_path)!r} must be a format-"
                              f"{_FORMAT} manifest with a 'files' table, got {describe(listed)} "
                              f"files and format {manifest.get('format')!r}")  # fmt: skip
    for name, _size, _mtime in stats:
        if name != MANIFEST and name not in listed:
            raise CheckpointError(f"{os.fspath(folder / name)!r}: is not in {MANIFEST} (added "
                                  "after the checkpoint was saved)")  # fmt: skip
    for name, entry in listed.items():
        path = folder / name
        if not isinstance(entry, dict) or not path.is_file():
            raise CheckpointError(f"{os.fspath(path)!r}: is missing (listed in {MANIFEST})")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise CheckpointError(f"{os.fspath(path)!r}: has {size} bytes, {MANIFEST} says "
                                  f"{entry.get('bytes')} (the file was cut short or changed)")  # fmt: skip
        if file_digest(path) != entry.get("blake2b"):
            raise CheckpointError(f"{os.fspath(path)!r}: does not match its checksum in "
                                  f"{MANIFEST} (the file is damaged or was changed)")  # fmt: skip
    if len(_verified) > 256:
        _verified.clear()
    _verified[key] = True
    return True


# --- finite weights ----------------------------------------------------------------------------------
def _non_finite(named_arrays) -> list[str]:
    bad = []
    for name, a in named_arrays:
        a = getattr(a, "data", a) if type(a).__name__ == "Tensor" else a
        if getattr(a, "dtype", None) is not None and a.dtype.kind in "fc":
            if not bool(B.get_array_module(a).isfinite(a).all()):
                bad.append(name)
    return bad


def check_finite_state(model, optimizer=None, where: str = "save_checkpoint") -> None:
    """Raise :class:`NonFiniteError` if a weight of ``model`` or a buffer of ``optimizer`` holds NaN
    or infinity, naming them (a checkpoint must be a good one)."""
    bad = _non_finite(model.state_dict().items())
    if optimizer is not None and getattr(optimizer, "state", None):
        params = [p for g in optimizer.param_groups for p in g["params"]]
        names = {}
        if hasattr(model, "named_parameters"):
            names = {id(p): n for n, p in model.named_parameters()}
        for i, entry in optimizer.state.items():
            owner = names.get(id(params[i]), f"parameter {i}") if i < len(params) else f"{i}"
            bad += [f"optimizer {k} of {owner}" for k in _non_finite(entry.items())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteError(f"{where}: weights and optimizer state must be finite, got NaN or "
                             f"infinity in {shown}; nothing was saved")  # fmt: skip


# --- the data's fingerprint ------------------------------------------------------------------------------
def fingerprint(dataset=None, tokenizer=None) -> dict:
    """Checksums of a run's tokenizer and data: ``{"tokenizer": hex | None, "data": {...} | None}``.

    The tokenizer's is the digest of its saved form (type and ``to_dict()``); the data's that of
    its token ids (``dataset.ids``, e.g. a :class:`~minroots.data.TextDataset`) with their count.
    ``None`` where there is nothing to condense (a tokenizer without ``to_dict``, a dataset of
    ready examples).

    >>> from minroots.tokenizers import CharTokenizer
    >>> fp = fingerprint(None, CharTokenizer.from_text("hello"))
    >>> len(fp["tokenizer"]), fp["data"]
    (64, None)
    """
    tokenizer = tokenizer if tokenizer is not None else getattr(dataset, "tokenizer", None)
    identity = tokenizer_identity(tokenizer) if tokenizer is not None else None
    tok = None
    if identity is not None:
        tok = hashlib.blake2b(identity.encode("utf-8"), digest_size=32).hexdigest()
    ids = getattr(dataset, "ids", None)
    data = None
    if ids is not None and hasattr(ids, "dtype"):
        data = {"tokens": int(ids.size), "blake2b": array_digest(ids)}
    return {"tokenizer": tok, "data": data}


def check_fingerprint(saved, current: dict, where: str = "Trainer.resume", ignore: bool = False):
    """Compare a checkpoint's fingerprint with the current run's.

    Another tokenizer raises ``ValueError`` (its ids would stand for other text) unless
    ``ignore=True``, which turns it into a warning; other data is a :class:`CheckpointWarning`.
    A checkpoint saved without a fingerprint is not compared.
    """
    if not isinstance(saved, dict):
        return
    before, now = saved.get("tokenizer"), current.get("tokenizer")
    if before and now and before != now:
        which = f"(fingerprint {str(before)[:12]}, this run's {now[:12]})"
        if not ignore:
            raise ValueError(f"{where}: the checkpoint was trained with another tokenizer {which}, "
                             "so its token ids stand for other text; resume with that run's data "
                             "and tokenizer, or pass ignore_fingerprint=True (minroots train "
                             "--ignore-fingerprint) to go on anyway")  # fmt: skip
        warnings.warn(f"{where}: the checkpoint was trained with another tokenizer {which}; going "
                      "on, as ignore_fingerprint=True asks", CheckpointWarning,
                      stacklevel=3)  # fmt: skip
    before, now = saved.get("data"), current.get("data")
    if isinstance(before, dict) and now and before != now:
        warnings.warn(f"{where}: the training data differs from the checkpoint's "
                      f"({before.get('tokens')} tokens then, {now['tokens']} now); training goes "
                      "on with the new data", CheckpointWarning, stacklevel=3)  # fmt: skip


# --- the trainer's state ---------------------------------------------------------------------------------------
_STEP_FOLDER = re.compile(r"^step-(\d+)$")


def check_state(state, path: str | os.PathLike, trainer: bool = False) -> dict:
    """Check the fields of a ``trainer_state.json`` read from ``path``; returns ``state``.

    Always: a JSON object whose ``step`` is an integer >= 0 equal to the folder's
    (``step-00000030`` holds step 30). With ``trainer=True`` also what
    :meth:`~minroots.training.trainer.Trainer.resume` reads: ``total_steps`` >= ``step``, ``tokens_seen``
    >= 0, and the ``scheduler``, ``rng`` and ``data_rng`` tables.
    """
    where = repr(os.fspath(path))
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: must hold a JSON object, got {describe(state)}")
    step = _field(integer, where, "step", state.get("step"), low=0)
    folder = _STEP_FOLDER.match(Path(path).parent.name)
    if folder and int(folder.group(1)) != step:
        raise CheckpointError(f"{where}: step must equal the folder's step {int(folder.group(1))}, "
                              f"got {step}")  # fmt: skip
    if not trainer:
        return state
    if "total_steps" in state:
        _field(integer, where, "total_steps", state["total_steps"], low=max(step, 1))
    if "tokens_seen" in state:
        _field(integer, where, "tokens_seen", state["tokens_seen"], low=0)
    for name in ("scheduler", "rng", "data_rng"):
        if not isinstance(state.get(name), dict):
            got = "nothing" if name not in state else describe(state[name])
            raise CheckpointError(f"{where}: {name} must be a JSON object (the trainer saves one), "
                                  f"got {got}")  # fmt: skip
    if state.get("loader") is not None and not isinstance(state["loader"], dict):
        raise CheckpointError(f"{where}: loader must be a JSON object or null, got "
                              f"{describe(state['loader'])}")  # fmt: skip
    return state


def _field(check, where, name, value, **bounds):
    """``check(...)``, with its error raised as a :class:`CheckpointError`."""
    if value is None:
        raise CheckpointError(f"{where}: {name} must be present (an integer), got nothing")
    try:
        return check(where, name, value, **bounds)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(str(exc)) from None
