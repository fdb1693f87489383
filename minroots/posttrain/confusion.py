r"""Accuracy and the confusion matrix of a classifier, and its figure.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.5); tests in ``tests/test_posttrain_classifier.py``.

Row :math:`i`, column :math:`j` of the confusion matrix counts the texts of true class :math:`i`
predicted as class :math:`j`; the diagonal holds the correct ones, so the accuracy is its sum over
the total. Each row divided by its sum is the recall of that class spread over the predictions.

>>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3)
array([[1, 1, 0],
       [0, 1, 0],
       [0, 0, 1]])
>>> accuracy([0, 0, 1, 2], [0, 1, 1, 2])
0.75
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["accuracy", "confusion_matrix", "plot_confusion"]


def accuracy(true, predicted) -> float:
    """The share of predictions equal to the truth."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    if true.shape != predicted.shape or not true.size:
        raise ValueError(f"accuracy: true and predicted need one equal, non-empty shape, got "
                         f"{true.shape} and {predicted.shape}")  # fmt: skip
    return float((true == predicted).mean())


def confusion_matrix(true, predicted, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts: rows the true classes, columns the predicted ones."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true), np.asarray(predicted)), 1)
    return matrix


def plot_confusion(matrices: dict, labels, path: str | os.PathLike) -> None:
    """Draw one or more confusion matrices side by side (``{"title": matrix}``), each row as a
    share of its true class, into the image file ``path`` (matplotlib's Agg canvas: no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(matrices), 4.0))
    FigureCanvasAgg(fig)
    for k, (title, matrix) in enumerate(matrices.items()):
        ax = fig.add_subplot(1, len(matrices), k + 1)
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if share[i, j] > 0.5 else "black", fontsize=8)  # fmt: skip
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: accuracy {np.trace(matrix) / matrix.sum():.1%}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
