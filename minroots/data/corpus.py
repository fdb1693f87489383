"""The corpora bundled with minroots, and reading a corpus from a name or a file.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

minroots ships a few small real corpora in the top-level ``data/`` folder of a checkout, which
is installed as the package ``minroots.corpora`` (so a wheel carries them too). We find them with
``importlib.resources.files("minroots.corpora")``, which works from an editable checkout, an
installed wheel and a zip alike. A corpus's *name* is its file name without the extension, and
the extension says what it holds:

- ``.txt``: plain UTF-8 text for language modelling (``load_corpus``), e.g. ``"shakespeare"``;
- ``.tsv``: sentence pairs, a header row then ``source<TAB>target`` lines (``load_pairs``);
- ``.jsonl``: pairs, one JSON object per line with ``"source"`` and ``"target"`` keys (and
  metadata such as ``"package"`` or ``"category"``) (``load_pairs``).

Example::

    >>> list_corpora()
    ['debian_sections', 'debian_summaries', 'dialogue_en', 'en_es', 'en_zh', 'shakespeare', 'song100', 'tang300']
    >>> load_corpus("shakespeare")[:25]
    'HAMLET, PRINCE OF DENMARK'
    >>> load_pairs("en_es")[0]
    ('In the beginning, God created the heavens and the earth.', 'EN el principio crió Dios ...')

``data/README.md`` gives each file's source, licence, size and sha256.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from minroots.validation import shown

__all__ = ["DEFAULT_CORPUS", "list_corpora", "corpus_path", "load_corpus", "load_pairs"]

DEFAULT_CORPUS = "shakespeare"

_KINDS = {".txt": "text", ".tsv": "pairs", ".jsonl": "pairs"}


def _bundled() -> dict[str, tuple[str, object]]:
    """``{name: (kind, traversable)}`` for every corpus file in ``minroots.corpora``."""
    found = {}
    for entry in resources.files("minroots.corpora").iterdir():
        suffix = os.path.splitext(entry.name)[1]
        if entry.is_file() and suffix in _KINDS:
            found[entry.name[: -len(suffix)]] = (_KINDS[suffix], entry)
    return found


def list_corpora(kind: str | None = None) -> list[str]:
    """Names of the bundled corpora, sorted; ``kind="text"`` or ``"pairs"`` keeps one kind."""
    if kind not in (None, "text", "pairs"):
        raise ValueError(f"list_corpora: kind must be None, 'text' or 'pairs', got {shown(kind)}")
    return sorted(name for name, (k, _) in _bundled().items() if kind is None or k == kind)


def _available() -> str:
    text, pairs = list_corpora("text"), list_corpora("pairs")
    return f"bundled text corpora: {', '.join(text) or 'none'}; pair corpora: {', '.join(pairs)}"


def corpus_path(name_or_path: str | os.PathLike):
    """Locate a corpus and return ``(kind, path)``; ``path`` may be a resources Traversable.

    A ``str`` that is exactly a bundled name means that corpus; anything else is a file path.
    Raises ``FileNotFoundError`` naming what is available when neither exists.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"corpus_path: name_or_path must be a corpus name or a file path, got "
            f"{type(name_or_path).__name__}"
        )
    bundled = _bundled()
    if isinstance(name_or_path, str) and name_or_path in bundled:
        return bundled[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return _KINDS.get(path.suffix, "text"), path
    raise FileNotFoundError(
        f"corpus_path: name_or_path {os.fspath(name_or_path)!r} is neither a bundled corpus nor "
        f"a file ({_available()})"
    )


def _read_text(path, label: str) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"load_corpus: {label!r} is empty; expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"load_corpus: {label!r} is not valid UTF-8 (byte {e.start}: {e.reason})"
        ) from None
    return text.replace("\r\n", "\n")  # the same text, and the same ids, on every platform


def load_corpus(name_or_path: str | os.PathLike = DEFAULT_CORPUS) -> str:
    """Return the text of a bundled corpus (by name, e.g. ``"shakespeare"``) or of a UTF-8 file.

    Windows line ends (``\\r\\n``) become ``\\n``. Raises ``FileNotFoundError`` (listing the
    bundled corpora) for an unknown name or missing file, and ``ValueError`` for an empty or
    non-UTF-8 file or a bundled pair corpus (use :func:`load_pairs` for those).
    """
    kind, path = corpus_path(name_or_path)
    label = os.fspath(name_or_path)
    if kind != "text" and isinstance(name_or_path, str) and name_or_path in list_corpora():
        raise ValueError(
            f"load_corpus: {label!r} holds pairs, not text: use load_pairs({label!r}) "
            f"({_available()})"
        )
    return _read_text(path, label)


def load_pairs(name_or_path: str | os.PathLike) -> list[tuple[str, str]]:
    """Return ``[(source, target), ...]`` from a bundled pair corpus or a ``.tsv``/``.jsonl`` file.

    A ``.tsv`` file has a header row (column names, e.g. ``en<TAB>es``) and then exactly two
    tab-separated fields per line; a ``.jsonl`` file has ``"source"`` and ``"target"`` in every
    object. Malformed lines raise ``ValueError`` with the line number.

    Example: a file ``"en\\tes\\nGood morning.\\tBuenos días.\\n"`` ->
    ``[("Good morning.", "Buenos días.")]``.
    """
    kind, path = corpus_path(name_or_path)
    label = os.fspath(name_or_path)
    suffix = os.path.splitext(path.name)[1]
    if suffix not in (".tsv", ".jsonl"):
        raise ValueError(f"load_pairs: {label!r} is not a pair corpus: expected a .tsv or .jsonl "
                         "file")  # fmt: skip
    lines = _read_text(path, label).split("\n")
    pairs = []
    if suffix == ".tsv":
        for lineno, line in enumerate(lines[1:], start=2):  # line 1 is the header
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(
                    f"load_pairs: {label!r}, line {lineno} must have 2 tab-separated fields, "
                    f"got {len(fields)}"
                )
            pairs.append((fields[0], fields[1]))
    else:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                pairs.append((record["source"], record["target"]))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(
                    f"load_pairs: {label!r}, line {lineno} must be a JSON object with 'source' and "
                    f"'target', got {shown(line[:60])} ({e!r})"
                ) from None
    if not pairs:
        raise ValueError(f"load_pairs: {label!r} has no pairs")
    return pairs
