"""The shared strategies draw what they promise (tests/strategies.py)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import TRICKY_TEXT, arrays, non_contiguous, sentences, shapes, unicode_text


@given(data=st.data())
def test_non_contiguous_keeps_values_and_is_never_contiguous(data):
    x = data.draw(arrays(shapes(min_dims=0, max_dims=4)))
    y = data.draw(non_contiguous(x))
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)
    if y.size >= 2:  # one element or none is always contiguous: it comes back unchanged
        assert not y.flags.c_contiguous and not np.shares_memory(x, y)
        assert all(s > 0 for s in y.strides)  # torch.tensor(y) takes it as it is


def test_non_contiguous_draws_transposed_and_strided_layouts():
    x = np.arange(24.0).reshape(2, 3, 4)
    seen = set()

    @given(non_contiguous(x))
    def collect(y):
        seen.add((y.flags.f_contiguous, y.strides[-1] == 2 * y.itemsize))

    collect()
    assert (True, False) in seen  # axes reversed in memory, no gaps: Fortran order
    assert any(strided for _, strided in seen)  # every other element of a buffer


@given(unicode_text, sentences(["a", "b"], max_words=3))
def test_text_strategies(text, sentence):
    assert isinstance(text, str)
    assert set(sentence) <= {"a", "b", " "} and len(sentence.replace(" ", "")) <= 3
    assert "<|endoftext|>" in TRICKY_TEXT
