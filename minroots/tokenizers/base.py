"""The interface every minroots tokenizer shares, and loading any saved tokenizer.

Book chapter 6, "Data preprocessing" (``book/06_tokenizers.md``).

A tokenizer turns text into a list of integer ids and back. Whatever the algorithm (one id per
character, byte-level BPE, ...), the rest of minroots only ever calls the methods below:

- ``encode(text) -> list[int]`` and ``decode(ids) -> str``;
- ``encode_batch(texts)`` / ``decode_batch(batch)``;
- ``vocab_size``, ``token_to_id(token)``, ``id_to_token(id)``;
- ``save(path)`` writes human-readable JSON with a ``"type"`` field, and the module-level
  :func:`load` reads any such file back, dispatching on that field::

      tok = CharTokenizer.from_text("hello")
      tok.save("tok.json")            # {"type": "char", "chars": ["e", "h", "l", "o"], ...}
      load("tok.json").encode("hell")  # -> [1, 0, 2, 2]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

__all__ = ["Tokenizer", "load", "register_tokenizer", "check_text"]

# "type" field of a saved tokenizer -> class that can rebuild it from the JSON dict.
_REGISTRY: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: let :func:`load` rebuild ``cls`` from JSON of type ``cls.type_name``."""
    _REGISTRY[cls.type_name] = cls
    return cls


def check_text(text, name: str = "text") -> str:
    """Return ``text`` if it is a ``str``, else raise a ``TypeError`` naming the argument."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


class Tokenizer:
    """Base class: subclasses implement ``encode``, ``decode``, ``vocab_size``, the two lookups,
    ``to_dict`` and ``from_dict``; batching, saving and loading come from here."""

    type_name = "base"

    # --- to implement -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def token_to_id(self, token) -> int:
        raise NotImplementedError

    def id_to_token(self, id: int):
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """Encode each text of ``texts``; a single ``str`` is rejected (it is not a batch)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str, got a single str (use encode)")
        return [self.encode(t) for t in texts]

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        """Decode each id sequence of ``batch``."""
        return [self.decode(ids) for ids in batch]

    def __len__(self) -> int:
        return self.vocab_size

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as indented UTF-8 JSON (readable, diffable) to ``path``."""
        data = {"type": self.type_name, **self.to_dict()}
        with open(path, "w", encoding="utf-8") as f:
            f.write(_dumps(data))

    def save_pretrained(self, path: str | os.PathLike, **options) -> None:
        """Write a Hugging Face tokenizer folder (``tokenizer.json``, ``tokenizer_config.json``);
        see :func:`minroots.tokenizers.pretrained.save_pretrained` for ``options``."""
        from minroots.tokenizers.pretrained import save_pretrained  # it imports the subclasses

        save_pretrained(self, path, **options)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer saved by ``save``; on a subclass, the file's type must match it."""
        tok = load(path)
        if cls is not Tokenizer and not isinstance(tok, cls):
            raise ValueError(
                f"path {os.fspath(path)!r} holds a {type(tok).__name__}, expected a {cls.__name__}"
            )
        return tok


def _dumps(data: dict) -> str:
    """JSON with one top-level key per line and one list/dict item per line, each item compact.

    ``{"a": [[1, 2], [3, 4]]}`` becomes::

        {
         "a": [
          [1, 2],
          [3, 4]
         ]
        }

    so a vocabulary of 50,000 merges is 50,000 short lines rather than 150,000 (``indent=1``)
    or one enormous line (no indent).
    """

    def item(v):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))

    lines = ["{"]
    for k, (key, value) in enumerate(data.items()):
        comma = "," if k < len(data) - 1 else ""
        if isinstance(value, list) and value:
            inner = ",\n".join("  " + item(v) for v in value)
            lines.append(f" {item(key)}: [\n{inner}\n ]{comma}")
        elif isinstance(value, dict) and value:
            inner = ",\n".join(f"  {item(k2)}: {item(v)}" for k2, v in value.items())
            lines.append(f" {item(key)}: {{\n{inner}\n }}{comma}")
        else:
            lines.append(f" {item(key)}: {item(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def load(path: str | os.PathLike) -> Tokenizer:
    """Load any tokenizer written by ``Tokenizer.save``, choosing the class by its ``"type"`` field.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not
    JSON or whose type is unknown.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path {path!r}: no such tokenizer file")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"path {path!r} is not valid tokenizer JSON: {e}") from None
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"path {path!r}: expected a JSON object with a 'type' field")
    kind = data.pop("type")
    if kind not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"path {path!r}: unknown tokenizer type {kind!r} (known: {known})")
    try:
        return _REGISTRY[kind].from_dict(data)
    except (KeyError, TypeError) as e:
        raise ValueError(f"path {path!r}: malformed {kind!r} tokenizer: {e!r}") from None
