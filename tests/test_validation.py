"""The shared argument checks (minroots/validation.py): values in, canonical values out, and one
message shape ``where: name must be ..., got ...`` for everything refused."""

import math

import numpy as np
import pytest

from minroots import Tensor
from minroots import validation as V


def test_integer_accepts_numpy_integers_and_refuses_bools_floats_and_out_of_range():
    assert V.integer("f", "n", np.int32(4), low=1) == 4 and type(V.integer("f", "n", 4)) is int
    for bad, exc in [(True, TypeError), (2.0, TypeError), ("3", TypeError), (0, ValueError)]:
        with pytest.raises(exc, match=r"^f: n must be an integer >= 1, got "):
            V.integer("f", "n", bad, low=1)
    with pytest.raises(ValueError, match=r"^f: n must be an integer >= 0 and <= 3, got 4$"):
        V.integer("f", "n", 4, low=0, high=3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_real_refuses_nan_and_infinity(bad):
    with pytest.raises(ValueError, match=r"^g: x must be a finite number, got "):
        V.real("g", "x", bad)


def test_real_bounds_open_and_closed():
    assert V.real("g", "p", 1, low=0, high=1) == 1.0
    with pytest.raises(ValueError, match=r"must be a finite number > 0 and < 1, got 1.0"):
        V.real("g", "p", 1, low=0, high=1, low_open=True, high_open=True)
    with pytest.raises(TypeError, match=r"got False \(bool\)"):
        V.real("g", "p", False)
    assert V.real("g", "p", math.inf, low=0, finite=False) == math.inf
    with pytest.raises(ValueError):
        V.real("g", "p", math.nan, finite=False)


def test_boolean_refuses_truthy_strings():
    assert V.boolean("C", "bias", np.bool_(True)) is True
    for bad in ["false", 0, 1, None]:
        with pytest.raises(TypeError, match=r"^C: bias must be True or False, got "):
            V.boolean("C", "bias", bad)


def test_one_of_suggests_the_closest_option():
    assert V.one_of("s", "name", "linear", ("cosine", "linear")) == "linear"
    with pytest.raises(ValueError, match=r"got 'gpt-4' \(did you mean 'gpt4'\?\)$"):
        V.one_of("s", "pattern", "gpt-4", ("gpt2", "gpt4"))
    with pytest.raises(ValueError, match=r"got 7$"):
        V.one_of("s", "n", 7, (1, 2))


def test_token_ids_shapes_dtypes_and_range():
    ids = np.array([[1, 2]], dtype=np.int32)
    assert V.token_ids("m", "idx", ids, ndim=2) is ids
    assert V.token_ids("m", "idx", Tensor(np.array([3, 4])), ndim=1).tolist() == [3, 4]
    assert V.token_ids("m", "idx", []).dtype.kind == "i"
    with pytest.raises(TypeError, match=r"^m: idx must have an integer dtype, got float64$"):
        V.token_ids("m", "idx", np.array([1.0]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\), got id 5$"):
        V.token_ids("m", "idx", [0, 5], vocab_size=5)
    with pytest.raises(ValueError, match=r"got id -1$"):
        V.token_ids("m", "idx", [-1, 2], vocab_size=5)
    with pytest.raises(TypeError, match=r"^m: idx must be an integer array, got str$"):
        V.token_ids("m", "idx", "abc")
