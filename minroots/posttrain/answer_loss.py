r"""The held-out answer loss: how well a model predicts the replies of conversations it never saw.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.2); tests in ``tests/test_posttrain_sft.py``.

Over every masked-in target of a dataset (the assistant replies, under the default mask), the
mean negative log-likelihood per token,

.. math::  L = -\frac{1}{|\mathcal{A}|} \sum_{t \in \mathcal{A}} \ln p_\theta(w_t \mid w_{<t}),

in nats per token: one number for the whole set, each token counted once (not a mean of batch
means, which would weigh a batch with few answer tokens as much as one with many). The base
model before fine-tuning and the fine-tuned model are compared on the same set.
"""

from __future__ import annotations

import math

import numpy as np

from minroots.autograd import no_grad
from minroots.nn.functional.cross_entropy import cross_entropy
from minroots.posttrain.sft_dataset import IGNORE_INDEX
from minroots.validation import positive_int

__all__ = ["answer_loss"]


def answer_loss(model, dataset, batch_size: int = 16) -> dict:
    """``{"loss", "perplexity", "tokens"}`` of ``model`` on every masked-in target of ``dataset``
    (an :class:`~minroots.posttrain.SFTDataset` or any sequence of ``(x, y)`` with ``-100``
    for ignored targets)."""
    positive_int("answer_loss", "batch_size", batch_size)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for start in range(0, len(dataset), batch_size):
                items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
                x = np.stack([it[0] for it in items])  # (b, T)
                y = np.stack([it[1] for it in items])  # (b, T)
                n = int((y != IGNORE_INDEX).sum())
                if n == 0:
                    continue
                logits = model(x)[0]  # (b, T, V)
                loss = cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum")
                total += float(loss.data)
                count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("answer_loss: the dataset has no target tokens")
    mean = total / count
    return {"loss": mean, "perplexity": math.exp(min(mean, 700.0)), "tokens": count}
