"""Find functions in Python source with ``ast``: stub them out, or swap in a reference definition.

Book chapter "Exercises and assignments" (``book/assignments.md``).

- :func:`stub_functions` keeps a function's signature and docstring and replaces the lines of its
  body by one ``raise NotImplementedError(...)`` line; every other line of the file (comments
  included) stays as it was. This makes the student copy.
- :func:`replace_definitions` swaps whole definitions in a parsed module for those of a reference
  module. This is how one task is graded on its own: every *other* task's functions are the
  reference ones, so an unfinished task never costs points in another. The swap works on the
  syntax tree, so the student's own lines keep their line numbers in tracebacks.

This module uses only the standard library: the student copy's ``conftest.py`` loads it by file
path before anything of ``minroots`` is imported.
"""

from __future__ import annotations

import ast

__all__ = ["find_function", "stub_functions", "replace_definitions"]

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _locate(tree: ast.Module, qualname: str) -> tuple[list, int]:
    """``(body, index)``: the list of statements holding ``"Class.method"`` or ``"function"``."""
    scope = tree.body
    parts = qualname.split(".")
    for depth, part in enumerate(parts):
        index = next(
            (
                i
                for i, n in enumerate(scope)
                if isinstance(n, (*_DEFS, ast.ClassDef)) and n.name == part
            ),
            None,
        )
        if index is None:
            raise LookupError(f"splice: function {qualname!r} not found")
        if depth == len(parts) - 1:
            if not isinstance(scope[index], _DEFS):
                raise LookupError(f"splice: {qualname!r} is not a function")
            return scope, index
        scope = scope[index].body
    raise LookupError(f"splice: function {qualname!r} not found")  # pragma: no cover - empty name


def find_function(tree: ast.Module, qualname: str):
    """The ``FunctionDef`` for ``"Class.method"`` or ``"function"`` in a module's tree.

    >>> find_function(ast.parse("class A:\\n    def f(self):\\n        pass\\n"), "A.f").lineno
    2
    """
    body, index = _locate(tree, qualname)
    return body[index]


def _has_docstring(fn) -> bool:
    first = fn.body[0]
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )


def stub_functions(source: str, qualnames: list[str], message: str) -> str:
    """Return ``source`` with each function in ``qualnames`` reduced to docstring + ``raise``.

    >>> print(stub_functions("def f(x):\\n    '''Double.'''\\n    return 2 * x\\n", ["f"], "task 1.1"))
    def f(x):
        '''Double.'''
        raise NotImplementedError('task 1.1')
    <BLANKLINE>
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    spans = []
    for qualname in qualnames:
        fn = find_function(tree, qualname)
        body = fn.body
        indent = " " * body[0].col_offset
        if not _has_docstring(fn):
            start = body[0].lineno - 1
        elif len(body) == 1:  # only a docstring: add the raise after it
            start = body[0].end_lineno
        else:
            start = body[1].lineno - 1
        stub = f"{indent}raise NotImplementedError({message!r})\n"
        spans.append((start, body[-1].end_lineno, stub))
    for start, end, text in sorted(spans, reverse=True):
        lines[start:end] = [text]
    out = "".join(lines)
    ast.parse(out)  # the copy must still be valid Python
    return out


def replace_definitions(tree: ast.Module, reference: ast.Module, qualnames) -> ast.Module:
    """Put the definition of each function in ``qualnames`` from ``reference`` into ``tree`` (in place).

    >>> mine = ast.parse("def f(x):\\n    return 3 * x\\n\\ndef g(x):\\n    return x\\n")
    >>> ref = ast.parse("def f(x):\\n    return 2 * x\\n")
    >>> print(ast.unparse(replace_definitions(mine, ref, ["f"])))
    def f(x):
        return 2 * x
    <BLANKLINE>
    def g(x):
        return x
    """
    for qualname in qualnames:
        body, index = _locate(tree, qualname)
        body[index] = find_function(reference, qualname)
    return tree
