"""Build ``tang300.txt`` and ``song100.txt``: classical Chinese poems from Debian's ``fortunes-zh``.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); the ``tang`` preset
(``minroots/presets/tang.toml``, chapter 7) trains on ``tang300``. Tests in
``tests/test_data_chinese.py``.

Source: the Debian package ``fortunes-zh`` 2.98 (bookworm), files
``usr/share/games/fortunes/tang300`` (唐诗三百首, the 1763 anthology of Tang poems) and
``usr/share/games/fortunes/song100`` (Song-dynasty poems and ci). Each fortune file holds
entries separated by ``%`` lines; an entry is a title and an author wrapped in terminal colour
codes, then the poem::

    ESC[32m《静夜思》ESC[m
    ESC[33m作者：李白ESC[m
    床前明月光，疑是地上霜。
    举头望明月，低头思故乡。

Processing (nothing else is changed, so the text keeps its real quirks: a few ASCII commas in
two Tang titles, full-width digits in the Song authors' dates, which chapter 6 uses to show
width folding and NFKC):

- entries start at each title line (one ``%`` is missing in ``song100``, so splitting at ``%``
  alone would glue two poems together);
- colour codes (``ESC[..m``) are removed; ``song100``'s ``题目:`` label before the title is
  dropped and its ``作者:`` becomes ``作者：`` as in ``tang300``;
- every line is stripped of surrounding spaces and blank lines inside a poem are dropped (the
  centred ``其一``/``其二`` part headings stay, as lines of their own);
- poems are written in the source's order, separated by one blank line.

Licence: the poems are many centuries old and in the public domain; the ``fortunes-zh`` package
is distributed under the GPL-3.0-or-later, and we keep that licence for the two extracted files
(``data/README.md`` explains the decision; the licence text is ``data/COPYING.poems``).

Run (Debian/Ubuntu, needs ``apt-get`` and ``dpkg``)::

    python data/prepare_poems.py                      # apt-get download into a temp folder
    python data/prepare_poems.py --deb fortunes-zh_2.98_all.deb
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

__all__ = ["DEB_SHA256", "FILES", "parse_fortunes", "format_poems", "build", "main"]

# The sha256 of fortunes-zh_2.98_all.deb as Debian served it when these files were built.
DEB_SHA256 = "211c5ddee59d0ae74ce01cbfd02f7c8714740bae1835d5661eb2254edd739105"
FILES = ("tang300", "song100")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_TITLE = "\x1b[32m"  # the green title line that starts each entry


def parse_fortunes(text: str) -> list[dict]:
    """Split a colour-coded fortune file into ``[{"title", "author", "lines"}, ...]``.

    Example: ``"\\x1b[32m《静夜思》\\x1b[m\\n\\x1b[33m作者：李白\\x1b[m\\n床前明月光，疑是地上霜。\\n%\\n"``
    -> ``[{"title": "《静夜思》", "author": "作者：李白", "lines": ["床前明月光，疑是地上霜。"]}]``.
    """
    poems = []
    for line in text.split("\n"):
        if line.startswith(_TITLE):
            title = _COLOUR.sub("", line).strip().removeprefix("题目:")
            poems.append({"title": title, "author": None, "lines": []})
            continue
        line = _COLOUR.sub("", line).strip()
        if not poems or not line or line == "%":
            continue
        if poems[-1]["author"] is None:
            poems[-1]["author"] = line.replace("作者:", "作者：", 1)
        else:
            poems[-1]["lines"].append(line)
    for poem in poems:
        if not poem["author"] or not poem["lines"]:
            raise ValueError(f"poem {poem['title']!r} has no author line or no text")
    return poems


def format_poems(poems: list[dict]) -> str:
    """One poem per paragraph: title line, author line, the poem's lines; a blank line between."""
    return "\n\n".join("\n".join([p["title"], p["author"], *p["lines"]]) for p in poems) + "\n"


def build(deb: Path) -> dict[str, str]:
    """Unpack the ``.deb`` and return ``{"tang300": text, "song100": text}``."""
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    if digest != DEB_SHA256:
        print(f"note: {deb.name} has sha256 {digest}, not the {DEB_SHA256} these files came from")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg", "-x", str(deb), tmp], check=True)
        folder = Path(tmp) / "usr/share/games/fortunes"
        return {
            name: format_poems(parse_fortunes((folder / name).read_text(encoding="utf-8")))
            for name in FILES
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deb", type=Path, help="fortunes-zh .deb (default: apt-get download)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        deb = args.deb
        if deb is None:
            subprocess.run(["apt-get", "download", "fortunes-zh"], check=True, cwd=tmp)
            (deb,) = Path(tmp).glob("fortunes-zh_*.deb")
        texts = build(deb)
    for name, text in texts.items():
        path = args.out / f"{name}.txt"
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path}: {text.count(chr(10) * 2) + 1} poems, {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
