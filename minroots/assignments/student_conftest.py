"""pytest set-up of a minroots student copy: written as ``conftest.py`` by ``minroots assignments make``.

Book chapter "Exercises and assignments" (``book/assignments.md``). Do not edit it in a copy: the
grader refuses a copy whose ``conftest.py`` differs from this file.

- ``import minroots`` finds *this copy's* package, whatever minroots is installed, so ``pytest``
  here always tests your code.
- ``pytest -m task2_1`` tests task 2.1 on its own, exactly as ``minroots assignments grade``
  does: the functions of every *other* task come from the reference minroots (the library that
  made this copy), so a task you have not done yet never breaks another task's tests. Plain
  ``pytest`` (no ``-m``) runs all of your code as it is.
- When the grader runs pytest (``MINROOTS_GRADE_LOG`` is set), each test's start and outcome are
  written to that file as they happen, so a crash or an endless loop loses nothing.

Only the standard library and pytest are used before the copy's package is in place.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MARKER_FILE = ".minroots-assignment.json"


def _load_by_path(name: str, path: Path):
    """Import one stdlib-only module of the copy's ``minroots/assignments`` without the package."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


class _SwappingLoader(importlib.machinery.SourceFileLoader):
    """Loads a module of the copy with some functions' definitions taken from the reference."""

    def __init__(self, fullname: str, path: str, reference: Path, qualnames: list[str], splice):
        super().__init__(fullname, path)
        self.reference, self.qualnames, self.splice = reference, qualnames, splice

    def get_code(self, fullname):  # never a cached .pyc: the code differs from the file's
        tree = ast.parse(Path(self.path).read_text("utf-8"), self.path)
        ref = ast.parse(self.reference.read_text("utf-8"), str(self.reference))
        self.splice.replace_definitions(tree, ref, self.qualnames)
        return compile(tree, self.path, "exec", dont_inherit=True)


class _CopyFinder:
    """Finds ``minroots`` and its modules in this copy, ahead of any installed minroots."""

    def __init__(self, swaps: dict, reference: Path | None, splice):
        self.swaps, self.reference, self.splice = swaps, reference, splice

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "minroots" and not fullname.startswith("minroots."):
            return None
        search = [str(HERE)] if fullname == "minroots" else path
        spec = importlib.machinery.PathFinder.find_spec(fullname, search)
        if spec is None or fullname not in self.swaps:
            return spec
        relative = Path(spec.origin).relative_to(HERE / "minroots")
        spec.loader = _SwappingLoader(fullname, spec.origin, self.reference / relative,
                                      self.swaps[fullname], self.splice)  # fmt: skip
        return spec


def _tasks_under_test(config, tasks) -> list[str] | None:
    """The task ids being tested: ``MINROOTS_TASK`` (the grader) or those named in ``-m``."""
    if os.environ.get("MINROOTS_TASK"):
        return os.environ["MINROOTS_TASK"].split(",")
    named = [t for t in tasks if re.search(rf"\b{tasks[t].marker}\b", config.option.markexpr or "")]
    return named or None


def _reference_dir() -> Path | None:
    """The reference package: ``MINROOTS_REFERENCE``, else the one recorded when the copy was made."""
    where = os.environ.get("MINROOTS_REFERENCE")
    if not where and (HERE / MARKER_FILE).is_file():
        where = json.loads((HERE / MARKER_FILE).read_text("utf-8")).get("reference")
    path = Path(where) if where else None
    if path is None or not (path / "__init__.py").is_file() or path.resolve() == HERE / "minroots":
        return None
    return path


_STATE = {"header": "minroots student copy: all of your code, as it is"}


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py imports minroots
def pytest_configure(config):
    if "minroots" in sys.modules and not _from_here(sys.modules["minroots"]):
        raise _usage_error(sys.modules["minroots"])
    splice = _load_by_path("_minroots_splice", HERE / "minroots" / "assignments" / "splice.py")
    manifest = _load_by_path(
        "_minroots_manifest", HERE / "minroots" / "assignments" / "manifest.py"
    )
    tasks = manifest.load_tasks(HERE / "minroots" / "assignments" / "tasks.toml")
    under_test = _tasks_under_test(config, tasks)
    reference = _reference_dir()
    swaps: dict[str, list[str]] = {}
    if under_test:
        if reference is None:
            _STATE["header"] = (f"minroots student copy: task {', '.join(under_test)}; the reference "
                                "minroots was not found, so other tasks run your code too")  # fmt: skip
        else:
            for task_id, task in tasks.items():
                if task_id not in under_test:
                    for module, names in task.modules().items():
                        swaps.setdefault(module, []).extend(names)
            _STATE["header"] = (f"minroots student copy: task {', '.join(under_test)} on its own "
                                f"(other tasks' functions from {reference})")  # fmt: skip
    sys.meta_path.insert(0, _CopyFinder(swaps, reference, splice))
    if os.environ.get("MINROOTS_GRADE_LOG"):
        config.pluginmanager.register(
            _GradeLog(os.environ["MINROOTS_GRADE_LOG"]), "minroots-grade-log"
        )


def _from_here(module) -> bool:
    return Path(module.__file__ or "").resolve().is_relative_to(HERE)


def _usage_error(module):
    return pytest.UsageError(
        f"minroots was imported from {module.__file__}, not from this student copy ({HERE}); "
        "run pytest inside the copy, without plugins that import minroots"
    )


def pytest_report_header(config):
    return _STATE["header"]


def pytest_sessionstart(session):
    import minroots  # only now: pytest_configure first puts the copy's package in front of others

    if not _from_here(minroots):
        raise _usage_error(minroots)


class _GradeLog:
    """Appends one JSON line per event, flushed at once: ``collected``, ``start``, ``report``, ``finish``."""

    def __init__(self, path: str):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole session

    def write(self, **event) -> None:
        self.file.write(json.dumps(event) + "\n")
        self.file.flush()

    def pytest_collection_finish(self, session):
        self.write(event="collected", tests=[item.nodeid for item in session.items])

    def pytest_collectreport(self, report):
        if report.failed:
            self.write(event="collect_error", where=report.nodeid, message=_last_line(report))

    def pytest_runtest_logstart(self, nodeid, location):
        self.write(event="start", test=nodeid)

    def pytest_runtest_logfinish(self, nodeid, location):
        self.write(event="finish", test=nodeid)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.write(event="report", test=report.nodeid, when=report.when,
                       outcome=report.outcome, message=_last_line(report))  # fmt: skip

    def pytest_unconfigure(self, config):
        self.file.close()


def _last_line(report) -> str:
    """The one-line reason of a failure (``AssertionError: ...``), at most 300 characters."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0] if crash is not None and lines else lines[-1] if lines else "")[:300]
