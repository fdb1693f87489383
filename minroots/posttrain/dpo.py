r"""Direct preference optimization (DPO): the loss, its gradient, and the objective a Trainer trains.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.4, which derives it from the Bradley–Terry model); tests
in ``tests/test_posttrain_dpo.py``.

For a prompt :math:`x` with a preferred reply :math:`y_w` and a rejected one :math:`y_l`, a policy
:math:`\pi_\theta` and a frozen reference :math:`\pi_\text{ref}` (the model before DPO), with
sequence log-probabilities :math:`\pi_w = \log \pi_\theta(y_w \mid x)`, :math:`\rho_w = \log
\pi_\text{ref}(y_w \mid x)` and the same for :math:`y_l`:

.. math::
    z = \beta\,\big[(\pi_w - \rho_w) - (\pi_l - \rho_l)\big], \qquad
    L = -\log \sigma(z) = \log(1 + e^{-z})

averaged over the pairs of a batch. :math:`\beta (\pi_w - \rho_w)` is the *implicit reward* of
:math:`y_w`; :math:`z` is the reward margin. With :math:`\sigma'(z) = \sigma(z)\sigma(-z)`,

.. math::
    \frac{\partial L}{\partial z} = -\sigma(-z), \qquad
    \frac{\partial L}{\partial \pi_w} = -\beta\,\sigma(-z), \qquad
    \frac{\partial L}{\partial \pi_l} = +\beta\,\sigma(-z)

(and the opposite signs for :math:`\rho_w, \rho_l`, which get none when frozen): push the
preferred reply up and the rejected one down, each by :math:`\beta\,\sigma(-z)`, a weight that is
large when the model still ranks the pair wrongly (:math:`z < 0`) and vanishes once it ranks it
right with a margin. :math:`L` is computed as :math:`\mathrm{softplus}(-z) = \max(-z, 0) +
\log(1 + e^{-|z|})` and :math:`\sigma(-z)` as :math:`e^{-\mathrm{softplus}(z)}`, finite for any
:math:`z`.

Worked example: at the start the policy *is* the reference, so :math:`z = 0`,
:math:`L = \log 2 \approx 0.6931` and :math:`\partial L / \partial \pi_w = -\beta/2` per pair.

A sequence's log-probability is the sum over its reply tokens (:func:`sequence_logprobs`): the
targets outside the reply are ``-100``, as in supervised fine-tuning.
"""

from __future__ import annotations

from pathlib import Path

from minroots import backend as B
from minroots.autograd import Tensor, no_grad
from minroots.autograd import reductions as R
from minroots.nn.functional.cross_entropy import cross_entropy
from minroots.nn.module import Module
from minroots.persistence import load_arrays
from minroots.posttrain.sft_dataset import IGNORE_INDEX
from minroots.validation import real

__all__ = ["dpo_loss", "dpo_loss_composed", "sequence_logprobs", "DPOObjective"]


def _softplus(v, xp):
    """``log(1 + e^v)`` without overflow: ``max(v, 0) + log1p(e^{-|v|})``."""
    return xp.maximum(v, 0) + xp.log1p(xp.exp(-xp.abs(v)))


