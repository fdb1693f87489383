"""Shared hypothesis strategies: shapes, broadcastable shape pairs, well-conditioned float64 arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


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
