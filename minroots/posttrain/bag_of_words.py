r"""The bag-of-words baseline of classification: multinomial naive Bayes on word counts.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.5); tests in ``tests/test_posttrain_classifier.py``.

A text is reduced to its word counts :math:`n_w` (lower-cased runs of letters and digits; order
forgotten: a "bag"). Naive Bayes assumes the words of a text of class :math:`k` are drawn
independently from a class distribution :math:`\theta_{k}`, estimated from the training texts with
add-:math:`\alpha` (Laplace) smoothing, and picks the class of highest posterior:

.. math::
    \theta_{kw} = \frac{N_{kw} + \alpha}{\sum_{v} N_{kv} + \alpha |V|}, \qquad
    \hat k = \arg\max_k \Big(\log \pi_k + \sum_{w \in V} n_w \log \theta_{kw}\Big)

with :math:`N_{kw}` the count of word :math:`w` in the training texts of class :math:`k`,
:math:`\pi_k` the share of class :math:`k`, and :math:`V` the training vocabulary (unseen words
are ignored). It trains in one pass and is hard to beat on small topical data sets, which is what
makes it the baseline a fine-tuned network must beat.

Worked example: training texts ``"good game"`` (class 0) and ``"bad sound"`` (class 1); the text
``"game game"`` has :math:`\theta_{0,\text{game}} = 2/6` against :math:`\theta_{1,\text{game}} =
1/6` (:math:`\alpha = 1`, :math:`|V| = 4`), so class 0.

>>> nb = NaiveBayes().fit(["good game", "bad sound"], [0, 1])
>>> nb.predict(["game game", "sound"]).tolist()
[0, 1]
"""

from __future__ import annotations

import numpy as np
import regex

from minroots.validation import real

__all__ = ["NaiveBayes", "words"]

_WORD = regex.compile(r"[\p{L}\p{N}]+")


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits: ``"Play 3D chess!"`` -> ``['play', '3d', 'chess']``."""
    return _WORD.findall(text.lower())


class NaiveBayes:
    """Multinomial naive Bayes over word counts, with add-``alpha`` smoothing."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = real("NaiveBayes", "alpha", alpha, low=0, low_open=True)

    def _counts(self, texts) -> np.ndarray:
        counts = np.zeros((len(texts), len(self.vocab)))  # (N, |V|)
        for i, text in enumerate(texts):
            for w in words(text):
                j = self.vocab.get(w)
                if j is not None:
                    counts[i, j] += 1
        return counts

    def fit(self, texts, labels) -> NaiveBayes:
        """Count the words of each class; ``labels`` are class ids ``0 .. K-1``."""
        labels = np.asarray(labels)
        if len(texts) != len(labels) or not len(texts):
            raise ValueError(f"NaiveBayes.fit: got {len(texts)} texts and {len(labels)} labels")
        self.vocab = {}
        for text in texts:
            for w in words(text):
                self.vocab.setdefault(w, len(self.vocab))
        k = int(labels.max()) + 1
        counts = self._counts(texts)
        per_class = np.stack([counts[labels == c].sum(axis=0) for c in range(k)])  # (K, |V|)
        smoothed = per_class + self.alpha
        self.log_theta = np.log(smoothed / smoothed.sum(axis=1, keepdims=True))  # (K, |V|)
        self.log_prior = np.log(np.bincount(labels, minlength=k) / len(labels))  # (K,)
        return self

    def scores(self, texts) -> np.ndarray:
        """Log-posterior up to a constant, ``(N, K)``."""
        return self._counts(texts) @ self.log_theta.T + self.log_prior

    def predict(self, texts) -> np.ndarray:
        """The class id of highest posterior for each text."""
        return self.scores(texts).argmax(axis=1)
