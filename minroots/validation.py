"""Argument checks shared by the whole package, with one message style.

Book: chapter 1 ("Arrays and the backend", ``book/01_backend.md``) introduces the message
style; every chapter's code calls it (configs, optimizers, schedules, models,
metrics). Tests in ``tests/test_validation.py``.

Every check takes ``where`` (the function or class a user called), ``name`` (the argument) and the
value, returns the value in its canonical type, or raises with a message of one shape::

    {where}: {name} must be {what was expected}, got {what was given}

>>> integer("AdamW", "step", 3, low=0)
3
>>> real("AdamW", "lr", float("nan"), low=0)
Traceback (most recent call last):
ValueError: AdamW: lr must be a finite number >= 0, got nan
>>> one_of("get_schedule", "name", "cosin", ("cosine", "linear"))
Traceback (most recent call last):
ValueError: get_schedule: name must be one of 'cosine', 'linear', got 'cosin' (did you mean 'cosine'?)

``bool`` is never accepted as a number (``True`` would otherwise pass as ``1``), and NaN or
infinity never passes as a real number unless ``finite=False`` is asked for.

(This file is longer than the 400 lines the package aims for because it is a list of small,
independent checks, each with its example; splitting it would scatter the one message style.)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing

import numpy as np

__all__ = ["describe", "integer", "real", "boolean", "one_of", "did_you_mean", "token_ids"]


def describe(value) -> str:
    """A short name of ``value``'s type for messages: ``int``, ``numpy.ndarray``, ``Tensor``."""
    t = type(value)
    if t.__module__ == "builtins" or t.__module__.startswith("minroots"):
        return t.__name__
    return f"{t.__module__}.{t.__name__}"


def _bounds(low, high, low_open=False, high_open=False) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def integer(where: str, name: str, value, *, low: int | None = None, high: int | None = None,
            expected: str | None = None) -> int:  # fmt: skip
    """``value`` as a Python ``int`` in ``[low, high]`` (either bound may be ``None``).

    ``expected`` words the message when the bounds alone say too little (``"an integer in
    [1, block_size=4]"``).

    >>> integer("DataLoader", "batch_size", np.int64(8), low=1)
    8
    >>> integer("DataLoader", "batch_size", 2.5, low=1)
    Traceback (most recent call last):
    TypeError: DataLoader: batch_size must be an integer >= 1, got 2.5 (float)
    """
    expected = expected or " ".join(["an integer", _bounds(low, high)]).strip()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{where}: {name} must be {expected}, got {shown(value)} ({describe(value)})"
        )
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")
    return value


