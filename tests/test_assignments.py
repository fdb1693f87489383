"""Course assignments: the manifest, the student copy, grading on its own task by task, and the
round trip that proves every task's tests fail on a stub and pass on the reference.

Book chapter "Exercises and assignments" (``book/assignments.md``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import minroots
from minroots.assignments import (
    check_copy,
    grade,
    load_tasks,
    make_student_copy,
    replace_definitions,
    stub_functions,
)
from minroots.assignments.grade import format_table, to_json
from minroots.assignments.stubs import MARKER_FILE
from minroots.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
grade_module = importlib.import_module("minroots.assignments.grade")  # `grade` is also a function
TASKS = load_tasks()

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


# --- splicing source ----------------------------------------------------------------------------
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
    with pytest.raises(LookupError, match="not a function"):
        stub_functions(SOURCE, ["Shape"], "x")


def test_replace_definitions_swaps_only_the_named_functions_and_keeps_line_numbers():
    mine = "def double(x):\n    return 3 * x\n\n\ndef triple(x):\n    return 1 / 0\n"
    tree = replace_definitions(ast.parse(mine), ast.parse(SOURCE), ["double"])
    namespace = {}
    exec(compile(tree, "mine.py", "exec"), namespace)
    assert namespace["double"](5) == 10  # the reference definition
    with pytest.raises(ZeroDivisionError) as info:
        namespace["triple"](1)  # the student's own, at its own line
    assert info.traceback[-1].lineno + 1 == 6


# --- the manifest -------------------------------------------------------------------------------
def test_every_task_names_existing_functions_and_test_files():
    assert len(TASKS) >= 25
    assert {t.chapter for t in TASKS.values()} >= {2, 3, 4, 5, 6, 7, 8, 9}
    for task in TASKS.values():
        for spec in task.functions:
            module, qualname = spec.split(":")
            obj = __import__(module, fromlist=["_"])
            for part in qualname.split("."):
                obj = getattr(obj, part)
            assert callable(obj), spec
        for path in task.tests:
            assert (REPO / path).is_file(), f"task {task.id}: {path} does not exist"


def test_manifest_errors_are_clear(tmp_path):
    bad = tmp_path / "tasks.toml"
    bad.write_text('[task."2.1"]\ntitle = "x"\nchapter = 2\npoints = 1\nfunctions = ["a.b"]\n'
                   'tests = ["tests/x.py"]\n')  # fmt: skip
    with pytest.raises(ValueError, match="module:Qualified.name"):
        load_tasks(bad)
    bad.write_text('[task."2.1"]\ntitle = "x"\n')
    with pytest.raises(ValueError, match="lacks chapter, functions, points, tests"):
        load_tasks(bad)
    with pytest.raises(FileNotFoundError):
        load_tasks(tmp_path / "none.toml")


_COLLECTOR = """
import json, os
def pytest_collection_modifyitems(session, config, items):
    found = {it.nodeid: sorted({m.name for m in it.iter_markers()}) for it in items}
    with open(os.environ["COLLECTED_JSON"], "w") as f:
        json.dump(found, f)
