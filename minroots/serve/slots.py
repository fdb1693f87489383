r"""Key/value cache slots: one preallocated cache row per sequence, for sequences of different
lengths decoded together.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_batching.py``.

A :class:`~minroots.nn.attention.KVCache` holds a batch of sequences that all have the same
length. A server decodes requests that arrived at different times, so its sequences have
different lengths. :class:`SlotCache` keeps, for every layer, two buffers

.. math::  K, V \in \mathbb{R}^{S \times H \times L \times d}

(:math:`S` slots, :math:`H` heads, :math:`L` = ``block_size`` positions, :math:`d` head size) and
one length :math:`\ell_s` per slot. Row :math:`s` holds the keys and values of positions
:math:`0 .. \ell_s - 1` of the sequence in that slot; the rest of the row is unused.

**Memory.** The cache costs :math:`2 \cdot n_\text{layer} \cdot S \cdot H L d \cdot` (bytes per
number), whether the slots are full or not: for the default model (3 layers, :math:`C = Hd = 128`,
:math:`L = 64`, float32) that is 196,608 bytes per slot, 3 MiB for 16 slots, more than the
model's own 2.4 MB of weights. This is why a server caps the number of slots (``--max-batch``).

**One decoding step over rows** :math:`0..B-1` (the busy slots are kept at the front, see
:meth:`SlotCache.move`). Each row feeds one new token at its own position :math:`\ell_s`:

- the position embedding is looked up per row (``length`` is an array ``(B,)``, which
  :meth:`minroots.nn.gpt.TransformerModel.hidden_states` and the position layers accept);
- the new key and value of row :math:`s` are written at :math:`\ell_s`, then every row attends
  over positions :math:`0 .. \max_s \ell_s`, with the keys it does not have hidden by a key
  padding mask: key :math:`j` is visible to row :math:`s` when :math:`j \le \ell_s`.

Worked example: two slots of lengths 3 and 1 feed one token each; the keys span 4 positions and
the mask is ``[[T, T, T, T], [T, T, F, F]]``. Rows of one length need no mask at all, and a row
alone then runs exactly the operations of :func:`minroots.generation.generate`.

A masked key gets weight :math:`e^{-\infty} = 0`, so the unused part of a row changes nothing
(it only has to hold finite numbers, which it does: the buffers start at zero and only ever
receive keys and values). Several new tokens at once (a prompt's *prefill*) need rows of one
length, because the causal mask lines up the queries with the last keys.

**Rotary models** (positions applied inside attention instead of added at the input, book
chapter 12): the rotation takes the per-row positions too. :func:`minroots.nn.functional.rope.rope`
accepts ``cache.position`` as an array ``(B,)`` and rotates row :math:`s`'s queries and keys by
the angles of positions :math:`\ell_s .. \ell_s + T - 1`. Nothing else here depends on how
positions are encoded; grouped keys and values (fewer key heads than query heads) just give
:math:`H` the key-head count.
"""

from __future__ import annotations

import numpy as np

from minroots import backend as B
from minroots.validation import integer, positive_int

__all__ = ["SlotCache", "SlotView"]


