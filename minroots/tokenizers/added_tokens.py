"""Added tokens: a tokenizer extended with marker tokens that no text can produce.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``); tests in ``tests/test_chat_template.py``.

A chat format needs role markers (``<|user|>``, ``<|assistant|>``, ...) that are tokens of their
own. :class:`AddedTokensTokenizer` keeps a trained tokenizer unchanged and gives each added token
the next free id, after the base vocabulary::

    base ids 0 .. V-1           what the base tokenizer makes of text (unchanged)
    added ids V, V+1, ...       the markers, reachable only by id

``encode(text)`` is the base tokenizer's, so text that *spells* a marker (a user typing
``<|assistant|>``) becomes ordinary characters or bytes, never the marker's id: a marker cannot
be forged. ``decode`` writes a marker id as its string. Works the same over a
:class:`~minroots.tokenizers.CharTokenizer` (markers are not characters) and a
:class:`~minroots.tokenizers.BPETokenizer`.

>>> from minroots.tokenizers import CharTokenizer
>>> tok = AddedTokensTokenizer(CharTokenizer.from_text("<|>aersu"), ["<|user|>"])
>>> tok.vocab_size, tok.token_to_id("<|user|>")     # 8 characters, then the marker
(9, 8)
>>> tok.encode("<|user|>")                          # text is never the marker
[0, 7, 6, 5, 3, 4, 7, 1]
>>> tok.decode([8, 2])
'<|user|>a'
"""

from __future__ import annotations

from collections.abc import Iterable

from minroots.tokenizers.base import _REGISTRY, Tokenizer, register_tokenizer
from minroots.validation import distinct_strings

__all__ = ["AddedTokensTokenizer"]


@register_tokenizer
class AddedTokensTokenizer(Tokenizer):
    """``base`` with ``tokens`` appended as ids ``base.vocab_size + k``.

    Args:
        base: any minroots tokenizer (it must be able to ``save``: its JSON is stored inside).
        tokens: the added token strings, distinct and non-empty, in id order.
    """

    type_name = "added_tokens"

    def __init__(self, base: Tokenizer, tokens: Iterable[str]):
        if not isinstance(base, Tokenizer):
            raise TypeError(
                f"AddedTokensTokenizer: base must be a minroots Tokenizer, got {type(base).__name__}"
            )
        tokens = distinct_strings("AddedTokensTokenizer", "tokens", tokens)
        self.base = base
        self.added = tokens
        self.first_id = base.vocab_size
        self._ids = {t: self.first_id + k for k, t in enumerate(tokens)}

    # --- the interface ------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.first_id + len(self.added)

    @property
    def added_tokens(self) -> dict[str, int]:
        """Added token string -> id."""
        return dict(self._ids)

    def encode(self, text: str) -> list[int]:
        """The base tokenizer's ids: text never becomes an added token."""
        return self.base.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Base ids through the base tokenizer, added ids as their strings, in order."""
        out, run = [], []
        for i in ids:
            i = int(i)
            if i >= self.first_id:
                if i >= self.vocab_size:
                    raise ValueError(
                        f"AddedTokensTokenizer.decode: ids must be in [0, {self.vocab_size}), got {i}"
                    )
                if run:
                    out.append(self.base.decode(run))
                    run = []
                out.append(self.added[i - self.first_id])
            else:
                run.append(i)
        if run:
            out.append(self.base.decode(run))
        return "".join(out)

    def token_to_id(self, token) -> int:
        if isinstance(token, str) and token in self._ids:
            return self._ids[token]
        return self.base.token_to_id(token)

    def id_to_token(self, id: int):
        if isinstance(id, int) and self.first_id <= id < self.vocab_size:
            return self.added[id - self.first_id]
        return self.base.id_to_token(id)

    # --- saving -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"base": {"type": self.base.type_name, **self.base.to_dict()},
                "added_tokens": list(self.added)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> AddedTokensTokenizer:
        base = dict(data["base"])
        kind = base.pop("type")
        if kind not in _REGISTRY:
            raise ValueError(f"AddedTokensTokenizer: unknown base tokenizer type {kind!r}")
        return cls(_REGISTRY[kind].from_dict(base), data["added_tokens"])

    def __repr__(self) -> str:
        return f"AddedTokensTokenizer({self.base!r}, added={self.added})"
