"""Character-level tokenizer: one id per Unicode character.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

The simplest tokenizer there is, and the one nanoGPT's Shakespeare example starts from: the
vocabulary is the sorted set of characters seen in a corpus, and a character's id is its
position in that list::

    tok = CharTokenizer.from_text("hello")   # vocabulary ['e', 'h', 'l', 'o']
    tok.encode("hell")                       # -> [1, 0, 2, 2]
    tok.decode([2, 3])                       # -> 'lo'

Text can contain characters the corpus never had. What happens then is a choice made
explicitly at construction (``unk=``):

- ``"error"`` (default): ``encode`` raises ``ValueError`` naming the character and its position;
- ``"replace"``: the character becomes ``unk_token`` (default U+FFFD), which gets its own id at the
  end of the vocabulary;
- ``"ignore"``: the character is dropped (lossy, so only when you really mean it).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

from minroots.tokenizers.base import Tokenizer, check_ids_iterable, check_text, register_tokenizer
from minroots.validation import shown

__all__ = ["CharTokenizer"]

_UNK_MODES = ("error", "replace", "ignore")


@register_tokenizer
class CharTokenizer(Tokenizer):
    """Map each character of ``chars`` to its index.

    Args:
        chars: the vocabulary, a string or list of single characters, each once. Order is kept:
            ``chars[i]`` gets id ``i``.
        unk: ``"error"``, ``"replace"`` or ``"ignore"``: what ``encode`` does with a character
            outside the vocabulary (see the module docstring).
        unk_token: the replacement character for ``unk="replace"``; appended to the vocabulary
            if it is not already in ``chars``.
    """

    type_name = "char"

    def __init__(self, chars: str | list[str], unk: str = "error", unk_token: str = "\ufffd"):
        if isinstance(chars, str):
            chars = list(chars)
        if not isinstance(chars, (list, tuple)):
            raise TypeError(
                f"CharTokenizer: chars must be a str or a list of str, got {type(chars).__name__}"
            )
        if unk not in _UNK_MODES:
            raise ValueError(f"CharTokenizer: unk must be one of {_UNK_MODES}, got {shown(unk)}")
        if not isinstance(unk_token, str) or len(unk_token) != 1:
            raise ValueError(
                f"CharTokenizer: unk_token must be a single character, got {shown(unk_token)}"
            )
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(
                    f"CharTokenizer: chars must hold single characters, got {shown(c)}"
                )
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise ValueError(
                f"CharTokenizer: chars must not repeat a character, got {shown(dup)} twice"
            )
        if unk == "replace" and unk_token not in chars:
            chars.append(unk_token)
        if not chars:
            raise ValueError("CharTokenizer: chars must not be empty, got an empty vocabulary")
        self.chars: list[str] = chars
        self.unk = unk
        self.unk_token = unk_token
        self._stoi = {c: i for i, c in enumerate(chars)}
        self._unk_id = self._stoi.get(unk_token) if unk == "replace" else None

    @classmethod
    def from_text(
        cls, text: str | Iterable[str], unk: str = "error", unk_token: str = "\ufffd"
    ) -> CharTokenizer:
        """Build the vocabulary from the sorted unique characters of ``text`` (a str or texts).

        >>> CharTokenizer.from_text("hello").chars
        ['e', 'h', 'l', 'o']
        """
        if isinstance(text, str):
            seen = set(text)
        else:
            seen = set()
            for i, t in enumerate(text):
                seen.update(check_text(t, f"text[{i}]", "CharTokenizer.from_text"))
        if not seen:
            raise ValueError("CharTokenizer.from_text: text must contain at least one character, got "
                             "none")  # fmt: skip
        return cls(sorted(seen), unk=unk, unk_token=unk_token)

    # --- the interface ------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        check_text(text, where="CharTokenizer.encode")
        stoi = self._stoi
        try:
            return [stoi[c] for c in text]  # the fast path: every character known
        except KeyError:
            pass
        ids = []
        for pos, c in enumerate(text):
            i = stoi.get(c)
            if i is not None:
                ids.append(i)
            elif self.unk == "replace":
                ids.append(self._unk_id)
            elif self.unk == "error":
                raise ValueError(
                    f"CharTokenizer.encode: text has character {c!r} (U+{ord(c):04X}) at position {pos}, which is not "
                    "in the vocabulary (build with unk='replace' or 'ignore' to allow it)"
                )
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        check_ids_iterable("CharTokenizer.decode", ids)
        chars, n = self.chars, len(self.chars)
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < n:
                raise ValueError(
                    f"CharTokenizer.decode: ids must be integers in [0, {n}), got {shown(i)}"
                )
            out.append(chars[i])
        return "".join(out)

    def token_to_id(self, token: str) -> int:
        if token not in self._stoi:
            raise KeyError(f"CharTokenizer.token_to_id: token {token!r} is not in the vocabulary")
        return self._stoi[token]

    def id_to_token(self, id: int) -> str:
        if not (0 <= id < len(self.chars)):
            raise ValueError(
                f"CharTokenizer.id_to_token: id must be in [0, {len(self.chars)}), got {shown(id)}"
            )
        return self.chars[id]

    # --- saving -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"chars": self.chars, "unk": self.unk, "unk_token": self.unk_token}

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        unk, unk_token = data.get("unk", "error"), data.get("unk_token", "\ufffd")
        return cls(data["chars"], unk=unk, unk_token=unk_token)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unk={self.unk!r})"
