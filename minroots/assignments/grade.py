"""Grade a student copy: run each task's tests with a per-test time limit and score them.

Book chapter "Exercises and assignments" (``book/assignments.md``).

A task scores ``points * passed / collected``; a test that runs past the limit fails, so an
infinite loop cannot hang grading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

from minroots.assignments.manifest import load_tasks

__all__ = ["TaskScore", "grade", "format_table"]


@dataclass
class TaskScore:
    task: str
    title: str
    passed: int
    total: int
    points: float
    max_points: int


def _run_task(directory: Path, marker: str, timeout: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [
            sys.executable, "-m", "pytest", "tests", "-q", "-m", marker, "-p", "no:cacheprovider",
            f"--timeout={timeout}", f"--junitxml={report}", "-o", "addopts=",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(directory)}
        subprocess.run(
            cmd, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout * 50
        )
        if not report.exists():
            return 0, 0
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total = int(suite.get("tests", 0)) - int(suite.get("skipped", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        return total - bad, total


def grade(
    directory, only: list[str] | None = None, timeout: int = 60, manifest=None
) -> list[TaskScore]:
    """Run every task's tests inside ``directory`` (a student copy) and return the scores."""
    directory = Path(directory).resolve()
    if not (directory / "minroots").is_dir() or not (directory / "tests").is_dir():
        raise FileNotFoundError(
            f"grade: {directory} must hold minroots/ and tests/ (a student copy)"
        )
    tasks = load_tasks(manifest)
    scores = []
    for task_id in only or list(tasks):
        task = tasks[task_id]
        passed, total = _run_task(directory, task.marker, timeout)
        points = task.points * passed / total if total else 0.0
        scores.append(TaskScore(task_id, task.title, passed, total, round(points, 2), task.points))
    return scores


def format_table(scores: list[TaskScore]) -> str:
    """A plain-text score table, one task a row, with the total."""
    rows = [f"{'task':<6} {'title':<40} {'tests':>9} {'points':>12}"]
    for s in scores:
        rows.append(
            f"{s.task:<6} {s.title[:40]:<40} {s.passed:>4}/{s.total:<4} {s.points:>6}/{s.max_points:<5}"
        )
    got = sum(s.points for s in scores)
    best = sum(s.max_points for s in scores)
    rows.append(f"{'total':<6} {'':<40} {'':>9} {got:>6}/{best:<5}")
    return "\n".join(rows)


def to_json(scores: list[TaskScore]) -> str:
    return json.dumps(
        {"tasks": [asdict(s) for s in scores], "total": sum(s.points for s in scores)}, indent=2
    )
