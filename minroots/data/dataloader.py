"""Batches in epochs, in an order that can be saved and resumed exactly.

Book chapter 7, "Training" (``book/07_training.md``).

A :class:`DataLoader` walks a dataset (anything with ``len`` and ``dataset[i]``) in batches. With
``shuffle=True`` the order of epoch ``e`` is a permutation drawn from its own generator,

.. code-block:: python

    order = np.random.default_rng([seed, e]).permutation(len(dataset))

so the order of any epoch depends only on ``(seed, e)``: no generator state has to be saved,
and ``(epoch, position)`` — how many examples of that order were already served — is all it
takes to resume. :meth:`DataLoader.state_dict` returns exactly that as a JSON-able dict, and a
loader that loads it serves the same remaining batches as the one that saved it.

Worked example: 5 examples, ``batch_size=2``. Without shuffling, one epoch is
``[0, 1], [2, 3], [4]``; with ``drop_last=True`` it is ``[0, 1], [2, 3]`` (the short batch is
dropped, never served). Every example appears exactly once per epoch (``drop_last`` aside).

Batches are made by ``collate_fn`` (default: the dataset's own ``collate`` if it has one, else
:func:`default_collate`, which stacks equal-shape items into NumPy arrays).
"""

from __future__ import annotations

import numpy as np

from minroots.validation import shown

__all__ = ["DataLoader", "default_collate"]


def default_collate(items: list):
    """Stack a list of examples into a batch.

    Arrays (or lists of numbers) of one shape stack into one array with a leading batch axis;
    integers become ``int64``. Tuples are collated field by field, dicts key by key.

    Example: ``[(array([1, 2]), array([2, 3])), (array([4, 5]), array([5, 6]))]`` ->
    ``(array([[1, 2], [4, 5]]), array([[2, 3], [5, 6]]))``.
    """
    first = items[0]
    if isinstance(first, tuple):
        return tuple(default_collate([it[k] for it in items]) for k in range(len(first)))
    if isinstance(first, dict):
        return {key: default_collate([it[key] for it in items]) for key in first}
    arrays = [np.asarray(it) for it in items]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(
            f"default_collate: items have different shapes {sorted(shapes)}; pad them with a collate_fn "
            "(e.g. minroots.data.collate_pairs)"
        )
    batch = np.stack(arrays)
    if np.issubdtype(batch.dtype, np.integer):
        batch = batch.astype(np.int64, copy=False)
    return batch


class DataLoader:
    """Iterate a dataset in batches, epoch after epoch, resumable.

    Args:
        dataset: a sequence of examples (``len`` and ``dataset[i]``).
        batch_size: examples per batch.
        shuffle: draw a new permutation each epoch (from ``seed`` and the epoch number).
        seed: an ``int``; the permutation of epoch ``e`` comes from ``default_rng([seed, e])``.
        drop_last: skip the last batch of an epoch when it is smaller than ``batch_size``.
        collate_fn: turns a list of examples into a batch (see the module docstring).

    ``for batch in loader`` serves the rest of the current epoch and then moves to the next;
    :meth:`next_batch` serves batches forever (for training by steps).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        collate_fn=None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(
                f"DataLoader: batch_size must be an int, got {type(batch_size).__name__}"
            )
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be at least 1, got {batch_size}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int, got {shown(seed)}")
        n = len(dataset)
        if n == 0:
            raise ValueError("DataLoader: dataset is empty; expected at least one example")
        if drop_last and n < batch_size:
            raise ValueError(
                f"DataLoader: dataset has {n} examples, fewer than batch_size={batch_size}, so drop_last=True "
                "would leave no batch"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn or getattr(dataset, "collate", None) or default_collate
        self.epoch = 0
        self.position = 0  # examples of this epoch's order already served
        self._order: np.ndarray | None = None
        self._order_epoch = -1
        self._stream = None

    # --- order --------------------------------------------------------------------------------
    def _num_served(self) -> int:
        """Examples served per epoch: all of them, or whole batches only with ``drop_last``."""
        n = len(self.dataset)
        return n - n % self.batch_size if self.drop_last else n

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order of examples in epoch ``epoch`` (depends only on ``seed`` and ``epoch``)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def _current_order(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            self._order, self._order_epoch = self.epoch_order(self.epoch), self.epoch
        return self._order

    # --- iteration ----------------------------------------------------------------------------
    def __iter__(self):
        """Serve the remaining batches of the current epoch, then advance to the next epoch."""
        end = self._num_served()
        if self.position >= end:  # a finished epoch that was not yet rolled over
            self.epoch, self.position = self.epoch + 1, 0
        while self.position < end:
            order = self._current_order()
            idx = order[self.position : min(self.position + self.batch_size, end)]
            # Count the batch as served before handing it out: a state_dict() taken while the
            # caller holds this batch resumes with the next one.
            self.position += len(idx)
            yield self.collate_fn([self.dataset[int(i)] for i in idx])
        self.epoch, self.position = self.epoch + 1, 0

    def next_batch(self):
        """The next batch, crossing epoch boundaries as needed (never raises StopIteration)."""
        if self._stream is None:
            self._stream = iter(self)
        try:
            return next(self._stream)
        except StopIteration:
            self._stream = iter(self)
            return next(self._stream)

    # --- resuming -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-able position in the data order: ``epoch``, ``position``, ``seed`` and the setup.

        Example: ``{"epoch": 2, "position": 64, "seed": 0, "shuffle": True, "batch_size": 32,
        "drop_last": False, "num_examples": 1000}``.
        """
        return {
            "epoch": int(self.epoch),
            "position": int(self.position),
            "seed": self.seed,
            "shuffle": self.shuffle,
            "batch_size": self.batch_size,
            "drop_last": self.drop_last,
            "num_examples": len(self.dataset),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`; the dataset size must match the saved one.

        ``seed``, ``shuffle`` and ``drop_last`` are taken from the state (they define the
        order); ``batch_size`` may differ (the position counts examples, not batches).
        """
        if not isinstance(state, dict):
            raise TypeError(
                f"DataLoader.load_state_dict: state must be a dict, got {type(state).__name__}"
            )
        missing = {"epoch", "position", "seed"} - set(state)
        if missing:
            raise ValueError(f"DataLoader.load_state_dict: state is missing keys {sorted(missing)}")
        n = state.get("num_examples", len(self.dataset))
        if n != len(self.dataset):
            raise ValueError(
                f"DataLoader.load_state_dict: state was saved for {n} examples but the dataset has "
                f"{len(self.dataset)}"
            )
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= len(self.dataset):
            raise ValueError(f"DataLoader.load_state_dict: epoch and position must be in range, got "
                             f"epoch={epoch}, position={position}")  # fmt: skip
        self.seed = int(state["seed"])
        self.shuffle = bool(state.get("shuffle", self.shuffle))
        self.drop_last = bool(state.get("drop_last", self.drop_last))
        self.epoch, self.position = epoch, position
        self._order_epoch = -1
        self._stream = None

    def __repr__(self) -> str:
        return (
            f"DataLoader(examples={len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"epoch={self.epoch}, position={self.position})"
        )
