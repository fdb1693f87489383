"""Build ``en_zh.jsonl``: English -> Chinese pairs from Debian package descriptions.

Book chapter 10, "Applications" (``book/10_applications.md``: en->zh translation scored with
BLEU ``zh`` and chrF); chapter 6 for the Chinese text. Tests in ``tests/test_data_chinese.py``.

Debian's description translation project (DDTP) translates package descriptions; apt fetches
the Chinese ones in the ``Translation-zh_CN`` index beside the English ``Translation-en``. Both
index entries carry the ``Description-md5`` of the English original, so matching on it pairs
each Chinese description with exactly the English it translates (a package whose description
changed since the translation has a new md5 and drops out)::

    Package: 2048-qt
    Description-md5: 0f25c2ca95ceff4500fde9f651d74f2e
    Description-zh_CN: 基于数学的解谜游戏
     2048 难题是基于数学的解谜游戏，你需要在一个格子棋盘上滑动滑块，将其组合并创
     建数字 2048。

Each JSON line is ``{"package", "source", "target", "source_long", "target_long"}``: the English
and Chinese one-line synopses (the translation pair) and the two long descriptions (paragraphs
separated by a blank line). Lines of a paragraph are joined with a space, except between two
CJK characters, where Chinese needs none (``...将其组合并创`` + ``建数字...``). Verbatim lines
(lists, code: lines with extra indentation) keep their own line.

Selection (deterministic): every matched package of bookworm main, sorted by name, keeping the
first of packages with the same English synopsis (``foo`` and ``foo-data`` often share one), so
that no pair is repeated between training and validation.

Each description is written by its package's maintainers and translated by DDTP volunteers; it
is distributed under that package's free licence. The ``package`` field is the attribution
(``https://packages.debian.org/bookworm/<package>``).

Run (Debian/Ubuntu; Docker's default apt configuration skips translations)::

    apt-get update -o Acquire::Languages=en,zh_CN
    python data/prepare_en_zh.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minroots.corpora.prepare_summaries import read_index

__all__ = ["parse_index", "join_lines", "pairs", "build", "main"]

INDEX = "*_debian_dists_bookworm_main_i18n_Translation-{lang}*"


def parse_index(text: str, lang: str) -> dict[str, dict]:
    """``{md5: {"package", "summary", "lines"}}`` from a ``Translation-<lang>`` index.

    Example: ``"Package: a\\nDescription-md5: 9f\\nDescription-zh_CN: 工具\\n 第一行\\n"``
    with ``lang="zh_CN"`` -> ``{"9f": {"package": "a", "summary": "工具", "lines": ["第一行"]}}``.
    """
    records = {}
    key = f"Description-{lang}: "
    for stanza in text.split("\n\n"):
        package = md5 = summary = None
        lines = []
        for line in stanza.split("\n"):
            if line.startswith("Package: "):
                package = line[len("Package: ") :].strip()
            elif line.startswith("Description-md5: "):
                md5 = line[len("Description-md5: ") :].strip()
            elif line.startswith(key):
                summary = line[len(key) :].strip()
            elif line.startswith(" ") and summary is not None:
                lines.append(line[1:])
        if package and md5 and summary and md5 not in records:
            records[md5] = {"package": package, "summary": summary, "lines": lines}
    return records


def _is_cjk(char: str) -> bool:
    """Han ideographs, CJK punctuation and full-width forms: no space between two of them."""
    code = ord(char)
    return 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF


def join_lines(lines: list[str]) -> str:
    """Description lines -> paragraphs separated by a blank line.

    Example: ``["将其组合并创", "建数字 2048。", ".", "Second", "line."]`` ->
    ``"将其组合并创建数字 2048。\\n\\nSecond line."``.
    """
    paragraphs, current, verbatim = [], "", False
    for line in lines:
        if line.strip() == ".":
            paragraphs.append(current)
            current, verbatim = "", False
        elif line.startswith((" ", "\t")):  # verbatim: a list item or code keeps its line
            current = (current + "\n" if current else "") + line.rstrip()
            verbatim = True
        elif line.strip():
            line = line.strip()
            if current and verbatim:
                current += "\n"
            elif current and not (_is_cjk(current[-1]) and _is_cjk(line[0])):
                current += " "
            current += line
            verbatim = False
    paragraphs.append(current)
    return "\n\n".join(p.strip("\n") for p in paragraphs if p.strip())


def pairs(english: dict[str, dict], chinese: dict[str, dict]) -> list[dict]:
    """Match by ``Description-md5``; one record per distinct English synopsis, sorted by package."""
    matched = []
    for md5, zh in chinese.items():
        en = english.get(md5)
        if en is None or not zh["summary"]:
            continue
        matched.append({"package": en["package"], "source": en["summary"],
                        "target": zh["summary"], "source_long": join_lines(en["lines"]),
                        "target_long": join_lines(zh["lines"])})  # fmt: skip
    matched.sort(key=lambda r: r["package"])
    seen, kept = set(), []
    for record in matched:
        if record["source"] not in seen:
            seen.add(record["source"])
            kept.append(record)
    return kept


def _read_index(lists_dir: Path, lang: str) -> str:
    return read_index(lists_dir, INDEX.format(lang=lang.replace("_", "%5f")), "en,zh_CN")


def build(lists_dir: Path = Path("/var/lib/apt/lists")) -> list[dict]:
    """Read bookworm main's ``Translation-en`` and ``Translation-zh_CN`` and pair them."""
    english = parse_index(_read_index(lists_dir, "en"), "en")
    chinese = parse_index(_read_index(lists_dir, "zh_CN"), "zh_CN")
    return pairs(english, chinese)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=Path, default=Path("/var/lib/apt/lists"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("en_zh.jsonl"))
    args = parser.parse_args(argv)
    records = build(args.lists)
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {args.out}: {len(records)} pairs, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
