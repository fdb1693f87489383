"""Grade a student copy: each task's tests in a subprocess of their own, with time and memory limits.

Book chapter "Exercises and assignments" (``book/assignments.md``).

For each task, ``pytest -m task<id>`` runs inside the copy with ``MINROOTS_TASK`` set, so the
copy's ``conftest.py`` takes every *other* task's functions from the reference library (this one):
a task is graded on its own. A task scores ``points * passed / counted``, where the counted tests
are those that ran (a test skipped for want of an optional library counts for nothing).

Nothing a student writes can stop the grader: each test has a time limit (pytest-timeout), and
a watchdog kills the whole process when a test hangs where that limit cannot reach (inside a C
loop); the process has a memory limit. The copy's ``conftest.py`` logs every test's start and
outcome as it happens, so after a kill or a crash the grader knows which test was running, marks
it ``timeout`` or ``crashed``, and starts pytest again for the tests that had not run yet.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minroots import __version__
from minroots.assignments.manifest import Task, load_tasks
from minroots.assignments.stubs import (
    CONFTEST,
    FORMAT,
    MARKER_FILE,
    package_dir,
    protected_files,
    sha256,
)

__all__ = ["TestOutcome", "TaskScore", "grade", "check_copy", "format_table", "to_json"]

_GRACE_S = 15.0  # the watchdog's margin over the per-test limit
_LAUNCH = (
    "import os, sys\n"
    "try:\n"
    "    import resource\n"
    "    limit = int(os.environ['MINROOTS_GRADE_MEMORY'])\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "except ImportError:\n"
    "    pass  # no memory limit where the resource module does not exist (Windows)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'pytest', *sys.argv[1:]])\n"
)


# Only the plugins the tests need (the others installed, such as nbmake, would cost a second each
# time pytest starts): pytest-timeout and hypothesis's plugin.
_PLUGINS = ("-p", "pytest_timeout", "-p", "_hypothesis_pytestplugin")


@dataclass
class TestOutcome:
    """One test: ``passed``, ``failed``, ``skipped``, ``timeout``, ``crashed`` or ``not run``."""

    test: str  # the pytest node id
    outcome: str
    message: str = ""


@dataclass
class TaskScore:
    task: str
    title: str
    chapter: int
    passed: int
    total: int  # the tests that counted (not skipped)
    points: float
    max_points: int
    tests: list[TestOutcome] = field(default_factory=list)
    error: str = ""  # why no test ran (e.g. the copy's code does not import)


def check_copy(directory) -> dict:
    """The copy's ``.minroots-assignment.json``, after checking that the folder can be graded.

    Raises ``ValueError`` (one line) for a folder that is not a student copy, a copy made by another
    version of minroots, or a copy whose tests or grading set-up were changed.
    """
    directory = Path(directory)
    marker_path = directory / MARKER_FILE
    if not marker_path.is_file():
        raise ValueError(
            f"assignments grade: {directory} is not a minroots student copy (no {MARKER_FILE}); "
            f"make one with `minroots assignments make --out {directory}`"
        )
    try:
        marker = json.loads(marker_path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"assignments grade: {marker_path} is damaged ({exc})") from None
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise ValueError(f"assignments grade: {marker_path} is not a format-{FORMAT} marker")
    if marker.get("minroots") != __version__:
        raise ValueError(
            f"assignments grade: {directory} was made by minroots {marker.get('minroots')}, this "
            f"grader is minroots {__version__}; grade it with the version that made it"
        )
    recorded = marker.get("files", {})
    present = {p.relative_to(directory).as_posix(): p for p in protected_files(directory)}
    changed = [name for name, p in present.items() if recorded.get(name) != sha256(p)]
    changed += [name for name in recorded if name not in present]
    if (directory / "conftest.py").is_file() and sha256(directory / "conftest.py") != sha256(
        CONFTEST
    ):
        changed.append("conftest.py")
    if changed:
        shown = ", ".join(sorted(set(changed))[:3]) + (" ..." if len(set(changed)) > 3 else "")
        raise ValueError(
            f"assignments grade: {directory} has changed test or grading files ({shown}); put "
            "back the versions the copy was made with"
        )
    return marker


def _require_pytest() -> None:
    needed = ("pytest", "pytest_timeout", "_hypothesis_pytestplugin")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(m.strip("_").removesuffix("_pytestplugin") for m in missing)
        raise RuntimeError(
            f"assignments grade: grading needs {names}, which this Python ({sys.executable}) "
            "lacks; install them with pip install pytest pytest-timeout hypothesis (or the dev "
            "extra: pip install 'minroots[dev]')"
        )


def _events(log: Path) -> list[dict]:
    if not log.exists():
        return []
    lines = log.read_text("utf-8").splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:  # the last line of a killed process may be cut
            pass
    return out


def _tail(path: Path, n: int = 3) -> str:
    text = path.read_text("utf-8", errors="replace") if path.exists() else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-n:])[:500]


def _run_pytest(directory: Path, task: Task, skip: list[str], timeout: float, memory_mb: int,
                tmp: Path, attempt: int) -> tuple[list[dict], str, Path]:  # fmt: skip
    """One pytest process for the task's tests (minus ``skip``); returns its events, how it ended
    (``"done"``, ``"killed"`` or ``"crashed: ..."``) and its output file."""
    log, output = tmp / f"events-{attempt}.jsonl", tmp / f"output-{attempt}.txt"
    args = [*task.tests, "-m", task.marker, "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            "--continue-on-collection-errors", f"--timeout={timeout:g}", *_PLUGINS]  # fmt: skip
    for nodeid in skip:
        args += ["--deselect", nodeid]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", MINROOTS_TASK=task.id, MINROOTS_REFERENCE=str(package_dir()),
               MINROOTS_GRADE_LOG=str(log), MINROOTS_GRADE_MEMORY=str(memory_mb * 2**20),
               HYPOTHESIS_PROFILE="grade", PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0",
               MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")  # fmt: skip
    with open(output, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, *args], cwd=directory, env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=os.name == "posix")  # fmt: skip
        running, since, seen = None, time.monotonic(), 0
        while proc.poll() is None:
            time.sleep(0.2)
            events = _events(log)
            for event in events[seen:]:
                if event["event"] == "start":
                    running, since = event["test"], time.monotonic()
                elif event["event"] == "finish":
                    running = None
            seen = len(events)
            if running is not None and time.monotonic() - since > timeout + _GRACE_S:
                if os.name == "posix":
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: a test may fork
                else:  # pragma: no cover
                    proc.kill()
                proc.wait()
                return _events(log), "killed", output
    code = proc.returncode
    how = "done" if code >= 0 else f"crashed: {signal.Signals(-code).name}"
    return _events(log), how, output


_RANK = {"passed": 0, "skipped": 1, "failed": 2, "timeout": 3}


def _outcomes(events: list[dict]) -> dict[str, TestOutcome]:
    """The final outcome of every test that reported: a failure in any phase makes it fail."""
    out: dict[str, TestOutcome] = {}
    for event in events:
        if event["event"] != "report":
            continue
        test, outcome, message = event["test"], event["outcome"], event["message"]
        if outcome == "failed" and message.startswith("Failed: Timeout"):
            outcome = "timeout"
        previous = out.get(test)
        if previous is None or _RANK[outcome] > _RANK[previous.outcome]:
            out[test] = TestOutcome(test, outcome, message)
    return out


def _grade_task(directory: Path, task: Task, timeout: float, memory_mb: int) -> TaskScore:
    collected: list[str] | None = None
    done: dict[str, TestOutcome] = {}
    error = ""
    with tempfile.TemporaryDirectory(prefix="minroots-grade-") as tmp:
        for attempt in range(1000):  # each round finishes at least one test, so this ends
            events, how, output = _run_pytest(directory, task, list(done), timeout, memory_mb,
                                              Path(tmp), attempt)  # fmt: skip
            if collected is None:
                lists = [e["tests"] for e in events if e["event"] == "collected"]
                if not lists:
                    error = f"pytest did not collect the tests ({how}): {_tail(output)}"
                    break
                collected = lists[0]
                errors = [e for e in events if e["event"] == "collect_error"]
                if errors:
                    error = f"could not collect {errors[0]['where']}: {errors[0]['message']}"
            done.update(_outcomes(events))
            started = [e["test"] for e in events if e["event"] == "start"]
            unfinished = [t for t in started if t not in done]
            if how == "done" or not unfinished:
                break
            label = "timeout" if how == "killed" else "crashed"
            reason = (f"ran past {timeout:g} s + {_GRACE_S:g} s and was killed" if how == "killed"
                      else f"the test process died ({how.split(': ')[1]})")  # fmt: skip
            done[unfinished[-1]] = TestOutcome(unfinished[-1], label, reason)
            if all(t in done for t in collected):
                break
    tests = [done.get(t, TestOutcome(t, "not run")) for t in collected or []]
    counted = [t for t in tests if t.outcome != "skipped"]
    passed = sum(t.outcome == "passed" for t in counted)
    points = round(task.points * passed / len(counted), 2) if counted else 0.0
    if not counted and not error:
        error = "no test of this task ran (all were skipped)"
    return TaskScore(task.id, task.title, task.chapter, passed, len(counted), points, task.points,
                     tests, error)  # fmt: skip


def grade(directory, only: list[str] | None = None, timeout: float = 60, memory_mb: int = 4096,
          jobs: int | None = None, manifest=None) -> list[TaskScore]:  # fmt: skip
    """Grade the tasks of a student copy (all of its tasks, or ``only`` these ids), in parallel.

    ``timeout`` is the limit per test in seconds, ``memory_mb`` the address-space limit of each
    pytest process, ``jobs`` how many tasks are graded at once (default: the number of CPUs).
    """
    _require_pytest()
    directory = Path(directory).resolve()
    marker = check_copy(directory)
    if package_dir().is_relative_to(directory):
        raise ValueError(
            f"assignments grade: the grader itself was imported from the copy {directory}; run it "
            "from outside the copy so that it uses the reference minroots"
        )
    tasks = load_tasks(manifest)
    chosen = list(marker["tasks"]) if not only else list(dict.fromkeys(only))
    foreign = [t for t in chosen if t not in marker["tasks"]]
    if foreign:
        raise ValueError(
            f"assignments grade: task {', '.join(foreign)} is not part of this copy; its tasks "
            f"are {', '.join(marker['tasks'])}"
        )
    jobs = jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(
            pool.map(lambda t: _grade_task(directory, tasks[t], timeout, memory_mb), chosen)
        )


def format_table(scores: list[TaskScore]) -> str:
    """A plain-text score table, one task a row, with the total."""
    width = max([5] + [len(s.title) for s in scores])
    rows = [f"{'task':<6} {'title':<{width}} {'tests':>9} {'points':>13}"]
    for s in scores:
        rows.append(f"{s.task:<6} {s.title:<{width}} {s.passed:>4}/{s.total:<4} "
                    f"{s.points:>6g}/{s.max_points:<6}")  # fmt: skip
        if s.error:
            rows.append(f"{'':<6} ! {s.error}")
        for t in s.tests:
            if t.outcome != "passed":
                rows.append(
                    f"{'':<6}   {t.outcome}: {t.test}" + (f" - {t.message}" if t.message else "")
                )
    got = round(sum(s.points for s in scores), 2)
    best = sum(s.max_points for s in scores)
    rows.append(f"{'total':<6} {'':<{width}} {'':>9} {got:>6g}/{best:<6}")
    return "\n".join(rows)


def to_json(scores: list[TaskScore]) -> str:
    """The scores as JSON: per task its points and every test's outcome, and the totals."""
    return json.dumps({
        "tasks": [asdict(s) for s in scores],
        "total": round(sum(s.points for s in scores), 2),
        "max_total": sum(s.max_points for s in scores),
    }, indent=1)  # fmt: skip
