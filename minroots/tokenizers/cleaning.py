r"""Text cleaning: small, named steps composed into a pipeline, and strict UTF-8 file reading.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

Raw text from the web or from books carries things a language model should not spend capacity
on: the same letter written in two Unicode forms, invisible characters, runs of spaces, markup,
boilerplate lines repeated on every page. Each step below fixes one of them; :func:`clean`
runs a list of steps in order::

    clean("Cafe\u0301\u200b  au   lait\r\n")        # default steps
    # -> 'Café au lait\n'    (NFC joins e + U+0301 into é; the zero-width space goes;
    #                          spaces collapse; \r\n becomes \n)
    clean("<p>Hi &amp; bye</p>", steps=["strip_html", "lowercase"])   # -> 'hi & bye'

The default pipeline :data:`DEFAULT_STEPS` is ``nfc``, ``normalize_newlines``,
``remove_control``, ``remove_zero_width``, ``collapse_whitespace``: it changes no visible
character. The other steps (``nfkc``, ``fold_width``, ``lowercase``, ``strip_html``,
``drop_short_lines``, ``dedup_lines``) change content, so you opt in. For Chinese, Japanese and
Korean text ``fold_width`` is usually the better choice than ``nfkc``: it turns full-width
letters and digits into ASCII (``ＧＰＴ２`` -> ``GPT2``) and half-width katakana into the usual
width, but keeps the full-width punctuation (``，！？``) that Chinese writes, which NFKC would
turn into ASCII. A step is a name, a ``(name, kwargs)`` pair
such as ``("drop_short_lines", {"min_chars": 20})``, or any function ``str -> str``.

Files are read and written as UTF-8. An invalid byte is an error naming its position
(:class:`InvalidUTF8Error`), or becomes U+FFFD with ``errors="replace"``; it is never dropped.
"""

from __future__ import annotations

import html
import os
import unicodedata
from collections.abc import Callable, Iterable, Sequence

import regex

from minroots.persistence import atomic_file
from minroots.validation import did_you_mean, shown

__all__ = [
    "normalize_unicode",
    "normalize_newlines",
    "fold_width",
    "remove_control",
    "remove_zero_width",
    "collapse_whitespace",
    "lowercase",
    "strip_html",
    "drop_short_lines",
    "dedup_lines",
    "dedup_documents",
    "STEPS",
    "DEFAULT_STEPS",
    "clean",
    "InvalidUTF8Error",
    "read_text",
    "write_text",
    "clean_file",
]


def _check(text, name="text", where: str = "clean") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{where}: {name} must be a str, got {type(text).__name__}")
    return text


def normalize_unicode(text: str, form: str = "NFC") -> str:
    """Unicode normalization: ``"NFC"`` composes (``e`` + U+0301 -> ``é``) and changes nothing
    visible; ``"NFKC"`` also folds compatibility forms (``ﬁ`` -> ``fi``, ``①`` -> ``1``, full-width
    ``Ａ`` -> ``A``), which loses distinctions."""
    if form not in ("NFC", "NFKC", "NFD", "NFKD"):
        raise ValueError(f"normalize_unicode: form must be 'NFC', 'NFKC', 'NFD' or 'NFKD', got "
                         f"{form!r}")  # fmt: skip
    return unicodedata.normalize(form, _check(text))


# Full-width forms U+FF01-U+FF5E are the ASCII characters U+0021-U+007E moved by 0xFEE0.
_FULL_WIDTH_ALNUM = {c: c - 0xFEE0 for r in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
                     for c in range(r[0], r[1] + 1)}  # fmt: skip
_FULL_WIDTH_ALL = {**{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}, 0x3000: 0x20}
_HALF_WIDTH_RUN = regex.compile(r"[\uFF61-\uFFEE]+")  # half-width CJK punctuation, kana, Hangul


