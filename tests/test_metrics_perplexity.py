"""Tests for perplexity (minroots.metrics.perplexity) with small stand-in models.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``). The stand-ins follow the model
contract: ``model(idx)`` with ``idx`` (B, T) returns ``(logits, loss)``, logits (B, T, V), and
``model.config.block_size`` is the context length.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minroots.metrics.perplexity import (
    _windows,
    perplexity,
    perplexity_from_logits,
    token_nll,
)


class UniformModel:
    """Every next token equally likely: perplexity must be the vocabulary size."""

    def __init__(self, vocab_size, block_size):
        self.config = SimpleNamespace(vocab_size=vocab_size, block_size=block_size)

    def __call__(self, idx):
        idx = np.asarray(idx)
        assert idx.ndim == 2 and idx.shape[1] <= self.config.block_size
        return np.zeros((*idx.shape, self.config.vocab_size), np.float32), None


class BigramModel:
    """Logits of the next token depend only on the current one: a (V, V) table."""

    def __init__(self, table, block_size):
        self.table = table
        self.config = SimpleNamespace(vocab_size=table.shape[0], block_size=block_size)

    def __call__(self, idx):
        return self.table[np.asarray(idx)], None  # (B, T, V)


class PositionModel:
    """Probability of the right token grows with the context length (window position k)."""

    def __init__(self, vocab_size, block_size):
        self.config = SimpleNamespace(vocab_size=vocab_size, block_size=block_size)

    @staticmethod
    def nll(k):  # -ln p of the right token at window position k (context k + 1 tokens)
        return 1.0 / (k + 1)

    def __call__(self, idx):
        idx = np.asarray(idx)
        b, t = idx.shape
        v = self.config.vocab_size
        # Log-probabilities: -nll(k) on token idx + 1 (the right one when ids = arange), the
        # rest of the probability spread evenly over the other tokens.
        logp = np.empty((b, t, v))
        for k in range(t):
            p_right = math.exp(-self.nll(k))
            logp[:, k, :] = math.log((1 - p_right) / (v - 1))
            logp[np.arange(b), k, (idx[:, k] + 1) % v] = -self.nll(k)
        return logp, None


def direct_bigram_nll(table, ids):
    z = table[ids[:-1]].astype(np.float64)  # (N-1, V)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(len(ids) - 1), ids[1:]]


# --- the formula -------------------------------------------------------------------------------


@pytest.mark.task8_3
def test_worked_example_by_hand():
    # probabilities 1/2, 1/4, 1/8 for the right tokens: NLL = 2 ln 2, perplexity 4
    probs = np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0], [0.875, 0.0, 0.125]]) + 1e-300
    ppl = perplexity_from_logits(np.log(probs), np.array([0, 0, 2]))
    assert ppl == pytest.approx(4.0, rel=1e-12)


@pytest.mark.task8_3
def test_from_logits_ignores_ignore_index_and_accepts_tensors():
    logits = np.random.default_rng(0).normal(size=(2, 5, 7))
    targets = np.array([[1, 2, 3, -100, -100], [0, 6, -100, 5, 4]])
    keep = targets != -100
    nll = token_nll(logits[keep], targets[keep])
    expected = math.exp(nll.mean())
    assert perplexity_from_logits(logits, targets) == pytest.approx(expected, rel=1e-12)
    from minroots.autograd import tensor

    assert perplexity_from_logits(tensor(logits), targets) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parity
@settings(max_examples=20)
@given(b=st.integers(1, 3), t=st.integers(1, 6), v=st.integers(2, 9), scale=st.floats(0.1, 30))
def test_from_logits_is_exp_of_torch_cross_entropy(b, t, v, scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(b * 100 + t * 10 + v)
    logits = (rng.normal(size=(b, t, v)) * scale).astype(np.float32)
    targets = rng.integers(0, v, size=(b, t))
    loss = torch.nn.functional.cross_entropy(
        torch.tensor(logits, dtype=torch.float64).reshape(-1, v), torch.tensor(targets).reshape(-1)
    )
    assert perplexity_from_logits(logits, targets) == pytest.approx(
        math.exp(loss.item()), rel=1e-10
    )


# --- perplexity of stand-in models --------------------------------------------------------------


@settings(max_examples=20)
@given(
    vocab=st.integers(2, 50),
    n=st.integers(2, 60),
    block=st.integers(1, 16),
    data=st.data(),
)
@pytest.mark.task8_3
def test_uniform_model_has_perplexity_vocab_size(vocab, n, block, data):
    stride = data.draw(st.integers(1, block))
    ids = np.random.default_rng(n).integers(0, vocab, size=n)
    model = UniformModel(vocab, block)
    result = perplexity(model, ids, stride=stride, batch_size=3, num_bytes=4 * n)
    assert result.perplexity == pytest.approx(vocab, rel=1e-9)
    assert result.nll == pytest.approx(math.log(vocab), rel=1e-9)
    assert result.bits_per_token == pytest.approx(math.log2(vocab), rel=1e-9)
    assert result.num_tokens == n - 1
    assert result.bits_per_byte == pytest.approx((n - 1) * math.log2(vocab) / (4 * n), rel=1e-9)


@settings(max_examples=20)
@given(
    n=st.integers(2, 80),
    block=st.integers(1, 12),
    batch=st.integers(1, 5),
    data=st.data(),
)
def test_bigram_model_matches_direct_computation(n, block, batch, data):
    stride = data.draw(st.integers(1, block))
    rng = np.random.default_rng(n * 13 + block)
    table = rng.normal(size=(11, 11)).astype(np.float32) * 3
    ids = rng.integers(0, 11, size=n)
    result = perplexity(BigramModel(table, block), ids, stride=stride, batch_size=batch)
    expected = direct_bigram_nll(table, ids).mean()
    assert result.nll == pytest.approx(expected, rel=1e-9)
    assert result.perplexity == pytest.approx(math.exp(expected), rel=1e-9)


@pytest.mark.parity
def test_perplexity_is_exp_of_the_mean_cross_entropy_loss():
    """Non-overlapping windows (stride = block) score exactly what the training loss averages."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    table = rng.normal(size=(13, 13)).astype(np.float32) * 2
    block, n_windows = 8, 5
    ids = rng.integers(0, 13, size=block * n_windows + 1)
    result = perplexity(BigramModel(table, block), ids, stride=block)
    x = ids[:-1].reshape(n_windows, block)
    y = ids[1:].reshape(n_windows, block)
    logits = torch.tensor(table[x], dtype=torch.float64)  # (B, T, V), what the model returns
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 13), torch.tensor(y).reshape(-1))
    assert result.perplexity == pytest.approx(math.exp(loss.item()), rel=1e-9)


