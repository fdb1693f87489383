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


_logits = hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 12)),
                     elements=st.floats(-8, 8, width=64))  # fmt: skip


# --- 9.1 top-k ----------------------------------------------------------------------------------
@pytest.mark.task9_1
def test_top_k_worked_example_and_ties():
    z = G.filter_logits(np.log([[0.5, 0.3, 0.15, 0.05]]), top_k=3)
    assert np.isfinite(z[0, :3]).all() and np.isinf(z[0, 3])
    np.testing.assert_array_equal(G.top_k_filter(np.array([[1.0, 3.0, 2.0, 0.0]]), 2),
                                  [[-np.inf, 3.0, 2.0, -np.inf]])  # fmt: skip
    ties = G.top_k_filter(np.array([[1.0, 2.0, 2.0, 0.0]]), 1)  # both 2s are "the largest"
    np.testing.assert_array_equal(np.isfinite(ties), [[False, True, True, False]])


@pytest.mark.task9_1
@given(_logits, st.integers(1, 14))
def test_top_k_keeps_exactly_the_k_largest(z, k):
    kept = np.isfinite(G.top_k_filter(z.copy(), k))
    for row in range(z.shape[0]):
        order = np.sort(z[row])[::-1]
        kth = order[min(k, z.shape[1]) - 1]
        np.testing.assert_array_equal(kept[row], z[row] >= kth)
    if k >= z.shape[1]:
        assert kept.all()


@pytest.mark.task9_1
def test_top_k_sampling_never_draws_outside_the_top_k():
    z = np.log(np.array([[0.4, 0.3, 0.2, 0.1]]))
    rng = np.random.default_rng(0)
    draws = {int(G.sample_next(z, top_k=2, rng=rng)[0]) for _ in range(500)}
    assert draws == {0, 1}


# --- 9.2 top-p ----------------------------------------------------------------------------------
@pytest.mark.task9_2
def test_top_p_worked_example():
    z = G.filter_logits(np.log([[0.5, 0.3, 0.15, 0.05]]), top_p=0.7)
    assert np.isfinite(z[0, :2]).all() and np.isinf(z[0, 2:]).all()
    np.testing.assert_allclose(np.exp(G.top_p_filter(np.log([[0.5, 0.3, 0.15, 0.05]]), 0.75)),
                               [[0.5, 0.3, 0.0, 0.0]])  # 0.5 < 0.75 <= 0.5 + 0.3  # fmt: skip
    one = G.top_p_filter(np.log([[0.1, 0.6, 0.3]]), 0.01)
    np.testing.assert_array_equal(np.isfinite(one), [[False, True, False]])  # the argmax stays


@pytest.mark.task9_2
@given(_logits, st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_set_with_enough_mass(z, top_p):
    kept = np.isfinite(G.top_p_filter(z.copy(), top_p))
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    for row in range(z.shape[0]):
        assert kept[row][np.argmax(z[row])]
        if (~kept[row]).any():
            assert z[row][kept[row]].min() >= z[row][~kept[row]].max()  # the most likely ones
        ks = np.sort(p[row][kept[row]])
        assert ks.sum() >= min(top_p, 1.0) - 1e-12  # enough mass kept
        assert ks.sum() - ks[0] < top_p + 1e-12  # ... and not one token more than needed


@pytest.mark.task9_2
def test_top_p_one_keeps_everything_and_sampling_follows_the_renormalized_mass():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    assert np.isfinite(G.top_p_filter(z.copy(), 1.0)).all()
    rng = np.random.default_rng(0)
    draws = np.array([G.sample_next(z, top_p=0.7, rng=rng)[0] for _ in range(4000)])
    assert set(np.unique(draws)) <= {0, 1}
    assert abs((draws == 0).mean() - 0.625) < 0.03


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


# --- 9.3 sampling with a temperature --------------------------------------------------------
@pytest.mark.task9_3
def test_sampling_frequencies_follow_the_softmax():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]]))
    rng = np.random.default_rng(0)
    draws = np.array([G.sample_next(z, rng=rng) for _ in range(4000)])  # (4000, 2)
    for row, probs in enumerate(np.exp(z)):
        freq = np.bincount(draws[:, row], minlength=4) / len(draws)
        np.testing.assert_allclose(freq, probs, atol=0.03)


