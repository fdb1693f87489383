"""Make a student copy: the chosen functions keep their signature and docstring, lose their body.

Book chapter "Exercises and assignments" (``book/assignments.md``).

The library's source carries no markers: :func:`~minroots.assignments.splice.stub_functions` finds
each function of the manifest with ``ast`` and splices ``raise NotImplementedError("task 2.1: ...")``
in place of its body. The copy is self-contained: the package (its bundled corpora inside it), the
test suite and the files the tests read, a ``conftest.py`` that makes ``import minroots`` find the
copy's package (:mod:`minroots.assignments.student_conftest`), a ``pytest.ini``, and
``.minroots-assignment.json``, which marks the folder as a student copy and records the tasks,
the reference library that made it and a hash of every file the grader relies on.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import sys
from pathlib import Path

import minroots
from minroots.assignments.manifest import Task, load_tasks
from minroots.assignments.splice import stub_functions
from minroots.installation import check_installation

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["make_student_copy", "package_dir", "MARKER_FILE", "FORMAT", "protected_files", "sha256"]

MARKER_FILE = ".minroots-assignment.json"
FORMAT = 1
CONFTEST = Path(__file__).with_name("student_conftest.py")
_EXTRAS = ("README.md", "book", "data")  # read by some tests of the suite
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", "_build")


def package_dir() -> Path:
    """The folder of the imported ``minroots`` package (the reference library)."""
    check_installation()  # minroots.__file__ is None when a folder hides the package
    return Path(minroots.__file__).resolve().parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def protected_files(copy: Path) -> list[Path]:
    """Files of a copy the grader checks against their recorded hashes: tests and grading set-up."""
    files = [copy / "conftest.py", copy / "pytest.ini"]
    for folder in (copy / "tests", copy / "minroots" / "assignments"):
        files += sorted(
            p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    return files


def _pytest_ini(source_root: Path) -> str:
    """The copy's pytest settings: the project's markers and warning filters, the copy's tests."""
    options = {}
    pyproject = source_root / "pyproject.toml"
    if pyproject.is_file():
        options = tomllib.loads(pyproject.read_text("utf-8")).get("tool", {}).get("pytest", {})
        options = options.get("ini_options", {})
    lines = ["[pytest]", "testpaths = tests", "pythonpath = .",
             "addopts = -ra --strict-markers -p no:cacheprovider", "markers ="]  # fmt: skip
    lines += [f"    {m}" for m in options.get("markers", [])]
    lines += ["filterwarnings ="] + [f"    {w}" for w in options.get("filterwarnings", [])]
    return "\n".join(lines) + "\n"


def _guide(tasks: list[Task]) -> str:
    rows = "\n".join(f"| {t.id} | {t.chapter} | {t.title} | {t.points} | `pytest -m {t.marker}` |"
                     for t in tasks)  # fmt: skip
    return f"""# minroots assignments

Each function below lost its body: its signature and docstring (with the formula) are kept. Write
the body, then check your work inside this folder:

```bash
pytest -m task2_1                           # the tests of task 2.1, on their own
minroots assignments grade . --only 2.1     # the same, scored as the grader scores it
```

`pytest -m <task>` tests one task on its own: the functions of the other tasks come from the
reference minroots, so the order in which you do the tasks does not matter. Do not edit `tests/`,
`conftest.py`, `pytest.ini` or `minroots/assignments/`: the grader refuses a copy whose tests
changed. The book's chapter "Exercises and assignments" explains the rest.

| task | chapter | what you write | points | check |
|---|---|---|---|---|
{rows}
"""


def make_student_copy(
    out_dir, only: list[str] | None = None, source_root=None, manifest=None
) -> list[Task]:
    """Write a student copy of minroots to ``out_dir`` (a new folder) with the tasks' functions stubbed.

    ``only`` limits it to some task ids; ``source_root`` is the checkout whose ``tests/`` (and
    ``README.md``, ``book/``, ``data/``) are copied (default: the folder above the package).
    Returns the tasks that were stubbed.
    """
    package = package_dir()
    source_root = Path(source_root) if source_root else package.parent
    tasks = load_tasks(manifest)
    chosen = list(tasks) if not only else list(dict.fromkeys(only))
    unknown = [t for t in chosen if t not in tasks]
    if unknown:
        raise ValueError(
            f"assignments make: unknown task {', '.join(unknown)}; known: {', '.join(tasks)}"
        )
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"assignments make: {out_dir} already exists; give a new folder")
    if not (source_root / "tests" / "conftest.py").is_file():
        raise FileNotFoundError(
            f"assignments make: no test suite at {source_root / 'tests'}; a student copy needs "
            "minroots' tests, so install minroots from a checkout (pip install -e .)"
        )
    shutil.copytree(package, out_dir / "minroots", ignore=_IGNORE)
    corpora = out_dir / "minroots" / "corpora"
    if not corpora.exists() and (source_root / "data").is_dir():  # a checkout keeps them in data/
        shutil.copytree(source_root / "data", corpora, ignore=_IGNORE)
    shutil.copytree(source_root / "tests", out_dir / "tests", ignore=_IGNORE)
    for extra in _EXTRAS:
        src = source_root / extra
        if src.is_dir():
            shutil.copytree(src, out_dir / extra, ignore=_IGNORE)
        elif src.is_file():
            shutil.copy2(src, out_dir / extra)
    if manifest is not None:  # the copy's conftest.py reads the manifest inside the copy
        shutil.copy2(manifest, out_dir / "minroots" / "assignments" / "tasks.toml")
    shutil.copy2(CONFTEST, out_dir / "conftest.py")
    (out_dir / "pytest.ini").write_text(_pytest_ini(source_root), "utf-8")

    for task_id in chosen:
        task = tasks[task_id]
        for module, qualnames in task.modules().items():
            path = out_dir / Path(*module.split(".")).with_suffix(".py")
            message = (f"task {task.id}: implement {', '.join(qualnames)} ({task.title}; book "
                       f"chapter {task.chapter}; check with `pytest -m {task.marker}`)")  # fmt: skip
            path.write_text(stub_functions(path.read_text("utf-8"), qualnames, message), "utf-8")
    stubbed = [tasks[t] for t in chosen]
    (out_dir / "ASSIGNMENT.md").write_text(_guide(stubbed), "utf-8")
    marker = {
        "format": FORMAT,
        "minroots": minroots.__version__,
        "made": datetime.date.today().isoformat(),
        "tasks": chosen,
        "reference": str(package),
        "files": {p.relative_to(out_dir).as_posix(): sha256(p) for p in protected_files(out_dir)},
    }
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n", "utf-8")
    return stubbed
