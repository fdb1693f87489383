"""One message style across the package, enforced: every ``raise`` in ``minroots/`` is scanned.

The style (``minroots/validation.py`` writes it) is one line that starts with where the error
happened (the function, class, option or file the user gave) and, for a broken rule, says what
was expected and what was got::

    where: name must be what was expected, got what was given

The scan reads the source with ``ast``: for each ``raise X("...")`` / ``raise X(f"...")`` (and
each message an exception class builds with ``super().__init__(...)``, and each message given to
:func:`minroots.persistence.reworded_os_error`) it rebuilds the message's text, with ``{}`` for
each formatted value, and checks it. The few exceptions are listed below with the reason.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minroots"

# where: one or two words before the first ": " ("AdamW: ", "Trainer.resume: ", "{where}: ",
# "--prompt: ", "[data]: ", "assignments grade: ", "step {}: ")
WHERE = re.compile(r"^[^\s:]+(?: [^\s:]+)?: ")

# Raise sites whose message is not in the style, on purpose: (file, exception, message prefix).
ALLOWED = {
    (
        "__init__.py",
        "AttributeError",
        "module 'minroots' has no attribute",
    ): "Python's own wording for a missing module attribute, which tools and people expect",
    (
        "nn/module.py",
        "AttributeError",
        "{} object has no attribute",
    ): "Python's own wording for a missing attribute (hasattr and getattr users rely on it)",
    (
        "training/accumulation.py",
        "FloatingPointError",
        "the training loss is",
    ): "a reason, not a message: DivergenceError prints it as 'step N: the training loss is nan'",
}
# Exceptions whose messages something else frames: argparse writes "argument --top-k: " before
# an ArgumentTypeError; SystemExit carries an exit status; KeyboardInterrupt a note.
FRAMED = {"ArgumentTypeError", "SystemExit", "KeyboardInterrupt"}
# Functions that build a styled message (their own literals are scanned where they are written).
BUILDERS = {"named_os_error", "reworded_os_error", "_os_error_of", "_diverged", "_usage_error",
            "_failure"}  # fmt: skip


def template(node) -> str | None:
    """The text of a string literal, f-string or sum of them, with ``{}`` for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = template(node.left), template(node.right)
        if left is None and right is None:
            return None
        return (left if left is not None else "{}") + (right if right is not None else "{}")
    return None


def problems(message: str) -> list[str]:
    """What is wrong with a message's text (empty when it is in the style)."""
    found = []
    if not WHERE.match(message):
        found.append("does not start with 'where: '")
    if "\n" in message:
        found.append("is not one line")
    if re.search(r"\bmust\b", message) and "got" not in message:
        found.append("says what 'must' be but not what was got")
    return found


