r"""LoRA: a frozen linear layer plus a trainable low-rank update, forward and backward side by side.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.3); tests in ``tests/test_posttrain_lora.py`` (and
``tests/test_posttrain_lora_parity.py`` against Hugging Face ``peft``).

Low-rank adaptation (Hu et al., 2021) keeps a pretrained weight :math:`W` (``(out, in)``) frozen
and learns a rank-:math:`r` correction :math:`\Delta W = s\,BA` with :math:`A` ``(r, in)``,
:math:`B` ``(out, r)`` and :math:`s = \alpha / r`:

.. math::
    Y = X W^\top + b + s\,(X A^\top) B^\top, \qquad U = X A^\top \ (N \times r)

With :math:`\bar Y = \partial L / \partial Y` the backward is

.. math::
    \bar B = s\,\bar Y^\top U, \qquad \bar U = s\,\bar Y B, \qquad \bar A = \bar U^\top X,
    \qquad \bar X = \bar Y W + \bar U A

and no :math:`\bar W`, :math:`\bar b` (frozen). Only :math:`U` (``r`` numbers per row) is kept
beside :math:`X`; the product :math:`BA` (a full ``(out, in)`` matrix) is never formed.

**Initialization** as in the paper and ``peft``: :math:`B = 0`, so the adapted layer starts as the
pretrained one, and :math:`A \sim \mathcal{U}(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})` (PyTorch's
``kaiming_uniform_(a=sqrt(5))``). Both are needed: with :math:`A = 0` too, :math:`\bar B = 0` and
:math:`\bar A = 0` forever.

**Merging.** :math:`W' = W + s\,BA` gives one ordinary linear layer with the same outputs (to
float32 rounding) and no extra cost at inference; :meth:`LoRALinear.unmerge` subtracts it again.

Worked example: ``X = [[1, 2]]``, ``W = [[1, 0]]``, ``A = [[1, 1]]``, ``B = [[2]]``, :math:`s = 1`:
:math:`U = 3`, :math:`Y = 1 + 2 \cdot 3 = 7`.

>>> x = Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
>>> lora_linear(x, Tensor(np.array([[1.0, 0.0]])), None, Tensor(np.array([[1.0, 1.0]])),
...             Tensor(np.array([[2.0]])), 1.0).data
array([[7.]])
"""

from __future__ import annotations

import math

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd.linalg import matmul
from minroots.autograd.shape import transpose
from minroots.nn.functional.linear import linear
from minroots.nn.linear import Linear
from minroots.nn.module import Module, Parameter
from minroots.validation import integer, real

__all__ = ["lora_linear", "lora_linear_composed", "LoRALinear", "lora_init_bound"]


def lora_init_bound(in_features: int) -> float:
    r"""The bound of :math:`A`'s uniform initialization, :math:`1/\sqrt{\text{in}}`.

    PyTorch's ``kaiming_uniform_(a=sqrt(5))`` has bound
    :math:`\sqrt{2/(1+a^2)}\,\sqrt{3/\text{in}} = \sqrt{1/3}\,\sqrt{3/\text{in}} = 1/\sqrt{\text{in}}`.

    >>> lora_init_bound(16)
    0.25
    """
    return 1.0 / math.sqrt(in_features)


def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, lora_a: Tensor, lora_b: Tensor,
                scale: float) -> Tensor:  # fmt: skip
    r"""Y = X W^\top + b + s (X A^\top) B^\top  (fused: one node; gradients for X, A, B, and for
    W and b only if they require them)."""
    n_in, n_out = weight.shape[1], weight.shape[0]
    if x.shape[-1] != n_in:
        raise ValueError(
            f"lora_linear: input of shape {x.shape} has last axis {x.shape[-1]}, expected "
            f"in_features={n_in}"
        )
    lead = x.shape[:-1]
    x2 = x.data.reshape(-1, n_in)  # (N, in)
    w, a, b = weight.data, lora_a.data, lora_b.data  # (out, in), (r, in), (out, r)
    dt = x2.dtype.type
    u = x2 @ a.T  # (N, r): the low-rank code of each row
    y = x2 @ w.T  # (N, out)
    y += dt(scale) * (u @ b.T)
    if bias is not None:
        y += bias.data
    parents = (x, weight, lora_a, lora_b) + (() if bias is None else (bias,))

    def backward(g):
        g2 = g.reshape(-1, n_out)  # (N, out)
        gu = dt(scale) * (g2 @ b)  # (N, r)
        gb = dt(scale) * (g2.T @ u) if lora_b.requires_grad else None  # (out, r)
        ga = gu.T @ x2 if lora_a.requires_grad else None  # (r, in)
        gx = None
        if x.requires_grad:
            gx = g2 @ w  # (N, in)
            gx += gu @ a
            gx = gx.reshape(x.shape)
        gw = g2.T @ x2 if weight.requires_grad else None
        grads = (gx, gw, ga, gb)
        if bias is None:
            return grads
        return grads + ((g2.sum(axis=0) if bias.requires_grad else None),)

    return Tensor._make(y.reshape(*lead, n_out), parents, backward, "lora_linear")


