"""What the ``Trainer`` needs of its model and of its data, written down once as protocols.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_training_trainer.py``.

A :class:`~minroots.training.Trainer` trains anything that has the methods of
:class:`TrainableModel`; every :class:`minroots.nn.Module` whose ``forward(x, y)`` returns
``(logits, loss)`` has them all (``TransformerModel``, ``Seq2SeqTransformer``, a model of your
own). The Trainer checks this once, when it is built, and then calls the methods without asking
again:

>>> from minroots import TransformerModel
>>> isinstance(TransformerModel(vocab_size=10, block_size=8, n_layer=1, n_embd=8), TrainableModel)
True
>>> check_model(object())
Traceback (most recent call last):
TypeError: Trainer: model must be callable as model(x, y) and have parameters(), ... got object, which lacks __call__, parameters, ...

The data is either a :class:`BatchDataset`, which draws random blocks itself (nanoGPT's way:
:class:`minroots.data.TextDataset`), or an :class:`ExampleDataset`, a sequence of ``(x, y)``
examples that a :class:`~minroots.data.DataLoader` batches in epochs; text, a bundled corpus name
or a file path becomes a ``TextDataset`` cut into the model's ``block_size`` (:func:`as_dataset`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from minroots.data import TextDataset

__all__ = [
    "TrainableModel",
    "BatchDataset",
    "ExampleDataset",
    "check_model",
    "model_sizes",
    "as_dataset",
    "check_fits",
]


@runtime_checkable
class TrainableModel(Protocol):
    """The model interface the Trainer relies on (every ``minroots.nn.Module`` provides it).

    Optionally, a ``config`` with ``vocab_size`` and ``block_size`` (as ``TransformerConfig``):
    the Trainer then cuts text into blocks of that size and checks that the data fits the model.
    """

    training: bool  # True in training mode (dropout on), False after eval()

    def __call__(self, x, y) -> Any:
        """``x``, ``y``: int arrays ``(B, T)``; returns ``(logits, loss)`` (or ``loss``), where
        ``loss`` is a scalar Tensor, the mean over the batch, that ``backward()`` differentiates."""

    def parameters(self) -> Iterator:
        """The Parameters to train, each once (the default optimizer's and the clipping's)."""

    def named_parameters(self) -> Iterator[tuple[str, Any]]:
        """``(name, Parameter)`` pairs: names for weight-decay groups and for error messages."""

    def train(self, mode: bool = True) -> Any:
        """Switch to training mode (dropout on); called before the loop."""

    def eval(self) -> Any:
        """Switch to evaluation mode (dropout off); called around each evaluation."""

    def to(self, device: str) -> Any:
        """Move the parameters to ``"cpu"`` or ``"cuda"`` in place (same Parameter objects)."""

    def state_dict(self) -> dict:
        """Name -> array of every weight, for checkpoints."""

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> Any:
        """Load the arrays of :meth:`state_dict` in place, for resuming."""


# The protocol's members, to name what a model lacks (typing.get_protocol_members is 3.13+).
_MODEL_MEMBERS = [
    name for name in vars(TrainableModel) if name == "__call__" or not name.startswith("_")
] + list(TrainableModel.__annotations__)


@runtime_checkable
class BatchDataset(Protocol):
    """Data that draws its own random batches: ``get_batch("train" | "val", b, rng)``.

    Optionally ``split(name)`` (a held-out set's ``"val"`` part), ``vocab_size``, ``block_size``
    and ``tokenizer`` (saved with checkpoints), as :class:`minroots.data.TextDataset` has.
    """

    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator) -> tuple:
        """``(x, y)``: int arrays ``(batch_size, T)``, ``y`` being ``x`` shifted by one token."""


@runtime_checkable
class ExampleDataset(Protocol):
    """Data as a sequence of ``(x, y)`` examples, batched by a :class:`minroots.data.DataLoader`."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple: ...


def check_model(model) -> TrainableModel:
    """``model`` if it is a :class:`TrainableModel`; otherwise a ``TypeError`` naming what it lacks."""
    if isinstance(model, TrainableModel):
        return model
    missing = [name for name in _MODEL_MEMBERS if not hasattr(model, name)]
    raise TypeError(
        "Trainer: model must be callable as model(x, y) and have parameters(), "
        "named_parameters(), train(), eval(), to(), state_dict(), load_state_dict() and "
        f"training, as every minroots.nn.Module has; got {type(model).__name__}, which lacks "
        f"{', '.join(missing)}"
    )


def model_sizes(model) -> tuple[int | None, int | None]:
    """``(vocab_size, block_size)`` from the model's optional ``config`` (``None`` if unknown)."""
    config = getattr(model, "config", None)
    vocab, block = getattr(config, "vocab_size", None), getattr(config, "block_size", None)
    return (vocab if isinstance(vocab, int) else None), (block if isinstance(block, int) else None)


def as_dataset(dataset, model, seed: int, name: str):
    """A dataset object from what the user passed: text, a corpus name or path, or a dataset."""
    if isinstance(dataset, (str, os.PathLike)):
        block_size = model_sizes(model)[1]
        if block_size is None:
            raise ValueError(
                f"Trainer: {name} is text or a path, which needs the model's config.block_size "
                "to cut it into blocks; pass a minroots.data.TextDataset instead"
            )
        return TextDataset(dataset, block_size=block_size, seed=seed)
    if isinstance(dataset, (BatchDataset, ExampleDataset)):
        return dataset
    raise TypeError(
        f"Trainer: {name} must be text, a corpus name, a path, or a dataset with get_batch() or "
        f"len() and [i] (e.g. minroots.data.TextDataset), got {type(dataset).__name__}"
    )


def check_fits(dataset, model, name: str) -> None:
    """The dataset's vocabulary and block size must fit the model's."""
    vocab, block = model_sizes(model)
    ds_vocab = getattr(dataset, "vocab_size", None)
    if isinstance(ds_vocab, int) and vocab is not None and ds_vocab > vocab:
        raise ValueError(
            f"Trainer: the {name} has {ds_vocab} token ids but the model's vocab_size is {vocab}; "
            f"build the model with vocab_size={ds_vocab}"
        )
    ds_block = getattr(dataset, "block_size", None)
    if isinstance(ds_block, int) and block is not None and ds_block > block:
        raise ValueError(
            f"Trainer: the {name} serves blocks of {ds_block} tokens but the model's block_size "
            f"is {block}"
        )
