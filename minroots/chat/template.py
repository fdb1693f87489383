r"""The chat template: a conversation as token ids, with role markers and a loss mask.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.2); tests in ``tests/test_chat_template.py``.

A conversation is a list of messages ``{"role": "system" | "user" | "assistant", "content": str}``.
Each message becomes its role's marker, the ids of its content, and the end marker::

    <|user|> W h a t   i s   A I ? <|end|> <|assistant|> A   b r a n c h ... <|end|>

The markers are tokens added after the tokenizer's vocabulary
(:class:`~minroots.tokenizers.added_tokens.AddedTokensTokenizer`): content is encoded by the base
tokenizer, so a user who *types* ``<|assistant|>`` gets ordinary characters, never the marker.

**The loss mask** says which ids the model is trained to predict. Fine-tuning an assistant means
learning the replies, not the users' words, so by default (``mask="assistant"``) only the content
of assistant messages and the end marker that closes them are ``True`` (the end marker: the model
must learn when to stop). ``mask="last"`` keeps only the last assistant message, ``mask="all"``
every id. With a mask :math:`m_t` the fine-tuning loss is the mean negative log-likelihood over
the masked-in positions,

.. math::  L_m(\theta) = -\frac{1}{\sum_t m_t} \sum_t m_t \ln p_\theta(w_t \mid w_{<t}),

which the GPT computes when the targets of the other positions are ``-100`` (``ignore_index``).

**A generation prompt** (``add_generation_prompt=True``) ends the ids with ``<|assistant|>``: the
model's continuation is the reply, and generation stops at any of :attr:`ChatTemplate.stop_ids`.

Worked example (hand-checkable): the tokenizer knows the characters ``"ahiy"`` (ids 0 to 3), so
the markers get ids 4 (system), 5 (user), 6 (assistant) and 7 (end):

>>> from minroots.tokenizers import CharTokenizer
>>> chat = ChatTemplate.extend(CharTokenizer.from_text("ahiy"))
>>> ids, mask = chat.render([{"role": "user", "content": "hi"},
...                         {"role": "assistant", "content": "ya"}])
>>> ids
[5, 1, 2, 7, 6, 3, 0, 7]
>>> [int(m) for m in mask]               # the reply "ya" and its end marker
[0, 0, 0, 0, 0, 1, 1, 1]
>>> chat.render([{"role": "user", "content": "hi"}], add_generation_prompt=True)[0]
[5, 1, 2, 7, 6]
>>> chat.decode_reply([3, 0, 7, 2])      # stops at the end marker
'ya'

A fine-tuned checkpoint stores its template as ``chat_template.json`` beside ``tokenizer.json``;
:meth:`ChatTemplate.load` reads both back (``None`` for a checkpoint without a template).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from minroots.persistence import write_json
from minroots.tokenizers.added_tokens import AddedTokensTokenizer
from minroots.tokenizers.base import load as load_tokenizer_file
from minroots.validation import describe, did_you_mean, one_of

__all__ = [
    "ChatTemplate",
    "check_messages",
    "ROLES",
    "MASK_MODES",
    "DEFAULT_MARKERS",
    "CHAT_TEMPLATE_FILE",
]

ROLES = ("system", "user", "assistant")
MASK_MODES = ("assistant", "last", "all")
# role -> marker string; "end" closes every message. Their order is the order of their ids.
DEFAULT_MARKERS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>",
                   "end": "<|end|>"}  # fmt: skip
CHAT_TEMPLATE_FILE = "chat_template.json"
TOKENIZER_FILE = "tokenizer.json"


def check_messages(messages, where: str = "ChatTemplate.render") -> list[dict]:
    """``messages`` if it is a non-empty list of ``{"role", "content"}`` dicts with a known role
    and non-empty text; otherwise a one-line error naming the message.

    A message may also carry a ``"name"`` (a str: the speaker's name in OpenAI's chat API, which
    ``minroots serve`` passes on); the markers name roles, not speakers, so it is not rendered.

    >>> check_messages([{"role": "robot", "content": "hi"}])
    Traceback (most recent call last):
    ValueError: ChatTemplate.render: messages[0]["role"] must be one of 'system', 'user', 'assistant', got 'robot'
    """
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError(
            f"{where}: messages must be a non-empty list of {{'role', 'content'}} dicts, "
            f"got {messages!r}"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise TypeError(f"{where}: messages[{i}] must be a dict, got {describe(m)}")
        extra = sorted(set(m) - {"role", "content", "name"})
        if extra or "role" not in m or "content" not in m:
            hint = did_you_mean(extra[0], ["role", "content", "name"]) if extra else ""
            raise ValueError(
                f"{where}: messages[{i}] must have the keys 'role' and 'content' (and maybe "
                f"'name'), got {sorted(m)}{hint}"
            )
        if not isinstance(m.get("name", ""), str):
            raise TypeError(
                f'{where}: messages[{i}]["name"] must be a str, got {describe(m["name"])}'
            )
        one_of(where, f'messages[{i}]["role"]', m["role"], ROLES)
        content = m["content"]
        if not isinstance(content, str):
            raise TypeError(
                f'{where}: messages[{i}]["content"] must be a str, got {describe(content)}'
            )
        if not content.strip():
            raise ValueError(
                f'{where}: messages[{i}]["content"] must be non-empty text, got {content!r}'
            )
    return list(messages)


class ChatTemplate:
    """Render conversations with role markers that are tokens of their own.

    Args:
        tokenizer: a tokenizer that knows the markers as tokens (an
            :class:`~minroots.tokenizers.added_tokens.AddedTokensTokenizer`; build one with
            :meth:`extend`).
        markers: role -> marker string, plus ``"end"`` (default ``DEFAULT_MARKERS``).

    Attributes:
        stop_ids: the ids that end an assistant turn: the end marker first, then the role markers
            (a model that skips the end marker and starts another turn stops there too).
    """

    def __init__(self, tokenizer, markers: dict | None = None):
        markers = dict(DEFAULT_MARKERS if markers is None else markers)
        missing = [k for k in DEFAULT_MARKERS if k not in markers]
        if missing or len(markers) != len(DEFAULT_MARKERS):
            raise ValueError(
                f"ChatTemplate: markers must name exactly {', '.join(DEFAULT_MARKERS)}, got "
                f"{sorted(markers)}"
            )
        added = getattr(tokenizer, "added_tokens", {})
        lacking = [s for s in markers.values() if s not in added]
        if lacking:
            raise ValueError(
                f"ChatTemplate: the tokenizer lacks the chat markers {lacking} as tokens of their "
                "own; extend it with ChatTemplate.extend(tokenizer) (fine-tune with minroots "
                "finetune, which adds them)"
            )
        self.tokenizer = tokenizer
        self.markers = markers
        self.ids = {role: added[s] for role, s in markers.items()}  # role or "end" -> id
        self.end_id = self.ids["end"]
        self.stop_ids: list[int] = [self.end_id] + [self.ids[r] for r in ROLES]
        self._marker_ids = set(self.ids.values())

    @classmethod
    def extend(cls, tokenizer, markers: dict | None = None) -> ChatTemplate:
        """A template over ``tokenizer`` with the markers added as new ids after its vocabulary.

        A model fine-tuned with it needs ``len(markers)`` more embedding rows
        (:func:`minroots.posttrain.resize.resize_token_embeddings`).
        """
        markers = dict(DEFAULT_MARKERS if markers is None else markers)
        if isinstance(tokenizer, AddedTokensTokenizer):  # already extended: add what is missing
            new = [s for s in markers.values() if s not in tokenizer.added_tokens]
            if not new:
                return cls(tokenizer, markers)
            tokenizer = AddedTokensTokenizer(tokenizer.base, tokenizer.added + new)
        else:
            tokenizer = AddedTokensTokenizer(tokenizer, list(markers.values()))
        return cls(tokenizer, markers)

    @property
    def vocab_size(self) -> int:
        """Ids of the tokenizer with its markers: the model's ``vocab_size`` must be at least this."""
        return self.tokenizer.vocab_size

    # --- rendering ----------------------------------------------------------------------------
    def encode_content(self, text: str, where: str = "ChatTemplate.render") -> list[int]:
        """The ids of a message's text (never a marker id)."""
        try:
            return list(self.tokenizer.encode(text))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def render(self, messages: list[dict], *, add_generation_prompt: bool = False,
               mask: str = "assistant") -> tuple[list[int], list[bool]]:  # fmt: skip
        """``(ids, loss_mask)`` of a conversation; see the module docstring for the layout.

        ``mask``: ``"assistant"`` (every assistant message's content and end marker), ``"last"``
        (the last assistant message only) or ``"all"`` (every id).
        """
        messages = check_messages(messages)
        one_of("ChatTemplate.render", "mask", mask, MASK_MODES)
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        ids: list[int] = []
        keep: list[bool] = []
        for i, m in enumerate(messages):
            body = self.encode_content(m["content"], f"ChatTemplate.render: messages[{i}]")
            learn = mask == "all" or (
                m["role"] == "assistant" and (mask == "assistant" or i == last)
            )
            ids += [self.ids[m["role"]], *body, self.end_id]
            keep += [mask == "all"] + [learn] * (len(body) + 1)  # the marker, then text + end
        if add_generation_prompt:
            ids.append(self.ids["assistant"])
            keep.append(mask == "all")
        return ids, keep

    def render_text(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        """The rendered conversation as text (markers written out), for reading."""
        ids, _ = self.render(messages, add_generation_prompt=add_generation_prompt)
        return self.tokenizer.decode(ids)

    def decode_reply(self, ids) -> str:
        """The text of an assistant reply: ``ids`` up to the first stop id, markers removed."""
        out = []
        for i in ids:
            i = int(i)
            if i in self.stop_ids:
                break
            if i not in self._marker_ids:
                out.append(i)
        return self.tokenizer.decode(out)

    # --- saving and loading -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON of ``chat_template.json``: the markers and their ids."""
        return {"format": 1, "markers": dict(self.markers), "ids": dict(self.ids),
                "vocab_size": self.vocab_size}  # fmt: skip

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``chat_template.json`` and ``tokenizer.json`` into ``folder`` (atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(folder / TOKENIZER_FILE)
        write_json(folder / CHAT_TEMPLATE_FILE, self.to_dict())

    @classmethod
    def load(cls, checkpoint_dir: str | os.PathLike) -> ChatTemplate | None:
        """The template saved in a checkpoint folder (or a run's latest checkpoint), or ``None``
        when it has none. Its tokenizer must hold the markers at the saved ids."""
        from minroots.training.checkpoint import resolve_checkpoint  # the heavier import, late

        path = Path(checkpoint_dir)
        folder = path if (path / CHAT_TEMPLATE_FILE).is_file() else resolve_checkpoint(path)
        file = folder / CHAT_TEMPLATE_FILE
        if not file.is_file():
            return None
        where = f"checkpoint {os.fspath(folder)!r}"
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            markers, ids = data["markers"], data["ids"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{where}: {CHAT_TEMPLATE_FILE} is not a chat template ({exc!r})"
            ) from None
        tok_file = folder / TOKENIZER_FILE
        if not tok_file.is_file():
            raise FileNotFoundError(f"{where}: has a {CHAT_TEMPLATE_FILE} but no {TOKENIZER_FILE}")
        tokenizer = load_tokenizer_file(tok_file)
        try:
            template = cls(tokenizer, markers)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if template.ids != ids:
            raise ValueError(
                f"{where}: {CHAT_TEMPLATE_FILE} gives the markers ids {ids} but its tokenizer has "
                f"{template.ids}"
            )
        return template

    def __repr__(self) -> str:
        return f"ChatTemplate(markers={list(self.markers.values())}, vocab_size={self.vocab_size})"
