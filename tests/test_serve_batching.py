"""Continuous batching: the slot cache, per-row positions, and the engine's output, which must be
the same whether a sequence runs alone or batched with others (book chapter 14)."""

import numpy as np
import pytest

from minroots import TransformerModel, manual_seed
from minroots.generation import generate
from minroots.nn import KVCache
from minroots.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from minroots.serve import Engine, SamplingParams, Sequence, SlotCache, TextStream
from tests.serve_helpers import step_rows_together_and_alone


def _model(dtype="float64", block_size=16, vocab_size=40, seed=0):
    manual_seed(seed)
    model = TransformerModel(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2,
                             n_embd=32)  # fmt: skip
    for p in model.parameters():  # larger weights: logits far from uniform, few near-ties
        p.data *= 8
    return model.to(dtype=dtype).eval()


def _run(engine, seqs, arrivals):
    """Submit ``seqs[i]`` before step ``arrivals[i]`` and step until all are done."""
    step = 0
    while not all(s.finished for s in seqs):
        for s, at in zip(seqs, arrivals, strict=True):
            if at == step:
                engine.submit(s)
        engine.step()
        step += 1
        assert step < 1000, "the engine does not finish"
    return step


# --- the slot cache -----------------------------------------------------------------------------
def test_slot_cache_mask_is_the_hand_checked_example():
    cache = SlotCache(n_layer=1, slots=3, capacity=8)
    cache.lengths[:2] = [3, 1]
    view = cache.views(0, 2)[0]
    assert view.key_padding_mask(1).tolist() == [[True] * 4, [True, True, False, False]]
    assert cache.views(0, 1)[0].key_padding_mask(1) is None  # one length: no mask at all
    assert KVCache().key_padding_mask(1) is None


def test_slot_cache_writes_each_row_at_its_own_position_and_moves_rows():
    cache = SlotCache(n_layer=1, slots=3, capacity=6)
    k = np.arange(2 * 1 * 2 * 3, dtype=np.float64).reshape(2, 1, 2, 3)  # (B=2, H=1, T=2, d=3)
    cache.views(0, 1)[0].append(k[:1], k[:1])  # row 0: two positions
    cache.advance(0, 1, 2)
    cache.views(1, 2)[0].append(k[1:, :, :1], k[1:, :, :1])  # row 1: one position
    cache.advance(1, 2, 1)
    new = np.full((2, 1, 1, 3), -1.0)
    keys, values = cache.views(0, 2)[0].append(new, new)  # one token each, at 2 and at 1
    assert keys.shape == (2, 1, 3, 3) and values.shape == keys.shape
    assert np.array_equal(keys[0, 0], np.vstack([k[0, 0], new[0, 0]]))
    assert np.array_equal(keys[1, 0, :2], np.vstack([k[1, 0, :1], new[1, 0]]))
    cache.advance(0, 2, 1)
    cache.move(1, 0)  # row 1 fills the gap left by row 0
    assert cache.lengths.tolist() == [2, 0, 0]
    assert np.array_equal(cache.k[0][0, 0, :2], np.vstack([k[1, 0, :1], new[1, 0]]))
    with pytest.raises(ValueError, match="rows of one length"):
        cache.lengths[:2] = [2, 1]
        cache.views(0, 2)[0].append(np.zeros((2, 1, 2, 3)), np.zeros((2, 1, 2, 3)))


def test_slot_cache_memory_is_two_buffers_per_layer_of_slots_heads_positions_head_size():
    model = _model("float32")
    engine = Engine(model, max_batch=3)
    engine.submit(Sequence([1, 2, 3], SamplingParams(max_tokens=2, temperature=0)))
    engine.step()
    c = model.config
    assert engine.cache.nbytes == 2 * c.n_layer * 3 * c.block_size * c.n_embd * 4


@pytest.mark.parametrize("cls", [LearnedPositionalEmbedding, SinusoidalPositionalEncoding])
def test_positions_with_one_offset_per_row_are_each_rows_own_slice(cls):
    pos = cls(16, 8) if cls is LearnedPositionalEmbedding else cls(8, max_len=16)
    rows = pos(3, np.array([0, 5, 13])).data  # (B, T, D)
    assert rows.shape == (3, 3, 8)
    for b, offset in enumerate([0, 5, 13]):
        np.testing.assert_array_equal(rows[b], pos(3, offset).data)
    with pytest.raises(ValueError, match="exceed max_len=16"):
        pos(3, np.array([0, 14]))


def test_hidden_states_of_rows_of_different_lengths_equal_each_row_alone():
    model = _model("float64")
    batched, alone, _ = step_rows_together_and_alone(model)
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-12)


# --- the engine ---------------------------------------------------------------------------------
REQUESTS = [  # (prompt, max_tokens, temperature, top_k, top_p, seed, arrival step)
    ([1, 2, 3], 12, 0.0, None, None, None, 0),
    ([4], 20, 0.9, None, None, 7, 0),  # runs past block_size=16: full forwards of the window
    ([5, 6, 7, 8, 9, 10, 11], 5, 1.2, 5, None, 3, 1),
    ([12, 13], 9, 0.7, None, 0.8, 11, 2),
    ([14, 15, 16, 17], 1, 0.0, None, None, None, 2),
    ([18] * 16, 3, 0.0, None, None, None, 4),  # a prompt as long as the context
    ([19, 20, 21], 15, 1.0, 10, 0.9, 5, 4),
]


def _alone(model, r):
    prompt, max_tokens, temperature, top_k, top_p, seed, _ = r
    out = generate(model, np.array(prompt), max_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, seed=seed)  # fmt: skip
    return out[len(prompt) :].tolist()


