r"""Checkpoints: everything needed to continue a run exactly, written so a crash cannot corrupt it.

Book chapter 7, "Training" (``book/07_training.md``); tests in
``tests/test_training_checkpoint.py``.

A checkpoint is a folder ``<out_dir>/checkpoints/step-00000500/`` holding

==========================  ===================================================================
file                        contents
==========================  ===================================================================
``model.safetensors``       the weights (raw arrays + a JSON header; loading runs no code)
``config.json``             the model's config, so ``TransformerModel.load(folder)`` rebuilds it
``optimizer.safetensors``   the optimizer's buffers (AdamW's :math:`m_t`, :math:`v_t`)
``optimizer.json``          the optimizer's hyperparameters and step counts
``trainer_state.json``      step, learning-rate schedule, RNG states (minroots' NumPy/CuPy
                            generators and the trainer's batch-order generator), the data
                            loader's position, the trainer config
``tokenizer.json``          the tokenizer, so ``minroots generate`` can turn ids into text
(more JSON files)           what the data asks to keep with the weights (``files``), e.g. a
                            fine-tuned model's ``chat_template.json`` (chapter 10)
``manifest.json``           the size and BLAKE2b checksum of each file above
==========================  ===================================================================

There is no pickle anywhere: a checkpoint from a stranger is data, not code.

**Nothing damaged loads.** Before saving, the weights and optimizer buffers are checked finite;
before loading, every file is checked against ``manifest.json``
(:mod:`minroots.training.integrity`). Given a run's folder, loading takes the newest checkpoint
that verifies, with a warning for each newer one that does not; given one checkpoint folder, a
damaged file is a one-line :class:`~minroots.training.integrity.CheckpointError` naming it. The
fields of ``trainer_state.json`` are checked too (the step equals the folder's), and a model whose
weights hold NaN or infinity is refused.

**Atomic saving.** The folder is first written under a hidden temporary name
(``.tmp-step-00000500-<pid>``); every file is flushed to disk with ``fsync``; then one
``os.replace`` gives the folder its real name. A rename within one file system is atomic, so at
any moment the real name holds either nothing or a complete checkpoint. A crash mid-save leaves
only a hidden temporary folder (removed by the next save) and the previous checkpoint untouched.
:func:`latest_checkpoint` only ever looks at complete, real names.

**Keeping the last K.** After a successful save, all but the newest ``keep_last`` checkpoints are
deleted, so a long run does not fill the disk.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

from minroots import backend as B
from minroots import nn
from minroots.autograd import Tensor
from minroots.persistence import (
    fsync_dir,
    fsync_file,
    load_arrays,
    named_os_error,
    read_json,
    reworded_os_error,
    save_arrays,
    write_json,
)
from minroots.tokenizers import load as load_tokenizer_file
from minroots.training.integrity import (
    CheckpointError,
    CheckpointWarning,
    check_finite_state,
    check_state,
    verify_checkpoint,
    write_manifest,
)
from minroots.validation import as_value_error, integer

__all__ = [
    "CHECKPOINT_DIR",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "resolve_checkpoint",
    "load_model",
    "load_tokenizer",
    "save_weights",
    "load_weights",
]

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d+)$")
WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
OPTIMIZER = "optimizer"  # optimizer.json + optimizer.safetensors
STATE = "trainer_state.json"
TOKENIZER = "tokenizer.json"


# --- weights ----------------------------------------------------------------------------------
def save_weights(model, folder: str | os.PathLike) -> None:
    """Write ``model``'s weights (and config, when it has one) into ``folder``.

    A minroots model saves itself (``model.save``: ``model.safetensors`` + ``config.json``, tied
    weights stored once). Any other object with ``state_dict()`` is written as one safetensors
    file, each shared array once (by identity), with the aliases in the file's metadata.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save") and hasattr(model, "config"):
        model.save(folder)
        return
    arrays = {k: v.data if isinstance(v, Tensor) else v for k, v in model.state_dict().items()}
    save_arrays(folder / WEIGHTS, arrays, {"format": "np"}, tied=True)


