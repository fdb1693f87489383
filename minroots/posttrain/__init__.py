"""Post-training: from a pretrained language model to an assistant.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``); tests in ``tests/test_posttrain_*.py``.

Read in this order (the chat template itself is :mod:`minroots.chat.template`):

- ``conversations.py``: conversations from JSONL files or pair corpora, checked line by line.
- ``sft_dataset.py``: :class:`SFTDataset`, conversations as masked, packed ``(x, y)`` blocks.
"""

from minroots.posttrain.conversations import (
    Conversation,
    load_conversations,
    pairs_to_conversations,
    split_conversations,
)
from minroots.posttrain.sft_dataset import IGNORE_INDEX, SFTDataset, rows_to_examples

__all__ = [
    "Conversation",
    "load_conversations",
    "pairs_to_conversations",
    "split_conversations",
    "SFTDataset",
    "IGNORE_INDEX",
    "rows_to_examples",
]
