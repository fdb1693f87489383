"""Shared test set-up: seeded randomness and hypothesis profiles (CI and grading are derandomized)."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=30,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", deadline=None, max_examples=500)
# The assignment grader's profile: as "ci", but a failure is not shrunk (a score needs no
# minimal example, and shrinking a stub's failures would cost seconds per test).
settings.register_profile(
    "grade",
    parent=settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=False,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state."""
    import minroots

    minroots.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - pins any stray use of the legacy global generator
    yield


def pytest_configure(config):
    """Register one marker per assignment task (``pytest -m task2_1`` runs that task's tests)."""
    from minroots.assignments import load_tasks

    for task in load_tasks().values():
        config.addinivalue_line(
            "markers", f"{task.marker}: assignment task {task.id}, {task.title}"
        )


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests unless CuPy sees a GPU."""
    from minroots.backend import cupy_available

    if cupy_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
