"""Build ``dialogue_en.jsonl``: short English prompt/response pairs from chatterbot-corpus.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``); used in chapter 10.

Source: the PyPI wheel ``chatterbot-corpus==1.3.3`` (BSD licence, Gunther Cox and
contributors), whose ``chatterbot_corpus/data/english/<category>.yml`` files hold small
hand-written conversations::

    categories:
    - greetings
    conversations:
    - - Hello
      - Hi
      - How are you doing?

Every two consecutive turns of a conversation make one pair, so the conversation above gives
``("Hello", "Hi")`` and ``("Hi", "How are you doing?")``. Pairs are kept once (the first time
they occur, categories in alphabetical order); ``botprofile.yml`` (the bot's persona) is left
out. Each JSON line is ``{"category": ..., "source": prompt, "target": response}``.

PyYAML is needed here, at prepare time only; minroots itself never parses YAML. Run::

    python data/prepare_dialogue.py              # downloads the wheel into a temp folder
    python data/prepare_dialogue.py --wheel chatterbot_corpus-1.3.3-py2.py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["WHEEL_SHA256", "conversation_pairs", "build", "main"]

WHEEL = "chatterbot_corpus-1.3.3-py2.py3-none-any.whl"
# The sha256 of the wheel as PyPI served it when this corpus was built.
WHEEL_SHA256 = "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154"
PREFIX = "chatterbot_corpus/data/english/"


def conversation_pairs(conversation: list) -> list[tuple[str, str]]:
    """Return the pairs of consecutive turns of one conversation, as stripped one-line strings.

    Example: ``["Hello", "Hi", "How are you doing?"]`` ->
    ``[("Hello", "Hi"), ("Hi", "How are you doing?")]``.
    """
    turns = [" ".join(str(turn).split()) for turn in conversation]
    return [(a, b) for a, b in zip(turns, turns[1:], strict=False) if a and b]


def build(wheel: Path) -> list[dict]:
    """Read every English category file in the wheel and return the de-duplicated pairs."""
    import yaml  # prepare time only

    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        print(f"warning: {wheel} has sha256 {digest}, expected {WHEEL_SHA256}", file=sys.stderr)
    records, seen = [], set()
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith(PREFIX) and n.endswith(".yml"))
        for name in names:
            category = name[len(PREFIX) : -len(".yml")]
            if category == "botprofile":
                continue
            data = yaml.safe_load(zf.read(name).decode("utf-8"))
            for conversation in data.get("conversations") or []:
                for pair in conversation_pairs(conversation):
                    if pair not in seen:
                        seen.add(pair)
                        records.append({"category": category, "source": pair[0], "target": pair[1]})
    return records


def _download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "chatterbot-corpus==1.3.3"]
    subprocess.run([*cmd, "-d", str(folder)], check=True)
    return folder / WHEEL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"{WHEEL} (downloaded if absent)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("dialogue_en.jsonl"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        records = build(args.wheel or _download_wheel(Path(tmp)))
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {args.out}: {len(records)} pairs, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