def real(
    where: str,
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a Python ``float`` between the bounds; NaN is always refused.

    >>> real("sample_next", "temperature", 0.8, low=0)
    0.8
    >>> real("sample_next", "temperature", "hot", low=0)
    Traceback (most recent call last):
    TypeError: sample_next: temperature must be a finite number >= 0, got 'hot' (str)
    """
    bounds = _bounds(low, high, low_open, high_open)
    expected = " ".join(["a finite number" if finite else "a number", bounds]).strip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where}: {name} must be {expected}, got {shown(value)} ({describe(value)})"
        )
    value = float(value)
    bad = math.isnan(value) or (finite and math.isinf(value))
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or (value >= high if high_open else value > high)
    if bad:
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")
    return value


def boolean(where: str, name: str, value) -> bool:
    """``value`` if it is ``True`` or ``False`` (NumPy's ``bool_`` too); no truthy strings.

    >>> boolean("TransformerConfig", "bias", "no")
    Traceback (most recent call last):
    TypeError: TransformerConfig: bias must be True or False, got 'no' (str)
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(
        f"{where}: {name} must be True or False, got {shown(value)} ({describe(value)})"
    )


def positive_int(where: str, name: str, value) -> int:
    """``value`` as a Python ``int`` >= 1: a count, a size, a length.

    >>> positive_int("Linear", "in_features", 0)
    Traceback (most recent call last):
    ValueError: Linear: in_features must be a positive integer, got 0
    """
    return integer(where, name, value, low=1, expected="a positive integer")


def multiple_of(where: str, name: str, value: int, divisor_name: str, divisor: int) -> int:
    """``value`` if ``divisor`` divides it (a model width split into heads).

    >>> multiple_of("TransformerConfig", "n_embd", 10, "n_head", 3)
    Traceback (most recent call last):
    ValueError: TransformerConfig: n_embd must be divisible by n_head=3, got 10
    """
    if value % divisor:
        raise ValueError(
            f"{where}: {name} must be divisible by {divisor_name}={divisor}, got {value!r}"
        )
    return value


def known_keys(where: str, mapping: dict, names) -> dict:
    """``mapping`` if each of its keys is one of ``names`` (a config read from a dict or a file).

    >>> known_keys("TransformerConfig", {"n_layers": 2}, ["n_layer", "n_head"])
    Traceback (most recent call last):
    ValueError: TransformerConfig: every key must be one of 'n_head', 'n_layer', got unknown keys ['n_layers'] (did you mean 'n_layer'?)
    """
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        listed = ", ".join(repr(n) for n in sorted(names))
        raise ValueError(f"{where}: every key must be one of {listed}, got unknown keys {unknown}"
                         f"{did_you_mean(unknown[0], names)}")  # fmt: skip
    return mapping


def class_targets(where: str, name: str, targets, logits_shape: tuple):
    """``targets``, integer class ids whose shape is ``logits_shape`` without its last (class) axis.

    >>> class_targets("cross_entropy", "target", np.zeros(3, dtype=int), (3, 5)).shape
    (3,)
    >>> class_targets("cross_entropy", "target", np.zeros(3, dtype=int), (2, 5))
    Traceback (most recent call last):
    ValueError: cross_entropy: logits must have shape target.shape + (C,), got logits (2, 5) and target (3,)
    """
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{where}: {name} must hold integer class ids (an integer array), "
                        f"got dtype {targets.dtype}")  # fmt: skip
    if len(logits_shape) < 1 or tuple(logits_shape[:-1]) != tuple(targets.shape):
        raise ValueError(f"{where}: logits must have shape {name}.shape + (C,), got logits "
                         f"{tuple(logits_shape)} and {name} {tuple(targets.shape)}")  # fmt: skip
    return targets


__all__ += [
    "positive_int",
    "multiple_of",
    "known_keys",
    "class_targets",
]  # beside them: merges apart


def real_number(where: str, name: str, value, **bounds) -> float:
    """:func:`real`, except that a value that is no number at all is named as such.

    The optimizers' hyperparameters say so (``lr="0.1"`` is not a number, rather than a number out
    of range); ``bounds`` are :func:`real`'s keyword arguments.

    >>> real_number("SGD", "lr", "0.1", low=0)
    Traceback (most recent call last):
    TypeError: SGD: lr must be a real number, got '0.1' (str)
    >>> real_number("SGD", "lr", -0.1, low=0)
    Traceback (most recent call last):
    ValueError: SGD: lr must be a finite number >= 0, got -0.1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where}: {name} must be a real number, got {shown(value)} ({describe(value)})"
        )
    return real(where, name, value, **bounds)


def as_value_error(check, where: str, name: str, value, **options):
    """``check(where, name, value, **options)``, with a refused type raised as a ValueError too.

    For arguments that have always refused every bad value with a ValueError (the learning-rate
    schedules' fields, ``clip_grad_norm_``'s limits, a checkpoint's step), so that code catching
    ValueError keeps working. New arguments should let a wrong type be a TypeError.

    >>> as_value_error(integer, "ConstantSchedule", "warmup_steps", 2.5, low=0)
    Traceback (most recent call last):
    ValueError: ConstantSchedule: warmup_steps must be an integer >= 0, got 2.5 (float)
    """
    try:
        return check(where, name, value, **options)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


__all__ += ["real_number", "as_value_error"]  # kept beside them, so that additions merge apart


def did_you_mean(value, options) -> str:
    """`` (did you mean 'x'?)`` for the closest option to a string ``value``, or ``''``."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(where: str, name: str, value, options):
    """``value`` if it is one of ``options``; otherwise list them and suggest the closest."""
    if value in options:
        return value
    listed = ", ".join(repr(o) for o in options)
    raise ValueError(
        f"{where}: {name} must be one of {listed}, got {shown(value)}{did_you_mean(value, options)}"
    )


def token_ids(
    where: str, name: str, ids, *, ndim: int | None = None, vocab_size: int | None = None
):
    """Token ids as an integer array (a list, a NumPy/CuPy array or a Tensor's data).

    Checks the number of axes when ``ndim`` is given, and that every id lies in
    ``[0, vocab_size)`` when ``vocab_size`` is given. Returns the array (not a copy when it
    already is one).

    >>> token_ids("TransformerModel.forward", "idx", [[1, 2, 3]], ndim=2).shape
    (1, 3)
    >>> token_ids("TransformerModel.forward", "idx", [1, 2, 3], ndim=2)
    Traceback (most recent call last):
    ValueError: TransformerModel.forward: idx must be an integer array of shape (B, T), got shape (3,)
    """
    # a Tensor gives its array (by name: this module sits below autograd; an ndarray has .data too)
    ids = ids.data if type(ids).__name__ == "Tensor" else ids
    if isinstance(ids, (list, tuple)):
        ids = numeric_array(where, name, ids)
    if not hasattr(ids, "ndim") or not hasattr(ids, "dtype"):
        raise TypeError(f"{where}: {name} must be an integer array, got {describe(ids)}")
    if ndim is not None and ids.ndim != ndim:
        shape = {1: "of shape (T,)", 2: "of shape (B, T)"}.get(ndim, f"with {ndim} axes")
        raise ValueError(
            f"{where}: {name} must be an integer array {shape}, got shape {tuple(ids.shape)}"
        )
    if ids.dtype.kind not in "iu":
        if (
            ids.size == 0 and ids.dtype.kind == "f"
        ):  # np.asarray([]) is float64: an empty list of ids
            ids = ids.astype(np.int64)
        else:
            raise TypeError(f"{where}: {name} must have an integer dtype, got {ids.dtype}")
    if vocab_size is not None and ids.size:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"{where}: {name} must lie in [0, {vocab_size}), got id {bad}")
    return ids


# --- a table of values against the fields of a dataclass (configs read from TOML) ---------------
__all__ += ["check_fields"]


def _type_name(hint) -> str:
    """A reader's name for a type hint: ``int | None`` -> ``'an int or None'``."""
    names = {int: "an int", float: "a float", str: "a string", bool: "true or false"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {len(typing.get_args(hint))} numbers"
    if hint is type(None):
        return "None"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _coerce(value, hint):
    """``value`` as the type ``hint`` allows (an int is a valid float), or raise ``TypeError``.

    ``bool`` is never accepted as a number (``True`` would otherwise pass as ``1``).
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if hint is type(None):
        if value is None:
            return None
        raise TypeError
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise TypeError
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if not isinstance(value, hint):
        raise TypeError
    return value


def check_fields(cls, values: dict, where: str | None = None) -> dict:
    """Check a dict against the fields of dataclass ``cls``: unknown keys and wrong types raise.

    Returns a new dict with values converted where the type allows it (``1`` -> ``1.0`` for a
    float field, a TOML list -> a tuple). Used for ``TrainerConfig`` and for the tables of a run
    (``[data]``, ``[model]``, ``[train]``, ``[sample]``; :mod:`minroots.training.run_config`).

    >>> @dataclasses.dataclass
    ... class Small:
    ...     n: int = 1
    ...     p: float = 0.5
    >>> check_fields(Small, {"n": 2, "p": 1})
    {'n': 2, 'p': 1.0}
    >>> check_fields(Small, {"pp": 0.1})
    Traceback (most recent call last):
    ValueError: Small: unknown key 'pp' (did you mean 'p'?); known keys: n, p
    >>> check_fields(Small, {"n": "2"}, where="[small]")
    Traceback (most recent call last):
    TypeError: [small]: n must be an int, got '2' (str)
    """
    where = where or cls.__name__
    if not isinstance(values, dict):
        raise TypeError(f"{where}: expected a table of key = value pairs, got {shown(values)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for key, value in values.items():
        if key not in names:
            hint = did_you_mean(str(key), names)
            raise ValueError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(names)}")
        try:
            out[key] = _coerce(value, hints[key])
        except TypeError:
            raise TypeError(
                f"{where}: {key} must be {_type_name(hints[key])}, got {shown(value)} "
                f"({type(value).__name__})"
            ) from None
    return out


# --- reliability checks (issue 13): tensors at the API, finite numbers, counts with a ceiling ------
__all__ += ["tensor_arg", "finite_array", "capped_int"]


def tensor_arg(where: str, name: str, value):
    """``value`` if it is a minroots ``Tensor``; anything else (a NumPy array) is a ``TypeError``
    that says how to make one.

    >>> tensor_arg("softmax", "a", np.zeros(3))
    Traceback (most recent call last):
    TypeError: softmax: a must be a Tensor, got numpy.ndarray (wrap an array with minroots.tensor(...))
    """
    if not any(c.__name__ == "Tensor" for c in type(value).__mro__):  # by name: below autograd
        raise TypeError(f"{where}: {name} must be a Tensor, got {describe(value)} (wrap an array "
                        "with minroots.tensor(...))")  # fmt: skip
    return value


def finite_array(where: str, name: str, array):
    """``array`` if it holds no NaN (and no +inf; -inf is a masked logit); else a ``ValueError``.

    >>> finite_array("sample_next", "logits", np.array([[0.0, np.nan]]))
    Traceback (most recent call last):
    ValueError: sample_next: logits must not hold NaN or +inf, got 1 such values (the model's weights may hold NaN)
    """
    bad = int((np.isnan(array) | np.isposinf(array)).sum())
    if bad:
        raise ValueError(f"{where}: {name} must not hold NaN or +inf, got {bad} such values (the "
                         "model's weights may hold NaN)")  # fmt: skip
    return array


def capped_int(where: str, name: str, value, *, low: int = 1, high: int, why: str = "") -> int:
    """:func:`integer` with a ceiling that keeps a typo from exhausting the machine.

    >>> capped_int("BootstrapAggregator", "n_samples", 10**9, high=100_000, why="1,000 is usual")
    Traceback (most recent call last):
    ValueError: BootstrapAggregator: n_samples must be an integer in [1, 100000] (1,000 is usual), got 1000000000
    """
    expected = f"an integer in [{low}, {high}]" + (f" ({why})" if why else "")
    return integer(where, name, value, low=low, high=high, expected=expected)


__all__ += ["shown", "numeric_array"]


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` on one line and at most ``limit`` characters, for the ``got ...`` of a message.

    >>> shown(np.zeros((2, 1)))
    'array([[0.], [0.]])'
    >>> shown("x" * 100)[-12:]
    'xxxxxxxx ...'
    """
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def numeric_array(where: str, name: str, value, xp=np):
    """``value`` (a list, a number, an array) as an array of numbers (bool, int or float), or a
    one-line ``TypeError``: ragged lists, strings, bytes, ``None`` and objects are refused.

    >>> numeric_array("perplexity_from_logits", "logits", [[0.0, 1.0]]).shape
    (1, 2)
    >>> numeric_array("perplexity_from_logits", "logits", [[0.0], [1.0, 2.0]])
    Traceback (most recent call last):
    TypeError: perplexity_from_logits: logits must be a rectangular array of numbers, got [[0.0], [1.0, 2.0]] (list)
    """
    try:
        array = xp.asarray(value)
    except (ValueError, TypeError, UnicodeError, OverflowError):  # ragged, or not a number
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {name} must be a rectangular array of numbers, got "
                        f"{shown(value)} ({describe(value)})")  # fmt: skip
    return array


__all__ += ["distinct_strings"]


def distinct_strings(where: str, name: str, value) -> list[str]:
    """``value`` (a list of non-empty strings, none repeated) as a list, or a one-line error.

    >>> distinct_strings("BPETokenizer", "special_tokens", ["<a>", "<b>"])
    ['<a>', '<b>']
    >>> distinct_strings("BPETokenizer", "special_tokens", ["<a>", "<a>"])
    Traceback (most recent call last):
    ValueError: BPETokenizer: special_tokens must not repeat a token, got ['<a>', '<a>']
    """
    if isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a list of str, got the str {shown(value)}")
    items = list(value)
    for s in items:
        if not isinstance(s, str) or not s:
            raise ValueError(f"{where}: {name} must be non-empty str, got {shown(s)}")
    if len(set(items)) != len(items):
        raise ValueError(f"{where}: {name} must not repeat a token, got {shown(items)}")
    return items
