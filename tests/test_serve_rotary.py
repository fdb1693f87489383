"""Serving a rotary model (book chapters 12 and 14): RoPE with one position offset per row, the
model's hidden states for rows of different lengths, and the engine's tokens, which must be the
same batched or alone (as :func:`minroots.generation.generate` gives them), also past
``block_size``, where a rotary sequence goes on in its own sliding-window cache."""

from __future__ import annotations

import numpy as np
import pytest

import minroots
import minroots.nn.functional as F
from minroots.autograd import no_grad
from minroots.generation import generate
from minroots.nn import TransformerConfig, TransformerModel
from minroots.serve import Engine, SamplingParams, Sequence
from tests.serve_helpers import ROWS, step_rows_together_and_alone

TINY = dict(vocab_size=40, block_size=16, n_layer=2, n_head=4, n_embd=32)
ARCHS = {
    "llama-gqa": dict(arch="llama", n_kv_head=2),
    "qwen3-mqa": dict(arch="qwen3", n_kv_head=1, head_dim=6),
}


def _model(name, dtype="float64"):
    minroots.manual_seed(0)
    fields = dict(ARCHS[name])
    model = TransformerModel(TransformerConfig.from_arch(fields.pop("arch"), **fields, **TINY))
    for p in model.parameters():  # larger weights: logits far from uniform, few near-ties
        p.data *= 4
    return model.to(dtype=dtype).eval()


# --- RoPE with one offset per row ---------------------------------------------------------------
@pytest.mark.parametrize("kernel", [F.rope, F.rope_composed])
def test_rope_with_one_offset_per_row_rotates_each_row_from_its_own_position(kernel):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4, 8))  # (B, H, T, d)
    offsets = np.array([0, 5, 2])
    t = minroots.tensor(x, requires_grad=True)
    y = kernel(t, offsets, theta=100.0)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    for b, offset in enumerate(offsets.tolist()):
        row = minroots.tensor(x[b : b + 1], requires_grad=True)
        alone = F.rope(row, offset, theta=100.0)
        alone.backward(g[b : b + 1])
        np.testing.assert_allclose(y.data[b], alone.data[0], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(t.grad[b], row.grad[0], rtol=1e-13, atol=1e-14)


def test_rope_with_one_offset_per_row_passes_gradcheck():
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    result = minroots.gradcheck(
        lambda a: F.rope(a, np.array([1, 6]), theta=50.0),
        [minroots.tensor(x, requires_grad=True)],
    )
    assert result, str(result)


@pytest.mark.parametrize(
    "offset", [np.array([0, 1, 2]), np.array([[0], [1]]), np.array([0.0, 1.0]), np.array([0, -1])]
)
def test_rope_refuses_offsets_that_are_not_one_int_per_row(offset):
    x = minroots.tensor(np.zeros((2, 1, 3, 4)))
    with pytest.raises(ValueError, match=r"rope: offset must be an int >= 0 or one per row"):
        F.rope(x, offset)


# --- the model over rows of different lengths ---------------------------------------------------
@pytest.mark.parametrize("name", list(ARCHS))
def test_rotary_hidden_states_of_rows_of_different_lengths_equal_each_row_alone(name):
    model = _model(name)
    batched, alone, cache = step_rows_together_and_alone(model)
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-12)
    # without the per-row rotation the rows would disagree: rotate every row from one offset
    cache.lengths[:] = [len(p) for p in ROWS]
    views = cache.views(0, 3)
    for v in views:
        v.position = np.full(3, 5)  # every row at position 5 (right only for the first)
    with no_grad():
        wrong = model.hidden_states(np.array([[11], [12], [13]]), views).data
    assert np.abs(wrong[1:, 0] - alone[1:]).max() > 1e-3


# --- the engine ---------------------------------------------------------------------------------
REQUESTS = [  # (prompt, max_tokens, temperature, top_k, top_p, seed, arrival step)
    ([1, 2, 3], 12, 0.0, None, None, None, 0),
    ([4], 24, 0.9, None, None, 7, 0),  # runs past block_size=16: its own sliding window
    ([5, 6, 7, 8, 9, 10, 11], 5, 1.2, 5, None, 3, 1),
    ([12, 13], 9, 0.7, None, 0.8, 11, 2),
    ([18] * 16, 6, 0.0, None, None, None, 3),  # a prompt as long as the context, then past it
    ([19, 20, 21], 15, 1.0, 10, 0.9, 5, 4),
]


def _alone(model, r):
    prompt, max_tokens, temperature, top_k, top_p, seed, _ = r
    out = generate(model, np.array(prompt), max_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, seed=seed)  # fmt: skip
    return out[len(prompt) :].tolist()


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("max_batch", [1, 4])
def test_rotary_engine_output_alone_or_batched_equals_generate(name, dtype, max_batch):
    model = _model(name, dtype)
    seqs = [Sequence(p, SamplingParams(n, t, k, tp, s)) for p, n, t, k, tp, s, _ in REQUESTS]
    engine = Engine(model, max_batch=max_batch)
    assert engine.sliding
    moved = []  # the rows whose keys went into a sliding window of their own
    sliding_caches = engine._sliding_caches
    engine._sliding_caches = lambda row: moved.append(row) or sliding_caches(row)
    step = 0
    while not all(s.finished for s in seqs):
        for s, r in zip(seqs, REQUESTS, strict=True):
            if r[-1] == step:
                engine.submit(s)
        engine.step()
        step += 1
        assert step < 1000, "the engine does not finish"
    for seq, r in zip(seqs, REQUESTS, strict=True):
        assert seq.tokens == _alone(model, r), f"prompt {r[0]} differs ({name}, {dtype})"
        assert seq.finish_reason == "length"
    assert engine.idle and engine.cache.lengths.sum() == 0
    # three sequences run past block_size=16: [4] + 24, [18] * 16 + 6, [19, 20, 21] + 15
    assert len(moved) == 3
    assert all(s.caches is None for s in seqs)  # freed when they finished


def test_a_learned_position_model_is_not_served_with_sliding_windows():
    minroots.manual_seed(0)
    assert not Engine(TransformerModel(**TINY)).sliding