"""


@pytest.fixture(scope="module")
def collected_markers(tmp_path_factory):
    """``{node id: [marker names]}`` of every test of the suite, by a real pytest collection."""
    tmp = tmp_path_factory.mktemp("collect")
    (tmp / "collector_plugin.py").write_text(_COLLECTOR)
    out = tmp / "collected.json"
    env = {**os.environ, "COLLECTED_JSON": str(out), "PYTHONPATH": str(tmp)}
    subprocess.run([sys.executable, "-m", "pytest", "tests", "--collect-only", "-q",
                    "-p", "no:cacheprovider", "-p", "collector_plugin", "-o", "addopts="],
                   cwd=REPO, env=env, capture_output=True, check=True, timeout=300)  # fmt: skip
    return json.loads(out.read_text())


def test_each_task_has_three_tests_in_its_files_and_each_test_one_task(collected_markers):
    markers = {t.marker: t for t in TASKS.values()}
    counted = {t.id: 0 for t in TASKS.values()}
    for nodeid, names in collected_markers.items():
        tasks = [markers[n] for n in names if n in markers]
        assert len(tasks) <= 1, f"{nodeid} carries several task markers: {names}"
        if not tasks:
            continue
        task = tasks[0]
        path = nodeid.split("::")[0]
        assert path in task.tests, f"{nodeid} is a test of task {task.id} outside {task.tests}"
        if "parity" not in names and "gpu" not in names:  # counts even without optional libraries
            counted[task.id] += 1
    few = {t: n for t, n in counted.items() if n < 3}
    assert not few, f"tasks with fewer than 3 tests that run without reference libraries: {few}"


# --- the student copy ---------------------------------------------------------------------------
def test_make_student_copy_is_self_contained(tmp_path):
    tasks = make_student_copy(tmp_path / "student", only=["2.1"], source_root=REPO)
    copy = tmp_path / "student"
    assert [t.id for t in tasks] == ["2.1"]
    stubbed = (copy / "minroots" / "autograd" / "elementwise.py").read_text()
    assert "raise NotImplementedError('task 2.1: implement mul, div, exp, log" in stubbed
    assert "def mul(a, b) -> Tensor:" in stubbed
    original = (REPO / "minroots" / "autograd" / "reductions.py").read_text()
    assert (copy / "minroots" / "autograd" / "reductions.py").read_text() == original
    for needed in ("tests/conftest.py", "conftest.py", "pytest.ini", "README.md", "ASSIGNMENT.md",
                   "minroots/corpora/shakespeare.txt", "book/02_autograd.md"):  # fmt: skip
        assert (copy / needed).is_file(), needed
    marker = json.loads((copy / MARKER_FILE).read_text())
    assert marker["tasks"] == ["2.1"] and marker["minroots"] == minroots.__version__
    assert "tests/test_autograd_values.py" in marker["files"]
    assert check_copy(copy) == marker
    with pytest.raises(FileExistsError, match="already exists"):
        make_student_copy(copy, only=["2.1"], source_root=REPO)
    with pytest.raises(ValueError, match="unknown task 99.9"):
        make_student_copy(tmp_path / "other", only=["99.9"], source_root=REPO)


def test_stubbed_signature_and_docstring_are_kept(tmp_path):
    import inspect

    import minroots.autograd.reductions as ref

    make_student_copy(tmp_path / "s", only=["2.2"], source_root=REPO)
    path = tmp_path / "s" / "minroots" / "autograd" / "reductions.py"
    tree = ast.parse(path.read_text())
    stub = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "sum")
    assert ast.get_docstring(stub) == inspect.getdoc(ref.sum)
    assert ast.unparse(stub.args) == "a: Tensor, axis=None, keepdims: bool=False"


def _pytest_in(copy: Path, *args, env=None):
    """Run pytest inside a copy as a student would (the editable minroots stays installed)."""
    env = {k: v for k, v in (env or os.environ).items() if k not in ("PYTHONPATH", "MINROOTS_TASK")}
    return subprocess.run([sys.executable, "-m", "pytest", *args],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip


def test_pytest_in_the_copy_tests_the_students_code_one_task_at_a_time(tmp_path):
    copy = tmp_path / "student"
    make_student_copy(copy, only=["2.1", "3.1"], source_root=REPO)
    files = ["tests/test_autograd_values.py", "tests/test_autograd_tensor.py"]
    # the stubs fail, although the installed minroots is the reference library
    result = _pytest_in(copy, *files, "-m", "task2_1")
    assert "NotImplementedError: task 2.1" in result.stdout and result.returncode == 1
    # 3.1's reference code put back: its tests pass, although 2.1's exp and div (which the
    # composed softmax of the tests uses) are still stubs in the copy: other tasks come from the
    # reference library when one task is tested
    shutil.copy(REPO / "minroots/autograd/softmax.py", copy / "minroots/autograd/softmax.py")
    result = _pytest_in(copy, *files, "-m", "task3_1")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "task 3.1 on its own" in result.stdout
    # without -m, every test runs the copy's code as it is: 2.1's stubs break 3.1's tests too
    result = _pytest_in(copy, "tests/test_autograd_tensor.py", "-k", "composed")
    assert "NotImplementedError: task 2.1" in result.stdout


def test_grading_refuses_what_is_not_a_gradable_copy(tmp_path):
    with pytest.raises(ValueError, match="not a minroots student copy"):
        grade(tmp_path)
    copy = tmp_path / "student"
    make_student_copy(copy, only=["2.1"], source_root=REPO)
    with pytest.raises(ValueError, match="task 3.1 is not part of this copy"):
        grade(copy, only=["3.1"])
    test_file = copy / "tests" / "test_autograd_values.py"
    test_file.write_text(test_file.read_text().replace("assert", "assert True or"))
    with pytest.raises(ValueError, match="changed test or grading files .*test_autograd_values"):
        grade(copy)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["assignments", "grade", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a minroots student copy" in err
    assert main(["assignments", "make", "--out", str(tmp_path), "--only", "2.1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["assignments", "make", "--out", str(tmp_path / "x"), "--only", "7.7"]) == 2
    assert "unknown task 7.7" in capsys.readouterr().err
    assert main(["assignments", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(f"{t.id:<5} chapter {t.chapter}" in listing for t in TASKS.values())


def test_grader_without_pytest_timeout_says_so(monkeypatch):
    real = grade_module.importlib.util.find_spec
    monkeypatch.setattr(grade_module.importlib.util, "find_spec",
                        lambda name: None if name == "pytest_timeout" else real(name))  # fmt: skip
    with pytest.raises(RuntimeError, match="grading needs pytest_timeout"):
        grade_module._require_pytest()


def test_grading_without_pytest_exits_non_zero_naming_it(tmp_path, monkeypatch, capsys):
    """Not "0/0 for every task, exit 0": one line that names pytest and how to install it."""
    real = grade_module.importlib.util.find_spec
    monkeypatch.setattr(grade_module.importlib.util, "find_spec",
                        lambda name: None if name.startswith("pytest") else real(name))  # fmt: skip
    assert main(["assignments", "grade", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minroots: error: assignments grade: ")
    assert "grading needs pytest, pytest_timeout" in err and "pip install pytest" in err


def test_the_score_table_shows_whole_titles():
    title = "a title of sixty characters, longer than the forty of before"
    score = grade_module.TaskScore("9.9", title, 9, 3, 4, 7.5, 10)
    table = format_table([score])
    assert title in table and len(title) == 60
    rows = table.splitlines()
    # the title column is as wide as the title: the header's next column starts after it
    assert rows[0].index("tests") > rows[1].index(title) + len(title) < rows[1].index("3/4")


# --- the grader survives what a student's code can do -------------------------------------------
_HOSTILE_TESTS = """
import os, signal, time
import pytest
pytestmark = pytest.mark.task9_9

