r"""Streaming text out of token ids: whole UTF-8 characters only, and stop strings cut off.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_protocol.py``.

A server sends each new piece of text as soon as the token that ends it is sampled. Two things
must be held back for a moment:

- **half a character.** A byte-level BPE token can end in the middle of a multi-byte UTF-8
  character (``"é"`` is the two bytes ``C3 A9``, which may be two tokens). Decoding the ids so
  far then ends in U+FFFD, the replacement character; the text is sent only once it decodes to
  whole characters, so no chunk ever splits one.
- **the start of a stop string.** With ``stop=["\n\n"]`` a text that ends in ``"\n"`` might be the
  start of the stop string, which must never be sent. The longest end of the pending text that
  begins some stop string waits for the next token; when a stop string is complete, the text
  before it is sent and generation ends (``finish_reason="stop"``).

Worked example, ``stop=["END"]``, tokens decoding to ``"ab"``, ``"cE"``, ``"N"``, ``"Dx"``:
the pieces sent are ``"ab"``, ``"c"`` (``"E"`` waits), ``""`` (``"EN"`` waits), then ``"END"``
is complete: nothing more is sent and the stream stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["TextStream"]

REPLACEMENT = "\ufffd"


class TextStream:
    """Turn tokens into text pieces, one :meth:`push` per token.

    Args:
        decode: ids -> text (a tokenizer's ``decode``, or a chat template's ``decode_reply``).
        stop: strings that end the text (not included in it).

    >>> stream = TextStream(lambda ids: "".join("abcEND"[i] for i in ids), stop=["END"])
    >>> [stream.push(i) for i in [0, 1, 3, 4, 5, 2]]
    [('a', False), ('b', False), ('', False), ('', False), ('', True), ('', True)]
    >>> stream.text
    'ab'
    """

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()):
        self.decode = decode
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.done = 0  # ids[:done] decode to whole characters, all either sent or held
        self.held = ""  # decoded text not sent yet (it may start a stop string)
        self.text = ""  # everything sent so far
        self.stopped = False

    def push(self, token: int) -> tuple[str, bool]:
        """Add one token; return ``(text to send now, whether a stop string has appeared)``."""
        if self.stopped:
            return "", True
        self.ids.append(int(token))
        new = self.decode(self.ids[self.done :])
        if new.endswith(REPLACEMENT):  # maybe half a character: wait for the next token
            return "", False
        self.done = len(self.ids)
        return self._release(self.held + new)

    def flush(self) -> str:
        """At the end of generation: whatever is still held (an unfinished character is sent as
        U+FFFD; a partial stop string as the text it is)."""
        if self.stopped:
            return ""
        rest = self.decode(self.ids[self.done :]) if self.done < len(self.ids) else ""
        self.done = len(self.ids)
        piece, _ = self._release(self.held + rest, final=True)
        return piece

    def _release(self, pending: str, final: bool = False) -> tuple[str, bool]:
        cut = min((i for i in (pending.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            piece, self.held = pending[:cut], ""
        else:
            keep = 0 if final else self._stop_prefix(pending)
            piece, self.held = pending[: len(pending) - keep], pending[len(pending) - keep :]
        self.text += piece
        return piece, self.stopped

    def _stop_prefix(self, text: str) -> int:
        """Length of the longest end of ``text`` that is the beginning of a stop string."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), best, -1):
                if s.startswith(text[-n:]):
                    best = n
                    break
        return best
