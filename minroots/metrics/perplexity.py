r"""Perplexity: how surprised a language model is by a text, from its mean cross-entropy.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).

A language model gives each next token a probability :math:`p(x_t \mid x_{<t})`. Over a text of
:math:`N` scored tokens the mean negative log-likelihood (the cross-entropy loss, in nats) and the
perplexity are

.. math::

    \mathrm{NLL} = -\frac{1}{N} \sum_{t=1}^{N} \ln p(x_t \mid x_{<t}), \qquad
    \mathrm{PPL} = e^{\mathrm{NLL}}

Perplexity reads as "the number of equally likely tokens the model hesitates between": a model
that spreads its probability uniformly over a vocabulary of :math:`V` tokens has
:math:`\mathrm{NLL} = \ln V` and perplexity :math:`V`. The same number in bits,
:math:`\mathrm{NLL}/\ln 2`, is *bits per token*; dividing the total by the text's length in
bytes instead gives *bits per byte*, which compares models with different tokenizers.

Worked example: a model assigns probabilities 1/2, 1/4 and 1/8 to the three tokens that follow::

    NLL = (ln 2 + ln 4 + ln 8) / 3 = 2 ln 2 = 1.386 nats = 2 bits per token,  PPL = 4

A model sees at most ``block_size`` tokens at once. For a longer text a window slides over it
with step ``stride``; each window scores only the tokens no earlier window scored, so every
token (after the first, which has nothing to be predicted from) is scored exactly once, with at
least ``block_size - stride`` tokens of context (except near the start)::

    block_size 4, stride 2, tokens 0..8 (targets 1..8)
    window inputs 0-3 -> scores targets 1 2 3 4
    window inputs 2-5 -> scores targets         5 6      (3, 4 already scored)
    window inputs 4-7 -> scores targets             7 8

A smaller stride gives more context per token and costs more model calls (``stride=1``: every
token with the full window; ``stride=block_size``: no overlap, cheapest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from minroots import backend as B
from minroots import validation
from minroots.autograd import no_grad
from minroots.autograd.softmax import logsumexp_array

__all__ = ["PerplexityResult", "perplexity", "perplexity_from_logits", "token_nll"]


@dataclass
class PerplexityResult:
    """Perplexity and the same quantity in other units.

    ``nll`` is the mean negative log-likelihood in nats per scored token, ``bits_per_token`` the
    same in bits, ``bits_per_byte`` the total in bits over ``num_bytes`` (None unless given).
    """

    perplexity: float
    nll: float
    bits_per_token: float
    num_tokens: int
    bits_per_byte: float | None = None
    num_bytes: int | None = None


_MAX_EXP = math.log(float.fromhex("0x1.fffffffffffffp+1023"))  # about 709.78


def _array(x, name: str = "logits"):
    """The array inside a minroots Tensor (``.data``), or ``x`` itself if it is an array."""
    if isinstance(x, np.ndarray) or B.device_of(x) == "cuda":
        return x
    data = getattr(x, "data", None)
    if data is not None and (isinstance(data, np.ndarray) or B.device_of(data) == "cuda"):
        return data
    return validation.numeric_array("perplexity_from_logits", name, x)


def token_nll(logits, targets):
    r"""Per-position :math:`-\ln \mathrm{softmax}(z)_y = \mathrm{logsumexp}(z) - z_y`, in float64.

    ``logits`` has shape ``(..., V)`` and ``targets`` the leading shape ``(...)``; the result
    stays on the logits' device. :func:`~minroots.autograd.softmax.logsumexp_array` subtracts the
    max first, so ``exp`` cannot overflow.

    >>> token_nll(np.log(np.array([[0.5, 0.25, 0.25]])), np.array([1]))  # -ln 0.25
    array([1.38629436])
    """
    xp = B.get_array_module(logits)
    z = logits.astype(xp.float64)
    picked = xp.take_along_axis(z, targets[..., None].astype(xp.int64), axis=-1)[..., 0]
    return logsumexp_array(z, axis=-1) - picked


def perplexity_from_logits(logits, targets, ignore_index: int | None = -100) -> float:
    """``exp`` of the mean cross-entropy of ``logits (..., V)`` for ``targets (...)``.

    Positions whose target equals ``ignore_index`` are left out (as in the cross-entropy loss).

    >>> round(perplexity_from_logits(np.zeros((2, 3, 5)), np.zeros((2, 3), dtype=int)), 9)
    5.0
    """
    logits = _array(logits)
    xp = B.get_array_module(logits)
    targets = validation.class_targets(
        "perplexity_from_logits", "targets", _array(targets, "targets"), logits.shape
    )
    targets = xp.asarray(targets)
    keep = targets != ignore_index if ignore_index is not None else xp.ones(targets.shape, bool)
    vocab = logits.shape[-1]
    if bool(((targets[keep] < 0) | (targets[keep] >= vocab)).any()):
        raise ValueError(
            f"perplexity_from_logits: targets must lie in [0, {vocab}) (or equal ignore_index), got "
            f"values from {int(targets[keep].min())} to {int(targets[keep].max())}"
        )
    count = int(keep.sum())
    if count == 0:
        raise ValueError("perplexity_from_logits: every target is ignore_index; nothing to score")
    nll = token_nll(logits, xp.where(keep, targets, 0))
    mean = float(B.to_numpy(nll[keep]).sum()) / count
    return math.exp(mean) if mean < _MAX_EXP else math.inf  # e^710 overflows a float


def _windows(n_tokens: int, length: int, stride: int) -> list[tuple[int, int]]:
    """``(start, first_scored)`` per window: inputs ``[start, start + length)`` predict tokens
    ``start + 1 .. start + length``, of which offsets ``first_scored..length-1`` are new.

    The last window is moved back to end at the last token, so it is full length too.

    >>> _windows(9, 4, 2)
    [(0, 0), (2, 2), (4, 2)]
    """
    windows = []
    scored_up_to = 0  # tokens 1..scored_up_to have been scored
    start = 0
    while True:
        start = min(start, n_tokens - 1 - length)
        windows.append((start, scored_up_to - start if windows else 0))
        scored_up_to = start + length
        if scored_up_to >= n_tokens - 1:
            return windows
        start += stride


def _text_ids(model, token_ids) -> np.ndarray:
    """The text as a NumPy array of at least 2 ids, each below the model's ``config.vocab_size``
    (when it has one)."""
    where = "perplexity"
    ids = np.asarray(B.to_numpy(token_ids))
    if ids.ndim != 1 or ids.dtype.kind not in "iu":  # a ValueError for floats too: not ids at all
        raise ValueError(f"{where}: token_ids must be a 1-D sequence of integers, got shape "
                         f"{ids.shape} and dtype {ids.dtype}")  # fmt: skip
    if ids.size < 2:
        raise ValueError(f"{where}: token_ids needs at least 2 tokens to score one, got {ids.size}")
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab_size, int):
        validation.token_ids(f"{where} (the model's vocab_size {vocab_size})", "token_ids", ids,
                             vocab_size=vocab_size)  # fmt: skip
    elif ids.min() < 0:
        raise ValueError(f"{where}: token_ids must be >= 0, got {int(ids.min())}")
    return ids


def _total_nll(model, ids, windows, length: int, batch_size: int, progress: bool) -> float:
    """The summed negative log-likelihood of every token the ``windows`` score, ``batch_size``
    windows per model call, in eval mode (restored after) and under ``no_grad``."""
    bar = tqdm(total=len(windows), desc="perplexity", unit="window", disable=not progress)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    total_nll = 0.0
    try:
        with no_grad():
            for first in range(0, len(windows), batch_size):
                batch = windows[first : first + batch_size]
                rows = np.stack([ids[s : s + length + 1] for s, _ in batch])  # (b, length + 1)
                out = model(B.xp().asarray(rows[:, :-1]))  # inputs (b, length)
                logits = _array(out[0] if isinstance(out, tuple) else out)  # (b, length, V)
                if logits.shape[:2] != (len(batch), length):
                    raise ValueError(
                        f"perplexity: the model returned logits of shape {tuple(logits.shape)}; "
                        f"expected ({len(batch)}, {length}, vocab_size)"
                    )
                targets = B.get_array_module(logits).asarray(rows[:, 1:])
                nll = B.to_numpy(token_nll(logits, targets))  # (b, length), float64
                for row, (_, skip) in zip(nll, batch, strict=True):
                    total_nll += float(row[skip:].sum())
                bar.update(len(batch))
    finally:
        bar.close()
        if was_training and hasattr(model, "train"):
            model.train()
    return total_nll


def perplexity(
    model,
    token_ids,
    block_size: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    num_bytes: int | None = None,
    progress: bool | None = None,
) -> PerplexityResult:
    """Perplexity of ``model`` on a token sequence, with a sliding window for long texts.

    Args:
        model: called as ``model(idx)`` with ``idx`` an integer array ``(B, T)``; returns
            ``(logits, loss)`` (or just logits) with logits ``(B, T, V)``, a Tensor or an array.
        token_ids: the text as a 1-D sequence of token ids (at least 2).
        block_size: the window length; by default ``model.config.block_size``.
        stride: how far the window moves; by default ``block_size // 2``. Each token is scored
            once, with at least ``block_size - stride`` tokens of context after the first window.
        batch_size: windows per model call.
        num_bytes: the text's length in bytes (``len(text.encode("utf-8"))``), for bits per byte.
        progress: show a progress bar (by default when there are more than 16 batches).

    Runs under ``no_grad`` (no graph is kept) with the model in eval mode if it has one.
    """
    where = "perplexity"
    ids = _text_ids(model, token_ids)
    if block_size is None:
        block_size = getattr(getattr(model, "config", None), "block_size", None)
        if block_size is None:
            raise ValueError(
                f"{where}: block_size is required when the model has no config.block_size"
            )
    block_size = validation.positive_int(where, "block_size", block_size)
    stride = validation.integer(
        where, "stride", max(block_size // 2, 1) if stride is None else stride, low=1,
        high=block_size, expected=f"an integer in [1, block_size={block_size}]",
    )  # fmt: skip
    batch_size = validation.positive_int(where, "batch_size", batch_size)
    if num_bytes is not None:
        num_bytes = validation.positive_int(where, "num_bytes", num_bytes)

    length = min(block_size, ids.size - 1)
    windows = _windows(ids.size, length, stride)
    show = -(-len(windows) // batch_size) > 16 if progress is None else progress
    total_nll = _total_nll(model, ids, windows, length, batch_size, show)
    n_scored = ids.size - 1
    mean_nll = total_nll / n_scored
    return PerplexityResult(
        perplexity=math.exp(mean_nll),
        nll=mean_nll,
        bits_per_token=mean_nll / math.log(2),
        num_tokens=n_scored,
        bits_per_byte=None if num_bytes is None else total_nll / math.log(2) / num_bytes,
        num_bytes=None if num_bytes is None else int(num_bytes),
    )
