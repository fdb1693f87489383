r"""Continuous batching: one forward per step over every running sequence, sequences joining and
leaving between steps.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_batching.py``.

Decoding one token of a small model is a handful of matrix-*vector* products: the time goes into
reading the weights, not into arithmetic. Decoding :math:`B` sequences together turns them into
matrix-*matrix* products that read each weight once for all :math:`B` rows, so a step over 16
sequences costs far less than 16 steps over one. The :class:`Engine` does this for requests that
arrive at any time. Each :meth:`Engine.step`:

1. drops the sequences that were cancelled (a client that went away frees its slot at once);
2. **decodes**: one forward of the last token of every running sequence, each in its own slot of
   a :class:`~minroots.serve.slots.SlotCache` at its own position, then one sample per sequence
   with its own settings and its own random generator;
3. **admits** waiting sequences into free slots: each prompt is run once (its *prefill*), which
   gives its first token.

A sequence leaves when it has ``max_tokens`` tokens, samples a stop token, meets a stop string
(its :class:`~minroots.serve.text.TextStream` says so), or runs out of time. Its slot is free for
the next step.

**The same output alone or batched.** A sequence's tokens depend only on its own prompt,
settings and seed: its rows of each forward see only its own keys (the slot's mask), and its
random generator is its own. Alone it runs exactly the steps of
:func:`minroots.generation.generate` with the same seed; batched, the products are computed in
a different order, so the logits can differ in the last bits of float32 (a token can differ only
where two candidates tie to that precision).

**Past the context window.** Once a sequence is ``block_size`` tokens long, its next token needs
the last ``block_size`` tokens at positions ``0 .. block_size - 1``: every cached key has moved,
so (as :func:`~minroots.generation.generate` does) each later token is a full forward of the
window, run for that sequence alone. It gives up its cache slot, which is then free for others.
A model with rotary positions (book chapter 12) needs no full forward: its keys depend only on
distances, so the slot's keys and values move into the sequence's own sliding-window
:class:`~minroots.nn.attention.KVCache` (``model.new_cache()``), and each later token costs one
position, exactly as :func:`~minroots.generation.generate` continues such a model.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from minroots import backend as B
from minroots.autograd import no_grad
from minroots.generation import sample_next
from minroots.serve.slots import SlotCache
from minroots.serve.text import TextStream
from minroots.validation import integer, positive_int, real

__all__ = ["SamplingParams", "Sequence", "Event", "Engine"]


@dataclass
class SamplingParams:
    """How one sequence is generated (the OpenAI request's fields)."""

    max_tokens: int = 16  # tokens to generate at most
    temperature: float = 1.0  # 0: greedy
    top_k: int | None = None  # sample among the k most likely tokens only
    top_p: float | None = None  # sample among the most likely tokens holding probability p
    seed: int | None = None  # fixes the sampling (None: the server's own generator)
    stop_ids: tuple = ()  # token ids that end the sequence (not part of its text)

    def __post_init__(self):
        where = "SamplingParams"
        positive_int(where, "max_tokens", self.max_tokens)
        real(where, "temperature", self.temperature, low=0)
        if self.top_k is not None:
            integer(where, "top_k", self.top_k, low=1)
        if self.top_p is not None:
            real(where, "top_p", self.top_p, low=0, high=1, low_open=True)
        if self.seed is not None:
            integer(where, "seed", self.seed, low=0)


@dataclass(eq=False)
class Sequence:
    """One sequence to generate (one choice of one request) and its state in the engine."""

    prompt: list  # token ids
    params: SamplingParams = field(default_factory=SamplingParams)
    text: TextStream | None = None  # turns its tokens into text and finds stop strings
    deadline: float | None = None  # engine-clock time after which it ends ("length")
    tag: object = None  # whatever the caller needs to route its events
    tokens: list = field(default_factory=list)  # generated ids
    row: int | None = None  # its slot while it has one
    finish_reason: str | None = None  # "stop", "length", "cancelled", "timeout", "error"
    caches: list | None = None  # past block_size, a rotary model's own sliding-window caches

    def __post_init__(self):
        self.prompt = [int(i) for i in self.prompt]
        if not self.prompt:
            raise ValueError("Sequence: prompt must hold at least one token, got none")
        seed = self.params.seed
        self.rng = np.random.default_rng(seed) if seed is not None else None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class Event:
    """What one step did for one sequence: a new ``token`` (or None), the ``text`` it completes,
    and ``finish_reason`` once the sequence has ended."""

    sequence: Sequence
    token: int | None
    text: str
    finish_reason: str | None


class Engine:
    """Decode many sequences together with a model that has ``hidden_states(idx, caches)``.

    Args:
        model: a decoder-only model (:class:`minroots.nn.TransformerModel`), put in eval mode.
        max_batch: sequences decoded together (the cache slots).
        clock: the time source of the deadlines.

    Not thread-safe: one thread calls :meth:`submit`, :meth:`cancel` and :meth:`step` (the
    server's :class:`~minroots.serve.scheduler.Scheduler` does, behind a lock).
    """

    def __init__(self, model, max_batch: int = 8, clock: Callable[[], float] = time.monotonic):
        self.model = model.eval()
        self.max_batch = positive_int("Engine", "max_batch", max_batch)
        self.block_size = model.config.block_size
        self.clock = clock
        self.cache = SlotCache(len(model.h), self.max_batch, self.block_size)
        self.rows: list[Sequence] = []  # sequences with a cache slot: sequence i has row i
        self.windowed: list[Sequence] = []  # sequences past block_size (no slot, full forwards)
        # rotary positions: past block_size a sequence keeps its keys in a sliding window
        self.sliding = model.new_cache()[0].window is not None
        self.waiting: deque[Sequence] = deque()
        self.rng = B.rng("numpy")  # for sequences without a seed
        self.steps = self.tokens = 0  # counters, for /health and the benchmarks
        self.peak_batch = 0  # the most sequences one decoding forward has held
        xp = B.get_array_module(model.wte.weight.data)
        self._asarray = xp.asarray

    # ------------------------------------------------------------------ what callers use
    def submit(self, seq: Sequence) -> None:
        """Queue ``seq``; a later :meth:`step` admits it when a slot is free."""
        if len(seq.prompt) > self.block_size:
            raise ValueError(
                f"Engine: the prompt has {len(seq.prompt)} tokens, more than the context "
                f"(block_size={self.block_size})"
            )
        self.waiting.append(seq)

    def cancel(self, seq: Sequence) -> None:
        """End ``seq`` now (its client went away); its slot is free for the next step."""
        if not seq.finished:
            self._finish(seq, "cancelled")

    @property
    def running(self) -> int:
        """Sequences being decoded (with a slot or past the window)."""
        return len(self.rows) + len(self.windowed)

    @property
    def idle(self) -> bool:
        return not (self.rows or self.windowed or self.waiting)

    def step(self) -> list[Event]:
        """One round: drop the finished, decode the running, admit the waiting."""
        events: list[Event] = []
        self._drop_finished()
        now = self.clock()
        for seq in self.rows + self.windowed:
            if seq.deadline is not None and now > seq.deadline:
                events.append(self._end(seq, "length"))  # out of time: ends like max_tokens
        self._drop_finished()
        if self.rows:
            self._decode_rows(events)
        for seq in list(self.windowed):
            self._decode_window(seq, events)
        self._drop_finished()
        self._admit(events)
        self._drop_finished()
        self.steps += 1
        return events

    def abort_all(self) -> list[Sequence]:
        """End every sequence (after a failed step) and empty the slots; returns them."""
        seqs = [s for s in self.rows + self.windowed + list(self.waiting) if not s.finished]
        for seq in seqs:
            self._finish(seq, "error")
        for seq in self.rows:
            seq.row = None
        self.rows, self.windowed = [], []
        self.waiting.clear()
        self.cache.lengths[:] = 0
        return seqs

    # ------------------------------------------------------------------ the three kinds of forward
    def _logits(self, ids, caches=None):
        h = self.model.hidden_states(self._asarray(ids), caches)  # (B, T, C)
        return B.to_numpy(self.model.lm_head(h[:, -1:, :]).data[:, 0, :])  # (B, V)

    def _decode_rows(self, events: list[Event]) -> None:
        n = len(self.rows)
        self.peak_batch = max(self.peak_batch, n)
        last = np.array([[s.tokens[-1]] for s in self.rows], dtype=np.int64)  # (B, 1)
        with no_grad():
            logits = self._logits(last, self.cache.views(0, n))  # (B, V)
        self.cache.advance(0, n, 1)
        for i, seq in enumerate(list(self.rows)):
            events.append(self._sampled(seq, logits[i : i + 1]))

    def _decode_window(self, seq: Sequence, events: list[Event]) -> None:
        with no_grad():
            if seq.caches is not None:  # a sliding window: one new position
                logits = self._logits(np.array([seq.tokens[-1:]], dtype=np.int64), seq.caches)
            else:  # learned positions: the last block_size tokens again from position 0
                window = (seq.prompt + seq.tokens)[-self.block_size :]
                logits = self._logits(np.array([window], dtype=np.int64))
        events.append(self._sampled(seq, logits))

    def _sliding_caches(self, row: int) -> list:
        """Slot ``row``'s keys and values copied into a fresh sliding-window cache per layer."""
        caches, n = self.model.new_cache(), int(self.cache.lengths[row])
        for layer, c in enumerate(caches):
            c.append(
                self.cache.k[layer][row : row + 1, :, :n], self.cache.v[layer][row : row + 1, :, :n]
            )
        return caches

    def _admit(self, events: list[Event]) -> None:
        while self.waiting and self.running < self.max_batch:
            seq = self.waiting.popleft()
            if seq.finished:  # cancelled while it waited
                continue
            if seq.deadline is not None and self.clock() > seq.deadline:
                events.append(self._end(seq, "timeout"))
                continue
            seq.row = row = len(self.rows)
            self.rows.append(seq)
            self.cache.clear(row)
            with no_grad():
                logits = self._logits(
                    np.array([seq.prompt], dtype=np.int64), self.cache.views(row, row + 1)
                )
            self.cache.advance(row, row + 1, len(seq.prompt))
            events.append(self._sampled(seq, logits))

    # ------------------------------------------------------------------ sampling and endings
    def _sampled(self, seq: Sequence, logits) -> Event:
        """Sample ``seq``'s next token from ``logits`` ``(1, V)`` and decide whether it ends."""
        p = seq.params
        rng = seq.rng if seq.rng is not None else self.rng
        token = int(sample_next(logits, p.temperature, p.top_k, p.top_p, rng)[0])
        self.tokens += 1
        seq.tokens.append(token)
        if token in p.stop_ids:
            return self._end(seq, "stop", token)
        text, stopped = seq.text.push(token) if seq.text is not None else ("", False)
        if stopped:
            return self._end(seq, "stop", token, text)
        if len(seq.tokens) >= p.max_tokens:
            return self._end(seq, "length", token, text)
        if seq.row is not None and len(seq.prompt) + len(seq.tokens) > self.block_size:
            if self.sliding:  # its keys go on in a window of its own
                seq.caches = self._sliding_caches(seq.row)
            self._release(seq)  # its next token needs a full forward or its own window
            self.windowed.append(seq)
        return Event(seq, token, text, None)

    def _end(self, seq: Sequence, reason: str, token=None, text: str = "") -> Event:
        if reason in ("stop", "length") and seq.text is not None:
            text += seq.text.flush()
        self._finish(seq, reason)
        return Event(seq, token, text, reason)

    def _finish(self, seq: Sequence, reason: str) -> None:
        seq.finish_reason = reason
        seq.caches = None  # a finished sequence's own window is freed at once

    def _drop_finished(self) -> None:
        for seq in [s for s in self.rows if s.finished]:
            self._release(seq)
        self.windowed = [s for s in self.windowed if not s.finished]

    def _release(self, seq: Sequence) -> None:
        """Free ``seq``'s slot; the last busy row moves into it, so busy rows stay at the front."""
        row, last = seq.row, len(self.rows) - 1
        if row != last:
            self.cache.move(last, row)
            self.rows[row] = self.rows[last]
            self.rows[row].row = row
        else:
            self.cache.clear(row)
        self.rows.pop()
        seq.row = None
