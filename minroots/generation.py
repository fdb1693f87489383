r"""Text generation: sampling (temperature, top-k, top-p, greedy), a KV-cached decoding loop, a
streaming form, and beam search with a length penalty for encoder–decoder models.

Book chapter 9, "Generation" (``book/09_generation.md``); tests in ``tests/test_generation.py``.

A language model gives logits :math:`z` for the next token. Sampling draws from

.. math::  p_i = \frac{e^{z_i / \tau}}{\sum_j e^{z_j / \tau}}

with temperature :math:`\tau` (:math:`\tau \to 0`: always the most likely token, "greedy";
:math:`\tau > 1`: flatter). *Top-k* keeps only the :math:`k` largest logits; *top-p* (nucleus)
keeps the smallest set of most likely tokens whose probabilities add up to at least :math:`p`.
Both renormalize over the kept set, so a token outside it is never drawn.

Worked example: probabilities ``[0.5, 0.3, 0.15, 0.05]`` with ``top_p=0.7`` keep tokens 0 and 1
(0.5 < 0.7 <= 0.8) and sample them with probabilities ``[0.625, 0.375]``.

Decoding with a key/value cache: the prompt is run once (the *prefill*), then each new token
costs one position. When the sequence grows past ``block_size``, what happens depends on how the
model encodes positions:

- learned positions (GPT-2) have no vector past ``block_size``: the context is cropped to the last
  ``block_size`` tokens and, since every position then shifts, each later step is a full forward
  of the cropped window (exactly as without a cache), so each token costs ``block_size`` positions.
- rotary positions (the modern decoder, book chapter 12) depend only on the distance between two
  tokens, so the model's caches are sliding windows (:class:`~minroots.nn.attention.KVCache` with
  ``window=block_size``): the oldest position leaves as the new one comes and each step costs one
  position, however long the text. Each cached key keeps the context it was computed with, so
  the text differs from the cropped recomputation (the same rule as Mistral's sliding-window
  attention); ``use_cache=False`` gives the cropped recomputation for these models too.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor, no_grad
from minroots.autograd.softmax import exp_shifted, log_softmax_array, softmax_array
from minroots.validation import describe, finite_array, integer, positive_int, real, token_ids

__all__ = [
    "top_k_filter",
    "top_p_filter",
    "filter_logits",
    "sample_next",
    "stream",
    "generate",
    "beam_search",
    "beam_search_prompt",
]


def _check_sampling(where: str, temperature, top_k, top_p) -> None:
    real(where, "temperature", temperature, low=0)
    if top_k is not None:
        integer(where, "top_k", top_k, low=1)
    if top_p is not None:
        real(where, "top_p", top_p, low=0, high=1, low_open=True)


def top_k_filter(z: np.ndarray, k: int) -> np.ndarray:
    r"""Logits ``(B, V)`` with all but the ``k`` largest of each row set to :math:`-\infty` (in place).

    Ties with the :math:`k`-th largest logit are kept, so a row may keep more than ``k`` tokens.

    >>> top_k_filter(np.array([[1.0, 3.0, 2.0, 0.0]]), 2)
    array([[-inf,   3.,   2., -inf]])
    """
    if k < z.shape[-1]:
        kth = np.partition(z, -k, axis=-1)[:, -k][:, None]  # (B, 1), the k-th largest per row
        z[z < kth] = -np.inf
    return z


def top_p_filter(z: np.ndarray, p: float) -> np.ndarray:
    r"""Logits ``(B, V)`` keeping, per row, the smallest set of most likely tokens whose
    probabilities add up to at least ``p``; every other logit becomes :math:`-\infty` (in place).

    A token is kept when the tokens more likely than it hold less than ``p`` of the probability,
    so the most likely token is always kept.

    >>> np.exp(top_p_filter(np.log([[0.5, 0.3, 0.15, 0.05]]), 0.7))
    array([[0.5, 0.3, 0. , 0. ]])
    """
    if p >= 1.0:
        return z
    order = np.argsort(-z, axis=-1, kind="stable")  # most likely first
    probs = softmax_array(np.take_along_axis(z, order, axis=-1))
    before = np.cumsum(probs, axis=-1) - probs  # mass of the more likely tokens
    drop = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(drop, order, before >= p, axis=-1)
    z[drop] = -np.inf
    return z


def filter_logits(logits: np.ndarray, top_k: int | None = None, top_p: float | None = None):
    """Logits (float64, ``(B, V)``) with every token outside the top-k / top-p set at ``-inf``.

    >>> filter_logits(np.log([[0.5, 0.3, 0.15, 0.05]]), top_p=0.7)
    array([[-0.69314718, -1.2039728 ,        -inf,        -inf]])
    """
    z = np.array(logits, dtype=np.float64, copy=True)
    if z.ndim == 1:
        z = z[None]
    if top_k is not None:
        top_k_filter(z, top_k)
    if top_p is not None:
        top_p_filter(z, top_p)
    return z


def sample_next(logits, temperature: float = 1.0, top_k=None, top_p=None, rng=None) -> np.ndarray:
    """One token id per row of ``logits`` ``(B, V)``: greedy when ``temperature == 0``."""
    _check_sampling("sample_next", temperature, top_k, top_p)
    z = _logit_rows("sample_next", logits)
    if temperature == 0:
        return z.argmax(axis=-1)
    # p = softmax(z / temperature) = E / s; the inverse CDF needs only E, scaling u by its total
    e, _, _ = exp_shifted(filter_logits(z / temperature, top_k, top_p))
    cdf = np.cumsum(e, axis=-1)
    rng = rng if rng is not None else B.rng("numpy")
    u = rng.random(z.shape[0])[:, None] * cdf[:, -1:]
    ids = (cdf <= u).sum(axis=-1)  # inverse CDF: the first index with cdf > u
    return np.minimum(ids, z.shape[-1] - 1)


def _logit_rows(where: str, logits) -> np.ndarray:
    """``logits`` as a float64 ``(B, V)`` array with ``V >= 1`` and no NaN or +inf, or a clear error."""
    logits = logits.data if isinstance(logits, Tensor) else logits
    try:
        z = np.asarray(B.to_numpy(logits), dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: logits must be an array of numbers, got "
                        f"{describe(logits)}") from None  # fmt: skip
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[-1] == 0:
        raise ValueError(f"{where}: logits must have shape (V,) or (B, V) with V >= 1, got shape "
                         f"{np.shape(logits)}")  # fmt: skip
    return finite_array(where, "logits", z)


def _prompt(idx) -> tuple[np.ndarray, bool]:
    """The prompt as NumPy ids ``(B, T)``, and whether it was given as one row ``(T,)``."""
    ids = np.asarray(B.to_numpy(token_ids("generate", "idx", idx)), dtype=np.int64)
    single = ids.ndim == 1
    if single:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(
            f"generate: idx must be a non-empty (B, T) or (T,) array of ids, got shape {ids.shape}"
        )
    return ids, single


class _CachedDecoder:
    """Next-token logits for a growing sequence, reusing a KV cache while the window allows."""

    def __init__(self, model, use_cache: bool):
        self.model = model
        self.block = model.config.block_size
        self.caches = model.new_cache() if use_cache else None
        # a sliding-window cache (rotary positions) keeps going past block_size
        self.sliding = bool(self.caches) and getattr(self.caches[0], "window", None) is not None
        self.n_cached = 0  # tokens of the current sequence held by the cache (from its start)

    def logits(self, ids: np.ndarray):
        xp = B.get_array_module(self.model.wte.weight.data)
        t = ids.shape[1]
        if self.caches is None or (t > self.block and not self.sliding):  # full forward
            if self.caches is not None:
                for c in self.caches:
                    c.reset()
                self.n_cached = 0
            h = self.model.hidden_states(xp.asarray(ids[:, -self.block :]))
        else:  # feed only what the cache has not seen yet (a long prompt: its last block)
            new = ids[:, -self.block :] if self.n_cached == 0 else ids[:, self.n_cached :]
            h = self.model.hidden_states(xp.asarray(new), self.caches)
            self.n_cached = t
        return self.model.lm_head(h[:, -1:, :]).data[:, 0, :]  # (B, V)


def stream(model, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None,
           eos_id=None, seed=None, use_cache: bool = True) -> Iterator:  # fmt: skip
    """Yield new token ids one step at a time: an ``int`` for a 1-D prompt, an array ``(B,)``
    for a ``(B, T)`` prompt. Stops after ``max_new_tokens`` or when every row has produced
    ``eos_id`` (rows that finished early keep yielding ``eos_id``).

    ``seed`` fixes the sampling; without it the backend's seeded generator is used. The model is
    put in eval mode (no dropout) for the duration and runs under ``no_grad``.
    """
    _check_sampling("generate", temperature, top_k, top_p)
    integer("generate", "max_new_tokens", max_new_tokens, low=0)
    ids, single = _prompt(idx)
    rng = np.random.default_rng(seed) if seed is not None else B.rng("numpy")
    was_training = model.training
    model.eval()
    try:
        decoder = _CachedDecoder(model, use_cache)
        done = np.zeros(ids.shape[0], dtype=bool)
        for _ in range(max_new_tokens):
            with no_grad():
                logits = decoder.logits(ids)
            nxt = sample_next(logits, temperature, top_k, top_p, rng).astype(np.int64)
            if eos_id is not None:
                nxt[done] = eos_id
                done |= nxt == eos_id
            ids = np.concatenate([ids, nxt[:, None]], axis=1)
            yield int(nxt[0]) if single else nxt
            if eos_id is not None and done.all():
                break
    finally:
        model.train(was_training)


def generate(model, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None,
             eos_id=None, seed=None, use_cache: bool = True) -> np.ndarray:  # fmt: skip
    """The prompt followed by the generated ids: ``(B, T + n)`` (or ``(T + n,)`` for a 1-D prompt).

    >>> from minroots import TransformerModel
    >>> model = TransformerModel(vocab_size=10, block_size=16, n_layer=1, n_embd=16)
    >>> out = generate(model, np.array([[0, 1]]), max_new_tokens=20, temperature=0.8, top_k=5, seed=1)
    >>> out.shape, out[0, :2].tolist()                 # the prompt, then 20 new ids
    ((1, 22), [0, 1])
    """
    ids, single = _prompt(idx)
    steps = list(
        stream(model, ids, max_new_tokens, temperature, top_k, top_p, eos_id, seed, use_cache)
    )
    out = np.concatenate([ids, np.stack(steps, axis=1)], axis=1) if steps else ids
    return out[0] if single else out


# ---------------------------------------------------------------------- encoder-decoder models
def beam_search(model, src, max_new_tokens=None, bos_id=None, eos_id=None, beam_size: int = 1,
                length_penalty: float = 1.0, src_mask=None) -> list[np.ndarray]:  # fmt: skip
    r"""Beam search for an encoder–decoder model (``beam_size=1`` is greedy decoding).

    Each of ``beam_size`` hypotheses is extended by every token; the ``beam_size`` best
    continuations survive. A hypothesis that emits ``eos_id`` is finished and scored as

    .. math::  \mathrm{score}(y) = \frac{\sum_t \log p(y_t \mid y_{<t}, x)}{|y|^{\alpha}}

    (:math:`\alpha` = ``length_penalty``; :math:`|y|` counts the generated tokens including EOS):
    :math:`\alpha = 0` compares raw log-probabilities (favoring short outputs), :math:`\alpha = 1`
    the average per token. Search stops when ``beam_size`` hypotheses are finished, or after
    ``max_new_tokens``; then the best-scoring one is returned (without BOS and EOS).

    A decoder-only model (one without ``encode``, e.g. any :class:`~minroots.nn.gpt.TransformerModel`
    configuration) goes through :func:`beam_search_prompt` instead, with ``src`` as the prompts.
    """
    if not hasattr(model, "encode"):
        return beam_search_prompt(model, src, max_new_tokens, eos_id, beam_size, length_penalty)
    cfg = model.config
    bos_id = cfg.bos_id if bos_id is None else bos_id
    eos_id = cfg.eos_id if eos_id is None else eos_id
    if bos_id is None:
        raise ValueError("generate: bos_id is needed (pass it or set config.bos_id)")
    positive_int("generate", "beam_size", beam_size)
    max_new = cfg.block_size if max_new_tokens is None else max_new_tokens
    max_new = min(max_new, cfg.block_size)
    src = np.asarray(B.to_numpy(token_ids("generate", "src", src)))
    if src.ndim == 1:
        src = src[None]
    if src_mask is not None:
        src_mask = np.asarray(B.to_numpy(src_mask), dtype=bool)
        if src_mask.ndim == 1:
            src_mask = src_mask[None]
    xp = B.get_array_module(model.lm_head.weight.data)
    was_training = model.training
    model.eval()
    results = []
    try:
        with no_grad():
            for row in range(src.shape[0]):
                mask = None if src_mask is None else xp.asarray(src_mask[row : row + 1])
                if mask is not None:  # drop trailing padding: it changes nothing but costs time
                    keep = int(src_mask[row].sum())
                    mask = mask[:, :keep] if bool(src_mask[row, :keep].all()) else mask
                    s = src[row : row + 1, : mask.shape[1]]
                else:
                    s = src[row : row + 1]
                memory = model.encode(xp.asarray(s), mask)
                results.append(_beam_one(model, memory, mask, bos_id, eos_id, beam_size,
                                         length_penalty, max_new, xp))  # fmt: skip
    finally:
        model.train(was_training)
    return results


class _PromptedDecoder:
    """A decoder-only model behind the encoder–decoder interface that ``_beam_one`` uses: its
    caches start filled with all of the prompt but its last token, which plays the part of BOS,
    and there is no memory to attend to (a placeholder is passed around and ignored)."""

    class _NoCache:
        def reorder(self, index) -> None:
            pass

    def __init__(self, model, prompt: np.ndarray, xp):
        self.model, self.prompt, self.xp = model, prompt, xp

    def new_cache(self):
        caches = self.model.new_cache()
        if self.prompt.shape[1] > 1:  # prefill the prompt once, for a batch of one beam
            self.model.hidden_states(self.xp.asarray(self.prompt[:, :-1]), caches)
        return [(c, self._NoCache()) for c in caches]

    def decode(self, last, memory, mask, caches):
        h = self.model.hidden_states(last, [c for c, _ in caches])  # (beams, 1, C)
        return self.model.lm_head(h)  # (beams, 1, V)


def beam_search_prompt(model, idx, max_new_tokens=None, eos_id=None, beam_size: int = 1,
                       length_penalty: float = 1.0) -> list[np.ndarray]:  # fmt: skip
    """Beam search for a decoder-only model: the best continuation of each prompt row of ``idx``
    (``(B, T)`` or ``(T,)``), without EOS, scored as in :func:`beam_search`.

    The same search (``_beam_one``) as for encoder–decoders, with the model's own KV cache;
    beams share the prompt's prefill. ``max_new_tokens`` defaults to, and with learned positions
    is capped at, what still fits in ``block_size``.
    """
    positive_int("generate", "beam_size", beam_size)
    ids, _ = _prompt(idx)
    cfg = model.config
    room = cfg.block_size - ids.shape[1] + 1  # the last prompt token is decoded with the beams
    sliding = model.new_cache()[0].window is not None  # rotary positions slide past block_size
    max_new = room if max_new_tokens is None else integer("generate", "max_new_tokens",
                                                          max_new_tokens, low=0)  # fmt: skip
    if not sliding:
        max_new = min(max_new, room)
    xp = B.get_array_module(model.lm_head.weight.data)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            return [_beam_one(_PromptedDecoder(model, ids[b : b + 1], xp), Tensor(xp.zeros((1, 1, 1))),
                              None, int(ids[b, -1]), eos_id, beam_size, length_penalty, max_new, xp)
                    for b in range(ids.shape[0])]  # fmt: skip
    finally:
        model.train(was_training)


def _beam_one(model, memory, mask, bos_id, eos_id, beam_size, alpha, max_new, xp):
    caches = model.new_cache()
    seqs = [[]]  # generated tokens of each live beam
    scores = np.zeros(1)  # summed log-probabilities of each live beam
    finished = []  # (normalized score, tokens)
    last = np.array([[bos_id]])
    for _ in range(max_new):
        nb = len(seqs)
        mem = Tensor(xp.broadcast_to(memory.data, (nb,) + memory.shape[1:]))
        m = None if mask is None else xp.broadcast_to(mask, (nb, mask.shape[1]))
        logits = model.decode(xp.asarray(last), mem, m, caches).data[:, -1, :]  # (nb, V)
        logp = log_softmax_array(_logit_rows("beam_search", logits))  # (nb, V)
        cand = (scores[:, None] + logp).ravel()  # (nb * V,)
        n_take = min(2 * beam_size, cand.size)
        top = np.argpartition(-cand, n_take - 1)[:n_take]
        top = top[np.argsort(-cand[top], kind="stable")]
        v = logp.shape[1]
        new_seqs, new_scores, origin, new_last = [], [], [], []
        for flat in top:
            b, tok = divmod(int(flat), v)
            seq = seqs[b] + [tok]
            if eos_id is not None and tok == eos_id:
                finished.append((cand[flat] / (len(seq) ** alpha), seqs[b]))
            else:
                new_seqs.append(seq)
                new_scores.append(cand[flat])
                origin.append(b)
                new_last.append(tok)
            if len(new_seqs) == beam_size:
                break
        if len(finished) >= beam_size or not new_seqs:
            break
        seqs, scores = new_seqs, np.array(new_scores)
        index = xp.asarray(np.array(origin))
        for sc, cc in caches:
            sc.reorder(index)
            cc.reorder(index)
        last = np.array(new_last)[:, None]
    if len(finished) < beam_size or not finished:  # unfinished beams compete as they are
        for seq, sc in zip(seqs, scores, strict=True):
            if seq:
                finished.append((sc / (len(seq) ** alpha), seq))
    best = max(finished, key=lambda f: f[0])[1] if finished else []
    return np.array(best, dtype=np.int64)
