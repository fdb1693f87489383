"""Build ``debian_summaries.jsonl``: document/summary pairs from Debian package descriptions.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); used in chapter 10.

Every Debian package has a one-line synopsis and a long description written by its maintainers;
the long description is the *document*, the synopsis its *summary*. The English descriptions of
Debian 12 "bookworm" (main) come in apt's ``Translation-en`` index.

Selection (deterministic): keep descriptions written as prose (no indented verbatim lines such
as bullet lists), 300 to 1200 characters long, with a 15 to 80 character synopsis; drop repeated
documents and repeated synopses (``foo-dev``, ``foo-doc``... share one text); then take the
``N_PAIRS`` packages whose names have the smallest sha256, a sample that does not depend on
the index order. Each JSON line is ``{"package": ..., "source": document, "target": synopsis}``;
paragraphs of the document are separated by a blank line.

Example (the package ``a2jmidid``): source ``"Main goal of this project is to ease usage of
legacy, not JACK-ified apps, in a JACK MIDI enabled system. ..."`` -> target ``"Daemon for
exposing legacy ALSA MIDI in JACK MIDI systems"``.

Each description belongs to its package and is under that package's free licence; the package
name in every record is the attribution (``https://packages.debian.org/bookworm/<package>``).

Run (Debian/Ubuntu; the default Docker apt configuration skips translations)::

    apt-get update -o Acquire::Languages=en
    python data/prepare_summaries.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from pathlib import Path

__all__ = ["N_PAIRS", "parse_translation_index", "read_index", "select", "build", "main"]

N_PAIRS = 1000
DOC_CHARS = (300, 1200)
SUMMARY_CHARS = (15, 80)
INDEX_GLOB = "*_debian_dists_bookworm_main_i18n_Translation-en*"


def parse_translation_index(text: str) -> list[dict]:
    """Parse a ``Translation-en`` index into ``[{"package", "summary", "lines"}, ...]``.

    ``lines`` keeps the long description's raw continuation lines (leading space removed), so
    ``" ."`` paragraph breaks become ``"."`` and verbatim lines keep one leading space.

    Example: ``"Package: a\\nDescription-en: Tool\\n Does x.\\n .\\n Also y.\\n"`` ->
    ``[{"package": "a", "summary": "Tool", "lines": ["Does x.", ".", "Also y."]}]``.
    """
    records = []
    for stanza in text.split("\n\n"):
        package, summary, lines = None, None, []
        for line in stanza.split("\n"):
            if line.startswith("Package: "):
                package = line[len("Package: ") :].strip()
            elif line.startswith("Description-en: "):
                summary = line[len("Description-en: ") :].strip()
            elif line.startswith(" ") and summary is not None:
                lines.append(line[1:])
        if package and summary:
            records.append({"package": package, "summary": summary, "lines": lines})
    return records


def _document(lines: list[str]) -> str | None:
    """Join description lines into paragraphs; ``None`` if any line is verbatim (a list, code)."""
    paragraphs, current = [], []
    for line in lines:
        if line.startswith(" ") or line.startswith("\t"):
            return None
        if line.strip() == ".":
            paragraphs.append(" ".join(current))
            current = []
        else:
            current.append(line.strip())
    paragraphs.append(" ".join(current))
    return "\n\n".join(p for p in paragraphs if p)


def select(records: list[dict], n: int = N_PAIRS) -> list[dict]:
    """Apply the filters in the module docstring and return ``n`` records sorted by package."""
    seen_docs, seen_summaries, kept = set(), set(), []
    for rec in sorted(records, key=lambda r: r["package"]):
        doc = _document(rec["lines"])
        summary = rec["summary"]
        if doc is None or not DOC_CHARS[0] <= len(doc) <= DOC_CHARS[1]:
            continue
        if not SUMMARY_CHARS[0] <= len(summary) <= SUMMARY_CHARS[1]:
            continue
        if doc in seen_docs or summary.lower() in seen_summaries:
            continue
        seen_docs.add(doc)
        seen_summaries.add(summary.lower())
        kept.append({"package": rec["package"], "source": doc, "target": summary})
    kept.sort(key=lambda r: hashlib.sha256(r["package"].encode()).hexdigest())
    return sorted(kept[:n], key=lambda r: r["package"])


def read_index(lists_dir: Path, pattern: str, languages: str = "en") -> str:
    """The text of the apt index in ``lists_dir`` matching ``pattern`` (the ``prepare_*`` scripts
    of Debian data share it); ``languages`` is what the error tells to pass to apt."""
    found = sorted(lists_dir.glob(pattern))
    if not found:
        raise FileNotFoundError(
            f"no {pattern} in {lists_dir}; run `apt-get update -o Acquire::Languages={languages}`"
        )
    # apt-helper decompresses whatever apt stored (.lz4, .xz, .gz or plain).
    return subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(found[0])], check=True,
                          capture_output=True, text=True).stdout  # fmt: skip


def build(lists_dir: Path = Path("/var/lib/apt/lists")) -> list[dict]:
    """Read bookworm main's ``Translation-en`` (any compression apt used) and select pairs."""
    return select(parse_translation_index(read_index(lists_dir, INDEX_GLOB)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=Path, default=Path("/var/lib/apt/lists"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("debian_summaries.jsonl")
    )
    args = parser.parse_args(argv)
    pairs = build(args.lists)
    lines = [json.dumps(p, ensure_ascii=False) for p in pairs]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {args.out}: {len(pairs)} pairs, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