class SlotCache:
    """Key/value caches for ``slots`` sequences of up to ``capacity`` positions, ``n_layer`` layers.

    >>> cache = SlotCache(n_layer=1, slots=2, capacity=8)
    >>> cache.lengths.tolist()
    [0, 0]

    The buffers are allocated by the first :meth:`SlotView.append` (it knows the heads, head
    size, dtype and device). :meth:`views` gives the ``caches`` argument of
    ``model.hidden_states`` for a range of rows; :meth:`advance` then records the new lengths.
    """

    def __init__(self, n_layer: int, slots: int, capacity: int):
        self.n_layer = positive_int("SlotCache", "n_layer", n_layer)
        self.slots = positive_int("SlotCache", "slots", slots)
        self.capacity = positive_int("SlotCache", "capacity", capacity)
        self.lengths = np.zeros(self.slots, dtype=np.int64)  # positions held by each slot
        self.k: list = [None] * self.n_layer  # per layer: (S, H, L, d) once allocated
        self.v: list = [None] * self.n_layer

    def views(self, start: int, stop: int) -> list[SlotView]:
        """One :class:`SlotView` per layer over rows ``start .. stop - 1``."""
        integer("SlotCache.views", "start", start, low=0, high=self.slots)
        integer("SlotCache.views", "stop", stop, low=start + 1, high=self.slots)
        offsets = self.lengths[start:stop].copy()  # every layer sees the lengths before the step
        return [SlotView(self, layer, start, stop, offsets) for layer in range(self.n_layer)]

    def advance(self, start: int, stop: int, t: int) -> None:
        """Record that rows ``start .. stop - 1`` now hold ``t`` more positions (after a forward)."""
        self.lengths[start:stop] += t

    def move(self, src: int, dst: int) -> None:
        """Copy slot ``src``'s positions into slot ``dst`` (every layer) and empty ``src``.

        Called when the sequence in ``dst`` has finished: the last busy row moves into the gap,
        so the busy rows stay ``0 .. B-1`` and one step reads them as a view, with no gather.
        """
        n = int(self.lengths[src])
        for k, v in zip(self.k, self.v, strict=True):
            if k is not None and n:
                k[dst, :, :n] = k[src, :, :n]
                v[dst, :, :n] = v[src, :, :n]
        self.lengths[dst], self.lengths[src] = n, 0

    def clear(self, row: int) -> None:
        """Empty one slot (its old keys stay in memory but are never read again)."""
        self.lengths[row] = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers (0 before the first forward)."""
        return sum(int(a.nbytes) for a in self.k + self.v if a is not None)

    def _allocate(self, layer: int, k) -> None:
        xp = B.get_array_module(k)
        shape = (self.slots, k.shape[1], self.capacity, k.shape[3])  # (S, H, L, d)
        self.k[layer] = xp.zeros(shape, dtype=k.dtype)
        self.v[layer] = xp.zeros(shape, dtype=k.dtype)


class SlotView:
    """Rows ``start .. stop - 1`` of one layer of a :class:`SlotCache`, for one forward.

    It has what the model's forward-with-cache asks of a cache: ``length`` and ``position`` (here
    one offset per row, ``(B,)``: a slot holds every position of its sequence, so the two agree),
    ``window`` (None: not a sliding window), ``key_padding_mask(t)`` and ``append(k, v)``.
    """

    window = None  # a slot holds positions 0 .. length - 1, never a sliding window

    def __init__(self, cache: SlotCache, layer: int, start: int, stop: int, offsets: np.ndarray):
        self.cache, self.layer, self.start, self.stop = cache, layer, start, stop
        self.length = offsets  # (B,) positions already held by each row
        self.position = offsets  # (B,) the position of each row's next token (rotary offsets)

    def key_padding_mask(self, t: int):
        """``(B, max(length) + t)``, True where a row has a key; ``None`` when the rows have one
        length (then every key is real and attention runs unmasked)."""
        lo, hi = int(self.length.min()), int(self.length.max())
        if lo == hi:
            return None
        keys = np.arange(hi + t)[None, :] < (self.length + t)[:, None]  # (B, Tk)
        k = self.cache.k[self.layer]
        return keys if k is None else B.get_array_module(k).asarray(keys)

    def append(self, k, v):
        """Write ``k, v`` ``(B, H, T, d)`` at each row's own position; return the keys and values
        of positions ``0 .. max(length) + T - 1`` of these rows, ``(B, H, Tk, d)`` views."""
        c, layer = self.cache, self.layer
        b, t = k.shape[0], k.shape[2]
        if b != self.stop - self.start:
            raise ValueError(
                f"SlotView.append: k must have {self.stop - self.start} rows (B), got {b}"
            )
        end = int(self.length.max()) + t
        if end > c.capacity:
            raise ValueError(
                f"SlotView.append: positions up to {end} exceed the capacity {c.capacity}"
            )
        if c.k[layer] is None:
            c._allocate(layer, k)
        kb, vb = c.k[layer], c.v[layer]
        rows = slice(self.start, self.stop)
        if t == 1:  # one token per row, each at its own position
            xp = B.get_array_module(kb)
            r = xp.arange(self.start, self.stop)
            at = xp.asarray(self.length)
            kb[r, :, at] = k[:, :, 0]  # (B, H, d)
            vb[r, :, at] = v[:, :, 0]
        else:
            if int(self.length.min()) != end - t:
                raise ValueError(
                    "SlotView.append: several tokens at once need rows of one length (prefill "
                    f"one sequence at a time), got lengths {self.length.tolist()}"
                )
            kb[rows, :, end - t : end] = k
            vb[rows, :, end - t : end] = v
        return kb[rows, :, :end], vb[rows, :, :end]
