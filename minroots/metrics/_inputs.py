"""Checks shared by the corpus metrics: one hypothesis stream and aligned reference streams.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

sacrebleu's convention, which BLEU and chrF keep: ``hypotheses`` is a list of strings and
``references`` a list of *reference streams*, each a list of strings aligned with
``hypotheses`` (stream ``k`` holds the ``k``-th reference of every sentence):

>>> hyps = ["the cat sat", "a dog"]
>>> refs = [["the cat sat down", "a dog barked"],    # first reference of each sentence
...         ["a cat sat", None]]                      # second references (None: there is none)
>>> segment_references(hyps, refs)
[['the cat sat down', 'a cat sat'], ['a dog barked']]
"""

from __future__ import annotations

__all__ = ["check_hypotheses", "segment_references", "check_sentence"]


def _sized(value) -> bool:
    """A list, a tuple or an array with an axis; not a string, a number or a 0-d array."""
    return (
        not isinstance(value, str) and hasattr(value, "__len__") and getattr(value, "ndim", 1) != 0
    )


def check_hypotheses(hypotheses, name: str = "hypotheses", where: str = "metric") -> list[str]:
    """Return ``hypotheses`` as a list after checking it is a non-empty sequence of strings."""
    if not _sized(hypotheses):
        raise TypeError(
            f"{where}: {name} must be a list of strings, got {type(hypotheses).__name__}"
        )
    hypotheses = list(hypotheses)
    if not hypotheses:
        raise ValueError(f"{where}: {name} must not be empty, got an empty list")
    for i, line in enumerate(hypotheses):
        if not isinstance(line, str):
            raise TypeError(f"{where}: {name}[{i}] must be a string, got {type(line).__name__}")
    return hypotheses


def segment_references(hypotheses: list[str], references, where: str = "metric") -> list[list[str]]:
    """Regroup reference streams into one list of references per hypothesis.

    Each stream must have one entry per hypothesis; an entry may be ``None`` where a sentence has
    fewer references than others (as sacrebleu allows). Every sentence needs one reference.
    """
    if not _sized(references):
        raise TypeError(
            f"{where}: references must be a list of reference streams (lists of strings), "
            f"got {type(references).__name__}"
        )
    if len(references) == 0:
        raise ValueError(f"{where}: references must hold at least one reference stream, got none")
    streams = []
    for k, stream in enumerate(references):
        if not _sized(stream):
            raise TypeError(
                f"{where}: references[{k}] must be a list of strings (one reference per hypothesis), "
                f"got {type(stream).__name__}; pass [refs] for a single reference stream"
            )
        if len(stream) != len(hypotheses):
            raise ValueError(
                f"{where}: references[{k}] has {len(stream)} lines but hypotheses has "
                f"{len(hypotheses)}; each reference stream needs one line per hypothesis"
            )
        for i, line in enumerate(stream):
            if line is not None and not isinstance(line, str):
                raise TypeError(
                    f"{where}: references[{k}][{i}] must be a string or None, got "
                    f"{type(line).__name__}"
                )
        streams.append(stream)
    per_segment = []
    for i, refs in enumerate(zip(*streams, strict=True)):
        refs = [r for r in refs if r is not None]
        if not refs:
            raise ValueError(f"{where}: hypothesis {i} has no reference (every stream has None "
                             "there)")  # fmt: skip
        per_segment.append(refs)
    return per_segment


def check_sentence(hypothesis, references, where: str = "metric") -> tuple[str, list[str]]:
    """Check the arguments of a sentence-level metric: a string and a list of strings."""
    if not isinstance(hypothesis, str):
        raise TypeError(f"{where}: hypothesis must be a string, got {type(hypothesis).__name__}")
    if isinstance(references, str):
        raise TypeError(f"{where}: references must be a list of strings, got a str (wrap a single "
                        "reference: [ref])")  # fmt: skip
    references = list(references)
    if not references:
        raise ValueError(f"{where}: references must hold at least one reference string, got none")
    for i, ref in enumerate(references):
        if not isinstance(ref, str):
            raise TypeError(f"{where}: references[{i}] must be a string, got {type(ref).__name__}")
    return hypothesis, references