def _sequences(requests):
    return [Sequence(p, SamplingParams(n, t, k, tp, s)) for p, n, t, k, tp, s, _ in requests]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("max_batch", [1, 3, 8])
def test_engine_output_alone_or_batched_equals_generate(dtype, max_batch):
    model = _model(dtype)
    seqs = _sequences(REQUESTS)
    engine = Engine(model, max_batch=max_batch)
    _run(engine, seqs, [r[-1] for r in REQUESTS])
    for seq, r in zip(seqs, REQUESTS, strict=True):
        assert seq.tokens == _alone(model, r), f"prompt {r[0]} differs ({dtype}, {max_batch})"
        assert seq.finish_reason == "length"
    # at most 5 hold a slot at once: one ends at its prefill, one starts past the window
    assert engine.peak_batch == min(max_batch, 5)
    assert engine.idle and engine.cache.lengths.sum() == 0


def test_each_step_is_one_forward_over_every_running_sequence():
    model = _model("float64")
    calls = []
    forward = model.hidden_states

    def spy(idx, caches=None):
        calls.append(tuple(idx.shape))
        return forward(idx, caches)

    model.hidden_states = spy
    engine = Engine(model, max_batch=4)
    seqs = _sequences(REQUESTS[:4])
    for s in seqs[:3]:
        engine.submit(s)
    engine.step()  # admits three: three prefills
    assert calls == [(1, 3), (1, 1), (1, 7)]
    calls.clear()
    engine.submit(seqs[3])
    engine.step()  # one decoding forward for the three, then the newcomer's prefill
    assert calls == [(3, 1), (1, 2)]
    calls.clear()
    engine.step()
    assert calls == [(4, 1)]


def test_a_cancelled_sequence_frees_its_slot_for_a_waiting_one_at_the_next_step():
    model = _model("float32")
    engine = Engine(model, max_batch=2)
    a, b, c = _sequences([r[:6] + (0,) for r in REQUESTS[:3]])
    for s in (a, b, c):
        engine.submit(s)
    engine.step()
    assert [s.row for s in (a, b, c)] == [0, 1, None] and len(engine.waiting) == 1
    engine.cancel(a)
    events = engine.step()
    assert a.finish_reason == "cancelled" and a.row is None
    assert b.row == 0 and c.row == 1  # b moved to the front, c took the free slot
    assert [e.sequence for e in events] == [b, c]
    assert c.tokens == _alone(model, REQUESTS[2])[:1]


def test_stop_token_stop_string_and_deadlines_end_sequences():
    model = _model("float64")
    greedy = _alone(model, ([1, 2, 3], 12, 0.0, None, None, None, 0))
    now = [0.0]
    engine = Engine(model, max_batch=2, clock=lambda: now[0])
    by_id = Sequence([1, 2, 3], SamplingParams(12, 0.0, stop_ids=(greedy[2],)))
    stop_text = "".join(chr(65 + i) for i in greedy[3:5])
    by_text = Sequence([1, 2, 3], SamplingParams(12, 0.0),
                       text=TextStream(lambda ids: "".join(chr(65 + i) for i in ids), [stop_text]))  # fmt: skip
    _run(engine, [by_id, by_text], [0, 0])
    assert by_id.finish_reason == "stop" and by_id.tokens == greedy[: greedy.index(greedy[2]) + 1]
    assert by_text.finish_reason == "stop" and by_text.tokens == greedy[:5]
    assert by_text.text.text == "".join(chr(65 + i) for i in greedy[:3])

    running = Sequence([1, 2, 3], SamplingParams(12, 0.0), deadline=1.0)
    waiting = [Sequence([1], SamplingParams(12, 0.0), deadline=1.0) for _ in range(2)]
    for s in [running, *waiting]:
        engine.submit(s)
    engine.step()
    now[0] = 2.0
    events = engine.step()
    assert running.finish_reason == "length" and len(running.tokens) == 1
    assert {e.finish_reason for e in events} == {"length", "timeout"}
    assert waiting[1].finish_reason == "timeout" and engine.idle


def test_a_prompt_longer_than_the_context_is_refused():
    engine = Engine(_model("float32", block_size=8), max_batch=1)
    with pytest.raises(ValueError, match="more than the context"):
        engine.submit(Sequence(list(range(9))))


def test_the_scheduler_fails_a_broken_step_and_keeps_serving():
    import threading

    from minroots.serve.scheduler import QueueFull, Scheduler

    model = _model("float32")
    forward, broken = model.hidden_states, [True]

    def flaky(idx, caches=None):
        if broken[0]:
            raise RuntimeError("a broken step")
        return forward(idx, caches)

    model.hidden_states = flaky
    scheduler = Scheduler(Engine(model, max_batch=1), max_queue=1, request_timeout=30).start()
    try:
        got, done = [], threading.Event()

        def deliver(events):
            got.extend(events)
            if any(e.finish_reason for e in events):
                done.set()

        first = Sequence([1, 2], SamplingParams(3, 0.0))
        scheduler.submit([first], deliver)
        with pytest.raises(QueueFull):
            scheduler.submit([Sequence([1]), Sequence([2])], deliver)  # 1 slot + 1 waiting
        assert done.wait(10) and got[-1].finish_reason == "error" and first.finish_reason == "error"
        broken[0], done, got = False, threading.Event(), []
        second = Sequence([1, 2], SamplingParams(3, 0.0))
        scheduler.submit([second], deliver)
        assert done.wait(10) and second.finish_reason == "length" and len(second.tokens) == 3
        assert scheduler.pending == 0
    finally:
        scheduler.close()
