"""The book and the code point at each other, and the book builds offline with no warnings."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))


def _module_docstrings():
    for path in sorted((REPO / "minroots").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text("utf-8"))) or ""
        yield path.relative_to(REPO), doc


def test_there_is_one_chapter_per_notebook_number():
    numbers = [p.name[:2] for p in CHAPTERS]
    assert numbers == [f"{i:02d}" for i in range(12)], numbers


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


@pytest.mark.slow
def test_book_builds_offline_without_warnings(tmp_path):
    beside_python = Path(sys.executable).parent / "jupyter-book"
    exe = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if exe is None:
        pytest.skip("jupyter-book is not installed (dev extra)")
    result = subprocess.run(
        [exe, "build", "-W", "-n", "--keep-going", str(BOOK), "--path-output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    warnings = [line for line in result.stdout.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, (
        "\n".join(warnings) or result.stdout[-3000:] + result.stderr[-3000:]
    )
    assert (tmp_path / "_build" / "html" / "index.html").exists()
