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

from minroots.persistence import read_json, write_text
from minroots.validation import shown

__all__ = ["Tokenizer", "load", "register_tokenizer", "check_text", "check_ids_iterable"]

# "type" field of a saved tokenizer -> class that can rebuild it from the JSON dict.
_REGISTRY: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: let :func:`load` rebuild ``cls`` from JSON of type ``cls.type_name``."""
    _REGISTRY[cls.type_name] = cls
    return cls


def check_text(text, name: str = "text", where: str = "encode") -> str:
    """Return ``text`` if it is a ``str``, else raise a ``TypeError`` naming the argument."""
    if not isinstance(text, str):
        raise TypeError(f"{where}: {name} must be a str, got {type(text).__name__}")
    return text


def check_ids_iterable(where: str, ids) -> None:
    """A ``TypeError`` unless ``ids`` is a sequence of ids (a list, an array), not text or a number."""
    if (
        isinstance(ids, (str, bytes))
        or not isinstance(ids, Iterable)
        or getattr(ids, "ndim", 1) == 0
    ):
        raise TypeError(f"{where}: ids must be a sequence of integer ids, got {type(ids).__name__}")


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
            raise TypeError(
                "encode_batch: texts must be a list of str, got a single str (use encode)"
            )
        return [self.encode(t) for t in texts]

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        """Decode each id sequence of ``batch``."""
        return [self.decode(ids) for ids in batch]

    def __len__(self) -> int:
        return self.vocab_size

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as indented UTF-8 JSON (readable, diffable) to ``path``, atomically
        (:func:`minroots.persistence.write_text`)."""
        data = {"type": self.type_name, **self.to_dict()}
        write_text(path, _dumps(data))

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
                f"{cls.__name__}.load: {os.fspath(path)!r} holds a {type(tok).__name__}, expected a "
                f"{cls.__name__}"
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
    if not os.path.isfile(path) and not os.path.isdir(path):
        raise FileNotFoundError(f"tokenizers.load: no tokenizer file at {path!r}")
    data = read_json(path, "tokenizers.load", expect=dict)
    if "type" not in data:
        raise ValueError(f"tokenizers.load: {path!r} must hold a tokenizer (a JSON object with a 'type' "
                         f"field), got the keys {sorted(data)[:5]}")  # fmt: skip
    kind = data.pop("type")
    if kind not in _REGISTRY:
        known = ", ".join(repr(k) for k in sorted(_REGISTRY))
        raise ValueError(
            f"tokenizers.load: {path!r}: type must be one of {known}, got {shown(kind)}"
        )
    try:
        return _REGISTRY[kind].from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        detail = f"missing the field {e}" if isinstance(e, KeyError) else str(e)
        raise ValueError(
            f"tokenizers.load: {path!r} is not a valid {kind!r} tokenizer: {detail}"
        ) from None
