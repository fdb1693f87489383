"""Make a student copy: the chosen functions keep their signature and docstring, lose their body.

Book chapter "Exercises and assignments" (``book/assignments.md``).

The library's source carries no markers: :func:`stub_functions` finds each function with ``ast``
and splices ``raise NotImplementedError("task 2.1: ...")`` in place of the lines of its body, so
every other line of the file (comments included) stays as it was.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from minroots.assignments.manifest import Task, load_tasks

__all__ = ["stub_functions", "make_student_copy"]


def _find(tree: ast.Module, qualname: str):
    """The ``FunctionDef`` for ``"Class.method"`` or ``"function"`` in a module's tree."""
    scope = tree.body
    node = None
    for part in qualname.split("."):
        matches = [
            n
            for n in scope
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and n.name == part
        ]
        if not matches:
            raise LookupError(f"stub_functions: {qualname!r} not found")
        node = matches[0]
        scope = node.body
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise LookupError(f"stub_functions: {qualname!r} is not a function")
    return node


def stub_functions(source: str, qualnames: list[str], message: str) -> str:
    """Return ``source`` with each function in ``qualnames`` reduced to docstring + ``raise``.

    >>> print(stub_functions("def f(x):\\n    '''Double.'''\\n    return 2 * x\\n", ["f"], "task 1.1"))
    def f(x):
        '''Double.'''
        raise NotImplementedError('task 1.1')
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    spans = []
    for qualname in qualnames:
        fn = _find(tree, qualname)
        body = fn.body
        has_doc = (
            isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        )
        first = body[1] if has_doc and len(body) > 1 else (None if has_doc else body[0])
        indent = " " * (body[0].col_offset)
        start = (first.lineno if first is not None else body[0].end_lineno + 1) - 1
        end = body[-1].end_lineno
        spans.append((start, end, f"{indent}raise NotImplementedError({message!r})\n"))
    for start, end, text in sorted(spans, reverse=True):
        lines[start:end] = [text]
    out = "".join(lines)
    ast.parse(out)  # the copy must still be valid Python
    return out


def _module_file(package_root: Path, module: str) -> Path:
    rel = Path(*module.split("."))
    for candidate in (package_root / rel.with_suffix(".py"), package_root / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"make_student_copy: module {module!r} not found under {package_root}")


def make_student_copy(
    out_dir, only: list[str] | None = None, source_root=None, manifest=None
) -> list[Task]:
    """Copy ``minroots/`` (and ``tests/`` when present) to ``out_dir`` and stub the tasks' functions.

    ``only`` limits it to some task ids; returns the tasks that were stubbed.
    """
    import minroots

    package_dir = Path(minroots.__file__).parent
    source_root = Path(source_root) if source_root else package_dir.parent
    tasks = load_tasks(manifest)
    chosen = list(tasks) if not only else list(only)
    unknown = [t for t in chosen if t not in tasks]
    if unknown:
        raise ValueError(f"make_student_copy: unknown task ids {unknown}; known: {sorted(tasks)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"make_student_copy: {out_dir} exists and is not empty")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    shutil.copytree(package_dir, out_dir / "minroots", ignore=ignore, dirs_exist_ok=True)
    for extra in ("tests", "pyproject.toml"):
        src = source_root / extra
        if src.is_dir():
            shutil.copytree(src, out_dir / extra, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, out_dir / extra)

    by_module: dict[str, list[tuple[str, Task]]] = {}
    for task_id in chosen:
        for spec in tasks[task_id].functions:
            module, qualname = spec.split(":")
            by_module.setdefault(module, []).append((qualname, tasks[task_id]))
    for module, items in by_module.items():
        path = _module_file(out_dir, module)
        source = path.read_text("utf-8")
        for qualname, task in items:
            message = (
                f"task {task.id}: implement {qualname} ({task.title}; book chapter {task.chapter}; "
                f"check with `pytest -m {task.marker}`)"
            )
            source = stub_functions(source, [qualname], message)
        path.write_text(source, "utf-8")
    return [tasks[t] for t in chosen]
