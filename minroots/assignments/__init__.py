"""Course assignments made from the library itself: stub chosen functions, grade with the test suite.

Book chapter "Exercises and assignments" (``book/assignments.md``); tests in
``tests/test_assignments.py``.

The manifest ``tasks.toml`` (beside this file) maps a task id such as ``"2.1"`` to the functions a
student writes, the book chapter, and the points. ``make_student_copy`` copies the package and its
tests and replaces those functions' bodies with ``raise NotImplementedError("task 2.1: ...")``,
keeping signatures and docstrings; ``grade`` runs each task's tests (``pytest -m task2_1``) with a
time limit per test and scores them.
"""

from minroots.assignments.grade import TaskScore, grade
from minroots.assignments.manifest import Task, load_tasks
from minroots.assignments.stubs import make_student_copy, stub_functions

__all__ = ["Task", "load_tasks", "stub_functions", "make_student_copy", "grade", "TaskScore"]
