"""GPT-2 logits parity: a small random ``GPT2LMHeadModel`` saved by transformers (offline) loads
into ``TransformerModel.from_pretrained`` (and its earlier name ``from_pretrained_gpt2``) and gives the same logits and loss."""

from __future__ import annotations

import os

import numpy as np
import pytest

from minroots.nn import TransformerModel

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=101, n_positions=32, n_embd=64, n_layer=2, n_head=4,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # make the biases and norms non-trivial, so a mix-up shows
        for name, p in hf.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(path, safe_serialization=True)
    return path, hf


def _hf_logits(hf, idx, dtype):
    import torch

    model = hf.to(dtype)
    with torch.no_grad():
        logits = model(torch.tensor(idx)).logits
    # transformers' own loss upcasts to float32 only; recompute it in the logits' dtype
    v = logits.shape[-1]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, v), torch.tensor(idx[:, 1:]).reshape(-1)
    )
    return logits.numpy(), float(loss)


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-4), ("float64", 1e-10)])
def test_logits_match_transformers(hf_dir, dtype, atol):
    import torch

    path, hf = hf_dir
    idx = np.random.default_rng(0).integers(0, 101, (3, 32))
    ref, ref_loss = _hf_logits(hf, idx, getattr(torch, dtype))
    model = TransformerModel.from_pretrained(path, dtype=dtype)
    assert model.wte.weight.dtype == np.dtype(dtype)
    assert model.lm_head.weight is model.wte.weight
    logits, _ = model(idx)
    assert np.abs(logits.data - ref).max() < atol, np.abs(logits.data - ref).max()
    # transformers shifts the labels internally: predict token t+1 from tokens <= t
    _, loss = model(idx[:, :-1], idx[:, 1:])
    assert abs(loss.item() - ref_loss) < 10 * atol


def test_greedy_generation_matches_transformers(hf_dir):
    import torch

    path, hf = hf_dir
    hf = hf.to(torch.float64)
    model = TransformerModel.from_pretrained_gpt2(path, dtype="float64")
    prompt = np.array([[5, 17, 42]])
    ours = model.generate(prompt, max_new_tokens=10, temperature=0)
    with torch.no_grad():
        theirs = hf.generate(torch.tensor(prompt), max_new_tokens=10, do_sample=False,
                             pad_token_id=0, attention_mask=torch.ones(1, 3, dtype=torch.long))  # fmt: skip
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no download"):
        TransformerModel.from_pretrained_gpt2(tmp_path / "nope")
