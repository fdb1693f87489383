"""A chat session: the conversation so far, kept inside the context window, and streamed replies.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.6); tests in ``tests/test_chat_cli.py``.

Each reply is generated from the whole conversation rendered with a generation prompt
(:meth:`~minroots.chat.template.ChatTemplate.render`), token by token with the KV cache of chapter 9, until
one of the template's stop ids or ``max_new_tokens``. A model attends over at most
``block_size`` tokens, so before each reply the **oldest turns are dropped** until the rendered
conversation plus room for the reply fits (a system message, if any, is kept);
:meth:`ChatSession.fit` returns how many messages went, so the caller can say so.

>>> from minroots.nn import TransformerModel
>>> from minroots.tokenizers import CharTokenizer
>>> chat = ChatTemplate.extend(CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz ?"))
>>> model = TransformerModel(vocab_size=chat.vocab_size, block_size=32, n_layer=1, n_embd=16)
>>> session = ChatSession(model, chat, max_new_tokens=8)   # 8 tokens kept free for a reply
>>> session.ask("how are you")                  # 14 tokens with the markers: nothing dropped
0
>>> session.messages.append({"role": "assistant", "content": "fine"})
>>> session.ask("and what is new")              # 37 + 8 > 32: the oldest message goes
1
>>> [m["role"] for m in session.messages]
['assistant', 'user']
"""

from __future__ import annotations

from collections.abc import Iterator

from minroots.chat.template import ChatTemplate, check_messages
from minroots.generation import stream
from minroots.validation import integer

__all__ = ["ChatSession"]


class ChatSession:
    """A conversation with a model that has a :class:`ChatTemplate`.

    Args:
        model: a :class:`~minroots.nn.TransformerModel` (its ``config.block_size`` is the window).
        template: the checkpoint's chat template.
        system: an optional system message, kept at the start of every rendering.
        max_new_tokens, temperature, top_k, top_p: sampling of each reply (chapter 9).
        reserve: tokens kept free for the reply when fitting the conversation (default: the
            smaller of ``max_new_tokens`` and half the context).
    """

    def __init__(self, model, template: ChatTemplate, system: str | None = None,
                 max_new_tokens: int = 200, temperature: float = 0.8, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None,
                 reserve: int | None = None):  # fmt: skip
        self.model, self.template = model, template
        self.block_size = int(model.config.block_size)
        integer("ChatSession", "max_new_tokens", max_new_tokens, low=1)
        self.max_new_tokens = max_new_tokens
        self.sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
        if reserve is None:
            reserve = min(max_new_tokens, self.block_size // 2)
        self.reserve = integer("ChatSession", "reserve", reserve, low=0, high=self.block_size - 2)
        self.system = None if system is None else check_messages(
            [{"role": "system", "content": system}], "ChatSession")[0]  # fmt: skip
        self.messages: list[dict] = []

    def reset(self) -> None:
        """Forget the conversation (the system message stays)."""
        self.messages = []

    def _rendered(self, messages=None) -> list[int]:
        head = [self.system] if self.system else []
        messages = self.messages if messages is None else messages
        return self.template.render(head + messages, add_generation_prompt=True)[0]

    def fit(self) -> int:
        """Drop the oldest messages until the conversation and ``reserve`` tokens fit in the
        context; return how many were dropped."""
        dropped = 0
        while len(self.messages) > 1 and len(self._rendered()) + self.reserve > self.block_size:
            self.messages.pop(0)
            dropped += 1
        return dropped

    def ask(self, text: str) -> int:
        """Add a user message and fit the conversation; return how many old messages were
        dropped. A message too long for the context on its own raises ``ValueError`` (and the
        conversation is left as it was)."""
        message = check_messages([{"role": "user", "content": text}], "chat")[0]
        n = len(self._rendered([message]))
        if n + self.reserve > self.block_size:
            raise ValueError(
                f"chat: the message is {n} tokens with its markers, but the context holds "
                f"{self.block_size} with {self.reserve} kept for the reply; write a shorter one"
            )
        self.messages.append(message)
        return self.fit()

    def stream_reply(self) -> Iterator[str]:
        """Yield the reply to the conversation piece by piece as it is generated; the reply joins
        the conversation when it is complete."""
        prompt = self._rendered()
        room = self.block_size - len(prompt)
        ids: list[int] = []
        shown = ""
        for token in stream(self.model, prompt, min(self.max_new_tokens, room),
                            **self.sampling):  # fmt: skip
            if token in self.template.stop_ids:
                break
            ids.append(int(token))
            piece = self.template.decode_reply(ids)
            if piece.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                continue
            yield piece[len(shown) :]
            shown = piece
        reply = self.template.decode_reply(ids)
        if reply.strip():  # an empty reply (an immediate stop) is not a message
            self.messages.append({"role": "assistant", "content": reply})

    def reply(self, text: str) -> Iterator[str]:
        """:meth:`ask` then :meth:`stream_reply` (dropped messages are not reported)."""
        self.ask(text)
        yield from self.stream_reply()
