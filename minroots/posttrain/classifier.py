r"""Classification fine-tuning: a pretrained GPT with a classification head on its hidden states.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.5); tests in ``tests/test_posttrain_classifier.py``.

A text of :math:`n` tokens goes through the pretrained model up to its final layer norm (no
language-model head), giving states :math:`h_1, \dots, h_n`. One vector summarizes the text,

.. math::
    s = h_n \ (\text{"last"}), \qquad s = \frac1n \sum_{t=1}^{n} h_t \ (\text{"mean"}),

and a new linear layer gives one logit per class, :math:`z = W s + b` (``(K, C)`` weights,
:math:`\mathcal{N}(0, 0.02^2)` like the model's own), trained with the cross-entropy of chapter 4.
With a causal model only the last state has read the whole text, which is why GPT-style
classifiers use it (Hugging Face's ``GPT2ForSequenceClassification`` does); the mean of all
states is the other common choice, often steadier for small models. All weights are fine-tuned.

**Auxiliary language modelling.** With ``lm_weight`` :math:`\lambda > 0` the loss also keeps the
model predicting the next token of the texts it classifies, as GPT-1 did (Radford et al., 2018,
:math:`\lambda = 0.5`),

.. math::
    \mathcal{L} = \mathcal{L}_{\text{class}} + \lambda\, \mathcal{L}_{\text{LM}},

with :math:`\mathcal{L}_{\text{LM}}` the mean cross-entropy of the language-model head over the
real next tokens of the batch (pads neither predicted nor counted): a regulariser that stops the
small labelled set from pulling the body too far from what pretraining taught it.

**Batches.** Texts have different lengths: a row of ``x`` holds a text's ids padded on the right
with ``-1`` (``PAD``). Causal attention never lets a real token see a later pad, so padding
changes nothing, and the pooling reads only real positions. ``y`` holds the class ids ``(B,)``.
:class:`ClassificationDataset` builds the rows; texts longer than the context are cut (and
counted), characters the tokenizer lacks are dropped (and counted).
"""

from __future__ import annotations

import os

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor, no_grad
from minroots.autograd import reductions as R
from minroots.nn.functional.cross_entropy import cross_entropy
from minroots.nn.linear import Linear
from minroots.nn.module import Module
from minroots.validation import one_of, positive_int, real

__all__ = ["SequenceClassifier", "ClassificationDataset", "PAD", "POOLINGS", "predict"]

PAD = -1
POOLINGS = ("last", "mean")


class SequenceClassifier(Module):
    """A pretrained :class:`~minroots.nn.TransformerModel` plus a linear head over ``labels``.

    ``classifier(x, y)`` with ``x`` ``(B, T)`` ids right-padded with ``-1`` and ``y`` ``(B,)``
    class ids returns ``(logits (B, K), loss)``; without ``y`` the loss is ``None``. A positive
    ``lm_weight`` adds that multiple of the language-model loss on ``x`` to the loss.
    """

    def __init__(self, model, labels, pooling: str = "last", lm_weight: float = 0.0):
        super().__init__()
        labels = list(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(
                f"SequenceClassifier: labels must be 2 or more distinct names, got {labels}"
            )
        self.model = model
        self.labels = labels
        self.pooling = one_of("SequenceClassifier", "pooling", pooling, POOLINGS)
        self.lm_weight = real("SequenceClassifier", "lm_weight", lm_weight, low=0)
        self.head = Linear(model.config.n_embd, len(labels))
        self.config = model.config

    def features(self, x) -> Tensor:
        """The pooled state ``(B, C)`` of each row of ``x``."""
        return self._states(x)[0]

    def _states(self, x):
        """``(pooled (B, C), hidden states (B, T, C), ids (B, T), real-token mask (B, T))``."""
        x = x.data if isinstance(x, Tensor) else x
        xp = B.get_array_module(self.model.wte.weight.data)
        x = xp.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"SequenceClassifier: x must have shape (B, T), got {tuple(x.shape)}")
        real = x != PAD  # (B, T)
        lengths = real.sum(axis=1)  # (B,)
        if int(lengths.min()) == 0:
            raise ValueError("SequenceClassifier: every row of x needs at least one token")
        h = self.model.hidden_states(xp.where(real, x, 0))  # (B, T, C); pads read as id 0
        if self.pooling == "last":
            pooled = h[xp.arange(x.shape[0]), lengths - 1]  # (B, C)
        else:
            weights = (real / lengths[:, None]).astype(h.data.dtype)  # (B, T), rows sum to 1
            pooled = R.sum(h * Tensor(weights[:, :, None]), axis=1)  # (B, C)
        return pooled, h, x, real

    def forward(self, x, y=None):
        pooled, h, ids, real = self._states(x)
        logits = self.head(pooled)  # (B, K)
        if y is None:
            return logits, None
        y = y.data if isinstance(y, Tensor) else y
        xp = B.get_array_module(logits.data)
        loss = cross_entropy(logits, xp.asarray(y))
        if self.lm_weight > 0:  # next-token targets; a pad (and what follows it) is ignored
            targets = xp.where(real[:, 1:], ids[:, 1:], -100)  # (B, T-1)
            lm_logits = self.model.lm_head(h[:, :-1])  # (B, T-1, V)
            lm_loss = cross_entropy(lm_logits.reshape(-1, lm_logits.shape[-1]), targets.reshape(-1))
            loss = loss + self.lm_weight * lm_loss
        return logits, loss

    def extra_repr(self) -> str:
        return f"labels={self.labels}, pooling={self.pooling!r}, lm_weight={self.lm_weight}"


