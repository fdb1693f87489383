"""Generation: sampling filters, cached vs uncached decoding, streaming, EOS, cropping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minroots import generation as G
from minroots.nn import TransformerConfig, TransformerModel


def tiny(block_size=16, **kw):
    return TransformerModel(TransformerConfig(vocab_size=13, block_size=block_size, n_layer=2,
                                              n_head=2, n_embd=16, **kw))  # fmt: skip


def test_top_p_worked_example():
    z = G.filter_logits(np.log([[0.5, 0.3, 0.15, 0.05]]), top_p=0.7)
    assert np.isfinite(z[0, :2]).all() and np.isinf(z[0, 2:]).all()
    z = G.filter_logits(np.log([[0.5, 0.3, 0.15, 0.05]]), top_k=3)
    assert np.isfinite(z[0, :3]).all() and np.isinf(z[0, 3])


_logits = hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 12)),
                     elements=st.floats(-8, 8, width=64))  # fmt: skip


@given(_logits, st.one_of(st.none(), st.integers(1, 12)),
       st.one_of(st.none(), st.floats(0.05, 1.0)), st.integers(0, 2**32 - 1))  # fmt: skip
@settings(max_examples=50)
def test_sampling_never_draws_outside_the_kept_set(z, top_k, top_p, seed):
    temperature = 1.5  # applied before the filters, as in Hugging Face's samplers
    z = z / temperature
    kept = np.isfinite(G.filter_logits(z, top_k, top_p))
    assert kept.any(axis=-1).all()  # the most likely token is always kept
    # the kept set is what the definitions say: the most likely tokens, enough of them
    for row in range(z.shape[0]):
        if (~kept[row]).any():
            assert z[row][kept[row]].min() >= z[row][~kept[row]].max()
    if top_k is not None and top_p is None:
        assert (kept.sum(axis=-1) >= min(top_k, z.shape[1])).all()
    if top_p is not None and top_k is None:
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        for row in range(z.shape[0]):
            ks = np.sort(p[row][kept[row]])
            assert ks.sum() >= top_p - 1e-12  # enough mass kept
            assert ks.sum() - ks[0] < top_p + 1e-12  # ... and no more than needed
    rng = np.random.default_rng(seed)
    for _ in range(20):
        ids = G.sample_next(z * temperature, temperature, top_k=top_k, top_p=top_p, rng=rng)
        assert kept[np.arange(z.shape[0]), ids].all()


def test_sampling_frequencies_follow_the_renormalized_distribution():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    draws = np.array([G.sample_next(z, top_p=0.7, rng=rng)[0] for _ in range(4000)])
    assert set(np.unique(draws)) <= {0, 1}
    assert abs((draws == 0).mean() - 0.625) < 0.03


def test_greedy_is_argmax():
    z = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    np.testing.assert_array_equal(G.sample_next(z, temperature=0), [1, 0])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kwargs", [dict(temperature=1.0), dict(temperature=0.8, top_k=5),
                                    dict(temperature=1.2, top_p=0.9), dict(temperature=0)])  # fmt: skip
def test_cached_and_uncached_generation_agree(seed, kwargs):
    model = tiny()
    prompt = np.random.default_rng(seed).integers(0, 13, (2, 3))
    a = model.generate(prompt, 10, seed=seed, use_cache=True, **kwargs)
    b = model.generate(prompt, 10, seed=seed, use_cache=False, **kwargs)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 13) and (a[:, :3] == prompt).all()


def test_generation_past_block_size_crops_context():
    model = tiny(block_size=8)
    prompt = np.array([[1, 2, 3]])
    a = model.generate(prompt, 12, seed=5, use_cache=True)
    b = model.generate(prompt, 12, seed=5, use_cache=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 15)


def test_stream_yields_ints_for_a_1d_prompt_and_stops_at_eos():
    model = tiny()
    prompt = np.array([4, 5])
    greedy = model.generate(prompt, 6, temperature=0)
    assert greedy.shape == (8,)
    tokens = list(G.stream(model, prompt, 6, temperature=0))
    assert tokens == greedy[2:].tolist() and all(isinstance(t, int) for t in tokens)
    eos = tokens[2]
    first = tokens.index(eos)
    stopped = list(G.stream(model, prompt, 6, temperature=0, eos_id=eos))
    assert stopped == tokens[: first + 1]


def test_generate_restores_training_mode_and_validates():
    model = tiny(dropout=0.1)
    model.generate(np.array([[1]]), 2, seed=0)
    assert model.training
    with pytest.raises(ValueError, match="temperature"):
        model.generate(np.array([[1]]), 2, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(np.array([[1]]), 2, top_p=0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(np.array([[1]]), 2, top_k=0)
    with pytest.raises(TypeError, match="integer dtype"):
        model.generate(np.array([[1.0]]), 2)


def test_seed_makes_sampling_reproducible():
    model = tiny()
    a = model.generate(np.array([[1]]), 8, seed=3)
    b = model.generate(np.array([[1]]), 8, seed=3)
    c = model.generate(np.array([[1]]), 8, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