def fold_width(text: str, punctuation: bool = False) -> str:
    """Width folding for CJK text, a targeted part of NFKC; the result is in NFC.

    - full-width Latin letters and digits become ASCII: ``"ＧＰＴ－２，１９８７年"`` ->
      ``"GPT－2，1987年"``;
    - half-width katakana, Hangul and CJK punctuation become their usual (full) width, a voiced
      mark joining its kana: ``"ｶﾞｷﾞ｡"`` -> ``"ガギ。"``;
    - full-width punctuation and symbols (``，！？：；（）－``) and the ideographic space U+3000
      are kept, because Chinese text is written with them; ``punctuation=True`` folds them to
      ASCII as well (``"，"`` -> ``","``), which is what NFKC does to all of these forms.

    Unlike :func:`normalize_unicode` with ``"NFKC"``, nothing else is touched (``①``, ``ﬁ``,
    superscripts stay).
    """
    text = _check(text).translate(_FULL_WIDTH_ALL if punctuation else _FULL_WIDTH_ALNUM)
    text = _HALF_WIDTH_RUN.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    return unicodedata.normalize("NFC", text)


def normalize_newlines(text: str) -> str:
    r"""Windows ``\r\n`` and old-Mac ``\r`` line ends -> ``\n``."""
    return _check(text).replace("\r\n", "\n").replace("\r", "\n")


# Control characters (category Cc) except tab and newline; \r is handled by normalize_newlines.
_CONTROL = regex.compile(r"[^\P{Cc}\t\n\r]")


def remove_control(text: str) -> str:
    r"""Remove control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) except
    tab, newline and carriage return. ``"a\x00b\x1bc\n" -> "abc\n"``."""
    return _CONTROL.sub("", _check(text))


# Invisible characters that only get in the way: zero-width space, word joiner, byte order mark
# (also zero-width no-break space), soft hyphen. Joiners (U+200C, U+200D) are kept by default:
# they are meaningful in Persian, Indic scripts and emoji sequences (👨‍👩‍👧).
_ZERO_WIDTH = "\u200b\u2060\ufeff\u00ad"
_JOINERS = "\u200c\u200d"


def remove_zero_width(text: str, keep_joiners: bool = True) -> str:
    """Remove zero-width space, word joiner, BOM and soft hyphen (and, with
    ``keep_joiners=False``, also zero-width (non-)joiners). ``"a\\u200bb" -> "ab"``."""
    chars = _ZERO_WIDTH if keep_joiners else _ZERO_WIDTH + _JOINERS
    return _check(text).translate({ord(c): None for c in chars})


_H_SPACE = regex.compile(r"[^\S\n]+")  # whitespace other than newline
_TRAILING = regex.compile(r" +\n")
_MANY_NEWLINES = regex.compile(r"\n{3,}")


def collapse_whitespace(text: str) -> str:
    r"""Runs of spaces, tabs and other non-newline whitespace -> one space; spaces at the end
    of a line removed; three or more newlines -> two (one blank line keeps paragraphs apart).
    ``"a \t b  \n\n\n\nc" -> "a b\n\nc"``."""
    text = _H_SPACE.sub(" ", _check(text))
    text = _TRAILING.sub("\n", text)
    return _MANY_NEWLINES.sub("\n\n", text)


def lowercase(text: str) -> str:
    """``str.lower`` (full Unicode case mapping: ``"ÄB" -> "äb"``)."""
    return _check(text).lower()


_HTML_DROP = regex.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", regex.S | regex.I)
_HTML_BLOCK = regex.compile(
    r"</?(p|div|br|li|ul|ol|tr|table|h[1-6]|section|article|blockquote|pre)\b[^>]*>", regex.I
)
_HTML_TAG = regex.compile(r"</?[A-Za-z][^>]*>|<![^>]*>")


def strip_html(text: str) -> str:
    """Remove markup: scripts, styles and comments with their content, then tags; block tags
    (``<p>``, ``<br>``, ``<div>``, headings, ...) become newlines; entities are unescaped last
    (so ``&lt;b&gt;`` stays the text ``<b>``). ``"<p>Hi &amp; <b>bye</b></p>" -> "Hi & bye"``
    (surrounding newlines from block tags are stripped)."""
    text = _HTML_DROP.sub("", _check(text))
    text = _HTML_BLOCK.sub("\n", text)
    text = _HTML_TAG.sub("", text)
    return html.unescape(text).strip("\n")


