r"""Dropout: during training, zero each element with probability :math:`p` and scale the rest.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_functional.py``.

.. math::
    y = \frac{m \odot x}{1 - p}, \quad m_i \sim \mathrm{Bernoulli}(1 - p), \qquad
    \bar x = \frac{m \odot \bar y}{1 - p}

Scaling by :math:`1/(1-p)` keeps the expected value of every element unchanged, so nothing needs
rescaling at evaluation time, where dropout is the identity. The mask comes from the backend's
seeded generator, so runs are reproducible.

Worked example: with :math:`p = 0.5`, ``[1, 1, 1, 1]`` may become ``[2, 0, 2, 0]``.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.validation import real, tensor_arg

__all__ = ["dropout"]


def dropout(x: Tensor, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Inverted dropout; the identity (the same Tensor, no graph node) when not training or p == 0."""
    tensor_arg("dropout", "x", x)
    real("dropout", "p", p, low=0, high=1, high_open=True)
    if not training or p == 0.0:
        return x
    gen = rng if rng is not None else B.rng(x.device)
    dt = x.data.dtype.type
    scale = dt(1.0 / (1.0 - p))
    keep = gen.random(x.shape, dtype=x.data.dtype) >= dt(p)
    mask = keep * scale  # float mask: 0 or 1/(1-p)
    return Tensor._make(x.data * mask, (x,), lambda g: (g * mask,), "dropout")
