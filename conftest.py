"""pytest set-up for the docstring examples of the package (``--doctest-modules`` on minroots/).

Every example sees ``np`` (NumPy) and ``minroots``, and starts from the same random state; the
tests' own set-up is in ``tests/conftest.py``.
"""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    import minroots

    minroots.manual_seed(0)
    doctest_namespace.update(np=np, minroots=minroots)
