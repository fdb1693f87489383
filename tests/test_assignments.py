"""Course assignments: stubbing keeps signatures and docstrings; the reference passes every task and
a student copy fails every task (so no test passes on a stub)."""

import importlib.util
import inspect
from pathlib import Path

import pytest

from minroots.assignments import load_tasks, make_student_copy, stub_functions
from minroots.assignments.grade import format_table, grade

REPO = Path(__file__).resolve().parents[1]

SOURCE = '''\
import math  # a comment that must survive


class Shape:
    def area(self, scale: float = 1.0) -> float:
        """The area."""
        # a comment inside the body
        return self.w * self.h * scale


def double(x):
    return 2 * x
'''


def test_stub_replaces_bodies_and_keeps_the_rest():
    out = stub_functions(SOURCE, ["Shape.area", "double"], "task 9.9: do it")
    assert "import math  # a comment that must survive" in out
    assert '"""The area."""' in out
    assert "def area(self, scale: float = 1.0) -> float:" in out
    assert "return" not in out
    assert out.count("raise NotImplementedError('task 9.9: do it')") == 2
    namespace = {}
    exec(compile(out, "<stub>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="task 9.9"):
        namespace["double"](1)


def test_stub_of_an_unknown_function_is_a_clear_error():
    with pytest.raises(LookupError, match="nope"):
        stub_functions(SOURCE, ["nope"], "x")


def test_every_task_names_existing_functions_and_has_tests():
    tasks = load_tasks()
    assert tasks, "the manifest lists no task"
    for task in tasks.values():
        for spec in task.functions:
            module, qualname = spec.split(":")
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            assert callable(obj), spec


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_student_copy_stubs_only_the_chosen_task(tmp_path):
    tasks = make_student_copy(tmp_path / "student", only=["2.1"], source_root=REPO)
    assert [t.id for t in tasks] == ["2.1"]
    copied = (tmp_path / "student" / "minroots" / "autograd" / "elementwise.py").read_text()
    assert "raise NotImplementedError('task 2.1: implement mul" in copied
    assert "def mul(a, b) -> Tensor:" in copied
    original = (REPO / "minroots" / "autograd" / "reductions.py").read_text()
    assert (
        tmp_path / "student" / "minroots" / "autograd" / "reductions.py"
    ).read_text() == original
    assert (tmp_path / "student" / "tests" / "conftest.py").is_file()
    with pytest.raises(FileExistsError):
        make_student_copy(tmp_path / "student", only=["2.1"], source_root=REPO)
    with pytest.raises(ValueError, match="unknown task"):
        make_student_copy(tmp_path / "other", only=["99.9"], source_root=REPO)


def test_stubbed_signature_and_docstring_are_kept(tmp_path):
    make_student_copy(tmp_path / "s", only=["2.2"], source_root=REPO)
    import minroots.autograd.reductions as ref

    stub = _load(tmp_path / "s" / "minroots" / "autograd" / "reductions.py", "stub_reductions")
    assert inspect.signature(stub.sum) == inspect.signature(ref.sum)
    assert stub.sum.__doc__ == ref.sum.__doc__


@pytest.mark.slow
def test_reference_passes_every_task_and_student_copy_fails_every_task(tmp_path):
    reference = grade(REPO, timeout=120)
    assert all(s.total > 0 and s.passed == s.total for s in reference), format_table(reference)
    make_student_copy(tmp_path / "student", source_root=REPO)
    student = grade(tmp_path / "student", timeout=120)
    assert all(s.total > 0 and s.passed == 0 for s in student), format_table(student)
