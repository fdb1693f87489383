r"""Adam and AdamW: adaptive moment estimation, with coupled or decoupled weight decay.

Book chapter 5, "Optimizers" (``book/05_optimizers.md``).

Adam keeps two running averages per parameter: of the gradient (:math:`m_t`, a momentum) and of its
square (:math:`v_t`), and divides one by the square root of the other, so that every coordinate
moves by about :math:`\eta` per step whatever the scale of its gradient. AdamW (Loshchilov & Hutter,
2019) shrinks the weights directly instead of adding :math:`\lambda\theta` to the gradient, which
keeps weight decay from being rescaled by :math:`\sqrt{\hat v_t}`; it is the optimizer GPT models
are trained with. Both updates are exactly those of ``torch.optim.Adam`` / ``torch.optim.AdamW``.

Speed: the moment buffers are allocated once, on a parameter's first update, and every step works in
place on them with ``out=`` arithmetic (no array is allocated per step), in the parameter's dtype.
"""

from __future__ import annotations

import numbers

from minroots import backend as B
from minroots.optim.optimizer import Optimizer
from minroots.validation import boolean, real_number, shown

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``.

    With learning rate :math:`\eta`, betas :math:`(\beta_1, \beta_2)`, :math:`\epsilon` and weight
    decay :math:`\lambda`, starting from :math:`m_0 = v_0 = 0`, step :math:`t = 1, 2, \dots` does

    .. math::

        g_t &= \nabla_\theta L(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \qquad \text{(coupled L2 weight decay; AdamW differs here)} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}
            \qquad \text{(bias correction: } m_0 = v_0 = 0 \text{ pulls early averages to 0)} \\
        \theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    With ``amsgrad=True``, :math:`\hat v_t` uses :math:`\max(v_1, \dots, v_t)` instead of
    :math:`v_t` (Reddi et al., 2018).

    Worked example: at :math:`t = 1`, :math:`\hat m_1 = g_1` and :math:`\hat v_1 = g_1^2`, so
    :math:`\theta_1 = \theta_0 - \eta\, g_1 / (|g_1| + \epsilon) \approx \theta_0 - \eta\,
    \mathrm{sign}(g_1)`: every coordinate moves by :math:`\eta`, whatever its gradient's size.

    Computed as torch does: :math:`m_t = m_{t-1} + (1-\beta_1)(g_t - m_{t-1})` and
    :math:`\theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\, m_t / \big(\sqrt{v_t} /
    \sqrt{1-\beta_2^t} + \epsilon\big)`.

    Args:
        params: iterable of Tensors or of parameter-group dicts.
        lr: :math:`\eta` (default ``1e-3``).
        betas: :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)` (default ``(0.9, 0.999)``).
        eps: :math:`\epsilon \ge 0` (default ``1e-8``).
        weight_decay: :math:`\lambda \ge 0` (default 0).
        amsgrad: use the running maximum of :math:`v_t` (default False).
        decoupled_weight_decay: apply AdamW's decay instead (what :class:`AdamW` sets).

    State per parameter: ``"step"`` (int :math:`t`), ``"exp_avg"`` (:math:`m_t`),
    ``"exp_avg_sq"`` (:math:`v_t`) and, with amsgrad, ``"max_exp_avg_sq"``.
    """

    _array_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        decoupled_weight_decay: bool = False,
    ):
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict, where: str) -> None:
        for key in ("lr", "eps", "weight_decay"):
            group[key] = real_number(where, key, group[key], low=0)
        betas = group["betas"]
        if (
            isinstance(betas, (str, bytes))
            or not hasattr(betas, "__len__")
            or len(betas) != 2
            or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in betas)
        ):
            raise TypeError(
                f"{where}: betas must be a pair of numbers (beta1, beta2), got {shown(betas)}"
            )
        group["betas"] = tuple(
            real_number(where, f"betas[{k}]", b, low=0, high=1, high_open=True)
            for k, b in enumerate(betas)
        )
        for flag in ("amsgrad", "decoupled_weight_decay"):
            group[flag] = boolean(where, flag, group[flag])

    def init_state(self, theta, group: dict) -> dict:
        """:math:`t = 0`, :math:`m_0 = v_0 = 0` (and the running maximum of :math:`v` with
        amsgrad), allocated once, in the parameter's dtype and on its device."""
        xp = B.get_array_module(theta)
        state = {"step": 0, "exp_avg": xp.zeros_like(theta), "exp_avg_sq": xp.zeros_like(theta)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(theta)
        return state

    def update(self, theta, grad, state: dict, group: dict) -> None:
        """One Adam step of one parameter (in place), as the class docstring's formulas say."""
        xp = B.get_array_module(theta)
        state["step"] += 1
        t = state["step"]
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        d, e = self._work(theta, 2)  # scratch views, reused by every parameter and step

        g = grad
        if wd != 0:
            if group["decoupled_weight_decay"]:
                theta *= 1.0 - lr * wd  # AdamW: theta_{t-1} (1 - eta lambda)
            else:
                xp.multiply(theta, wd, out=e)  # g_t = grad + lambda theta (p.grad untouched)
                e += grad
                g = e
        xp.subtract(g, m, out=d)  # m_t = m_{t-1} + (1 - beta1)(g_t - m_{t-1})
        d *= 1.0 - beta1
        m += d
        v *= beta2  # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        xp.multiply(g, 1.0 - beta2, out=d)
        d *= g
        v += d
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        bias_correction1 = 1.0 - beta1**t
        bias_correction2_sqrt = (1.0 - beta2**t) ** 0.5
        xp.sqrt(v, out=d)  # sqrt(v_hat_t) + eps
        d /= bias_correction2_sqrt
        d += eps
        xp.divide(m, d, out=d)  # theta_t = theta_{t-1} - eta m_hat_t / (sqrt(v_hat_t) + eps)
        d *= -lr / bias_correction1
        theta += d


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as
    ``torch.optim.AdamW``.

    The decay shrinks the weights directly, before the Adam step, instead of entering the gradient:

    .. math::

        \theta'_{t-1} &= \theta_{t-1}\,(1 - \eta\lambda) \\
        g_t &= \nabla_\theta L(\theta_{t-1}) \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t} \\
        \theta_t &= \theta'_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    So a weight with zero gradient decays geometrically, :math:`\theta_t = (1 - \eta\lambda)^t
    \theta_0`, at the same rate whatever :math:`\hat v_t` is. Worked example: :math:`\eta = 0.1`,
    :math:`\lambda = 0.5`, :math:`g = 0`: each step multiplies :math:`\theta` by :math:`0.95`.

    Same arguments as :class:`Adam`, but ``weight_decay`` defaults to ``0.01`` (as torch). Put
    biases and layer-norm gains in a group with ``weight_decay=0``
    (:func:`minroots.optim.weight_decay_groups`).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)

    def _check_group(self, group: dict, where: str) -> None:
        super()._check_group(group, where)
        group["decoupled_weight_decay"] = True  # AdamW is always decoupled (as torch)
