"""The book and the code point at each other, and the book builds offline with no warnings."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))
# the diagrams drawn at build time (book/_ext/minroots_diagrams.py) and the chapter showing each
DIAGRAMS = {
    "computation_graph": "02_autograd",
    "transformer_block": "03_attention",
    "attention_mask": "03_attention",
    "bpe_merges": "06_tokenizers",
    "kv_cache": "09_generation",
}


def _module_docstrings():
    for path in sorted((REPO / "minroots").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text("utf-8"))) or ""
        yield path.relative_to(REPO), doc


def test_there_is_one_chapter_per_notebook_number():
    numbers = [p.name[:2] for p in CHAPTERS]
    assert len(numbers) >= 12 and numbers == [f"{i:02d}" for i in range(len(numbers))], numbers


def test_every_module_docstring_names_an_existing_chapter():
    for path, doc in _module_docstrings():
        refs = re.findall(r"book/[\w.-]+\.md", doc)
        assert refs, f"{path}: the module docstring names no book chapter (book/NN_name.md)"
        for ref in refs:
            assert (REPO / ref).is_file(), f"{path}: names {ref}, which does not exist"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_names_its_source_files_and_tests(chapter):
    text = chapter.read_text("utf-8")
    sources = set(re.findall(r"minroots/[\w/]+\.py", text))
    tests = set(re.findall(r"tests/[\w/]+\.py", text))
    assert sources, f"{chapter.name} names no source file under minroots/"
    assert tests, f"{chapter.name} names no test file under tests/"
    for ref in sorted(sources | tests):
        assert (REPO / ref).is_file(), f"{chapter.name} names {ref}, which does not exist"


# --- exercises: one list per chapter, shared by the book and the notebook, with solutions ---------
EXERCISES = BOOK / "exercises"
SOLUTIONS = BOOK / "solutions"
_ITEM = re.compile(r"^(\d+)\. (★{1,3}) \*\*(.+?)\*\*", re.M)
LEVELS = {"★", "★★", "★★★"}


def _notebook(chapter: Path) -> Path:
    return REPO / "tutorials" / f"{chapter.stem}.ipynb"


def _exercises(chapter: Path) -> list[tuple[int, str, str]]:
    """``(number, level, text)`` of each exercise in ``book/exercises/<chapter>.md``."""
    text = (EXERCISES / chapter.name).read_text("utf-8")
    starts = list(_ITEM.finditer(text))
    return [(int(m.group(1)), m.group(2), text[m.start() : (starts[k + 1].start() if k + 1 < len(starts) else len(text))])
            for k, m in enumerate(starts)]  # fmt: skip


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_a_level_and_a_hint(chapter):
    items = _exercises(chapter)
    assert len(items) >= 3, f"{chapter.name}: fewer than 3 exercises"
    assert [n for n, _, _ in items] == list(range(1, len(items) + 1)), "numbered 1, 2, 3, ..."
    for n, level, text in items:
        assert level in LEVELS, f"{chapter.name} exercise {n}: level {level!r}"
        assert "*Hint:*" in text, f"{chapter.name} exercise {n} has no *Hint:*"
        for task in re.findall(r"--only ([0-9]+\.[0-9]+)", text):
            from minroots.assignments import load_tasks

            assert task in load_tasks(), f"{chapter.name} exercise {n}: no task {task}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_book_and_notebook_share_one_exercise_list(chapter):
    shared = (EXERCISES / chapter.name).read_text("utf-8").strip()
    assert f"```{{include}} exercises/{chapter.name}\n```" in chapter.read_text("utf-8"), (
        f"{chapter.name}: its Exercises section must include exercises/{chapter.name}"
    )
    cells = json.loads(_notebook(chapter).read_text("utf-8"))["cells"]
    sources = ["".join(c["source"]).strip() for c in cells if c["cell_type"] == "markdown"]
    assert f"## Exercises\n\n{shared}" in sources, (
        f"{_notebook(chapter).name}: needs a markdown cell '## Exercises' followed by the text of "
        f"book/exercises/{chapter.name}"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_a_worked_solution(chapter):
    notebook = SOLUTIONS / f"{chapter.stem}.ipynb"
    assert notebook.is_file(), f"no {notebook.relative_to(REPO)}"
    cells = json.loads(notebook.read_text("utf-8"))["cells"]
    headings = [int(m.group(1)) for c in cells if c["cell_type"] == "markdown"
                for m in [re.match(r"## Exercise (\d+)\b", "".join(c["source"]))] if m]  # fmt: skip
    assert headings == [n for n, _, _ in _exercises(chapter)], (
        f"{notebook.name}: one '## Exercise N' cell per exercise, in order"
    )
    assert any(c["cell_type"] == "code" and "assert" in "".join(c["source"]) for c in cells), (
        f"{notebook.name}: the solutions check their answers with assert"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_test_links_in_the_book_name_test_functions_that_exist(chapter):
    text = chapter.read_text("utf-8")
    links = re.findall(r"tests/([\w/]+\.py)::(\w+)", text)
    assert links, f"{chapter.name} links no test function (tests/file.py::test_name)"
    for path, name in links:
        source = (REPO / "tests" / path).read_text("utf-8")
        assert re.search(rf"^(?:async )?def {name}\(", source, re.M), (
            f"{chapter.name}: {path}::{name}"
        )


def test_the_diagrams_are_drawn(tmp_path):
    sys.path.insert(0, str(BOOK / "_ext"))
    try:
        import minroots_diagrams
    finally:
        sys.path.remove(str(BOOK / "_ext"))
    paths = minroots_diagrams.draw_all(tmp_path)
    assert sorted(p.stem for p in paths) == sorted(DIAGRAMS)
    for path in paths:
        assert path.read_text("utf-8").lstrip().startswith("<?xml") and "<svg" in path.read_text()


@pytest.mark.slow
def test_book_builds_offline_without_warnings(tmp_path):
    beside_python = Path(sys.executable).parent / "jupyter-book"
    exe = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if exe is None:
        pytest.skip("jupyter-book is not installed (dev extra)")
    # MPLBACKEND=Agg (as CI sets it) would reach the notebook kernels and keep plt.show() from
    # putting any figure in the book; a reader's build has the kernel's inline backend
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run(
        [exe, "build", "-W", "-n", "--keep-going", str(BOOK), "--path-output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    warnings = [line for line in result.stdout.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, (
        "\n".join(warnings) or result.stdout[-3000:] + result.stderr[-3000:]
    )
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists()
    for chapter in CHAPTERS:  # the executed notebooks' figures are in the book
        page = (html / "notebooks" / f"{chapter.stem}.html").read_text("utf-8")
        assert "<img" in page, f"the book's page of notebook {chapter.stem} shows no figure"
    for name, chapter in DIAGRAMS.items():  # and each chapter's diagrams
        page = (html / f"{chapter}.html").read_text("utf-8")
        assert f"{name}.svg" in page and "<img" in page, f"{chapter}.html lacks diagram {name}"