def load_weights(model, folder: str | os.PathLike) -> None:
    """Copy the weights saved in ``folder`` into ``model``, in place (strict: names must match).

    A model that writes files of its own also reads them back: one with ``restore(folder)`` (a
    LoRA model, whose adapters are in ``adapter.safetensors``) loads itself. Otherwise weights that
    hold NaN or infinity are refused (``ValueError``), as is any file that is not a valid
    safetensors file.
    """
    if hasattr(model, "restore"):
        model.restore(folder)
        return
    path = _file_in(folder, WEIGHTS)
    arrays, _ = load_arrays(path)
    _check_finite_weights(arrays.items(), path)
    model.load_state_dict(arrays)


def _check_finite_weights(named_arrays, path) -> None:
    """A ``ValueError`` naming the weights of ``path`` that hold NaN or infinity."""
    bad = [n for n, a in named_arrays
           if a.dtype.kind in "fc" and not bool(B.get_array_module(a).isfinite(a).all())]  # fmt: skip
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ValueError(f"{os.fspath(path)!r}: the weights must be finite, got NaN or infinity "
                         f"in {shown} (the run diverged before this was saved)")  # fmt: skip


def _file_in(folder, name: str, hint: str = "") -> Path:
    """``folder / name``, or a FileNotFoundError saying the checkpoint lacks it (and ``hint``)."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(folder)!r}: the checkpoint has no {name}{hint}")
    return path


# --- saving -----------------------------------------------------------------------------------
def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``out_dir/checkpoints``, oldest first (by step)."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run, or ``None`` when it has none."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def save_checkpoint(
    out_dir: str | os.PathLike,
    step: int,
    model,
    optimizer=None,
    state: dict | None = None,
    tokenizer=None,
    keep_last: int | None = 3,
    files: dict | None = None,
) -> Path:
    """Write a checkpoint for ``step`` atomically and return its folder.

    ``state`` is any JSON-able dict (the trainer's step, schedule and RNG states); ``files`` maps
    more file names to JSON-able data written into the folder (a chat template). The previous
    checkpoint of the same step, if any, is replaced; then only the newest ``keep_last`` are kept.

    Weights or optimizer buffers that hold NaN or infinity raise
    :class:`~minroots.training.integrity.NonFiniteError` and nothing is written; an operating-system
    error (a full disk) is a one-line ``OSError`` naming the checkpoint, the earlier ones untouched.
    """
    step = as_value_error(integer, "save_checkpoint", "step", step, low=0)
    check_finite_state(model, optimizer)
    root = Path(out_dir) / CHECKPOINT_DIR
    final = root / f"step-{int(step):08d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):  # left behind by a crash mid-save
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        save_weights(model, tmp)
        if optimizer is not None:
            optimizer.save_state(tmp / OPTIMIZER)
        if tokenizer is not None and hasattr(tokenizer, "save"):
            tokenizer.save(tmp / TOKENIZER)
        for name, data in (files or {}).items():
            write_json(tmp / name, data)
        write_json(tmp / STATE, {"format": 1, "step": int(step), **(state or {})})
        write_manifest(tmp)  # the checksums of every file above
        for p in tmp.iterdir():  # the tokenizer's file too, whoever wrote it
            fsync_file(p)
        fsync_dir(tmp)
        if final.exists():  # re-saving a step (e.g. after a resume): move the old one aside first
            old = root / f".tmp-old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)  # the commit: the checkpoint now exists, complete
        fsync_dir(root)
    except OSError as exc:
        detail = named_os_error(exc, final)
        raise reworded_os_error(exc, f"save_checkpoint: cannot save step {step} in "
                                f"{os.fspath(root)!r} ({detail}); the earlier checkpoints are "
                                "untouched") from None  # fmt: skip
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if keep_last is not None:
        for old in list_checkpoints(out_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


# --- loading ----------------------------------------------------------------------------------
def resolve_checkpoint(path: str | os.PathLike, verify: bool = True) -> Path:
    """A checkpoint folder from either a checkpoint folder or a run's ``out_dir``.

    With ``verify`` (the default) the files are checked against the checkpoint's manifest
    (:func:`~minroots.training.integrity.verify_checkpoint`). For a run's folder that is its newest
    checkpoint that verifies: each newer one that does not is skipped with a
    :class:`~minroots.training.integrity.CheckpointWarning` saying why. One checkpoint folder that
    does not verify raises :class:`~minroots.training.integrity.CheckpointError` naming the file.
    Raises ``FileNotFoundError`` naming the path when there is no checkpoint there.
    """
    path = Path(path)
    if (path / WEIGHTS).is_file():
        if verify:
            verify_checkpoint(path)
        return path
    if not path.exists():
        raise FileNotFoundError(f"resolve_checkpoint: {os.fspath(path)!r} does not exist")
    if not path.is_dir():
        raise ValueError(f"resolve_checkpoint: {os.fspath(path)!r} is a file, expected a checkpoint "
                         "folder or a run's folder")  # fmt: skip
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(
            f"resolve_checkpoint: {os.fspath(path)!r} holds no checkpoint (expected {WEIGHTS} or a "
            f"{CHECKPOINT_DIR}/step-N folder)"
        )
    if not verify:
        return found[-1]
    errors = []
    for folder in reversed(found):
        try:
            verify_checkpoint(folder)
        except CheckpointError as exc:
            errors.append(exc)
            warnings.warn(f"resolve_checkpoint: skipping {folder.name}: {exc}", CheckpointWarning,
                          stacklevel=1)  # fmt: skip
            continue
        if errors:
            warnings.warn(f"resolve_checkpoint: falling back to {folder.name}, the newest checkpoint "
                          f"of {os.fspath(path)!r} that verifies", CheckpointWarning,
                          stacklevel=1)  # fmt: skip
        return folder
    raise CheckpointError(f"resolve_checkpoint: none of the {len(found)} checkpoints of "
                          f"{os.fspath(path)!r} verifies; the newest: {errors[0]}")  # fmt: skip


def load_checkpoint(path: str | os.PathLike, model=None, optimizer=None) -> dict:
    """Read a checkpoint (a folder, or a run's ``out_dir`` for its newest good one) and return its
    state.

    With ``model`` and ``optimizer`` given, their weights and buffers are loaded in place. The
    returned dict is ``trainer_state.json`` plus ``"path"`` (the checkpoint folder, a str). The
    files are verified first (:func:`resolve_checkpoint`) and the state's step is checked
    (:func:`~minroots.training.integrity.check_state`).
    """
    folder = resolve_checkpoint(path)
    state_path = _file_in(folder, STATE)
    state = check_state(read_json(state_path, "load_checkpoint"), state_path)
    if model is not None:
        load_weights(model, folder)
    if optimizer is not None:
        _file_in(folder, f"{OPTIMIZER}.json", " (no optimizer state)")
        optimizer.load_state(folder / OPTIMIZER)
    state["path"] = os.fspath(folder)
    return state


def load_model(path: str | os.PathLike, dtype=None):
    """Rebuild the model saved in a checkpoint (or a run's latest), ready for generation.

    The class is read from ``config.json`` (``minroots_class``) and looked up in
    :mod:`minroots.nn`, e.g. ``TransformerModel``.
    """
    folder = resolve_checkpoint(path)
    hint = (": it was saved from a model that is not a minroots model, so it cannot be rebuilt "
            "from the files alone")  # fmt: skip
    config = read_json(_file_in(folder, MODEL_CONFIG, hint), "load_model", expect=dict)
    name = config.get("minroots_class", "TransformerModel")
    cls = getattr(nn, name, None) if isinstance(name, str) else None
    if cls is None or not hasattr(cls, "load"):
        raise ValueError(f"load_model: {os.fspath(folder)!r} holds an unknown model class {name!r}")
    model = cls.load(folder, dtype=dtype)
    _check_finite_weights(model.state_dict().items(), folder / WEIGHTS)
    return model


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer saved with a checkpoint (or a run's latest)."""
    hint = " (train with a dataset that has a tokenizer, e.g. minroots.data.TextDataset)"
    return load_tokenizer_file(_file_in(resolve_checkpoint(path), TOKENIZER, hint))
