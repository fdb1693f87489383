"""Build ``en_es.tsv``: short English–Spanish sentence pairs for the translation chapter.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); used in chapter 10.

Source: two public-domain Bibles packaged by Debian as SWORD modules, aligned verse by verse —
the World English Bible (``sword-text-web``, module ``engWEB2015eb``) and the Reina-Valera 1909
(``sword-text-sparv``, module ``spaRV1909eb``). ``mod2imp`` (``libsword-utils``) dumps a module
as ``$$$<Book> <chapter>:<verse>`` lines, each followed by the verse in OSIS XML markup.

Cleaning: drop footnotes and cross-references (``<note>...</note>``) and editors' headings;
unwrap words and quotations (``<w>``, ``<q>``); turn every other tag (line breaks, milestones,
the translators' additions ``<transChange>``) into a space; collapse white space; remove the
space the markup leaves before punctuation. Verses where an addition is glued to a word are
skipped, because the markup does not say whether a space belongs there. A verse pair is kept
when both sides are 10 to 99 characters long and it is not a repeat; ``N_PAIRS`` of those,
evenly spaced through the Bible, are written as ``en<TAB>es`` lines under a header row.

Example of one cleaned pair (John 11:35)::

    Jesus wept.<TAB>Y lloró Jesús.

Run (as root, on Debian/Ubuntu; ``mod2imp`` must be on the PATH)::

    apt-get update
    apt-get install --no-install-recommends sword-text-web sword-text-sparv libsword-utils
    python data/prepare_translation.py
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

__all__ = ["ENGLISH", "SPANISH", "N_PAIRS", "clean_verse", "read_module", "build", "main"]

ENGLISH = "engWEB2015eb"  # World English Bible (2020 stable text)
SPANISH = "spaRV1909eb"  # Reina-Valera 1909
N_PAIRS = 5000
MIN_CHARS, MAX_CHARS = 10, 100

_NOTE = re.compile(r"<note\b.*?</note>", re.DOTALL)
# Headings added by the editors go; a psalm's canonical title is part of verse 1 in both Bibles.
_TITLE = re.compile(r'<title\b(?![^>]*canonical="true").*?</title>', re.DOTALL)
_INLINE_TAG = re.compile(r"</?(w|q)\b[^>]*>")  # word and quotation wrappers: glued to the text
_TAG = re.compile(r"<[^>]*>")  # everything else (milestones, line breaks, additions) separates
# An addition glued to a word is ambiguous: "allí<tc>también</tc>bdelio" needs spaces,
# "Júrame<tc>lo</tc>" must not get one. Such verses (about 1%) are skipped.
_GLUED = re.compile(r"(</w>|\w)<transChange|</transChange>(<w\b|\w)")
_SPACE_BEFORE = re.compile(r"\s+([,.;:!?’”)\]])")
_SPACE_AFTER = re.compile(r"([“‘(\[¿¡])\s+")


def clean_verse(osis: str) -> str:
    """Return the plain text of one verse given in OSIS markup.

    Example: ``'<w lemma="strong:G2424">Jesus</w> <w>wept</w>. <div eID="x"/>'`` -> ``"Jesus wept."``
    """
    text = _NOTE.sub(" ", osis)  # a note sits between two words: leave a space, not nothing
    text = _TITLE.sub(" ", text)
    text = _INLINE_TAG.sub("", text)
    text = _TAG.sub(" ", text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE.sub(r"\1", text)
    return _SPACE_AFTER.sub(r"\1", text)


def read_module(module: str) -> dict[str, str]:
    """Dump a SWORD module with ``mod2imp`` and return ``{"John 11:35": "Jesus wept.", ...}``."""
    dump = subprocess.run(["mod2imp", module], check=True, capture_output=True, text=True).stdout
    verses: dict[str, str] = {}
    for block in dump.split("$$$")[1:]:
        key, _, body = block.partition("\n")
        if not re.fullmatch(r".+ \d+:\d+", key) or key.endswith(":0"):
            continue  # module/testament/book/chapter headings, not verses
        text = "" if _GLUED.search(body) else clean_verse(body)
        if text:
            verses[key] = text
    return verses


def build(english: dict[str, str], spanish: dict[str, str]) -> list[tuple[str, str]]:
    """Align verses by key, keep short distinct pairs, and pick ``N_PAIRS`` evenly spaced ones."""
    pairs, seen = [], set()
    for key, en in english.items():
        es = spanish.get(key, "")
        if MIN_CHARS <= len(en) < MAX_CHARS and MIN_CHARS <= len(es) < MAX_CHARS:
            if (en, es) not in seen:  # refrains repeat word for word: keep the first
                seen.add((en, es))
                pairs.append((en, es))
    if len(pairs) <= N_PAIRS:
        return pairs
    step = len(pairs) / N_PAIRS
    return [pairs[int(i * step)] for i in range(N_PAIRS)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("en_es.tsv"))
    args = parser.parse_args(argv)
    pairs = build(read_module(ENGLISH), read_module(SPANISH))
    lines = ["en\tes"] + [f"{en}\t{es}" for en, es in pairs]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {args.out}: {len(pairs)} pairs, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