def test_a_passes():
    assert True

def test_b_fails():
    assert 1 == 2

def test_c_loops_forever():
    while True:
        pass

def test_d_hangs_where_the_time_limit_cannot_reach():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    while True:
        time.sleep(0.01)

def test_e_crashes_the_process():
    os.kill(os.getpid(), signal.SIGSEGV)

def test_f_after_the_crash_still_runs():
    assert True

def test_g_asks_for_too_much_memory():
    bytearray(2**36)
"""


@pytest.mark.skipif(os.name != "posix", reason="signals and memory limits are POSIX")
def test_grader_survives_loops_hangs_crashes_and_memory_hogs(tmp_path, monkeypatch):
    root = tmp_path / "course"
    (root / "tests").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "conftest.py", root / "tests" / "conftest.py")
    (root / "tests" / "test_hostile.py").write_text(_HOSTILE_TESTS)
    manifest = tmp_path / "tasks.toml"
    manifest.write_text('[task."9.9"]\ntitle = "hostile"\nchapter = 9\npoints = 7\n'
                        'functions = ["minroots.generation:top_k_filter"]\n'
                        'tests = ["tests/test_hostile.py"]\n')  # fmt: skip
    make_student_copy(tmp_path / "student", source_root=root, manifest=manifest)
    monkeypatch.setattr(grade_module, "_GRACE_S", 2.0)
    [score] = grade(tmp_path / "student", timeout=2, memory_mb=2048, manifest=manifest)
    outcomes = {t.test.split("::")[1][5:6]: t.outcome for t in score.tests}
    assert outcomes == {"a": "passed", "b": "failed", "c": "timeout", "d": "timeout",
                        "e": "crashed", "f": "passed", "g": "failed"}, format_table([score])  # fmt: skip
    assert score.points == 2.0 and (score.passed, score.total) == (2, 7)
    messages = {t.test.split("::")[1][5:6]: t.message for t in score.tests}
    assert "SIGSEGV" in messages["e"] and "MemoryError" in messages["g"]
    assert "killed" in messages["d"]


# --- the round trip: stubs score 0, the reference full marks, a wrong forward loses points ------
def _restore_reference(copy: Path, task_ids) -> None:
    for task_id in task_ids:
        for module in TASKS[task_id].modules():
            rel = Path(*module.split(".")).with_suffix(".py")
            shutil.copy(REPO / rel, copy / rel)


def test_round_trip_stubs_score_zero_and_the_reference_full_marks(tmp_path):
    copy = tmp_path / "student"
    make_student_copy(copy, source_root=REPO)
    stubs = grade(copy, timeout=120)
    assert [s.task for s in stubs] == list(TASKS)
    assert all(s.total >= 3 and s.passed == 0 and not s.error for s in stubs), format_table(stubs)

    _restore_reference(copy, TASKS)
    solved = grade(copy, timeout=120)
    assert all(s.total >= 3 and s.points == s.max_points for s in solved), format_table(solved)
    report = json.loads(to_json(solved))
    assert report["total"] == report["max_total"] == sum(t.points for t in TASKS.values())
    assert all(t["outcome"] == "passed" for task in report["tasks"] for t in task["tests"])

    # exp returning 2 e^x with a matching backward passes a gradient check, not the value tests
    path = copy / "minroots" / "autograd" / "elementwise.py"
    source = path.read_text()
    wrong = source.replace("out = B.get_array_module(a.data).exp(a.data)\n",
                           "out = 2 * B.get_array_module(a.data).exp(a.data)\n")  # fmt: skip
    assert wrong != source
    path.write_text(wrong)
    partly = {s.task: s for s in grade(copy, only=["2.1", "3.1", "4.1"], timeout=120)}
    assert 0 < partly["2.1"].points < partly["2.1"].max_points, format_table(list(partly.values()))
    assert partly["3.1"].points == partly["3.1"].max_points  # other tasks use the reference exp
    assert partly["4.1"].points == partly["4.1"].max_points


def test_the_cli_writes_the_json_report(tmp_path, capsys):
    copy = tmp_path / "student"
    assert main(["assignments", "make", "--out", str(copy), "--only", "9.1"]) == 0
    report = tmp_path / "scores.json"
    assert main(["assignments", "grade", str(copy), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "9.1" in out and "0/5" in out
    data = json.loads(report.read_text())
    assert data["max_total"] == 5 and data["tasks"][0]["tests"][0]["outcome"] == "failed"


# --- every documented command line parses -------------------------------------------------------
def _documented_command_lines() -> list[tuple[str, str]]:
    """``(where, command line)`` for each ``minroots ...`` in the README, the book and the tutorials."""
    sources = [
        REPO / "README.md",
        REPO / "tutorials" / "README.md",
        *sorted((REPO / "book").rglob("*.md")),
    ]
    texts = [(p, p.read_text("utf-8")) for p in sources if "_build" not in p.parts]
    for nb in sorted((REPO / "tutorials").glob("*.ipynb")) + sorted(
        (REPO / "book").rglob("*.ipynb")
    ):
        cells = json.loads(nb.read_text("utf-8"))["cells"]
        texts.append(
            (nb, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"))
        )
    found = []
    for path, text in texts:
        where = str(path.relative_to(REPO))
        found += [(where, m) for m in re.findall(r"`(minroots [^`\n]+)`", text)]
        for block in re.findall(r"```(?:bash|console|sh)\n(.*?)```", text, re.S):
            found += [(where, line.strip()) for line in block.splitlines()
                      if line.strip().startswith("minroots ")]  # fmt: skip
    return found


def _expand(line: str) -> list[list[str]]:
    """A synopsis as argument lists: comments and ``[``, ``]``, ``...`` dropped, ``a|b`` expanded."""
    line = line.split(" #")[0].replace("[", " ").replace("]", " ").replace("...", " ")
    words = shlex.split(line)[1:]
    variants = [[]]
    for word in words:
        options = word.split("|") if "|" in word and not word.startswith("-") else [word]
        variants = [v + [o] for v in variants for o in options]
    return variants


def _is_command_path(parser, words) -> bool:
    """True when ``words`` name a (sub)command, e.g. ``["eval", "bleu"]``."""
    for word in words:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers or word not in subparsers[0].choices:
            return False
        parser = subparsers[0].choices[word]
    return True


def test_every_documented_command_line_parses():
    lines = _documented_command_lines()
    assert len(lines) > 10
    parser = build_parser()
    bad = []
    for where, line in lines:
        for args in _expand(line):
            if not any(a.startswith("-") or "=" in a or "/" in a or "." in a for a in args):
                if _is_command_path(parser, args):  # a command named in prose: `minroots train`
                    continue
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    parser.parse_args(args)
            except SystemExit:
                bad.append(f"{where}: {line}  ->  {args}")
    assert not bad, "command lines that the CLI does not accept:\n" + "\n".join(bad)


def test_the_assignment_guide_is_written_for_the_chosen_tasks(tmp_path):
    make_student_copy(tmp_path / "s", only=["9.2", "5.1"], source_root=REPO)
    guide = (tmp_path / "s" / "ASSIGNMENT.md").read_text()
    assert "| 9.2 | 9 | Top-p (nucleus) filtering | 10 | `pytest -m task9_2` |" in guide
    assert "| 5.1 |" in guide and "| 2.1 |" not in guide
    assert textwrap.dedent(guide).startswith("# minroots assignments")


def test_the_book_lists_every_task():
    text = (REPO / "book" / "assignments.md").read_text("utf-8")
    assert re.findall(r"^\| ([0-9]+\.[0-9]+) \|", text, re.M) == list(TASKS)
