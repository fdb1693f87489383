"""``minroots assignments list|make|grade``: the command-line side of the course assignments.

Book chapter "Exercises and assignments" (``book/assignments.md``); tests in
``tests/test_assignments.py``.

::

    minroots assignments list
    minroots assignments make --out student/ [--only 6.1 6.2]
    minroots assignments grade student/ [--json scores.json]
"""

from __future__ import annotations

from pathlib import Path

from minroots.assignments import load_tasks, make_student_copy
from minroots.assignments.grade import format_table, grade, to_json
from minroots.cli.arguments import positive_float, positive_int
from minroots.persistence import write_text

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``assignments`` command (``list``, ``make``, ``grade``) to argparse sub-parsers."""
    parser = subparsers.add_parser(
        "assignments", help="course assignments: list the tasks, make a student copy, grade one",
        description="Course assignments made from minroots itself: a student copy has the tasks' "
        "functions stubbed; the library's own tests grade them.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="assignments_command", metavar="COMMAND", required=True)

    ls = sub.add_parser("list", help="list the tasks, chapter by chapter",
                        description="List every task: its id, chapter, points and functions.")  # fmt: skip
    ls.set_defaults(func=run_list)

    make = sub.add_parser("make", help="copy minroots with the tasks' functions stubbed out",
                          description="Write a self-contained student copy (package, tests, "
                          "conftest.py) with each chosen task's functions reduced to their "
                          "signature and docstring.")  # fmt: skip
    make.add_argument("--out", required=True, type=Path, metavar="DIR",
                      help="folder for the student copy (must not exist yet)")  # fmt: skip
    make.add_argument("--only", nargs="+", metavar="TASK", help="task ids to stub (default: all)")
    make.set_defaults(func=run_make)

    grade_ = sub.add_parser("grade", help="run each task's tests in a student copy and score "
                            "them", description="Grade a student copy: each task's tests run on "
                            "their own in a subprocess with a time and a memory limit.")  # fmt: skip
    grade_.add_argument("directory", type=Path, help="a student copy made by `assignments make`")
    grade_.add_argument("--only", nargs="+", metavar="TASK", help="task ids to grade (default: "
                        "all)")  # fmt: skip
    grade_.add_argument("--timeout", type=positive_float, default=60, metavar="S",
                        help="seconds allowed per test (%(default)s)")  # fmt: skip
    grade_.add_argument("--memory-mb", type=positive_int, default=4096, metavar="MB",
                        help="memory limit of each test process in MiB (%(default)s)")  # fmt: skip
    grade_.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                        help="tasks graded at once (default: the number of CPUs)")  # fmt: skip
    grade_.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the scores, with every test's outcome, as JSON")  # fmt: skip
    grade_.set_defaults(func=run_grade)


def run_list(args) -> int:
    """Print every task: id, chapter, points, title and functions."""
    for task in load_tasks().values():
        names = ", ".join(f.split(":")[1] for f in task.functions)
        print(
            f"{task.id:<5} chapter {task.chapter:<2} {task.points:>3} points  {task.title}: {names}"
        )
    return 0


def run_make(args) -> int:
    """Write a student copy with the chosen tasks' functions stubbed."""
    tasks = make_student_copy(args.out, only=args.only)
    for task in tasks:
        print(f"task {task.id:<5} {task.title}  (pytest -m {task.marker})")
    print(f"student copy written to {args.out} (read {args.out / 'ASSIGNMENT.md'}); grade it with "
          f"`minroots assignments grade {args.out}`")  # fmt: skip
    return 0


def run_grade(args) -> int:
    """Grade a student copy task by task and print (and optionally save) the scores."""
    scores = grade(args.directory, only=args.only, timeout=args.timeout,
                   memory_mb=args.memory_mb, jobs=args.jobs)  # fmt: skip
    print(format_table(scores))
    if args.json:
        write_text(args.json, to_json(scores) + "\n")  # atomically
        print(f"scores written to {args.json}")
    return 0