@pytest.mark.task9_3
def test_temperature_sharpens_or_flattens_the_distribution():
    z = np.log(np.array([[0.6, 0.3, 0.1]]))
    rng = np.random.default_rng(1)
    for temperature, expected in ((0.5, np.array([36, 9, 1]) / 46), (2.0, None)):
        draws = np.array([G.sample_next(z, temperature, rng=rng)[0] for _ in range(4000)])
        freq = np.bincount(draws, minlength=3) / len(draws)
        if expected is None:  # tau = 2: p_i ~ sqrt(p_i)
            expected = np.sqrt([0.6, 0.3, 0.1]) / np.sqrt([0.6, 0.3, 0.1]).sum()
        np.testing.assert_allclose(freq, expected, atol=0.03)  # tau = 0.5: p_i ~ p_i^2


@pytest.mark.task9_3
def test_greedy_is_argmax():
    z = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    np.testing.assert_array_equal(G.sample_next(z, temperature=0), [1, 0])
    np.testing.assert_array_equal(G.sample_next(z[0], temperature=0), [1])  # a 1-D row


@pytest.mark.task9_4
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


@pytest.mark.task9_4
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


@pytest.mark.task9_3
def test_seed_makes_sampling_reproducible():
    model = tiny()
    a = model.generate(np.array([[1]]), 8, seed=3)
    b = model.generate(np.array([[1]]), 8, seed=3)
    c = model.generate(np.array([[1]]), 8, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --- 9.5 beam search ----------------------------------------------------------------------------
class MarkovSeq2Seq:
    """A toy encoder-decoder whose next-token distribution depends only on the last token.

    Tokens: 0 = a, 1 = b, 2 = EOS, 3 = BOS. After BOS, "a" is likelier (0.55) than "b" (0.44), but
    after "a" every continuation is poor, while "b" is followed by EOS with probability 0.9. So
    the best finished sequence is "b EOS" (0.44 * 0.9 = 0.396), which greedy decoding misses.
    """

    NEXT = {3: [0.55, 0.44, 0.01, 1e-9], 0: [0.34, 0.33, 0.33, 1e-9], 1: [0.05, 0.05, 0.9, 1e-9]}

    class _Cache:
        def reorder(self, index):
            pass

    def __init__(self):
        from types import SimpleNamespace

        from minroots import Tensor

        self.config = SimpleNamespace(bos_id=3, eos_id=2, block_size=8)
        self.lm_head = SimpleNamespace(weight=Tensor(np.zeros((4, 1))))
        self.training = False

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def new_cache(self):
        return [(self._Cache(), self._Cache())]

    def encode(self, src, mask=None):
        from minroots import Tensor

        return Tensor(np.zeros((1, 1, 1)))

    def decode(self, last, memory, mask, caches):
        from minroots import Tensor

        logp = np.log(np.array([self.NEXT[int(t)] for t in np.asarray(last)[:, -1]]))
        return Tensor(logp[:, None, :])  # (beams, 1, V)


@pytest.mark.task9_5
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_finds_the_best_sequence_that_greedy_misses(alpha):
    model = MarkovSeq2Seq()
    greedy = G.beam_search(model, np.array([[0]]), max_new_tokens=4, beam_size=1,
                           length_penalty=alpha)[0]  # fmt: skip
    beam = G.beam_search(model, np.array([[0]]), max_new_tokens=4, beam_size=2,
                         length_penalty=alpha)[0]  # fmt: skip
    assert greedy.tolist() == [0, 0, 0, 0]  # a, a, a, a: each step's best, never finished
    assert beam.tolist() == [1]  # "b" then EOS (dropped from the output)


@pytest.mark.task9_5
def test_length_penalty_decides_between_short_and_long_hypotheses():
    """alpha = 0 compares summed log-probabilities, so the shorter sequence wins; alpha = 1
    compares the mean per token, which can prefer a longer one."""
    model = MarkovSeq2Seq()
    model.NEXT = {3: [0.6, 0.1, 0.3, 1e-9], 0: [0.3, 0.25, 0.45, 1e-9], 1: [0.3, 0.3, 0.4, 1e-9]}
    # EOS at once: p = 0.3, log p = -1.20; "a EOS": p = 0.6 * 0.45 = 0.27, log p = -1.31, per token -0.65
    short = G.beam_search(model, np.array([[0]]), max_new_tokens=3, beam_size=3,
                          length_penalty=0.0)[0]  # fmt: skip
    long = G.beam_search(model, np.array([[0]]), max_new_tokens=3, beam_size=3,
                         length_penalty=1.0)[0]  # fmt: skip
    assert short.tolist() == []
    assert long.tolist() == [0]