def lora_linear_composed(x: Tensor, weight: Tensor, bias: Tensor | None, lora_a: Tensor,
                         lora_b: Tensor, scale: float) -> Tensor:  # fmt: skip
    """Reference: the frozen layer plus ``scale * (x @ A.T) @ B.T`` from generic autograd ops."""
    return linear(x, weight, bias) + matmul(matmul(x, transpose(lora_a)), transpose(lora_b)) * scale


class LoRALinear(Module):
    """A :class:`~minroots.nn.Linear` with a frozen weight and a trainable rank-``r`` update.

    Built from an existing layer, whose ``weight`` and ``bias`` it keeps (the same Parameters,
    frozen), so its state names are the layer's plus ``lora_A`` and ``lora_B``.

    Args:
        layer: the :class:`~minroots.nn.Linear` to adapt.
        rank: :math:`r`, at least 1 and at most ``min(in_features, out_features)``.
        alpha: :math:`\\alpha`; the update is scaled by :math:`s = \\alpha / r`.
        name: the layer's name in its model, for error messages.
    """

    def __init__(self, layer: Linear, rank: int, alpha: float = 16.0, name: str = "layer"):
        super().__init__()
        if not isinstance(layer, Linear):
            raise TypeError(f"LoRALinear: layer must be a Linear, got {type(layer).__name__}")
        top = min(layer.in_features, layer.out_features)
        integer("LoRALinear", f"rank (of {name})", rank, low=1, high=top,
                expected=f"an integer in [1, min(in, out) = {top}]")  # fmt: skip
        real("LoRALinear", "alpha", alpha, low=0, low_open=True)
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.rank, self.alpha, self.scale = int(rank), float(alpha), float(alpha) / int(rank)
        self.weight = layer.weight  # (out, in), frozen
        self.bias = layer.bias
        for p in (self.weight, self.bias):
            if p is not None:
                p.requires_grad = False
        dtype = self.weight.data.dtype
        bound = dtype.type(lora_init_bound(self.in_features))
        a = B.rng().uniform(-bound, bound, size=(self.rank, self.in_features)).astype(dtype)
        self.lora_A = Parameter(a)  # (r, in)
        self.lora_B = Parameter(
            B.xp().zeros((self.out_features, self.rank), dtype=dtype)
        )  # (out, r)
        self.merged = False

    def forward(self, x):
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"LoRALinear: expected input with last axis in_features={self.in_features}, "
                f"got shape {x.shape}"
            )
        if self.merged:
            return linear(x, self.weight, self.bias)
        return lora_linear(x, self.weight, self.bias, self.lora_A, self.lora_B, self.scale)

    def delta(self):
        r"""The update :math:`s\,BA` as an ``(out, in)`` array."""
        b, a = self.lora_B.data, self.lora_A.data
        return b.dtype.type(self.scale) * (b @ a)

    def merge(self) -> None:
        """Add :math:`sBA` into the weight: one plain linear layer, the same outputs."""
        if not self.merged:
            self.weight.data += self.delta()
            self.merged = True

    def unmerge(self) -> None:
        """Take :math:`sBA` back out of the weight (up to float rounding)."""
        if self.merged:
            self.weight.data -= self.delta()
            self.merged = False

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"alpha={self.alpha:g}, merged={self.merged}"
        )
