r"""Growing a model's vocabulary: new embedding rows for new tokens (the chat markers).

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.2); tests in ``tests/test_posttrain_sft.py``.

A pretrained model has one embedding row per token id; the chat markers are :math:`k` new ids
:math:`V, \dots, V+k-1`, so the token embedding (and the output layer, tied to it in GPT-2) gets
:math:`k` new rows. The old rows are kept exactly, so the model reads old text as before. The new
rows start at the **mean** :math:`\bar e` of the old rows (Hewitt, 2021), plus a little noise so
the markers differ from each other. Why the mean: with a tied output layer the new tokens'
logits are :math:`h \cdot \bar e`, and since :math:`\exp` is convex (Jensen),

.. math::  e^{h \cdot \bar e} \le \frac{1}{V} \sum_{i<V} e^{h \cdot e_i} = \frac{Z}{V}

so each new token gets at most the *average* probability of an old one: the model's predictions
of old text barely move (total new mass at most :math:`k/(V+k)`). Rows drawn at random with the
pretraining scale (:math:`\mathcal{N}(0, 0.02^2)`) have logits near 0, which after pretraining can
be far above the typical logit: the model would suddenly predict the markers everywhere.

>>> from minroots.nn import TransformerModel
>>> model = TransformerModel(vocab_size=10, block_size=8, n_layer=1, n_embd=8)
>>> old = model.wte.weight.data.copy()
>>> resize_token_embeddings(model, 12)
>>> model.config.vocab_size, model.wte.weight.shape, model.lm_head.weight is model.wte.weight
(12, (12, 8), True)
>>> bool((model.wte.weight.data[:10] == old).all())
True
"""

from __future__ import annotations

import dataclasses

from minroots import backend as B
from minroots.nn.module import Parameter
from minroots.validation import integer, real

__all__ = ["resize_token_embeddings"]


def resize_token_embeddings(model, new_vocab_size: int, noise: float = 0.1) -> None:
    """Give ``model`` (a :class:`~minroots.nn.TransformerModel`) ``new_vocab_size`` token ids, in
    place: old rows kept, new rows at the mean of the old ones plus Gaussian noise of
    ``noise`` times the old rows' standard deviation (0 for exactly the mean).

    Build the optimizer after this call: the embedding is a new Parameter.
    """
    where = "resize_token_embeddings"
    old_vocab = model.config.vocab_size
    integer(where, "new_vocab_size", new_vocab_size, low=old_vocab,
            expected=f"an integer >= the current vocab_size {old_vocab}")  # fmt: skip
    real(where, "noise", noise, low=0)
    if new_vocab_size == old_vocab:
        return
    tied = model.lm_head.weight is model.wte.weight
    wte = _grown(model.wte.weight, new_vocab_size, noise)
    model.wte.weight = wte
    model.wte.num_embeddings = new_vocab_size
    model.lm_head.weight = wte if tied else _grown(model.lm_head.weight, new_vocab_size, noise)
    model.lm_head.out_features = new_vocab_size
    model.config = dataclasses.replace(model.config, vocab_size=new_vocab_size)


def _grown(weight, rows: int, noise: float) -> Parameter:
    """A Parameter of ``rows`` rows: ``weight``'s rows, then mean + noise rows."""
    w = weight.data  # (V, C)
    xp = B.get_array_module(w)
    k = rows - w.shape[0]
    new = xp.empty((rows, w.shape[1]), dtype=w.dtype)  # (V + k, C)
    new[: w.shape[0]] = w
    mean, std = w.mean(axis=0), w.std(axis=0)  # (C,)
    fresh = B.rng().standard_normal((k, w.shape[1])).astype(w.dtype)  # (k, C)
    new[w.shape[0] :] = mean + w.dtype.type(noise) * std * fresh
    return Parameter(new, requires_grad=weight.requires_grad)
