r"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay.

Book chapter 5, "Optimizers" (``book/05_optimizers.md``).

The simplest optimizer: step against the gradient. Momentum adds a running sum of past gradients,
so that steps keep their direction through noise and narrow valleys. The update is exactly that of
``torch.optim.SGD``.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.optim.optimizer import Optimizer
from minroots.validation import boolean, real_number

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    With learning rate :math:`\eta`, weight decay :math:`\lambda`, momentum :math:`\mu` and
    dampening :math:`\tau`, step :math:`t` does

    .. math::

        g_t &= \nabla_\theta L(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
        b_t &= \begin{cases} g_t & t = 1 \\ \mu\, b_{t-1} + (1 - \tau)\, g_t & t > 1 \end{cases} \\
        u_t &= \begin{cases} g_t + \mu\, b_t & \text{Nesterov} \\ b_t & \text{otherwise} \end{cases}
            \qquad (u_t = g_t \text{ when } \mu = 0) \\
        \theta_t &= \theta_{t-1} - \eta\, u_t

    Here the weight decay is *coupled* (an L2 penalty :math:`\tfrac{\lambda}{2}\lVert\theta\rVert^2`
    added to the loss), and the momentum buffer :math:`b_t` starts as the first gradient.

    Worked example (:math:`\eta = 0.1`, :math:`\mu = 0.9`, constant gradient :math:`g = 1`):
    :math:`b_1 = 1, \theta_1 = \theta_0 - 0.1`; :math:`b_2 = 0.9 + 1 = 1.9,
    \theta_2 = \theta_0 - 0.1 - 0.19 = \theta_0 - 0.29`.

    Args:
        params: iterable of Tensors or of parameter-group dicts.
        lr: :math:`\eta` (default ``1e-3``, as torch).
        momentum: :math:`\mu \ge 0` (default 0: plain SGD).
        dampening: :math:`\tau \in [0, 1]` (default 0).
        weight_decay: :math:`\lambda \ge 0` (default 0).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).

    State per parameter (with momentum): ``"momentum_buffer"`` (:math:`b_t`). It has no
    :meth:`~minroots.optim.optimizer.Optimizer.init_state`: :math:`b_1 = g_1` is the rule's first case, so :meth:`update` puts the
    buffer in the state at the first step (a copy of :math:`g_1`), as torch does.
    """

    _array_state = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict, where: str) -> None:
        for key in ("lr", "momentum", "weight_decay"):
            group[key] = real_number(where, key, group[key], low=0)
        group["dampening"] = real_number(where, "dampening", group["dampening"], low=0, high=1)
        group["nesterov"] = boolean(where, "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{where}: nesterov=True needs momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']} and dampening={group['dampening']}"
            )

    def update(self, theta, grad, state: dict, group: dict) -> None:
        """One SGD step of one parameter (in place), as the class docstring's formulas say."""
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        xp = B.get_array_module(theta)
        d, e = self._work(theta, 2)  # scratch views, reused by every parameter and step
        g = grad
        if wd != 0:
            xp.multiply(theta, wd, out=d)  # g_t = grad + lambda * theta   (never touch p.grad)
            d += grad
            g = d
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:  # b_1 = g_1
                buf = state["momentum_buffer"] = g.copy()
            else:  # b_t = mu b_{t-1} + (1 - tau) g_t
                buf *= mu
                if group["dampening"] != 0:
                    xp.multiply(g, 1.0 - group["dampening"], out=e)
                    buf += e
                else:
                    buf += g
            if group["nesterov"]:  # u_t = g_t + mu b_t
                xp.multiply(buf, mu, out=e)
                e += g
                g = e
            else:
                g = buf
        step = g if (g is d or g is e) else e  # scale a scratch copy, never buf or p.grad
        xp.multiply(g, -lr, out=step)
        theta += step  # theta_t = theta_{t-1} - eta u_t
