"""Build ``debian_sections.jsonl``: Debian package descriptions labelled with their archive section.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.5, classification fine-tuning).

Every Debian package sits in one *section* of the archive (``games``, ``sound``, ``science``, ...),
chosen by its maintainers; its description says what it does. Predicting the section from the
description is a real text-classification task that can be built offline from apt's indexes:
``Packages`` (bookworm main, amd64) gives each package's ``Section`` and ``Description-md5``,
``Translation-en`` gives the English description with the same md5.

Selection (deterministic): the sections in ``SECTIONS``; descriptions written as prose (no
verbatim lines in the first paragraph); the text is the one-line synopsis (with a full stop
added if it has none) and the first paragraph of the long description, cut at the last full sentence within ``MAX_CHARS``
characters; texts shorter than ``MIN_CHARS`` are dropped, and so are repeated texts and repeated
first paragraphs (``foo``, ``foo-data`` share one) and packages already in ``debian_summaries.jsonl`` (so that a
model pretrained on that corpus has not read a test text). Then, per section, the ``PER_SECTION``
packages whose names have the smallest sha256, a sample that does not depend on the index order.
Each line is ``{"package": ..., "source": text, "target": section}``, sorted by package.

Example (the package ``a7xpg``): ``{"source": "chase action game. A7Xpg is a chase action game
...", "target": "games"}``.

Each description belongs to its package and is under that package's free licence; the package
name in every record is the attribution (``https://packages.debian.org/bookworm/<package>``).

Run (Debian/Ubuntu; the default Docker apt configuration skips translations)::

    apt-get update -o Acquire::Languages=en
    python data/prepare_sections.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from minroots.corpora.prepare_summaries import read_index

__all__ = ["SECTIONS", "parse_index", "text_of", "select", "build", "main"]

SECTIONS = ("games", "graphics", "mail", "science", "sound", "net")
PER_SECTION = 250
MIN_CHARS, MAX_CHARS = 80, 240
PACKAGES_GLOB = "*_debian_dists_bookworm_main_binary-amd64_Packages*"
TRANSLATION_GLOB = "*_debian_dists_bookworm_main_i18n_Translation-en*"


def parse_index(text: str) -> list[dict]:
    """Stanzas of an apt index as dicts; continuation lines join their field with ``\\n``.

    Example: ``"Package: a\\nDescription-en: Tool\\n Does x.\\n"`` ->
    ``[{"Package": "a", "Description-en": "Tool\\nDoes x."}]``.
    """
    records = []
    for stanza in text.split("\n\n"):
        record, key = {}, None
        for line in stanza.split("\n"):
            if line.startswith((" ", "\t")) and key is not None:
                record[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                record[key] = value.strip()
        if "Package" in record:
            records.append(record)
    return records


def text_of(description: str) -> str | None:
    """Synopsis + first paragraph, cut at the last sentence end within ``MAX_CHARS``; ``None``
    for verbatim text or a result shorter than ``MIN_CHARS``.

    Example: ``"Tool\\nDoes x. Also y.\\n.\\nMore."`` -> ``None`` (too short), and with a longer
    first paragraph ``"Tool. <the sentences that fit>"``.
    """
    synopsis, _, body = description.partition("\n")
    lines = body.split("\n")
    first = []
    for line in lines:
        if line.strip() == ".":
            break
        if line.startswith((" ", "\t")):
            return None
        first.append(line.strip())
    synopsis = synopsis.strip()
    if not synopsis.endswith((".", "!", "?")):
        synopsis += "."
    text = f"{synopsis} {' '.join(first)}".strip()
    if len(text) > MAX_CHARS:
        cut = text[:MAX_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        if end < 0:
            return None
        text = cut[: end + 1]
    return text if len(text) >= MIN_CHARS else None


def select(
    packages: list[dict],
    translations: list[dict],
    exclude=frozenset(),
    per_section: int = PER_SECTION,
) -> list[dict]:
    """The labelled sample described in the module docstring (``per_section=0``: every usable
    description of each section, for the larger experiment of chapter 10)."""
    english = {(r["Package"], r.get("Description-md5")): r["Description-en"] for r in translations
               if "Description-en" in r}  # fmt: skip
    by_section: dict[str, list[dict]] = {s: [] for s in SECTIONS}
    seen = set()
    for rec in sorted(packages, key=lambda r: r["Package"]):
        section = rec.get("Section")
        if section not in by_section or rec["Package"] in exclude:
            continue
        description = english.get((rec["Package"], rec.get("Description-md5")))
        text = text_of(description) if description else None
        if text is None:
            continue
        body = description.partition("\n")[2].split("\n.\n")[0]  # the first paragraph
        if text in seen or body in seen:  # the same paragraph under another synopsis, too
            continue
        seen.update((text, body))
        by_section[section].append({"package": rec["Package"], "source": text, "target": section})
    out = []
    for section, recs in by_section.items():
        recs.sort(key=lambda r: hashlib.sha256(r["package"].encode()).hexdigest())
        if len(recs) < per_section:
            raise ValueError(f"section {section!r} has only {len(recs)} usable descriptions")
        out += recs[:per_section] if per_section else recs
    return sorted(out, key=lambda r: r["package"])


def build(
    lists_dir: Path = Path("/var/lib/apt/lists"), per_section: int = PER_SECTION
) -> list[dict]:
    """Read bookworm main's ``Packages`` and ``Translation-en`` and select the sample."""
    summaries = Path(__file__).with_name("debian_summaries.jsonl")
    exclude = {json.loads(line)["package"] for line in summaries.read_text("utf-8").splitlines()}
    return select(parse_index(read_index(lists_dir, PACKAGES_GLOB)),
                  parse_index(read_index(lists_dir, TRANSLATION_GLOB)), frozenset(exclude),
                  per_section)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=Path, default=Path("/var/lib/apt/lists"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("debian_sections.jsonl")
    )
    parser.add_argument("--per-section", type=int, default=PER_SECTION,
                        help="descriptions per section (%(default)s; 0: every usable one, "
                             "unbalanced; chapter 10's larger experiment)")  # fmt: skip
    args = parser.parse_args(argv)
    records = build(args.lists, args.per_section)
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {args.out}: {len(records)} records, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
