"""The material in Chinese stays complete and true: the glossary, the chapter summaries, the README.

Book: ``book/glossary_zh.md`` (the Chinese–English glossary of ``book/notation.md``) and the
"本章小结（中文）" section at the end of every chapter; ``README.zh-CN.md`` at the top of the
repository. The chapters' summaries are described in ``book/intro.md``.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))
HAN = re.compile(r"[\u4e00-\u9fff]")


def _first_column(markdown: str) -> list[str]:
    """The first cell of every body row of the markdown tables in ``markdown``."""
    rows = re.findall(r"^\|([^|\n]*)\|", markdown, re.M)
    return [r.strip() for r in rows if r.strip() and not set(r.strip()) <= set("-: ")]


def test_glossary_covers_every_symbol_of_the_notation():
    notation = _first_column((BOOK / "notation.md").read_text("utf-8"))
    glossary = (BOOK / "glossary_zh.md").read_text("utf-8")
    symbols = _first_column(glossary.split("## 术语")[0])
    assert len(notation) >= 25 and notation[0] == "symbol"
    missing = [s for s in notation[1:] if s not in symbols]
    assert not missing, f"book/glossary_zh.md lacks the notation symbols {missing}"
    for row in re.findall(r"^\| \$.*$", glossary, re.M):  # every symbol row has a Chinese name
        assert HAN.search(row), row


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_ends_with_a_chinese_summary(chapter):
    text = chapter.read_text("utf-8")
    headings = re.findall(r"^## .*$", text, re.M)
    assert headings[-1] == "## 本章小结（中文）", f"{chapter.name}: last section {headings[-1]!r}"
    summary = text.split("## 本章小结（中文）")[1]
    assert len(HAN.findall(summary)) > 150, f"{chapter.name}: the Chinese summary is too short"


def test_glossary_is_in_the_table_of_contents():
    assert re.search(r"^\s*- file: glossary_zh$", (BOOK / "_toc.yml").read_text("utf-8"), re.M)


def test_chinese_readme_has_the_commands_and_the_same_python_as_the_readme():
    english = (REPO / "README.md").read_text("utf-8")
    chinese = (REPO / "README.zh-CN.md").read_text("utf-8")
    for command in ("pip install -e . && minroots train", 'pip install -e ".[dev,parity]" && pytest',
                    "minroots train --preset tang", "minroots generate --checkpoint runs/tang"):  # fmt: skip
        assert command in english and command in chinese, command
    blocks = re.compile(r"```python\n(.*?)```", re.S)
    # the English README's examples run as tests (tests/test_readme.py); these are the same code
    assert blocks.findall(chinese) == blocks.findall(english)
    for module in re.findall(r"^\| `(minroots/[\w/.]+)` \|", english, re.M):  # the same map
        assert f"| `{module}` |" in chinese, module
    assert "README.zh-CN.md" in english
