"""The assignment manifest: which functions each task asks a student to write.

Book chapter "Exercises and assignments" (``book/assignments.md``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Task", "load_tasks", "MANIFEST"]

MANIFEST = "tasks.toml"


@dataclass(frozen=True)
class Task:
    """One task: ``functions`` are ``"module.path:Qualified.name"`` strings."""

    id: str  # "2.1"
    title: str
    chapter: int
    points: int
    functions: tuple[str, ...]

    @property
    def marker(self) -> str:
        """The pytest marker of this task's tests: ``"2.1" -> "task2_1"``."""
        return "task" + self.id.replace(".", "_")


def load_tasks(path: str | Path | None = None) -> dict[str, Task]:
    """Read the manifest (the packaged ``tasks.toml`` by default) into ``{id: Task}``."""
    if path is None:
        text = resources.files("minroots.assignments").joinpath(MANIFEST).read_text("utf-8")
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"load_tasks: no manifest at {path}")
        text = path.read_text("utf-8")
    data = tomllib.loads(text)
    tasks = {}
    for task_id, entry in data.get("task", {}).items():
        missing = {"title", "chapter", "points", "functions"} - set(entry)
        if missing:
            raise ValueError(f"load_tasks: task {task_id!r} lacks {sorted(missing)}")
        for fn in entry["functions"]:
            if ":" not in fn:
                raise ValueError(
                    f"load_tasks: task {task_id!r}: {fn!r} must read 'module:Qualified.name'"
                )
        tasks[task_id] = Task(
            task_id,
            entry["title"],
            int(entry["chapter"]),
            int(entry["points"]),
            tuple(entry["functions"]),
        )
    return tasks
