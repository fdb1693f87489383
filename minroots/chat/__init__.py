"""Chat: conversations as token ids with role markers and a loss mask.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``); tests in ``tests/test_chat_template.py``.

- ``template.py``: :class:`ChatTemplate`, which renders a conversation (a list of
  ``{"role", "content"}`` messages) into ids and a loss mask, and is saved with a fine-tuned
  checkpoint as ``chat_template.json`` beside its tokenizer.
- ``session.py``: :class:`ChatSession`, a conversation kept inside the context window, with
  streamed replies (``minroots chat``).
"""

from minroots.chat.session import ChatSession
from minroots.chat.template import (
    CHAT_TEMPLATE_FILE,
    DEFAULT_MARKERS,
    MASK_MODES,
    ROLES,
    ChatTemplate,
    check_messages,
)

__all__ = [
    "ChatTemplate",
    "ChatSession",
    "check_messages",
    "ROLES",
    "MASK_MODES",
    "DEFAULT_MARKERS",
    "CHAT_TEMPLATE_FILE",
]
