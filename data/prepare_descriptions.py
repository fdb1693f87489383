"""Build a large pretraining text from Debian package descriptions (built locally, not bundled).

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.5: more pretraining text for the classifier).

The classification experiment (``minroots.posttrain.section_classification``) pretrains on the
bundled ``debian_summaries`` and its training descriptions: about 0.7 M characters. This script
writes the other English package descriptions of Debian 12 "bookworm" (main), about 19 MB, for
``--pretraining-file``. They are not bundled: each description is under its own package's licence,
and ``data/`` ships only small samples.

Selection (deterministic): every package of apt's ``Translation-en`` index, sorted by name,
except the packages of the labelled file (``--labelled``, default the bundled
``debian_sections.jsonl``) and of ``debian_summaries.jsonl`` (already in the pretraining text);
descriptions written as prose (no verbatim lines) of at least 80 characters; no repeated
description; and no description that contains the first ``PRINT_CHARS`` characters of a labelled
text's first paragraph (``foo-data`` often repeats ``foo``'s words: a labelled test text must
not be read in pretraining, even under another package's name). Each description is written as
its synopsis, a newline, then its paragraphs; descriptions are separated by a blank line.

Run (Debian/Ubuntu; the default Docker apt configuration skips translations)::

    apt-get update -o Acquire::Languages=en
    python data/prepare_descriptions.py --out runs/debian_descriptions.txt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minroots.corpora.prepare_summaries import (
    INDEX_GLOB,
    _document,
    parse_translation_index,
    read_index,
)

__all__ = ["PRINT_CHARS", "fingerprints", "select", "build", "main"]

MIN_CHARS = 80
PRINT_CHARS = 60  # a labelled text's fingerprint: the start of its first paragraph
HERE = Path(__file__).parent


def fingerprints(texts: list[str]) -> set[str]:
    """The first ``PRINT_CHARS`` characters after each text's synopsis (its first sentence).

    Example: ``"Chess game. Plays chess on three boards."`` -> ``{"Plays chess on three boards."}``.
    """
    return {t.split(". ", 1)[-1][:PRINT_CHARS] for t in texts}


def select(records: list[dict], exclude: set[str], prints: set[str]) -> list[str]:
    """The descriptions (``synopsis\\ndocument``) chosen as in the module docstring."""
    seen, out = set(), []
    for rec in sorted(records, key=lambda r: r["package"]):
        if rec["package"] in exclude:
            continue
        doc = _document(rec["lines"])
        if not doc or len(doc) < MIN_CHARS or doc in seen:
            continue
        if any(p in doc for p in prints):
            continue
        seen.add(doc)
        out.append(f"{rec['summary']}\n{doc}")
    return out


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def build(lists_dir: Path = Path("/var/lib/apt/lists"), labelled: Path | None = None) -> list[str]:
    """Read bookworm main's ``Translation-en`` and select the descriptions."""
    text = read_index(lists_dir, INDEX_GLOB)
    labels = _records(labelled or HERE / "debian_sections.jsonl")
    exclude = {r["package"] for r in labels + _records(HERE / "debian_summaries.jsonl")}
    return select(
        parse_translation_index(text), exclude, fingerprints([r["source"] for r in labels])
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=Path, default=Path("/var/lib/apt/lists"))
    parser.add_argument("--labelled", type=Path, default=None,
                        help="labelled JSONL whose packages and texts are left out "
                             "(default: the bundled debian_sections.jsonl)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    texts = build(args.lists, args.labelled)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join(texts) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {args.out}: {len(texts)} descriptions, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
