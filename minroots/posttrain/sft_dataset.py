r"""Supervised fine-tuning data: conversations rendered, masked, and packed into blocks.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.2); tests in ``tests/test_posttrain_sft.py``.

Every conversation is rendered by the :class:`~minroots.chat.ChatTemplate` into ids :math:`w` and
a loss mask :math:`m`. A row of the dataset is one *block*: the model reads :math:`x = w_{0..T-1}`
and is scored on the targets :math:`y_t = w_{t+1}` where :math:`m_{t+1}` is true, and ``-100``
(``ignore_index``) elsewhere, so the GPT's loss is the masked mean NLL of chapter 10:

.. code-block:: text

    ids     <|user|> h  i  <|end|> <|assistant|> y  a  <|end|>
    mask       F     F  F     F          F       T  T     T
    x       <|user|> h  i  <|end|> <|assistant|> y  a
    y          -100 -100 -100 -100       y       a  <|end|>      (then padding: x 0, y -100)

**Packing** (default): whole conversations are laid one after another in a row while they fit
(``block_size + 1`` ids), so short conversations do not waste a block on padding; a conversation
is never cut across rows. Without packing each conversation has a row of its own.

**What does not fit is never cut silently.** A conversation longer than the context
(``block_size + 1`` ids) raises by default, naming it and its longest turn;
``too_long="skip"`` leaves it out and ``"truncate"`` keeps its first ``block_size + 1`` ids,
both counted in ``SFTDataset.report``. Text the tokenizer cannot encode (a character the
character tokenizer never saw) raises the same way, or is skipped and counted with
``unencodable="skip"``.

``dataset[i]`` is ``(x, y)``, two ``int64`` arrays of shape ``(block_size,)``: a
:class:`~minroots.training.Trainer` trains on it unchanged (the targets carry the mask), saving
the template with every checkpoint (:attr:`TemplatedData.checkpoint_files`).
"""

from __future__ import annotations

import numpy as np

from minroots.chat.template import CHAT_TEMPLATE_FILE, MASK_MODES, ChatTemplate
from minroots.posttrain.conversations import load_conversations
from minroots.validation import one_of, positive_int

__all__ = ["SFTDataset", "TemplatedData", "IGNORE_INDEX", "rows_to_examples"]

IGNORE_INDEX = -100
_TOO_LONG = ("error", "skip", "truncate")
_UNENCODABLE = ("error", "skip")


