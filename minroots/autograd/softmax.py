r"""Softmax, log-softmax and log-sum-exp: the one stable implementation in minroots.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``) and chapter 4,
"Cross-entropy" (``book/04_cross_entropy.md``); tests in ``tests/test_autograd_tensor.py``,
``tests/test_autograd_values.py`` and ``tests/test_autograd_gradcheck.py``.

.. math::
    \mathrm{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad
    \mathrm{logsumexp}(x) = m + \ln \sum_j e^{x_j - m}, \qquad m = \max_j x_j

Subtracting the maximum changes nothing mathematically and keeps every exponent :math:`\le 0`,
so nothing overflows even for inputs of :math:`\pm 10^4` in float32.

Two levels, one formula. :func:`exp_shifted` is the only place in the package that subtracts the
maximum, exponentiates and sums; :func:`softmax_array`, :func:`log_softmax_array` and
:func:`logsumexp_array` build on it for plain NumPy/CuPy arrays (no graph). Everything else calls
these: the fused cross-entropy and attention kernels (:mod:`minroots.nn.functional`), perplexity
(:mod:`minroots.metrics.perplexity`), sampling and beam search (:mod:`minroots.generation`), and
the graph nodes below. Each fused graph node (``softmax``, ``log_softmax``, ``logsumexp``) saves
only what its backward needs; the ``*_composed`` versions build the same function from basic ops
and serve as the reference in the tests.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.autograd import elementwise as E
from minroots.autograd import reductions as R
from minroots.autograd._rows import row_max, row_sum
from minroots.autograd.tensor import Tensor
from minroots.validation import tensor_arg

__all__ = [
    "softmax", "log_softmax", "logsumexp", "softmax_composed", "log_softmax_composed",
    "exp_shifted", "softmax_array", "log_softmax_array", "logsumexp_array",
]  # fmt: skip


# ---------------------------------------------------------------------- arrays (no graph)
def exp_shifted(x, axis=-1, out=None, fast_rows: bool = False):
    r"""The stable core of softmax and logsumexp, along ``axis`` (an int, a tuple or ``None``).

    Returns ``(E, m, s)`` with :math:`m = \max_j x_j`, :math:`E = e^{x - m}` and
    :math:`s = \sum_j E_j` (``m`` and ``s`` keep the reduced axes with length 1), so that
    :math:`\mathrm{softmax}(x) = E / s` and :math:`\mathrm{logsumexp}(x) = m + \ln s`. A row with
    no finite maximum (all :math:`-\infty`: every key masked) uses :math:`m = 0`, so its ``E`` and
    ``s`` are 0 instead of NaN. ``out=x`` computes ``E`` in place.

    ``fast_rows=True`` (last axis only) takes the row reductions of ``minroots/autograd/_rows.py``:
    in NumPy about twice as fast on short float32 rows (attention scores), summed in another order,
    so the last bit of ``s`` can differ from ``x.sum``'s.

    >>> e, m, s = exp_shifted(np.array([[0.0, np.log(3.0)]]))
    >>> e.round(4), m.round(4), s.round(4)       # e^{x - ln 3} = [1/3, 1], sum 4/3
    (array([[0.3333, 1.    ]]), array([[1.0986]]), array([[1.3333]]))
    """
    xp = B.get_array_module(x)
    if fast_rows and axis not in (-1, x.ndim - 1):
        raise ValueError(f"exp_shifted: fast_rows works on the last axis, got axis={axis}")
    if x.size == 0:  # nothing to shift; an empty axis has no maximum (its softmax is empty too)
        m = xp.zeros_like(x.sum(axis=axis, keepdims=True))
    else:
        m = row_max(x, xp) if fast_rows else x.max(axis=axis, keepdims=True)
    m[~xp.isfinite(m)] = 0
    e = xp.subtract(x, m, out=out)
    xp.exp(e, out=e)
    s = row_sum(e, xp) if fast_rows else e.sum(axis=axis, keepdims=True)
    return e, m, s


def softmax_array(x, axis=-1, out=None):
    r""":math:`\mathrm{softmax}(x) = E / s` of an array (``out=x`` works in place).

    >>> softmax_array(np.log(np.array([[1.0, 3.0]])))
    array([[0.25, 0.75]])
    """
    e, _, s = exp_shifted(x, axis, out)
    e /= s
    return e


def log_softmax_array(x, axis=-1):
    r""":math:`\log \mathrm{softmax}(x) = (x - m) - \ln s` of an array.

    Subtracting :math:`m` first, then :math:`\ln s`, keeps large inputs accurate: :math:`x - m`
    loses nothing near the maximum, while :math:`x - (m + \ln s)` would first round
    :math:`m + \ln s` at the scale of :math:`x` (by about :math:`10^{-3}` for a float32 logit of
    :math:`10^4`).

    >>> log_softmax_array(np.log(np.array([[1.0, 3.0]]))).round(4)      # ln [1/4, 3/4]
    array([[-1.3863, -0.2877]])
    """
    xp = B.get_array_module(x)
    if x.size == 0:  # nothing to normalize (and no ln 0 to take)
        return x.copy()
    e, m, s = exp_shifted(x, axis)
    z = xp.subtract(x, m, out=e)  # reuse E's buffer
    z -= xp.log(s)
    return z


def logsumexp_array(x, axis=-1, keepdims: bool = False):
    r""":math:`\mathrm{logsumexp}(x) = m + \ln s` of an array.

    >>> logsumexp_array(np.array([[1000.0, 1000.0]]))    # 1000 + ln 2, no overflow
    array([1000.69314718])
    """
    xp = B.get_array_module(x)
    _, m, s = exp_shifted(x, axis)
    lse = xp.log(s, out=s)
    lse += m
    return lse if keepdims else lse.squeeze(axis=axis)


# ---------------------------------------------------------------------- graph nodes
def _float_tensor(op: str, a) -> None:
    """A Tensor of floats (an integer tensor has no exponential to compute in place)."""
    tensor_arg(op, "a", a)
    if a.data.dtype.kind != "f":
        raise TypeError(f"{op}: a must have a floating dtype, got {a.data.dtype}")


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    r"""Forward :math:`y = \mathrm{softmax}(a)`; backward :math:`\bar a = y \odot (\bar y - \sum_j \bar y_j y_j)` (the softmax Jacobian)."""
    _float_tensor("softmax", a)
    axis = R.normalize_axes(axis, a.ndim, "softmax")
    if a.ndim == 0:
        raise ValueError("softmax: a must have at least one axis, got a 0-d tensor")
    y = softmax_array(a.data, axis)

    def backward(g):
        gy = g * y
        gy -= y * gy.sum(axis=axis, keepdims=True)
        return (gy,)

    return Tensor._make(y, (a,), backward, "softmax")


def log_softmax(a: Tensor, axis: int = -1) -> Tensor:
    r"""Forward :math:`z = a - \mathrm{logsumexp}(a)`; backward :math:`\bar a = \bar z - \mathrm{softmax}(a) \sum_j \bar z_j`."""
    _float_tensor("log_softmax", a)
    axis = R.normalize_axes(axis, a.ndim, "log_softmax")
    if a.ndim == 0:
        raise ValueError("log_softmax: a must have at least one axis, got a 0-d tensor")
    xp = B.get_array_module(a.data)
    z = log_softmax_array(a.data, axis)

    def backward(g):
        return (g - xp.exp(z) * g.sum(axis=axis, keepdims=True),)

    return Tensor._make(z, (a,), backward, "log_softmax")


def logsumexp(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    r"""Forward :math:`z = \ln \sum_j e^{a_j}`; backward :math:`\bar a_i = \bar z \, \mathrm{softmax}(a)_i = \bar z \, e^{a_i - z}`."""
    _float_tensor("logsumexp", a)
    xp = B.get_array_module(a.data)
    axes = R.normalize_axes(axis, a.ndim, "logsumexp")
    if a.ndim == 0:
        raise ValueError("logsumexp: a must have at least one axis, got a 0-d tensor")
    s = logsumexp_array(a.data, axes, keepdims=True)
    out = s if keepdims else s.reshape([n for i, n in enumerate(a.shape) if i not in axes])
    return Tensor._make(
        out, (a,), lambda g: (g.reshape(s.shape) * xp.exp(a.data - s),), "logsumexp"
    )


def softmax_composed(a: Tensor, axis: int = -1) -> Tensor:
    """Reference softmax from basic ops (exp, sum, div): slower, same values and gradients."""
    e = E.exp(E.sub(a, R.max(a, axis=axis, keepdims=True).detach()))
    return E.div(e, R.sum(e, axis=axis, keepdims=True))


def log_softmax_composed(a: Tensor, axis: int = -1) -> Tensor:
    """Reference log-softmax from basic ops: ``a - m - log(sum(exp(a - m)))``."""
    shifted = E.sub(a, R.max(a, axis=axis, keepdims=True).detach())
    return E.sub(shifted, E.log(R.sum(E.exp(shifted), axis=axis, keepdims=True)))