def drop_short_lines(text: str, min_chars: int = 10) -> str:
    """Remove lines with fewer than ``min_chars`` characters (after stripping spaces); blank
    lines are kept so paragraphs stay apart. Removes page numbers, stray headers, ..."""
    if not isinstance(min_chars, int) or min_chars < 0:
        raise ValueError(f"drop_short_lines: min_chars must be an int >= 0, got {shown(min_chars)}")
    lines = _check(text).split("\n")
    return "\n".join(ln for ln in lines if not ln.strip() or len(ln.strip()) >= min_chars)


def dedup_lines(text: str) -> str:
    """Keep only the first occurrence of each exactly repeated non-blank line (boilerplate)."""
    seen, out = set(), []
    for line in _check(text).split("\n"):
        if line.strip():
            if line in seen:
                continue
            seen.add(line)
        out.append(line)
    return "\n".join(out)


def dedup_documents(docs: Iterable[str]) -> list[str]:
    """Drop exact duplicate documents, keeping the first of each, in order."""
    seen, out = set(), []
    for k, doc in enumerate(docs):
        _check(doc, f"docs[{k}]")
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


STEPS: dict[str, Callable[..., str]] = {
    "nfc": normalize_unicode,
    "nfkc": lambda text: normalize_unicode(text, "NFKC"),
    "fold_width": fold_width,
    "normalize_newlines": normalize_newlines,
    "remove_control": remove_control,
    "remove_zero_width": remove_zero_width,
    "collapse_whitespace": collapse_whitespace,
    "lowercase": lowercase,
    "strip_html": strip_html,
    "drop_short_lines": drop_short_lines,
    "dedup_lines": dedup_lines,
}

DEFAULT_STEPS: tuple[str, ...] = (
    "nfc",
    "normalize_newlines",
    "remove_control",
    "remove_zero_width",
    "collapse_whitespace",
)


def _resolve_step(step) -> Callable[[str], str]:
    if callable(step):
        return step
    if isinstance(step, str):
        name, kwargs = step, {}
    elif isinstance(step, (tuple, list)) and len(step) == 2 and isinstance(step[1], dict):
        name, kwargs = step
    else:
        raise TypeError(
            f"clean: each step must be a name, (name, kwargs) or a function, got {shown(step)}"
        )
    if name not in STEPS:
        raise ValueError(f"clean: unknown step {name!r}{did_you_mean(name, STEPS)}; known: "
                         f"{', '.join(STEPS)}")  # fmt: skip
    fn = STEPS[name]
    return (lambda text: fn(text, **kwargs)) if kwargs else fn


def clean(text: str, steps: Sequence = DEFAULT_STEPS) -> str:
    """Run ``steps`` on ``text`` in order (see the module docstring)."""
    _check(text)
    if isinstance(steps, str):
        steps = [steps]
    for fn in [_resolve_step(s) for s in steps]:
        text = fn(text)
    return text


class InvalidUTF8Error(ValueError):
    """A file holds bytes that are not UTF-8; ``position`` is the byte offset of the first."""

    def __init__(self, path: str, position: int, line: int, column: int, data: bytes):
        self.path, self.position, self.line, self.column = path, position, line, column
        super().__init__(
            f"read_text: {path!r} has invalid UTF-8 byte(s) {data!r} at byte offset {position} (line "
            f"{line}, byte {column} of the line); pass errors='replace' to read them as U+FFFD"
        )


def read_text(path: str | os.PathLike, errors: str = "strict") -> str:
    """Read a UTF-8 file. ``errors="strict"``: raise :class:`InvalidUTF8Error` at the first bad
    byte; ``"replace"``: each bad sequence becomes U+FFFD. Line ends are kept as they are."""
    if errors not in ("strict", "replace"):
        raise ValueError(f"read_text: errors must be 'strict' or 'replace', got {shown(errors)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_text: no such file {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InvalidUTF8Error(path, e.start, line, column, data[e.start : e.end]) from None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, line ends unchanged; unencodable characters (lone surrogates)
    raise ``ValueError`` naming their position."""
    _check(text)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"write_text: text has a character that UTF-8 cannot encode ({text[e.start]!r}, a lone "
            f"surrogate) at position {e.start}"
        ) from None
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def clean_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    steps: Sequence = DEFAULT_STEPS,
    errors: str = "strict",
) -> str:
    """Read ``in_path``, :func:`clean` it, write ``out_path``; returns the cleaned text."""
    text = clean(read_text(in_path, errors=errors), steps)
    write_text(out_path, text)
    return text