def rows_to_examples(rows, block_size: int, pad_id: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` of each row ``(ids, mask)``: inputs and masked next-token targets, padded.

    >>> [tuple(a.tolist()) for a in rows_to_examples([([5, 6, 7], [False, False, True])], 4)[0]]
    [(5, 6, 0, 0), (-100, 7, -100, -100)]
    """
    out = []
    for ids, mask in rows:
        ids, mask = np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=bool)
        n = len(ids) - 1
        x = np.full(block_size, pad_id, dtype=np.int64)
        y = np.full(block_size, IGNORE_INDEX, dtype=np.int64)
        x[:n] = ids[:-1]
        y[:n] = np.where(mask[1:], ids[1:], IGNORE_INDEX)
        out.append((x, y))
    return out


class TemplatedData:
    """What a dataset rendered with a chat template gives the Trainer (shared by
    :class:`SFTDataset` and :class:`~minroots.posttrain.preference_dataset.PreferenceDataset`)."""

    template: ChatTemplate

    @property
    def vocab_size(self) -> int:
        """Ids of the tokenizer with its chat markers."""
        return self.template.vocab_size

    @property
    def tokenizer(self):
        """The tokenizer with the markers, saved as ``tokenizer.json`` with each checkpoint."""
        return self.template.tokenizer

    @property
    def checkpoint_files(self) -> dict:
        """JSON files the Trainer writes into every checkpoint: the chat template."""
        return {CHAT_TEMPLATE_FILE: self.template.to_dict()}


class SFTDataset(TemplatedData):
    """Conversations as masked ``(x, y)`` blocks for supervised fine-tuning.

    Args:
        conversations: a JSONL path, a bundled pair corpus name (``"dialogue_en"``) or a list
            (see :func:`~minroots.posttrain.conversations.load_conversations`).
        template: the :class:`~minroots.chat.ChatTemplate` (its tokenizer holds the markers).
        block_size: tokens the model reads per row (its context).
        mask: ``"assistant"`` (default), ``"last"`` or ``"all"`` (:meth:`~minroots.chat.template.ChatTemplate.render`).
        packing: lay several whole conversations in one row (default) or one per row.
        too_long: ``"error"`` (default), ``"skip"`` or ``"truncate"`` for conversations longer
            than ``block_size + 1`` ids.
        unencodable: ``"error"`` (default) or ``"skip"`` for text the tokenizer cannot encode.
    """

    def __init__(self, conversations, template: ChatTemplate, block_size: int,
                 mask: str = "assistant", packing: bool = True, too_long: str = "error",
                 unencodable: str = "error"):  # fmt: skip
        where = "SFTDataset"
        if not isinstance(template, ChatTemplate):
            raise TypeError(
                f"{where}: template must be a ChatTemplate, got {type(template).__name__}"
            )
        self.block_size = positive_int(where, "block_size", block_size)
        self.mask = one_of(where, "mask", mask, MASK_MODES)
        self.too_long = one_of(where, "too_long", too_long, _TOO_LONG)
        self.unencodable = one_of(where, "unencodable", unencodable, _UNENCODABLE)
        self.packing = bool(packing)
        self.template = template
        self.conversations = load_conversations(conversations)
        rendered = self._render_all()
        self.rows = self._pack(rendered) if self.packing else rendered
        if not self.rows:
            raise ValueError(f"{where}: no conversation is left to train on ({self.describe()})")
        self._examples = rows_to_examples(self.rows, self.block_size)
        self.report["rows"] = len(self.rows)

    # --- building -----------------------------------------------------------------------------
    def _render_all(self) -> list[tuple[list[int], list[bool]]]:
        limit = self.block_size + 1
        report = {"conversations": len(self.conversations), "kept": 0, "skipped_unencodable": 0,
                  "skipped_too_long": 0, "truncated": 0, "skipped_no_target": 0,
                  "target_tokens": 0, "tokens": 0}  # fmt: skip
        self.report = report
        out = []
        for conv in self.conversations:
            try:
                ids, mask = self.template.render(conv.messages, mask=self.mask)
            except ValueError as exc:
                if self.unencodable == "error":
                    raise ValueError(
                        f"{conv.origin}: {exc} (pass unencodable='skip' to leave such "
                        "conversations out, with a count)"
                    ) from None
                report["skipped_unencodable"] += 1
                continue
            if len(ids) > limit:
                if self.too_long == "error":
                    raise ValueError(f"{conv.origin}: {self._too_long_message(conv, len(ids))}")
                if self.too_long == "skip":
                    report["skipped_too_long"] += 1
                    continue
                ids, mask = ids[:limit], mask[:limit]
                report["truncated"] += 1
            if not any(mask[1:]):
                report["skipped_no_target"] += 1
                continue
            report["kept"] += 1
            report["tokens"] += len(ids)
            report["target_tokens"] += int(sum(mask[1:]))
            out.append((ids, mask))
        return out

    def _too_long_message(self, conv, n: int) -> str:
        lengths = [len(self.template.encode_content(m["content"])) + 2 for m in conv.messages]
        j = int(np.argmax(lengths))
        turn = (f"its turn messages[{j}] alone is {lengths[j]} ids, longer than the context"
                if lengths[j] > self.block_size + 1 else f"its longest turn is messages[{j}], "
                f"{lengths[j]} ids")  # fmt: skip
        return (
            f"the conversation is {n} ids long but the context holds "
            f"{self.block_size + 1} (block_size + 1); {turn}. Shorten it, or pass "
            "too_long='skip' (or 'truncate') to leave it out (or cut it), with a count"
        )

    def _pack(self, rendered):
        """Whole conversations, one after another, into rows of at most ``block_size + 1`` ids."""
        rows, ids, mask = [], [], []
        for c_ids, c_mask in rendered:
            if ids and len(ids) + len(c_ids) > self.block_size + 1:
                rows.append((ids, mask))
                ids, mask = [], []
            ids, mask = ids + c_ids, mask + c_mask
        if ids:
            rows.append((ids, mask))
        return rows

    # --- what the Trainer reads ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self._examples[i]

    def describe(self) -> str:
        """One line: what was kept, skipped, cut, and how many tokens are trained on."""
        r = self.report
        parts = [f"{r['conversations']} conversations: {r['kept']} kept"]
        for key, why in (("skipped_unencodable", "skipped (text the tokenizer cannot encode)"),
                         ("skipped_too_long", f"skipped (longer than the context of "
                                              f"{self.block_size + 1} ids)"),
                         ("truncated", f"cut to the context of {self.block_size + 1} ids"),
                         ("skipped_no_target", "skipped (nothing to learn under mask="
                                               f"{self.mask!r})")):  # fmt: skip
            if r[key]:
                parts.append(f"{r[key]} {why}")
        rows = f"; {len(self.rows)} rows of {self.block_size}" if hasattr(self, "rows") else ""
        return ", ".join(parts) + f"{rows}; {r['target_tokens']:,} target tokens"

    def __repr__(self) -> str:
        return f"SFTDataset({self.describe()})"
