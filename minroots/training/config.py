r"""``TrainerConfig``: every knob of a training run in one dataclass, readable from a TOML file.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_training_config.py``.

A run is described by plain data, so that it can be written down, compared, saved beside a
checkpoint and read back. The file format is TOML (Python's ``tomllib``)::

    # run.toml
    [train]
    max_steps = 2000
    batch_size = 16
    lr = 1e-3

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run.toml")
>>> with open(path, "w") as f:
...     _ = f.write("[train]\nmax_steps = 2000\nbatch_size = 16\nlr = 1e-3\n")
>>> cfg = TrainerConfig.from_toml(path)              # the [train] table (or the whole file)
>>> cfg.max_steps, cfg.lr
(2000, 0.001)
>>> cfg.replace(max_steps=100).max_steps             # a validated copy
100

Typos are the most common configuration bug, so reading is strict: an unknown key is an error
that suggests the nearest known one (``lrr`` -> ``did you mean 'lr'?``), and a value of the wrong
type names the key, the expected type and what was found (``lr must be a float, got '1e-3'
(str)``). TOML has no ``null``: fields that may be ``None`` are left out of the file instead.

Effective batch: each optimizer update sees ``batch_size * grad_accum_steps`` sequences of
``block_size`` tokens, e.g. ``16 * 4 * 128 = 8192`` tokens per update.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from minroots.validation import check_fields, one_of, real, shown

__all__ = ["TrainerConfig", "load_toml", "SCHEDULES", "DEVICES"]
__all__ += ["PRECISIONS", "COMMUNICATORS"]  # chapter 13's fields, kept apart so merges stay apart

SCHEDULES = ("cosine", "linear", "constant", "inverse_sqrt")
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("float32", "bf16", "fp16")
COMMUNICATORS = ("auto", "mpi", "nccl")


def load_toml(path: str | os.PathLike) -> dict:
    """Read a TOML file into a dict; a missing file or a syntax error names the file.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "run.toml")
    >>> with open(path, "w") as f:
    ...     _ = f.write("[train]\\nmax_steps = 2000\\nlr = 1e-3\\n")
    >>> load_toml(path)
    {'train': {'max_steps': 2000, 'lr': 0.001}}
    >>> load_toml(path + ".missing")
    Traceback (most recent call last):
    FileNotFoundError: load_toml: config file '...run.toml.missing' does not exist
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"load_toml: {path!r} is a folder, expected a TOML file (e.g. run.toml)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_toml: config file {path!r} does not exist")
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"load_toml: {path!r} is not valid TOML ({exc})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"load_toml: {path!r} is not UTF-8 text (byte {exc.start}: "
                             f"{exc.reason})") from None  # fmt: skip
        except RecursionError:
            raise ValueError(f"load_toml: {path!r} nests arrays or tables too deeply to "
                             "read") from None  # fmt: skip


