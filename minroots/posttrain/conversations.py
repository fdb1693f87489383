"""Conversations from files: JSONL of messages or of prompt/response pairs, checked line by line.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``); tests in ``tests/test_posttrain_sft.py``.

Each non-empty line of a JSONL file is one conversation, in one of three shapes::

    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    {"prompt": "Hi", "response": "Hello"}
    {"source": "Hi", "target": "Hello"}          (the bundled pair corpora: dialogue_en)

The last two become a user message and an assistant reply. A bundled pair corpus is named without
a path (``"dialogue_en"``). A line that is not JSON, has none of these shapes, or holds a bad
message raises a ``ValueError`` naming the file and the line.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "chats.jsonl")
>>> with open(path, "w") as f:
...     _ = f.write('{"prompt": "Hi", "response": "Hello"}\\n{"prompt": "Hi"}\\n')
>>> load_conversations(path)
Traceback (most recent call last):
ValueError: .../chats.jsonl line 2: expected "messages", "prompt" and "response", or "source" and "target", got the keys ['prompt']
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from minroots.chat.template import check_messages
from minroots.data.corpus import corpus_path, list_corpora, load_pairs
from minroots.persistence import read_jsonl

__all__ = ["Conversation", "load_conversations", "split_conversations", "pairs_to_conversations"]


@dataclass
class Conversation:
    """One conversation: its messages, and where it came from (``"file line 3"``) for errors."""

    messages: list[dict]
    origin: str = ""


def pairs_to_conversations(pairs, origin: str = "pairs") -> list[Conversation]:
    """``[(prompt, response), ...]`` as one user turn and one assistant reply each."""
    return [Conversation([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                         f"{origin} item {k}") for k, (p, r) in enumerate(pairs)]  # fmt: skip


def _messages(record, where: str) -> list[dict]:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {record!r}")
    if "messages" in record:
        return check_messages(record["messages"], where)
    for prompt, reply in (("prompt", "response"), ("source", "target")):
        if prompt in record and reply in record:
            return check_messages(
                [{"role": "user", "content": record[prompt]},
                 {"role": "assistant", "content": record[reply]}], where)  # fmt: skip
    raise ValueError(
        f'{where}: expected "messages", "prompt" and "response", or "source" and "target", got '
        f"the keys {sorted(record)}"
    )


def load_conversations(source) -> list[Conversation]:
    """Read conversations from a JSONL file, a bundled pair corpus name, or a list.

    A list may hold message lists or ``(prompt, response)`` pairs.
    """
    if isinstance(source, (list, tuple)):
        out = []
        for k, item in enumerate(source):
            where = f"conversations[{k}]"
            if isinstance(item, Conversation):
                out.append(item)
            elif (
                isinstance(item, (list, tuple))
                and len(item) == 2
                and all(isinstance(s, str) for s in item)
            ):
                out.append(Conversation(pairs_to_conversations([item])[0].messages, where))
            else:
                out.append(Conversation(check_messages(item, where), where))
        if not out:
            raise ValueError("load_conversations: source holds no conversations")
        return out
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "load_conversations: source must be a JSONL path, a bundled corpus name or a list, "
            f"got {type(source).__name__}"
        )
    if isinstance(source, str) and source in list_corpora("pairs"):
        return pairs_to_conversations(load_pairs(source), source)
    kind, path = corpus_path(source)
    label = os.fspath(source)
    if not str(path).endswith(".jsonl"):
        return pairs_to_conversations(load_pairs(source), label)  # a .tsv pair file
    out = [
        Conversation(_messages(record, where), where) for where, record in read_jsonl(path, label)
    ]
    if not out:
        raise ValueError(f"{label}: no conversations (an empty file?)")
    return out


def split_conversations(conversations, val_fraction: float = 0.1, seed: int = 0):
    """``(train, held_out)``: shuffled with ``default_rng(seed)``, then the last part held out.

    Pairs that share a prompt (``dialogue_en`` has several answers to "What is AI?") may land on
    both sides; the held-out *answers* are still unseen.
    """
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(
            f"split_conversations: val_fraction must be in (0, 1), got {val_fraction!r}"
        )
    order = np.random.default_rng(seed).permutation(len(conversations))
    n_val = max(1, int(round(len(order) * val_fraction)))
    if n_val >= len(order):
        raise ValueError(
            f"split_conversations: {len(order)} conversations are too few to hold out "
            f"{val_fraction}"
        )
    train = [conversations[i] for i in sorted(order[n_val:])]
    held = [conversations[i] for i in sorted(order[:n_val])]
    return train, held
