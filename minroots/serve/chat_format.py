r"""Chat messages to a prompt: the checkpoint's chat template when it has one, else plain text.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_protocol.py``. Chat templates are chapter 10 (``book/10_applications.md``).

A language model continues text; a chat is a list of messages ``{"role": ..., "content": ...}``.
A model fine-tuned for chat (``minroots finetune``) saves a chat template with its checkpoint
(:class:`minroots.chat.template.ChatTemplate`), which renders the messages with the special
tokens it was trained on and knows the token that ends a reply. :func:`load_chat_format` uses it
when the checkpoint has one.

**The plain format**, for every other model, writes the conversation as a play script, the form
of the bundled Shakespeare corpus (a speaker's name in capitals and a colon, the speech on the
next lines, a blank line after it)::

    SYSTEM:
    You are a helpful assistant.

    USER:
    Good morrow!

    ASSISTANT:

and the model continues after ``"ASSISTANT:\n"``. Its reply ends at the first blank line, where
the next speech would begin (the default stop string ``"\n\n"``), or at ``max_tokens``. A
message's optional ``name`` replaces its role as the speaker (``{"role": "user", "name": "Romeo",
...}`` is spoken by ``ROMEO``). A model trained on plays answers in verse; that is the point: the
format is the corpus's own dialogue, not an instruction the model was taught.
"""

from __future__ import annotations

import os

__all__ = ["ChatFormat", "PlainChatFormat", "TemplateChatFormat", "load_chat_format", "ROLES"]

ROLES = ("system", "developer", "user", "assistant")
PLAIN_STOP = "\n\n"


class ChatFormat:
    """The interface the server uses: ``prompt_ids(messages)``, ``decode(ids)``, ``stop_ids``
    (token ids that end a reply) and ``stop`` (strings that end a reply unless the request gives
    its own)."""

    name = "base"
    stop_ids: tuple = ()
    stop: tuple = ()

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError


class PlainChatFormat(ChatFormat):
    """The play-script format above, for a model without a chat template.

    >>> from minroots.tokenizers import CharTokenizer
    >>> tok = CharTokenizer.from_text("ABCDEFGHIJKLMNOPQRSTUVWXYZ:!? \\nabcdefghijklmnopqrstuvwxyz")
    >>> fmt = PlainChatFormat(tok)
    >>> print(fmt.render([{"role": "user", "content": "Good morrow!"}]))
    USER:
    Good morrow!
    <BLANKLINE>
    ASSISTANT:
    <BLANKLINE>
    """

    name = "plain"
    stop = (PLAIN_STOP,)

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def render(self, messages: list[dict]) -> str:
        """The prompt text: each message as a speech, then the assistant's name."""
        parts = [f"{_speaker(m)}:\n{m['content'].strip()}\n\n" for m in messages]
        return "".join(parts) + "ASSISTANT:\n"

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return self.tokenizer.encode(self.render(messages))

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids))


def _speaker(message: dict) -> str:
    name = message.get("name")
    return (name if name else message["role"]).upper()


class TemplateChatFormat(ChatFormat):
    """A checkpoint's chat template (``ChatTemplate``: ``render``, ``stop_ids``, ``decode_reply``).

    The prompt is the template's rendering with the generation prompt; the reply ends at one of
    its ``stop_ids``. A reply is streamed piece by piece, so its text comes from the tokenizer's
    ``decode`` of the new tokens (which joins exactly for characters and byte-level BPE);
    ``decode_reply`` is the template's form for a whole reply, used when a tokenizer is missing.
    """

    name = "template"

    def __init__(self, template, tokenizer=None):
        self.template, self.tokenizer = template, tokenizer
        self.stop_ids = tuple(int(i) for i in template.stop_ids)

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        plain = [{k: m[k] for k in ("role", "content", "name") if k in m} for m in messages]
        ids, _ = self.template.render(plain, add_generation_prompt=True)
        return [int(i) for i in ids]

    def decode(self, ids) -> str:
        if self.tokenizer is not None:
            return self.tokenizer.decode(list(ids))
        return self.template.decode_reply(list(ids))


def load_chat_format(checkpoint_dir, tokenizer) -> ChatFormat:
    """The checkpoint's chat template if it has one (``minroots.chat.template``), else the plain
    format."""
    try:
        from minroots.chat.template import ChatTemplate
    except ModuleNotFoundError as exc:  # a minroots without chat templates
        if exc.name not in ("minroots.chat", "minroots.chat.template"):
            raise
        return PlainChatFormat(tokenizer)
    template = ChatTemplate.load(os.fspath(checkpoint_dir))
    if template is None:
        return PlainChatFormat(tokenizer)
    return TemplateChatFormat(template, tokenizer)