def name_of(call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def is_reraise_of_message(node) -> bool:
    """``str(exc)``: another exception's message (already checked where it was written)."""
    return (isinstance(node, ast.Call) and name_of(node) == "str" and len(node.args) == 1
            and isinstance(node.args[0], ast.Name))  # fmt: skip


def is_exception_class(node) -> bool:
    return isinstance(node, ast.ClassDef) and any(
        getattr(b, "id", "").endswith(("Error", "Exception", "Warning")) for b in node.bases
    )


def super_init_calls(cls):
    for call in ast.walk(cls):
        if (isinstance(call, ast.Call) and name_of(call) == "__init__"
                and isinstance(call.func.value, ast.Call)
                and name_of(call.func.value) == "super" and call.args):  # fmt: skip
            yield call


def relayed_messages() -> dict:
    """Exception classes that take their message as an argument and hand it to
    ``super().__init__`` (``APIError(status, message, ...)``): ``{class: (position, name)}``.
    Every call of such a class is scanned at that argument, wherever it is built."""
    relayed = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for cls in filter(is_exception_class, ast.walk(ast.parse(path.read_text("utf-8")))):
            init = next((f for f in cls.body if getattr(f, "name", "") == "__init__"), None)
            params = [a.arg for a in init.args.args[1:]] if init is not None else []
            for call in super_init_calls(cls):
                if isinstance(call.args[0], ast.Name) and call.args[0].id in params:
                    relayed[cls.name] = (params.index(call.args[0].id), call.args[0].id)
    return relayed


def relayed_argument(call, position: int, name: str):
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def messages():
    """``(file, line, exception, message node, kind)`` for every message in the package."""
    relayed = relayed_messages()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and name_of(node) in relayed:
                message = relayed_argument(node, *relayed[name_of(node)])
                yield rel, node.lineno, name_of(node), message, "raise"
            elif isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc
                if not isinstance(exc, ast.Call):
                    yield rel, node.lineno, getattr(exc, "id", ast.unparse(exc)), None, "bare"
                    continue
                if name_of(exc) not in relayed:  # those are scanned as calls, above
                    first = exc.args[0] if exc.args else None
                    yield rel, node.lineno, name_of(exc), first, "raise"
            elif is_exception_class(node) and node.name not in relayed:
                for call in super_init_calls(node):
                    yield rel, call.lineno, node.name, call.args[0], "class"
            elif isinstance(node, ast.Call) and name_of(node) == "reworded_os_error":
                if len(node.args) == 2:
                    yield rel, node.lineno, "OSError", node.args[1], "builder"


def classify():
    """Count the sites and collect the ones out of style."""
    counts = {"checked": 0, "allowed": 0, "framed": 0, "built": 0, "reraised": 0, "bare": 0}
    bad, used = [], set()
    sites = list(messages())
    # classes that word their own message in __init__ (scanned there, as kind "class")
    wording = {exc for _, _, exc, _, kind in sites if kind == "class"}
    for rel, line, exc, first, kind in sites:
        if kind == "bare" and exc[:1].islower():
            # `raise first`: an exception caught elsewhere (another thread's) raised again; its
            # message was worded, and is scanned, where it was created
            counts["reraised"] += 1
            continue
        if kind == "bare":
            # abstract methods, and the internal signal of validation._coerce (caught at once)
            assert exc == "NotImplementedError" or rel == "validation.py", (rel, line, exc)
            counts["bare"] += 1
            continue
        if exc in FRAMED:
            counts["framed"] += 1
            continue
        if exc in BUILDERS or (kind == "raise" and exc in wording and template(first) is None):
            # raise named_os_error(exc, path), raise self._diverged(step, reason),
            # raise InvalidUTF8Error(path, position, ...): the message is worded elsewhere
            counts["built"] += 1
            continue
        if first is None:
            bad.append(f"{rel}:{line}: {exc}() has no message")
            continue
        if is_reraise_of_message(first):
            counts["reraised"] += 1
            continue
        text = template(first)
        if text is None:
            bad.append(f"{rel}:{line}: {exc}'s message is not a string literal or f-string")
            continue
        key = next((k for k in ALLOWED if k[0] == rel and k[1] == exc and text.startswith(k[2])),
                   None)  # fmt: skip
        if key is not None:
            used.add(key)
            counts["allowed"] += 1
            continue
        counts["checked"] += 1
        found = problems(text)
        if found:
            bad.append(f"{rel}:{line}: {exc}({text[:90]!r}) {'; '.join(found)}")
    return counts, bad, used


def test_every_raise_site_follows_the_message_style():
    counts, bad, used = classify()
    assert not bad, f"{len(bad)} messages out of style:\n" + "\n".join(bad)
    assert counts["checked"] > 350, counts  # the scan really reads the package
    assert used == set(ALLOWED), f"allow-list entries that match nothing: {set(ALLOWED) - used}"


def test_the_allow_list_stays_short():
    counts, _, _ = classify()
    assert len(ALLOWED) <= 5 and counts["allowed"] <= 5, counts


@pytest.mark.parametrize(
    ("message", "ok"),
    [
        ("AdamW: lr must be a finite number >= 0, got nan", True),
        ("{}: step must equal the folder's step {}, got {}", True),
        ("assignments grade: {} is not a minroots student copy", True),
        ("step {}: {}{}{}", True),
        ("lr must be a finite number >= 0, got nan", False),  # no where
        ("AdamW: lr must be a finite number >= 0", False),  # must, but no got
        ("corpus {} line {}: expected 2 fields", False),  # where of four words
        ("AdamW: lr\nmust be positive, got 0", False),  # two lines
    ],
)
def test_the_style_check_itself(message, ok):
    assert (problems(message) == []) is ok


def test_messages_built_by_exception_classes_are_scanned():
    found = {(rel, exc) for rel, _, exc, _, kind in messages() if kind == "class"}
    assert ("training/divergence.py", "DivergenceError") in found
    assert ("tokenizers/cleaning.py", "InvalidUTF8Error") in found
