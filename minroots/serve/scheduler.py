"""The engine in a thread of its own: requests in, events out, and the limits of the queue.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_server.py``.

The HTTP server runs on an event loop (asyncio) that must never wait for the model: while a
step of the model runs, other clients still connect, send their requests and read their
streams. So the :class:`~minroots.serve.engine.Engine` runs in one worker thread, which loops
"take what arrived, step, deliver the events" and sleeps when there is nothing to do. The event
loop and the worker share only a small inbox (submitted and cancelled sequences) behind a lock;
events go back through a callback that the server hands to the event loop
(``loop.call_soon_threadsafe``).

**Limits.** At most ``max_batch`` sequences are decoded together and at most ``max_queue``
more wait for a slot; a request that would go past that is refused at once (HTTP 429, with
``Retry-After``) rather than left waiting without end. Each sequence has ``request_timeout``
seconds from its arrival: one still waiting then ends as ``"timeout"``, one running ends as
``"length"`` with what it has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from minroots.serve.engine import Engine, Event, Sequence
from minroots.validation import integer, real

__all__ = ["Scheduler", "QueueFull"]

log = logging.getLogger("minroots.serve")


class QueueFull(Exception):
    """More sequences than the engine's slots and the queue can hold."""


class Scheduler:
    """Run ``engine`` in a worker thread; :meth:`submit` and :meth:`cancel` from any thread.

    Args:
        engine: the batching engine (its ``max_batch`` slots).
        max_queue: sequences that may wait for a slot beyond those.
        request_timeout: seconds a sequence may take from its arrival to its last token.
    """

    def __init__(self, engine: Engine, max_queue: int = 32, request_timeout: float = 60.0):
        self.engine = engine
        self.max_queue = integer("Scheduler", "max_queue", max_queue, low=0)
        self.request_timeout = real("Scheduler", "request_timeout", request_timeout, low=0,
                                    low_open=True)  # fmt: skip
        self.pending = 0  # submitted sequences that have not ended yet
        self._inbox: list[tuple[str, Sequence]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def capacity(self) -> int:
        """Sequences the server holds at once: decoding plus waiting."""
        return self.engine.max_batch + self.max_queue

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._run, name="minroots-engine", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def submit(self, seqs: list[Sequence], deliver: Callable[[list[Event]], None]) -> None:
        """Queue ``seqs`` (all or none); ``deliver(events)`` is called from the worker thread
        with the events of each step that concern them. Raises :class:`QueueFull` when they do
        not fit."""
        with self._cond:
            if self.pending + len(seqs) > self.capacity:
                raise QueueFull(
                    f"server: full ({self.pending} sequences running or waiting, "
                    f"--max-batch {self.engine.max_batch} + --max-queue {self.max_queue}); "
                    "retry later"
                )
            deadline = self.engine.clock() + self.request_timeout
            for seq in seqs:
                seq.deadline, seq.tag = deadline, deliver
                self._inbox.append(("submit", seq))
            self.pending += len(seqs)
            self._cond.notify()

    def cancel(self, seqs: list[Sequence]) -> None:
        """End ``seqs`` at the next step and free their slots (their client has gone)."""
        with self._cond:
            self._inbox.extend(("cancel", s) for s in seqs)
            self._cond.notify()

    def stats(self) -> dict:
        """Counters for ``GET /health``."""
        e = self.engine
        with self._cond:
            return {"running": e.running, "waiting": len(e.waiting), "pending": self.pending,
                    "max_batch": e.max_batch, "max_queue": self.max_queue, "steps": e.steps,
                    "tokens": e.tokens, "peak_batch": e.peak_batch, "kv_cache_bytes": e.cache.nbytes}  # fmt: skip

    # ------------------------------------------------------------------ the worker thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._inbox and self.engine.idle:
                    self._cond.wait()
                if self._stopping:
                    return
                inbox, self._inbox = self._inbox, []
                failed = []
                for op, seq in inbox:
                    if op == "submit":
                        try:
                            self.engine.submit(seq)
                        except ValueError:  # checked before: a bug, but fail only this one
                            log.exception("minroots serve: a sequence could not be queued")
                            seq.finish_reason = "error"
                            failed.append(Event(seq, None, "", "error"))
                    elif not seq.finished:
                        self.engine.cancel(seq)
                        self.pending -= 1
            try:
                events = failed + self.engine.step()
            except Exception:  # a bug or a broken model: fail these requests, keep serving
                log.exception("minroots serve: a decoding step failed")
                events = failed + [Event(s, None, "", "error") for s in self.engine.abort_all()]
            by_request: dict = {}  # one delivery per request and step, not one per token
            for event in events:
                if event.finish_reason is not None:
                    with self._cond:
                        self.pending -= 1
                by_request.setdefault(event.sequence.tag, []).append(event)
            for deliver, batch in by_request.items():
                deliver(batch)
            time.sleep(0)  # let the event loop (which needs the GIL) send them and take requests