@dataclass
class TrainerConfig:
    """Settings of a training run. The defaults train the baby GPT of chapter 7 on a laptop.

    A *step* is one optimizer update; it averages the gradients of ``grad_accum_steps``
    micro-batches of ``batch_size`` sequences each. Intervals count steps; 0 turns a feature off.
    """

    max_steps: int = 2000  # optimizer updates to train for (ignored when epochs is set)
    epochs: int | None = None  # passes over the dataset's blocks instead of max_steps
    batch_size: int = 16  # sequences per micro-batch
    grad_accum_steps: int = 1  # micro-batches whose gradients are averaged per update
    lr: float = 1e-3  # peak learning rate
    schedule: str = "cosine"  # "cosine", "linear", "constant" or "inverse_sqrt"
    warmup: int = 100  # steps of linear learning-rate warmup
    min_lr: float = 1e-4  # floor of the cosine/linear decay (often lr / 10)
    weight_decay: float = 0.1  # AdamW decay on matrices (never on biases and norm gains)
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW's moment decay rates (0.99: small data)
    clip_norm: float | None = 1.0  # clip the global gradient norm to this (None or 0: off)
    eval_interval: int = 250  # evaluate every this many steps, and after the last (0: never)
    eval_steps: int = 20  # validation batches per evaluation
    log_interval: int = 10  # history record + progress bar every this many steps (0: silent)
    seed: int = 0  # seeds the order of training batches
    out_dir: str | None = "runs/minroots"  # history, loss curve, checkpoints (None: no files)
    save_interval: int = 500  # checkpoint every this many steps (0: only at the end)
    keep_last: int = 3  # checkpoints kept on disk (older ones are deleted)
    device: str = "cpu"  # "cpu" (NumPy), "cuda" (CuPy) or "auto" (CUDA when available)
    debug: bool = False  # detect_anomaly: name the first operation producing NaN/inf (slower)
    overwrite: bool = False  # start afresh in an out_dir that holds another run's checkpoints
    # training at scale (chapter 13): each a no-op at its default
    checkpoint_activations: bool = False  # recompute each block's activations in the backward
    precision: str = "float32"  # "float32", "bf16" or "fp16": matmuls in 16 bits, float32 master
    communicator: str = (
        "auto"  # under mpirun/srun: "auto" (MPI on cpu, NCCL on cuda), "mpi", "nccl"
    )
    comm_timeout: float = 300.0  # seconds a rank waits for the others before stopping with an error
    bucket_mb: float = 25.0  # gradients all-reduced in buckets of this many megabytes

    def __post_init__(self):
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in check_fields(type(self), values).items():
            object.__setattr__(self, key, value)
        where = "TrainerConfig"
        positive = ["max_steps", "batch_size", "grad_accum_steps", "eval_steps", "keep_last"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{where}: {name} must be >= 1, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"{where}: epochs must be >= 1 (or left out), got {self.epochs}")
        for name in ("warmup", "eval_interval", "log_interval", "save_interval", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{where}: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "min_lr", "weight_decay"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{where}: {name} must be a finite number >= 0, got {v}")
        if self.lr == 0:
            raise ValueError(f"{where}: lr must be > 0, got 0")
        if self.min_lr > self.lr:
            raise ValueError(f"{where}: min_lr must be <= lr={self.lr}, got {self.min_lr}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"{where}: betas must both lie in [0, 1), got {list(self.betas)}")
        if self.clip_norm is not None and not (
            math.isfinite(self.clip_norm) and self.clip_norm >= 0
        ):
            raise ValueError(f"{where}: clip_norm must be a number >= 0, got {self.clip_norm}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"{where}: schedule must be one of {', '.join(SCHEDULES)}, got {shown(self.schedule)}"
            )
        if self.schedule == "inverse_sqrt" and self.warmup < 1:
            raise ValueError(f"{where}: the inverse_sqrt schedule needs warmup >= 1")
        if self.device not in DEVICES:
            raise ValueError(
                f"{where}: device must be one of {', '.join(DEVICES)}, got {shown(self.device)}"
            )
        if self.out_dir == "":
            self.out_dir = None
        one_of(where, "precision", self.precision, PRECISIONS)
        one_of(where, "communicator", self.communicator, COMMUNICATORS)
        for name in ("comm_timeout", "bucket_mb"):
            real(where, name, getattr(self, name), low=0, low_open=True)

    # --- reading and writing ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict) -> TrainerConfig:
        """Build from a dict (e.g. a TOML table), rejecting unknown keys and wrong types."""
        return cls(**check_fields(cls, values))

    @classmethod
    def from_toml(cls, path: str | os.PathLike, table: str = "train") -> TrainerConfig:
        """Read the ``[train]`` table of a TOML file, or the whole file when it has no such table."""
        data = load_toml(path)
        values = data.get(table, data)
        try:
            return cls.from_dict(values)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{os.fspath(path)}: {exc}") from None

    def to_dict(self) -> dict:
        """Plain, JSON-able data (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    def replace(self, **changes) -> TrainerConfig:
        """A validated copy with some fields changed (``cfg.replace(max_steps=10)``)."""
        return type(self).from_dict({**self.to_dict(), **changes})
