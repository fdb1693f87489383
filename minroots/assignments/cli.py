"""``minroots assignments make|grade``: the command-line side of the course assignments.

Book chapter "Exercises and assignments" (``book/assignments.md``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``assignments`` command (with ``make`` and ``grade``) to an argparse sub-parsers object."""
    parser = subparsers.add_parser(
        "assignments", help="make a student copy with stubbed tasks, or grade one"
    )
    sub = parser.add_subparsers(dest="assignments_command", required=True)

    make = sub.add_parser("make", help="copy the package with the tasks' functions stubbed out")
    make.add_argument(
        "--out", required=True, type=Path, help="folder for the student copy (new or empty)"
    )
    make.add_argument("--only", nargs="+", metavar="TASK", help="task ids to stub (default: all)")
    make.set_defaults(func=_make)

    grade = sub.add_parser(
        "grade", help="run each task's tests in a student copy and print the scores"
    )
    grade.add_argument("directory", type=Path, help="a student copy made by `assignments make`")
    grade.add_argument("--only", nargs="+", metavar="TASK", help="task ids to grade (default: all)")
    grade.add_argument(
        "--timeout", type=int, default=60, help="seconds allowed per test (default 60)"
    )
    grade.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the scores as JSON here"
    )
    grade.set_defaults(func=_grade)


def _make(args) -> int:
    from minroots.assignments import make_student_copy

    tasks = make_student_copy(args.out, only=args.only)
    for task in tasks:
        print(f"task {task.id:<5} {task.title}  (pytest -m {task.marker})")
    print(
        f"student copy written to {args.out}; grade it with `minroots assignments grade {args.out}`"
    )
    return 0


def _grade(args) -> int:
    from minroots.assignments.grade import format_table, grade, to_json

    scores = grade(args.directory, only=args.only, timeout=args.timeout)
    print(format_table(scores))
    report = to_json(scores)
    if args.json:
        args.json.write_text(report + "\n", "utf-8")
    else:
        print(report)
    return 0
