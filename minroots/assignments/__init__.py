"""Course assignments made from the library itself: stub chosen functions, grade with the test suite.

Book chapter "Exercises and assignments" (``book/assignments.md``); tests in
``tests/test_assignments.py``.

The manifest ``tasks.toml`` (beside this file) maps a task id such as ``"2.1"`` to the functions a
student writes, the book chapter, the points and the test files. ``make_student_copy`` writes a
self-contained copy of the package and its tests with those functions' bodies replaced by
``raise NotImplementedError("task 2.1: ...")``, keeping signatures and docstrings; ``grade`` runs
each task's tests (``pytest -m task2_1``) on their own, in a subprocess with time and memory
limits, and scores them with partial credit.
"""

import minroots.installation  # noqa: F401 - first: a folder that hides the package says so
from minroots.assignments.grade import TaskScore, TestOutcome, check_copy, grade
from minroots.assignments.manifest import Task, load_tasks
from minroots.assignments.splice import replace_definitions, stub_functions
from minroots.assignments.stubs import make_student_copy

__all__ = [
    "Task", "load_tasks", "stub_functions", "replace_definitions", "make_student_copy", "grade",
    "check_copy", "TaskScore", "TestOutcome",
]  # fmt: skip
