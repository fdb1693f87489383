"""The assignment manifest: which functions each task asks a student to write, and which tests grade it.

Book chapter "Exercises and assignments" (``book/assignments.md``).

This module uses only the standard library (the student copy's ``conftest.py`` reads the manifest
before anything of ``minroots`` may be imported).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Task", "load_tasks", "MANIFEST", "marker_of", "task_of_marker"]

MANIFEST = Path(__file__).with_name("tasks.toml")
_ID = re.compile(r"[0-9]+\.[0-9]+")


def marker_of(task_id: str) -> str:
    """The pytest marker of a task: ``"2.1" -> "task2_1"``."""
    return "task" + task_id.replace(".", "_")


def task_of_marker(marker: str) -> str:
    """The task id of a marker: ``"task2_1" -> "2.1"``."""
    return marker.removeprefix("task").replace("_", ".")


@dataclass(frozen=True)
class Task:
    """One task: ``functions`` are ``"module.path:Qualified.name"`` strings, ``tests`` test files."""

    id: str  # "2.1"
    title: str
    chapter: int
    points: int
    functions: tuple[str, ...]
    tests: tuple[str, ...]  # the files holding the tests marked task<id>, e.g. "tests/test_x.py"

    @property
    def marker(self) -> str:
        """The pytest marker of this task's tests: ``"2.1" -> "task2_1"``."""
        return marker_of(self.id)

    def modules(self) -> dict[str, list[str]]:
        """``{module: [qualified names]}`` of the functions this task stubs."""
        out: dict[str, list[str]] = {}
        for spec in self.functions:
            module, qualname = spec.split(":")
            out.setdefault(module, []).append(qualname)
        return out


def _entry(task_id: str, entry: dict, where: str) -> Task:
    if not _ID.fullmatch(task_id):
        raise ValueError(f"{where}: task id must look like 2.1 (chapter.number), got {task_id!r}")
    missing = {"title", "chapter", "points", "functions", "tests"} - set(entry)
    if missing:
        raise ValueError(f"{where}: task {task_id!r} lacks {', '.join(sorted(missing))}")
    for fn in entry["functions"]:
        if not isinstance(fn, str) or fn.count(":") != 1:
            raise ValueError(
                f"{where}: task {task_id!r} function must read 'module:Qualified.name', got {fn!r}"
            )
    if not entry["tests"] or not all(str(t).startswith("tests/") for t in entry["tests"]):
        raise ValueError(f"{where}: task {task_id!r} tests must be files under tests/, got "
                         f"{entry['tests']!r}")  # fmt: skip
    return Task(task_id, str(entry["title"]), int(entry["chapter"]), int(entry["points"]),
                tuple(entry["functions"]), tuple(entry["tests"]))  # fmt: skip


def load_tasks(path: str | Path | None = None) -> dict[str, Task]:
    """Read the manifest (the packaged ``tasks.toml`` by default) into ``{id: Task}``, in file order."""
    path = MANIFEST if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_tasks: no manifest at {path}")
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"load_tasks: {path} is not valid TOML ({exc})") from None
    return {tid: _entry(tid, entry, str(path)) for tid, entry in data.get("task", {}).items()}
