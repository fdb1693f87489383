"""The table of differentiable operations under test.

Each case draws its inputs (float64 NumPy arrays) and returns them with the same function written
for minroots and for PyTorch. ``test_autograd_gradcheck.py`` checks every case against central
differences; ``test_autograd_torch.py`` checks every case against PyTorch; both in each of the
:data:`LAYOUTS` (:func:`draw_case`).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from strategies import arrays, broadcastable_pair, non_contiguous, shapes

import minroots as mr

CASES = {}

# the assignment task whose functions each case exercises (see minroots/assignments/tasks.toml)
TASK_OF_CASE = {
    "mul": "task2_1", "div": "task2_1", "rdiv_scalar": "task2_1", "exp": "task2_1", "log": "task2_1",
    "add": "task2_2", "sum": "task2_2", "mean": "task2_2",
    "composite_mlp": "task2_3",
    "matmul": "task2_4",
    "tanh": "task2_5", "sigmoid": "task2_5", "relu": "task2_5",
    "softmax": "task3_1", "log_softmax": "task3_1",
    "logsumexp": "task4_2",
}  # fmt: skip


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def _pair(draw, low=-2.0, high=2.0, b_low=None, b_high=None):
    sa, sb = draw(broadcastable_pair())
    a = draw(arrays(sa, low, high))
    b = draw(
        arrays(sb, b_low if b_low is not None else low, b_high if b_high is not None else high)
    )
    return a, b


@case
def add(draw):
    return _pair(draw), lambda a, b: a + b, lambda a, b: a + b


@case
def sub(draw):
    return _pair(draw), lambda a, b: a - b, lambda a, b: a - b


@case
def mul(draw):
    return _pair(draw), lambda a, b: a * b, lambda a, b: a * b


@case
def div(draw):
    return _pair(draw, b_low=0.5, b_high=2.0), lambda a, b: a / b, lambda a, b: a / b


@case
def rdiv_scalar(draw):
    x = draw(arrays(draw(shapes()), 0.5, 2.0))
    return [x], lambda a: 2.0 / a - 1.5, lambda a: 2.0 / a - 1.5


@case
def pow_scalar(draw):
    p = draw(st.sampled_from([2, 3, 0.5, -1.5]))
    x = draw(arrays(draw(shapes()), 0.5, 2.0))
    return [x], lambda a: a**p, lambda a: a**p


@case
def pow_tensor(draw):
    return _pair(draw, 0.5, 2.0), lambda a, b: a**b, lambda a, b: a**b


@case
def neg(draw):
    return [draw(arrays(draw(shapes())))], lambda a: -a, lambda a: -a


def _unary(name, torch_name=None, low=-2.0, high=2.0, away_from=()):
    def build(draw):
        x = draw(arrays(draw(shapes()), low, high, away_from=away_from))
        return (
            [x],
            lambda a: getattr(a, name)(),
            lambda a: getattr(a, torch_name or name)(),
        )

    build.__name__ = name
    CASES[name] = build


_unary("exp")
_unary("log", low=0.2, high=3.0)
_unary("sqrt", low=0.2, high=3.0)
_unary("tanh")
_unary("erf")
_unary("sigmoid")
_unary("relu", away_from=(0.0,))
_unary("abs", away_from=(0.0,))


@case
def gelu(draw):
    mode = draw(st.sampled_from(["none", "tanh"]))
    x = draw(arrays(draw(shapes()), -3.0, 3.0))
    import_torch_f = lambda a: __import__("torch").nn.functional.gelu(a, approximate=mode)  # noqa: E731
    return [x], lambda a: a.gelu(approximate=mode), import_torch_f


@case
def clip(draw):
    x = draw(arrays(draw(shapes()), away_from=(-0.5, 0.7)))
    return [x], lambda a: a.clip(-0.5, 0.7), lambda a: a.clamp(-0.5, 0.7)


def _axis(draw, ndim):
    return draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1)))


def _reduction(name, torch_fn, unique=False):
    def build(draw):
        shape = draw(shapes())
        if unique:  # max/min: distinct values at least 0.1 apart, so the argmax is stable under eps
            size = int(np.prod(shape))
            order = draw(st.permutations(range(size)))
            x = (np.array(order, dtype=np.float64) * 0.1 - 0.05 * size).reshape(shape)
        else:
            x = draw(arrays(shape))
        axis = _axis(draw, len(shape))
        keep = draw(st.booleans())
        return (
            [x],
            lambda a: getattr(a, name)(axis=axis, keepdims=keep),
            lambda a: torch_fn(a, axis, keep),
        )

    build.__name__ = name
    CASES[name] = build


def _torch_reduce(method):
    def fn(a, axis, keep):
        dims = tuple(range(a.ndim)) if axis is None else axis
        return getattr(a, method)(dim=dims, keepdim=keep)

    return fn


_reduction("sum", _torch_reduce("sum"))
_reduction("mean", _torch_reduce("mean"))
_reduction("max", _torch_reduce("amax"), unique=True)
_reduction("min", _torch_reduce("amin"), unique=True)
_reduction("logsumexp", lambda a, axis, keep: a.logsumexp(
    dim=tuple(range(a.ndim)) if axis is None else axis, keepdim=keep))  # fmt: skip


@case
def var(draw):
    shape = draw(shapes(min_side=2))
    x = draw(arrays(shape))
    axis = _axis(draw, len(shape))
    ddof = draw(st.sampled_from([0, 1]))

    def torch_var(a):
        dims = tuple(range(a.ndim)) if axis is None else axis
        return a.var(dim=dims, correction=ddof)

    return [x], lambda a: a.var(axis=axis, ddof=ddof), torch_var


def _softmax_like(name):
    def build(draw):
        shape = draw(shapes())
        x = draw(arrays(shape, -5.0, 5.0))
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        return [x], lambda a: getattr(a, name)(axis), lambda a: getattr(a, name)(dim=axis)

    build.__name__ = name
    CASES[name] = build


_softmax_like("softmax")
_softmax_like("log_softmax")


@case
def matmul(draw):
    batch_a, batch_b = draw(broadcastable_pair(max_dims=2, max_side=3))
    n, k, m = draw(st.tuples(*[st.integers(1, 4)] * 3))
    form = draw(st.sampled_from(["batched", "vec_left", "vec_right"]))
    sa = (k,) if form == "vec_left" else (*batch_a, n, k)
    sb = (k,) if form == "vec_right" else (*batch_b, k, m)
    return [draw(arrays(sa)), draw(arrays(sb))], lambda a, b: a @ b, lambda a, b: a @ b


@case
def reshape(draw):
    x = draw(arrays(draw(shapes())))
    return [x], lambda a: (a.reshape(-1) * 2).reshape(x.shape[::-1]), lambda a: (a.reshape(-1) * 2).reshape(
        x.shape[::-1])  # fmt: skip


@case
def transpose(draw):
    shape = draw(shapes(min_dims=2))
    perm = tuple(draw(st.permutations(range(len(shape)))))
    x = draw(arrays(shape))
    return [x], lambda a: a.transpose(*perm) * 3, lambda a: a.permute(*perm) * 3


@case
def T(draw):
    x = draw(arrays(draw(shapes(min_dims=2, max_dims=2))))
    return [x], lambda a: a.T @ a, lambda a: a.T @ a


@case
def swapaxes(draw):
    shape = draw(shapes(min_dims=2))
    i, j = draw(st.integers(0, len(shape) - 1)), draw(st.integers(0, len(shape) - 1))
    x = draw(arrays(shape))
    return [x], lambda a: a.swapaxes(i, j).exp(), lambda a: a.swapaxes(i, j).exp()


@case
def squeeze_unsqueeze(draw):
    shape = draw(shapes())
    axis = draw(st.integers(0, len(shape)))
    x = draw(arrays(shape))
    return (
        [x],
        lambda a: a.unsqueeze(axis).tanh().squeeze(axis),
        lambda a: a.unsqueeze(axis).tanh().squeeze(axis),
    )


@case
def getitem_basic(draw):
    x = draw(arrays(draw(shapes(min_dims=2, min_side=2))))
    return [x], lambda a: a[1:, ::-1] * a[0], lambda a: a[1:].flip(1) * a[0]


@case
def getitem_integer_array(draw):
    x = draw(arrays(draw(shapes(min_dims=1, max_dims=3))))
    n = x.shape[0]
    idx = np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6)))
    return [x], lambda a: a[idx] * 1.5, lambda a: a[__import__("torch").as_tensor(idx)] * 1.5


@case
def concatenate(draw):
    shape = draw(shapes())
    axis = draw(st.integers(0, len(shape) - 1))
    other = list(shape)
    other[axis] = draw(st.integers(1, 3))
    a, b = draw(arrays(shape)), draw(arrays(tuple(other)))
    return (
        [a, b],
        lambda a, b: mr.concatenate([a, b * b], axis=axis),
        lambda a, b: __import__("torch").cat([a, b * b], dim=axis),
    )


@case
def stack(draw):
    shape = draw(shapes())
    axis = draw(st.integers(0, len(shape)))
    a, b = draw(arrays(shape)), draw(arrays(shape))
    return (
        [a, b],
        lambda a, b: mr.stack([a, b.exp()], axis=axis),
        lambda a, b: __import__("torch").stack([a, b.exp()], dim=axis),
    )


@case
def split(draw):
    shape = (*draw(shapes(max_dims=2)), 4)
    x = draw(arrays(shape))

    def f(a):
        p, q = mr.split(a, [1], axis=-1)
        return p * q.sum(axis=-1, keepdims=True)

    def ft(a):
        p, q = a.split([1, 3], dim=-1)
        return p * q.sum(dim=-1, keepdim=True)

    return [x], f, ft


@case
def where(draw):
    a, b = _pair(draw)
    shape = np.broadcast_shapes(a.shape, b.shape)
    cond = draw(st.lists(st.booleans(), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    cond = np.array(cond, dtype=bool).reshape(shape)
    return (
        [a, b],
        lambda a, b: mr.where(cond, a, b),
        lambda a, b: __import__("torch").where(__import__("torch").as_tensor(cond), a, b),
    )


@case
def masked_fill(draw):
    shape = draw(shapes())
    x = draw(arrays(shape))
    mask = np.arange(x.size).reshape(shape) % 3 == 0
    return (
        [x],
        lambda a: a.masked_fill(mask, -1e9).softmax(-1),
        lambda a: a.masked_fill(__import__("torch").as_tensor(mask), -1e9).softmax(-1),
    )


@case
def composite_mlp(draw):
    n, d, h = draw(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)))
    x, w1, b1, w2 = (draw(arrays(s, -1.0, 1.0)) for s in [(n, d), (d, h), (h,), (h, 3)])

    def f(x, w1, b1, w2):
        hidden = (x @ w1 + b1).tanh()
        logits = hidden @ w2
        return -(logits.log_softmax(-1)[:, 0]).mean() + (w1 * w1).sum() * 0.01

    return [x, w1, b1, w2], f, f


# every case runs on inputs in each memory layout: kernels that assume C order fail the second
LAYOUTS = ["contiguous", "non-contiguous"]


def draw_case(name, draw, layout="contiguous"):
    """``(inputs, minroots_fn, torch_fn)`` of case ``name``, the inputs laid out as ``layout`` says
    (``"non-contiguous"``: the same values, with permuted and strided memory)."""
    arrays, fn, torch_fn = CASES[name](draw)
    if layout == "non-contiguous":
        arrays = [draw(non_contiguous(a)) for a in arrays]
    return arrays, fn, torch_fn
