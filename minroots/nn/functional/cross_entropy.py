r"""Cross-entropy loss: a fused, numerically stable log-softmax + negative log-likelihood.

Book chapter 4, "Cross-entropy" (``book/04_cross_entropy.md``); tests in
``tests/test_nn_functional.py`` and ``tests/test_nn_properties.py``.

For logits :math:`z \in \mathbb{R}^C` of one example with target class :math:`t`, and
:math:`\log p = z - \mathrm{logsumexp}(z)`:

.. math::
    \ell = -(1 - \varepsilon) \log p_t - \frac{\varepsilon}{C} \sum_{c} \log p_c, \qquad
    \frac{\partial \ell}{\partial z} = p - (1 - \varepsilon)\, e_t - \frac{\varepsilon}{C}

where :math:`\varepsilon` is the label smoothing (0 by default) and :math:`e_t` the one-hot
vector of the target. ``logsumexp`` subtracts the row maximum first (the package's one stable
softmax, :func:`minroots.autograd.softmax.exp_shifted`), so logits of :math:`\pm 10^4` in float32
give a finite loss. Examples whose target equals ``ignore_index``
contribute neither loss nor gradient, and ``reduction="mean"`` divides by the number of the
others (as PyTorch does). The fused kernel computes the softmax once, keeps only it for the
backward, and never forms :math:`\log p` as a separate array.

Logits have the class axis *last*: ``(N, C)`` with targets ``(N,)``, or ``(B, T, C)`` with
targets ``(B, T)`` (PyTorch puts the class axis second for more than two axes).

Worked example: logits ``[0, 0]`` (two equally likely classes), target 0:
:math:`\ell = \log 2 \approx 0.6931` and the gradient is ``[-0.5, 0.5]``.
"""

from __future__ import annotations

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd import reductions as R
from minroots.autograd.softmax import exp_shifted, log_softmax_composed
from minroots.validation import class_targets, numeric_array, one_of, real, tensor_arg

__all__ = ["cross_entropy", "cross_entropy_composed"]

_REDUCTIONS = ("mean", "sum", "none")


def _check(logits: Tensor, target, reduction: str, label_smoothing: float):
    """The target as a backend integer array of shape ``logits.shape[:-1]``, or a clear error."""
    tensor_arg("cross_entropy", "logits", logits)
    if logits.data.dtype.kind != "f":
        raise TypeError(
            f"cross_entropy: logits must have a floating dtype, got {logits.data.dtype}"
        )
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"cross_entropy: logits must have at least one class on the last axis, "
                         f"got shape {logits.shape}")  # fmt: skip
    target = target.data if isinstance(target, Tensor) else target
    target = numeric_array("cross_entropy", "target", target, B.get_array_module(logits.data))
    class_targets("cross_entropy", "target", target, logits.shape)
    one_of("cross_entropy", "reduction", reduction, _REDUCTIONS)
    real("cross_entropy", "label_smoothing", label_smoothing, low=0, high=1)
    return target


def cross_entropy(
    logits: Tensor,
    target,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    r"""\ell = -(1-\varepsilon)\log p_t - \tfrac{\varepsilon}{C}\sum_c \log p_c, averaged over the
    targets that are not ``ignore_index`` (fused: one graph node)."""
    target = _check(logits, target, reduction, label_smoothing)
    xp = B.get_array_module(logits.data)
    c = logits.shape[-1]
    z = logits.data.reshape(-1, c)  # (N, C)
    dt = z.dtype.type
    t = target.reshape(-1)  # (N,)
    n = t.shape[0]
    valid = t != ignore_index
    t_safe = xp.where(valid, t, 0)
    if n and (int(t_safe.min()) < 0 or int(t_safe.max()) >= c):
        bad = int(t_safe.min()) if int(t_safe.min()) < 0 else int(t_safe.max())
        raise ValueError(
            f"cross_entropy: target class {bad} is out of range [0, {c}) "
            f"(and is not ignore_index={ignore_index})"
        )
    rows = xp.arange(n)
    p, m, s = exp_shifted(z, axis=-1)  # e^{z - m} (N, C), the only full-size temporary; m, s (N, 1)
    picked = z[rows, t_safe] - m[:, 0]  # z_t - m
    mean_shifted = z.mean(axis=1) - m[:, 0] if label_smoothing else None  # mean_c z_c - m
    lse = xp.log(s)[:, 0]  # logsumexp(z) - m
    p /= s  # softmax, kept for the backward
    eps = dt(label_smoothing)
    loss = lse - picked  # -log p_t
    if label_smoothing:
        loss *= dt(1.0) - eps
        loss += eps * (lse - mean_shifted)  # -(eps/C) sum_c log p_c
    weight = valid.astype(z.dtype)  # 1 for counted examples, 0 for ignored ones
    loss *= weight
    if reduction == "mean":
        count = weight.sum()
        out = loss.sum() / count  # NaN when every target is ignored, as in PyTorch
        scale = weight / count  # d out / d loss_n
    elif reduction == "sum":
        out = loss.sum()
        scale = weight
    else:
        out = loss.reshape(target.shape)
        scale = weight

    def backward(g):
        w = (scale * g) if reduction == "mean" or reduction == "sum" else scale * g.reshape(-1)
        w = w.astype(z.dtype, copy=False)
        gz = p * w[:, None]
        gz[rows, t_safe] -= (dt(1.0) - eps) * w
        if label_smoothing:
            gz -= (eps / dt(c)) * w[:, None]
        return (gz.reshape(logits.shape),)

    return Tensor._make(xp.asarray(out, dtype=z.dtype), (logits,), backward, "cross_entropy")


def cross_entropy_composed(
    logits: Tensor,
    target,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Reference: ``log_softmax`` (composed), a one-hot mask and sums, from basic autograd ops."""
    target = _check(logits, target, reduction, label_smoothing)
    xp = B.get_array_module(logits.data)
    c = logits.shape[-1]
    logp = log_softmax_composed(logits, axis=-1)
    valid = target != ignore_index
    onehot = (xp.arange(c) == xp.where(valid, target, 0)[..., None]).astype(logits.dtype)
    smooth = (1.0 - label_smoothing) * onehot + label_smoothing / c
    per = -R.sum(logp * smooth, axis=-1) * valid.astype(logits.dtype)
    if reduction == "none":
        return per
    total = R.sum(per)
    if reduction == "sum":
        return total
    return total / float(np.asarray(B.to_numpy(valid)).sum())