@settings(max_examples=30)
@given(n=st.integers(2, 60), block=st.integers(1, 12), data=st.data())
def test_each_token_is_scored_exactly_once(n, block, data):
    """A model whose NLL of token t is a distinct weight w_t: the total must be sum(w_1..w_N-1).

    Token ids are 0..n-1 and the "bigram" table puts the weights on the next token, so a token
    scored twice or missed would change the total.
    """
    stride = data.draw(st.integers(1, block))
    weights = np.random.default_rng(n).random(n + 1) + 0.5  # -ln p of token t is weights[t]
    v = n + 1
    table = np.zeros((v, v))
    for t in range(1, v):
        others = (1 - math.exp(-weights[t])) / (v - 1)
        table[t - 1, :] = math.log(others)
        table[t - 1, t] = -weights[t]
    ids = np.arange(n)
    result = perplexity(BigramModel(table, block), ids, stride=stride, batch_size=2)
    assert result.nll * (n - 1) == pytest.approx(weights[1:n].sum(), rel=1e-9)


@settings(max_examples=40)
@given(n=st.integers(2, 200), length=st.integers(1, 20), data=st.data())
def test_windows_cover_every_target_once_with_enough_context(n, length, data):
    length = min(length, n - 1)
    stride = data.draw(st.integers(1, length))
    scored = []
    for start, skip in _windows(n, length, stride):
        assert 0 <= start and start + length <= n - 1  # inputs and targets inside the text
        for k in range(skip, length):
            target = start + k + 1
            scored.append(target)
            context = k + 1
            assert context == target or context >= length - stride + 1
    assert scored == list(range(1, n))


def test_stride_one_gives_every_token_the_full_window():
    n, block = 30, 5
    model = PositionModel(n + 1, block)
    result = perplexity(model, np.arange(n), stride=1)
    # targets 1..block get contexts 1..block; every later target gets the full block
    expected = sum(model.nll(k) for k in range(block)) + (n - 1 - block) * model.nll(block - 1)
    assert result.nll * (n - 1) == pytest.approx(expected, rel=1e-9)


def test_runs_under_no_grad_in_eval_mode_with_tensor_logits():
    from minroots.autograd import is_grad_enabled, tensor

    class TensorModel:
        config = SimpleNamespace(vocab_size=4, block_size=8)
        training = True
        seen = []

        def eval(self):
            self.training = False

        def train(self):
            self.training = True

        def __call__(self, idx):
            self.seen.append((is_grad_enabled(), self.training))
            return tensor(np.zeros((*np.asarray(idx).shape, 4), np.float32)), None

    model = TensorModel()
    assert perplexity(model, [0, 1, 2, 3, 0, 1], progress=False).perplexity == pytest.approx(4.0)
    assert model.seen and all(flags == (False, False) for flags in model.seen)
    assert model.training  # restored


def test_progress_bar_can_be_forced(capsys):
    perplexity(UniformModel(3, 2), np.zeros(10, dtype=int), progress=True)
    assert "perplexity" in capsys.readouterr().err


def test_bad_input_gives_clear_errors():
    model = UniformModel(5, 4)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        perplexity(model, [1])
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        perplexity(model, np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        perplexity(model, [0.5, 1.5])
    with pytest.raises(ValueError, match="vocab_size 5"):
        perplexity(model, [0, 5])
    with pytest.raises(ValueError, match="stride must be an integer in \\[1, block_size=4\\]"):
        perplexity(model, [0, 1, 2], stride=5)
    with pytest.raises(ValueError, match="block_size is required"):
        perplexity(lambda idx: None, [0, 1, 2])
    with pytest.raises(ValueError, match="logits must have shape"):
        perplexity_from_logits(np.zeros((2, 3)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="targets must lie in"):
        perplexity_from_logits(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="integer array"):
        perplexity_from_logits(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="every target is ignore_index"):
        perplexity_from_logits(np.zeros((2, 3)), np.array([-100, -100]))
