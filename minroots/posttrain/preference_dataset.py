"""Preference data: (prompt, chosen reply, rejected reply) triples as pairs of masked rows.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.4); tests in ``tests/test_posttrain_dpo.py``.

A JSONL line is ``{"prompt": ..., "chosen": ..., "rejected": ...}``; a bad line raises an error
naming the file and line. Each triple is rendered twice with the chat template, as a user turn
and an assistant reply, and ``dataset[i]`` is ``(x, y)`` of shape ``(2, block_size)``: the
chosen row, then the rejected one, with targets only on the reply (``mask="last"``), so that
:func:`~minroots.posttrain.dpo.sequence_logprobs` sums the log-probability of each reply.

**A meaningful set without labels.** :func:`cut_reply_preferences` turns prompt/response pairs
into preferences for *complete* replies: the chosen reply is the real one, ending in ``.``, ``!``
or ``?``; the rejected one is the same reply cut off after half of its words::

    What is AI?   chosen   "AI is the field of science which concerns itself with building ..."
                  rejected "AI is the field of science which"

A model fine-tuned on dialogue often prefers the cut reply (fewer tokens, so a larger sequence
probability); after DPO it should prefer finished sentences.
"""

from __future__ import annotations

import os

import numpy as np

from minroots.chat.template import ChatTemplate
from minroots.persistence import read_jsonl
from minroots.posttrain.sft_dataset import TemplatedData, rows_to_examples
from minroots.validation import one_of, positive_int

__all__ = ["PreferenceDataset", "load_preferences", "cut_reply_preferences"]


def _check_triple(t, where: str) -> tuple[str, str, str]:
    if isinstance(t, dict):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in t]
        if missing:
            raise ValueError(
                f'{where}: expected "prompt", "chosen" and "rejected", missing {missing}'
            )
        t = (t["prompt"], t["chosen"], t["rejected"])
    if not isinstance(t, (list, tuple)) or len(t) != 3:
        raise ValueError(f"{where}: expected a (prompt, chosen, rejected) triple, got {t!r}")
    for name, s in zip(("prompt", "chosen", "rejected"), t, strict=True):
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"{where}: {name} must be non-empty text, got {s!r}")
    if t[1] == t[2]:
        raise ValueError(f"{where}: chosen and rejected are the same text")
    return tuple(t)


def load_preferences(source) -> list[tuple[str, str, str, str]]:
    """``[(prompt, chosen, rejected, origin), ...]`` from a JSONL file or a list of triples."""
    if isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"load_preferences: no file {label!r}")
        out = [
            (*_check_triple(record, where), where) for where, record in read_jsonl(source, label)
        ]
    else:
        out = [(*_check_triple(t, f"preferences[{k}]"), f"preferences[{k}]")
               for k, t in enumerate(source)]  # fmt: skip
    if not out:
        raise ValueError("load_preferences: no preference triples")
    return out


def cut_reply_preferences(pairs, min_words: int = 4) -> list[tuple[str, str, str]]:
    """Prefer complete replies: ``(prompt, reply, reply cut after half its words)`` for each
    pair whose reply has at least ``min_words`` words and ends in ``.``, ``!`` or ``?``.

    >>> cut_reply_preferences([("Hi", "Hello, how are you doing today?"), ("Bye", "Bye.")])
    [('Hi', 'Hello, how are you doing today?', 'Hello, how are')]
    """
    out = []
    for prompt, reply in pairs:
        words = reply.split()
        if len(words) < min_words or not reply.rstrip().endswith((".", "!", "?")):
            continue
        cut = " ".join(words[: len(words) // 2]).rstrip(",;:-")
        out.append((prompt, reply, cut))
    return out


class PreferenceDataset(TemplatedData):
    """Preference triples as ``(x, y)`` items of shape ``(2, block_size)`` (chosen, rejected).

    Args:
        triples: a JSONL path or a list of ``(prompt, chosen, rejected)`` (or dicts).
        template: the :class:`~minroots.chat.ChatTemplate` of the model being tuned.
        block_size: the model's context.
        too_long, unencodable: as in :class:`~minroots.posttrain.SFTDataset` (``"error"``
            by default; ``"skip"`` leaves a triple out and counts it in ``report``).
    """

    def __init__(self, triples, template: ChatTemplate, block_size: int,
                 too_long: str = "error", unencodable: str = "error"):  # fmt: skip
        where = "PreferenceDataset"
        self.block_size = positive_int(where, "block_size", block_size)
        one_of(where, "too_long", too_long, ("error", "skip"))
        one_of(where, "unencodable", unencodable, ("error", "skip"))
        self.template = template
        self.triples = load_preferences(triples)
        self.report = {"triples": len(self.triples), "kept": 0, "skipped_too_long": 0,
                       "skipped_unencodable": 0}  # fmt: skip
        self._items = []
        for prompt, chosen, rejected, origin in self.triples:
            rows = []
            try:
                for reply in (chosen, rejected):
                    rows.append(template.render([{"role": "user", "content": prompt},
                                                 {"role": "assistant", "content": reply}],
                                                mask="last"))  # fmt: skip
            except ValueError as exc:
                if unencodable == "error":
                    raise ValueError(f"{origin}: {exc}") from None
                self.report["skipped_unencodable"] += 1
                continue
            longest = max(len(ids) for ids, _ in rows)
            if longest > block_size + 1:
                if too_long == "error":
                    raise ValueError(
                        f"{origin}: a reply with its prompt is {longest} ids, longer than the "
                        f"context ({block_size + 1} ids); pass too_long='skip' to leave it out"
                    )
                self.report["skipped_too_long"] += 1
                continue
            (xw, yw), (xl, yl) = rows_to_examples(rows, block_size)
            self._items.append((np.stack([xw, xl]), np.stack([yw, yl])))
            self.report["kept"] += 1
        if not self._items:
            raise ValueError(f"{where}: no triple is left ({self.report})")

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int):
        return self._items[i]

    def __repr__(self) -> str:
        return f"PreferenceDataset({self.report})"
