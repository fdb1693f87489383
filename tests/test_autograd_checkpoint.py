"""Activation checkpointing: the same gradients, bit for bit, from far fewer kept activations."""

import tracemalloc

import numpy as np
import pytest

import minroots
from minroots.autograd import Tensor, gradcheck, no_grad
from minroots.autograd.checkpoint import checkpoint
from minroots.nn import Linear, TransformerConfig, TransformerModel
from minroots.nn.transformer_block import TransformerBlock
from minroots.training import Trainer, TrainerConfig


def gpt(dropout=0.0, n_layer=3, n_embd=32, block_size=16, seed=0):
    minroots.manual_seed(seed)
    return TransformerModel(TransformerConfig(vocab_size=11, block_size=block_size, n_layer=n_layer,
                                              n_head=2, n_embd=n_embd, dropout=dropout))  # fmt: skip


def batch(b=3, t=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 11, (b, t)), rng.integers(0, 11, (b, t))


def loss_and_grads(model, x, y, seed=5):
    minroots.manual_seed(seed)  # the dropout masks of the step
    model.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    return loss.item(), {n: p.grad.copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_checkpointed_blocks_give_exactly_the_plain_gradients(dropout):
    """Recomputing each block in the backward changes no bit of the loss or any gradient (with
    dropout too: the generator is rewound for the recomputation, so the masks are the same)."""
    x, y = batch()
    model = gpt(dropout)
    plain = loss_and_grads(model, x, y)
    model.checkpoint_activations = True
    again = loss_and_grads(model, x, y)
    assert again[0] == plain[0]
    for name, g in plain[1].items():
        assert np.array_equal(again[1][name], g), name


def test_checkpoint_gradients_match_finite_differences():
    """In float64, the gradients through a checkpointed block (input and weights) agree with
    central differences on every element."""
    minroots.manual_seed(0)
    block = TransformerBlock(8, 2, n_layer=1)
    for p in block.parameters():
        p.data = p.data.astype(np.float64)
    x = minroots.randn(2, 3, 8, dtype=np.float64, requires_grad=True)
    w = block.mlp.c_fc.weight
    result = gradcheck(lambda x, w: checkpoint(block, x, is_causal=True), [x, w])
    assert result, str(result)


def test_checkpoint_without_gradients_is_the_plain_call():
    """Under no_grad (inference) nothing is recorded, and the values are the plain ones."""
    layer = Linear(3, 2)
    x = minroots.randn(4, 3)
    with no_grad():
        out = checkpoint(layer, x)
    assert not out.requires_grad and np.array_equal(out.data, layer(x).data)


def test_checkpoint_rejects_a_function_that_does_not_return_a_tensor():
    x = minroots.randn(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"^checkpoint: fn must return one Tensor, got tuple$"):
        checkpoint(lambda t: (t, t), x)


def _kept_bytes(model, x, y) -> int:
    """Bytes that stay allocated after the forward pass: what the backward will read."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _, loss = model(x, y)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del loss
    return kept


def test_checkpointing_keeps_a_fraction_of_the_activations():
    """After the forward, a plain 4-block model holds every intermediate; the checkpointed one
    only each block's input (B, T, C) and what lies outside the blocks. Measured with tracemalloc
    (NumPy reports its allocations to it), deterministic for a given model and batch."""
    model = gpt(n_layer=4, n_embd=64, block_size=64)
    x, y = batch(4, 64)
    plain = _kept_bytes(model, x, y)
    model.checkpoint_activations = True
    kept = _kept_bytes(model, x, y)
    assert kept < 0.25 * plain, (kept, plain)


def test_trainer_checkpoint_activations_trains_to_the_same_weights():
    """TrainerConfig(checkpoint_activations=True): four AdamW steps give the same weights, bit
    for bit, as the plain run."""
    from minroots.data import TextDataset

    text = minroots.data.load_corpus("shakespeare")[:5000]
    weights = []
    for flag in (False, True):
        data = TextDataset(text, block_size=16, use_cache=False)
        minroots.manual_seed(0)
        model = TransformerModel(TransformerConfig(vocab_size=data.vocab_size, block_size=16,
                                                   n_layer=2, n_head=2, n_embd=16))  # fmt: skip
        cfg = TrainerConfig(max_steps=4, batch_size=4, log_interval=0, eval_interval=0,
                            out_dir=None, checkpoint_activations=flag)  # fmt: skip
        Trainer(model, data, config=cfg).train()
        assert model.checkpoint_activations is flag
        weights.append({n: p.data.copy() for n, p in model.named_parameters()})
    for name, w in weights[0].items():
        assert np.array_equal(weights[1][name], w), name


def test_checkpoint_activations_needs_a_model_that_supports_it():
    class Plain(minroots.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = Linear(4, 4)

        def forward(self, x, y=None):
            out = self.lin(Tensor(np.asarray(x, dtype=np.float32)))
            return out, (out * out).mean()

    data = [(np.ones(4, np.float32), np.ones(4, np.float32))] * 8
    with pytest.raises(ValueError, match=r"^Trainer: checkpoint_activations=True needs a model "):
        Trainer(Plain(), data, max_steps=1, out_dir=None, checkpoint_activations=True)


@pytest.mark.gpu
def test_checkpointed_blocks_on_the_gpu_give_exactly_the_plain_gradients():
    from minroots import backend as B

    x, y = (B.to_device(a, "cuda") for a in batch())
    model = gpt().to("cuda")
    plain = loss_and_grads(model, x, y)
    model.checkpoint_activations = True
    again = loss_and_grads(model, x, y)
    assert again[0] == plain[0]
    for name, g in plain[1].items():
        if name == "wte.weight":  # the embedding's backward adds with GPU atomics, in any order
            np.testing.assert_allclose(B.to_numpy(again[1][name]), B.to_numpy(g), atol=1e-6)
        else:
            assert bool((again[1][name] == g).all()), name
