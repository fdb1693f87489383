"""``TransformerModel``: shapes, loss, clear errors, saving and loading, and a real learning test."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import minroots
from minroots.nn import TransformerConfig, TransformerModel


def tiny(**kw):
    cfg = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)
    cfg.update(kw)
    return TransformerModel(TransformerConfig(**cfg))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_forward_shapes_and_loss(rng):
    model = tiny()
    idx = rng.integers(0, 11, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 16, 11) and loss is None and logits.dtype == np.float32
    logits, loss = model(minroots.tensor(idx), idx)
    assert loss.shape == () and loss.dtype == np.float32
    assert abs(loss.item() - np.log(11)) < 0.5  # small init: close to uniform
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())


def test_default_config_parameter_count():
    model = TransformerModel()
    c = model.config
    per_block = (
        2 * 2 * c.n_embd + (3 * c.n_embd * c.n_embd + 3 * c.n_embd) + (c.n_embd**2 + c.n_embd)
    )
    per_block += (4 * c.n_embd * c.n_embd + 4 * c.n_embd) + (4 * c.n_embd * c.n_embd + c.n_embd)
    expected = (
        c.vocab_size * c.n_embd + c.block_size * c.n_embd + c.n_layer * per_block + 2 * c.n_embd
    )
    assert model.num_parameters() == expected == 819_456


def test_default_vocabulary_fits_the_bundled_corpus():
    from minroots.data import TextDataset

    dataset = TextDataset("shakespeare", block_size=8, use_cache=False)
    assert TransformerModel().config.vocab_size == dataset.vocab_size == 76


def test_tied_weights_share_gradient(rng):
    model = tiny()
    assert model.lm_head.weight is model.wte.weight
    untied = tiny(tie_weights=False)
    assert untied.num_parameters() == model.num_parameters() + 11 * 16


@pytest.mark.task3_4
def test_causal_prefix_is_unaffected_by_later_tokens(rng):
    model = tiny()
    a = rng.integers(0, 11, (1, 12))
    b = a.copy()
    b[0, 8:] = (b[0, 8:] + 3) % 11
    np.testing.assert_allclose(model(a)[0].data[:, :8], model(b)[0].data[:, :8], atol=1e-6)


@pytest.mark.parametrize(
    "idx, err, match",
    [
        (np.zeros(5, dtype=np.int64), ValueError, r"shape \(B, T\)"),
        (np.zeros((1, 2, 3), dtype=np.int64), ValueError, r"shape \(B, T\)"),
        (np.zeros((1, 5)), TypeError, "integer dtype"),
        (np.full((1, 5), 11), ValueError, "token id 11 is out of range"),
        (np.full((1, 5), -1), ValueError, "token id -1 is out of range"),
        (np.zeros((1, 17), dtype=np.int64), ValueError, "longer than block_size=16"),
        ("abc", TypeError, "integer array"),
    ],
)
def test_bad_inputs(idx, err, match):
    with pytest.raises(err, match=match):
        tiny()(idx)


def test_bad_targets_and_config():
    model = tiny()
    with pytest.raises(ValueError, match="targets must have the shape"):
        model(np.zeros((2, 4), dtype=np.int64), np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="divisible by n_head"):
        TransformerConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        TransformerConfig(vocab_size=0)
    with pytest.raises(ValueError, match="unknown keys"):
        TransformerConfig.from_dict({"n_layers": 3})


@pytest.mark.parametrize("name", ["ckpt", "weights.safetensors"])
def test_save_and_load_round_trip(tmp_path, rng, name):
    model = tiny(tie_weights=True)
    path = tmp_path / name
    model.save(path)
    loaded = TransformerModel.load(path)
    assert loaded.config == model.config
    assert loaded.lm_head.weight is loaded.wte.weight  # re-tied
    idx = rng.integers(0, 11, (2, 9))
    np.testing.assert_array_equal(model(idx)[0].data, loaded(idx)[0].data)
    if name == "ckpt":
        assert json.loads((path / "config.json").read_text())["n_embd"] == 16
        assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert not list(tmp_path.glob("**/*.tmp*"))


def test_load_rejects_mismatched_weights(tmp_path):
    from safetensors.numpy import save_file

    model = tiny()
    model.save(tmp_path / "m")
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    sd["h.0.ln_1.weight"] = np.ones(3, dtype=np.float32)
    meta = {"config": json.dumps(dataclasses.asdict(model.config))}
    save_file(sd, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match=r"h.0.ln_1.weight: checkpoint \(3,\), model \(16,\)"):
        TransformerModel.load(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError):
        TransformerModel.load(tmp_path / "missing")


def test_float64_model_matches_float32_closely(rng):
    m32 = tiny()
    m64 = tiny()
    m64.load_state_dict(m32.state_dict())
    m64.to(dtype=np.float64)
    idx = rng.integers(0, 11, (2, 16))
    np.testing.assert_allclose(m32(idx)[0].data, m64(idx)[0].data, atol=1e-5)


def test_tiny_gpt_overfits_one_batch(rng):
    from minroots.optim import AdamW

    model = tiny(n_layer=2, n_embd=32, n_head=4)
    idx = rng.integers(0, 11, (4, 16))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(300):
        _, loss = model(x, y)
        model.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < 0.05:
            break
    assert losses[-1] < 0.05, (
        f"loss after {len(losses)} steps: {losses[-1]:.3f} (start {losses[0]:.3f})"
    )


@pytest.mark.gpu
def test_cupy_forward_backward_matches_numpy(rng):
    from minroots import backend as B

    model = tiny()
    idx = rng.integers(0, 11, (2, 16))
    ref_logits, ref_loss = model(idx, idx)
    ref_loss.backward()
    ref_grad = model.wte.weight.grad.copy()
    model.zero_grad()
    model.to("cuda")
    logits, loss = model(B.to_device(idx, "cuda"), B.to_device(idx, "cuda"))
    loss.backward()
    np.testing.assert_allclose(B.to_numpy(logits.data), ref_logits.data, atol=1e-4)
    np.testing.assert_allclose(B.to_numpy(model.wte.weight.grad), ref_grad, atol=1e-5)
    out = model.generate(idx[:, :3], 5, temperature=0)
    assert out.shape == (2, 8)
