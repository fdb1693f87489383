"""The Chinese corpora (tang300, song100, en_zh) and the helpers of their prepare scripts.

Book chapter 6 (``book/06_tokenizers.md``) and chapter 10 (``book/10_applications.md``); the
scripts are ``data/prepare_poems.py`` and ``data/prepare_en_zh.py``.
"""

import json
import re

from minroots.data import corpus_path, load_corpus, load_pairs

CJK = re.compile(r"[\u4e00-\u9fff]")


def _poems(name: str) -> list[list[str]]:
    return [p.split("\n") for p in load_corpus(name).rstrip("\n").split("\n\n")]


def test_tang300_is_the_anthology_one_poem_per_paragraph():
    text = load_corpus("tang300")
    poems = _poems("tang300")
    assert len(poems) == 313  # 300 poems; some titles hold several
    assert "\x1b" not in text and "%" not in text and "\r" not in text
    for title, author, *lines in poems:
        assert title.startswith("《") and author.startswith("作者："), (title, author)
        assert lines and all(line == line.strip() and line for line in lines)
    quiet_night = ["《夜思》", "作者：李白", "床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]
    assert quiet_night in poems  # Sun Zhu's title; later editions call it 《静夜思》
    assert 29_000 < len(text) < 30_000 and 2_500 < len(set(text)) < 2_700


def test_song100_keeps_part_headings_and_full_width_dates():
    poems = _poems("song100")
    assert len(poems) == 96
    assert all(p[0].startswith("《") and p[1].startswith("作者：") for p in poems)
    assert "作者：柳开（９４６－９９９）" in [p[1] for p in poems]  # full-width digits, as shipped
    spring = next(p for p in poems if p[0] == "《春居杂兴》二首")
    assert spring[2] == "其一" and "其二" in spring


def test_en_zh_pairs_are_distinct_translations():
    pairs = load_pairs("en_zh")
    assert len(pairs) == 1034
    assert len({en for en, _ in pairs}) == len(pairs)  # no English synopsis twice
    assert ("GNOME disk usage analyzer", "GNOME 磁盘空间使用情况分析器") in pairs
    untranslated = [(en, zh) for en, zh in pairs if not CJK.search(zh)]  # names kept as they are
    assert len(untranslated) == 4 and all(en == zh for en, zh in untranslated), untranslated
    records = [json.loads(line) for line in corpus_path("en_zh")[1].open(encoding="utf-8")]
    assert all(r["package"] and r["source_long"] and r["target_long"] for r in records)
    assert sorted(r["package"] for r in records) == [r["package"] for r in records]


def test_parse_fortunes_strips_colours_and_splits_at_titles():
    from minroots.corpora.prepare_poems import format_poems, parse_fortunes

    raw = (
        "\x1b[32m题目:《寒食》\x1b[m\n\x1b[33m作者:王禹偁\x1b[m\n\n            其一\n"
        "今年寒食在商山，  \n%\n\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n"
        "床前明月光，疑是地上霜。\n"
        "\x1b[32m《春晓》\x1b[m\n\x1b[33m作者：孟浩然\x1b[m\n春眠不觉晓，处处闻啼鸟。\n%\n"
    )  # the second entry lacks its closing %, as one entry of song100 does
    poems = parse_fortunes(raw)
    assert [p["title"] for p in poems] == ["《寒食》", "《静夜思》", "《春晓》"]
    assert poems[0] == {"title": "《寒食》", "author": "作者：王禹偁",
                        "lines": ["其一", "今年寒食在商山，"]}  # fmt: skip
    assert format_poems(poems[1:]) == (
        "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。\n\n《春晓》\n作者：孟浩然\n春眠不觉晓，处处闻啼鸟。\n"
    )


def test_prepare_en_zh_matches_by_description_md5():
    from minroots.corpora.prepare_en_zh import join_lines, pairs, parse_index

    en = parse_index(
        "Package: a\nDescription-md5: 01\nDescription-en: disk tool\n Shows disks.\n\n"
        "Package: a-dev\nDescription-md5: 02\nDescription-en: disk tool\n Headers.\n\n"
        "Package: b\nDescription-md5: 03\nDescription-en: new text\n Changed.\n",
        "en",
    )
    zh = parse_index(
        "Package: a\nDescription-md5: 01\nDescription-zh_CN: 磁盘工具\n 显示磁\n 盘。\n\n"
        "Package: a-dev\nDescription-md5: 02\nDescription-zh_CN: 磁盘工具\n 头文件。\n\n"
        "Package: b\nDescription-md5: 99\nDescription-zh_CN: 旧的翻译\n 旧。\n",
        "zh_CN",
    )
    # a-dev repeats a's English synopsis; b's translation is of an older description (md5 99)
    assert pairs(en, zh) == [{"package": "a", "source": "disk tool", "target": "磁盘工具",
                              "source_long": "Shows disks.", "target_long": "显示磁盘。"}]  # fmt: skip
    assert join_lines(["将其组合并创", "建数字 2048。", ".", "Second", "line."]) == (
        "将其组合并创建数字 2048。\n\nSecond line."
    )
    assert join_lines(["Features:", " * a", " * b", "After."]) == "Features:\n * a\n * b\nAfter."
