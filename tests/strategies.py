"""Shared hypothesis strategies: shapes, broadcastable shape pairs, float64 arrays (contiguous or
not), text that stresses tokenizers, and sentences over a test's own vocabulary; and the one
check that a fused kernel equals its composed reference (:func:`fused_equals_composed`).

Every test module draws from here rather than defining its own copy, so a strategy improved once
improves every test that uses it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


# --- arrays ---------------------------------------------------------------------------------------
def shapes(min_dims: int = 1, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Small array shapes, e.g. ``(3,)``, ``(2, 4)``, ``(1, 3, 2)``."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_pair(min_dims: int = 0, max_dims: int = 3, max_side: int = 4):
    """Two shapes that broadcast together, e.g. ``((2, 1, 3), (4, 3))``."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side
    ).map(lambda bs: bs.input_shapes)


def arrays(
    shape, low: float = -2.0, high: float = 2.0, away_from: tuple = (), unique: bool = False
):
    """float64 arrays with entries in [low, high], kept at least 0.05 away from the points ``away_from``
    (kinks such as 0 for relu/abs), so central differences are well defined."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    if away_from:
        elements = elements.filter(lambda v: all(abs(v - p) > 0.05 for p in away_from))
    return hnp.arrays(np.float64, shape, elements=elements, unique=unique)


@st.composite
def non_contiguous(draw, array: np.ndarray) -> np.ndarray:
    """The values of ``array`` in a layout that is not C-contiguous, as views made by ``.T``,
    ``swapaxes`` or ``x[..., ::2]`` are: its axes in a permuted order in memory (strides not
    decreasing) and, by chance or when the permutation alone keeps the array contiguous, only
    every other element of a buffer twice as long. Same shape, dtype and values; strides > 0, so
    ``torch.tensor`` takes it as it is. Arrays of fewer than two elements are always contiguous
    and come back unchanged.
    """
    if array.size < 2:
        return array
    order = draw(st.permutations(range(array.ndim)))
    first_step = draw(st.sampled_from([1, 2]))
    for step in (first_step, 2):
        buffer = np.zeros(array.size * step, dtype=array.dtype)[::step]
        laid_out = buffer.reshape([array.shape[axis] for axis in order])  # a view of the buffer
        laid_out[...] = array.transpose(order)
        out = laid_out.transpose(np.argsort(order))
        if not out.flags.c_contiguous:
            return out
    raise AssertionError("unreachable: a step of 2 is never contiguous")  # pragma: no cover


# --- text -----------------------------------------------------------------------------------------
# Text that stresses tokenizers: emoji (with joiners), CJK, combining marks, whitespace runs,
# contractions, digits, control characters and strings that look like special tokens.
TRICKY_TEXT = [
    "<|endoftext|>", "<|endoftext", "|>", "<|", "'s", "'LL", " ", "   ", "\n", "\n\n", "\r\n",
    "\t", "🙂", "👨‍👩‍👧", "中文字", "e\u0301", "\u200b", "1234567", "ÀÉÎ", "\x00", "don't",
    "  \n x",
]  # fmt: skip

# Any Unicode text, with the tricky pieces above mixed in far more often than chance would.
unicode_text = st.lists(st.one_of(st.text(), st.sampled_from(TRICKY_TEXT)), max_size=12).map(
    "".join
)


def sentences(words, max_words: int, separators=(" ", " ", "")):
    """Strings of up to ``max_words`` of ``words`` (a test's own vocabulary), joined by one of
    ``separators`` (repeat one to draw it more often; ``""`` glues words together)."""
    return st.builds(
        lambda ws, sep: sep.join(ws),
        st.lists(st.sampled_from(words), max_size=max_words),
        st.sampled_from(list(separators)),
    )


def fused_equals_composed(fused, composed, inputs, rng) -> None:
    """A fused kernel and its composed reference give the same values (1e-10) and the same input
    gradients (1e-9) in float64, for one random output gradient drawn from ``rng``."""
    import minroots

    def values_and_grads(fn, g):
        ts = [minroots.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in inputs]
        out = fn(*ts)
        out.backward(g)
        return out.data, [t.grad for t in ts]

    shape = fused(*[minroots.tensor(np.asarray(a, dtype=np.float64)) for a in inputs]).shape
    g = rng.standard_normal(shape)
    yf, gf = values_and_grads(fused, g)
    yc, gc = values_and_grads(composed, g)
    np.testing.assert_allclose(yf, yc, rtol=1e-10, atol=1e-12)
    for a, b in zip(gf, gc, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