def _check_pairs(tensors) -> None:
    shape = tensors[0].shape
    for name, t in zip(("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected"),
                       tensors, strict=True):  # fmt: skip
        if not isinstance(t, Tensor):
            raise TypeError(f"dpo_loss: {name} must be a Tensor, got {type(t).__name__}")
        if t.shape != shape or len(shape) != 1:
            raise ValueError(
                f"dpo_loss: {name} must have the shape (B,) of policy_chosen {shape}, got {t.shape}"
            )


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
             ref_rejected: Tensor, beta: float = 0.1) -> Tensor:  # fmt: skip
    r"""L = \frac1B \sum_b -\log\sigma\big(\beta[(\pi_w - \rho_w) - (\pi_l - \rho_l)]\big)
    over ``(B,)`` sequence log-probabilities (fused: one node, stable for any margin)."""
    tensors = (policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    _check_pairs(tensors)
    real("dpo_loss", "beta", beta, low=0, low_open=True)
    pw, pl, rw, rl = (t.data for t in tensors)
    xp = B.get_array_module(pw)
    dt = pw.dtype.type
    z = dt(beta) * ((pw - rw) - (pl - rl))  # (B,) reward margins
    n = z.shape[0]
    loss = _softplus(-z, xp).mean()
    weight = xp.exp(-_softplus(z, xp))  # sigma(-z), how wrong each pair still is

    def backward(g):
        gz = -(g / dt(n)) * weight  # dL/dz per pair
        gw = dt(beta) * gz  # dL/d(pi_w); dL/d(pi_l) = -gw
        return gw, -gw, -gw, gw

    return Tensor._make(xp.asarray(loss, dtype=pw.dtype), tensors, backward, "dpo_loss")


def dpo_loss_composed(policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                      beta: float = 0.1) -> Tensor:  # fmt: skip
    """Reference: ``-mean(log(sigmoid(z)))`` from generic autograd ops (overflows for ``|z|`` above
    about 90 in float64; the fused one does not)."""
    z = ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)) * beta
    return -R.mean(z.sigmoid().log())


def sequence_logprobs(logits: Tensor, targets) -> Tensor:
    r""":math:`\sum_t \log p(y_t \mid y_{<t})` over the targets that are not ``-100``: ``(B, T, V)``
    logits and ``(B, T)`` targets give ``(B,)`` (differentiable)."""
    per_token = cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="none")
    return -R.sum(per_token, axis=-1)  # (B,)


class DPOObjective(Module):
    """The DPO loss as a model for the :class:`~minroots.training.Trainer`.

    ``objective(x, y)`` with ``x``, ``y`` of shape ``(B, 2, T)`` (the chosen reply's row, then
    the rejected one's, as :class:`~minroots.posttrain.preference_dataset.PreferenceDataset`
    serves them) returns ``(None, loss)``; ``last_metrics`` holds the batch's reward accuracy and
    margin. ``reference`` is frozen (its parameters get no gradient); checkpoints hold the
    policy, an ordinary model (``save`` / ``restore``).
    """

    def __init__(self, policy, reference, beta: float = 0.1):
        super().__init__()
        if policy is reference:
            raise ValueError("DPOObjective: the reference must be a separate frozen copy of the "
                             "policy (load the checkpoint twice), got the policy itself")  # fmt: skip
        self.policy = policy
        self.reference = reference
        for p in reference.parameters():
            p.requires_grad = False
        self.beta = real("DPOObjective", "beta", beta, low=0, low_open=True)
        self.config = getattr(policy, "config", None)
        self.last_metrics: dict = {}

    def forward(self, x, y):
        x = x.data if isinstance(x, Tensor) else x
        y = y.data if isinstance(y, Tensor) else y
        if x.ndim != 3 or x.shape[1] != 2 or x.shape != y.shape:
            raise ValueError(
                f"DPOObjective: x and y must have shape (B, 2, T) (chosen, rejected), got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        b, _, t = x.shape
        xf, yf = x.reshape(2 * b, t), y.reshape(2 * b, t)  # rows: chosen 0, rejected 0, chosen 1..
        policy = sequence_logprobs(self.policy(xf)[0], yf)  # (2B,)
        with no_grad():
            self.reference.eval()
            ref = sequence_logprobs(self.reference(xf)[0], yf)  # (2B,)
        chosen, rejected = slice(0, None, 2), slice(1, None, 2)
        loss = dpo_loss(policy[chosen], policy[rejected], ref[chosen], ref[rejected], self.beta)
        gain = policy.data - ref.data  # (2B,) log pi - log pi_ref
        margins = self.beta * (gain[chosen] - gain[rejected])  # (B,)
        self.last_metrics = {"reward_accuracy": float((margins > 0).mean()),
                             "reward_margin": float(margins.mean())}  # fmt: skip
        return None, loss

    def save(self, folder) -> None:
        """Write the policy (an ordinary model) into ``folder``."""
        self.policy.save(folder)

    def restore(self, folder) -> None:
        """Load the policy's weights from ``folder`` (the reference is rebuilt from the base)."""
        self.policy.load_state_dict(load_arrays(Path(folder) / "model.safetensors")[0])