def predict(classifier: SequenceClassifier, dataset, batch_size: int = 32) -> np.ndarray:
    """The predicted class id of every row of ``dataset`` (eval mode, no graph)."""
    positive_int("predict", "batch_size", batch_size)
    out = []
    was = classifier.training
    classifier.eval()
    try:
        with no_grad():
            for start in range(0, len(dataset), batch_size):
                x = np.stack(
                    [dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))]
                )
                out.append(np.asarray(B.to_numpy(classifier(x)[0].data)).argmax(axis=1))
    finally:
        classifier.train(was)
    return np.concatenate(out)


def _known_characters(tokenizer) -> set | None:
    """The characters of a character tokenizer (or of the one inside added tokens), else None."""
    chars = getattr(getattr(tokenizer, "base", tokenizer), "chars", None)
    return None if chars is None else set(chars)


class ClassificationDataset:
    """Labelled texts as ``(x, y)``: ids right-padded with ``-1`` to ``block_size``, a class id.

    Args:
        examples: a pair corpus name or file (``(text, label)`` as ``source``/``target``), or a
            list of ``(text, label)``.
        tokenizer: encodes the texts (a character tokenizer drops the characters it lacks).
        block_size: the model's context; longer texts keep their first ``block_size`` tokens.
        labels: the class names in id order (default: the sorted labels of ``examples``); a
            label outside them is an error naming the example.
    """

    def __init__(self, examples, tokenizer, block_size: int, labels=None):
        from minroots.data.corpus import load_pairs

        where = "ClassificationDataset"
        positive_int(where, "block_size", block_size)
        if isinstance(examples, (str, os.PathLike)):
            examples = load_pairs(examples)
        examples = [tuple(e) for e in examples]
        if not examples:
            raise ValueError(f"{where}: no examples")
        self.labels = sorted({label for _, label in examples}) if labels is None else list(labels)
        index = {label: k for k, label in enumerate(self.labels)}
        self.block_size, self.tokenizer = block_size, tokenizer
        self.report = {"examples": len(examples), "truncated": 0, "dropped_characters": 0,
                       "texts_with_dropped_characters": 0}  # fmt: skip
        known = _known_characters(tokenizer)
        self._x, self._y, self.texts = [], [], []
        for k, (text, label) in enumerate(examples):
            if label not in index:
                raise ValueError(
                    f"{where}: examples[{k}] has label {label!r}, not one of {self.labels}"
                )
            if known is not None:  # a character tokenizer: leave out what it cannot encode
                kept = "".join(c for c in text if c in known)
                if len(kept) < len(text):
                    self.report["dropped_characters"] += len(text) - len(kept)
                    self.report["texts_with_dropped_characters"] += 1
                text = kept
            ids = tokenizer.encode(text)
            if not ids:
                raise ValueError(f"{where}: examples[{k}] encodes to no tokens")
            if len(ids) > block_size:
                ids = ids[:block_size]
                self.report["truncated"] += 1
            row = np.full(block_size, PAD, dtype=np.int64)
            row[: len(ids)] = ids
            self._x.append(row)
            self._y.append(index[label])
            self.texts.append(text)
        self.y = np.array(self._y, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._x)

    def __getitem__(self, i: int):
        return self._x[i], self._y[i]

    def describe(self) -> str:
        r = self.report
        return (f"{r['examples']} texts, {len(self.labels)} classes; {r['truncated']} cut to "
                f"{self.block_size} tokens; {r['dropped_characters']} characters the tokenizer "
                f"lacks dropped from {r['texts_with_dropped_characters']} texts")  # fmt: skip
