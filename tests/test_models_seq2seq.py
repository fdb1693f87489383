"""``Seq2SeqTransformer``: shapes, masking, learning, beam search against exhaustive search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import minroots
from minroots.nn import Seq2SeqConfig, Seq2SeqTransformer


def tiny(**kw):
    cfg = dict(src_vocab_size=6, block_size=12, n_layer=1, n_head=2, n_embd=16, bos_id=4, eos_id=5)
    cfg.update(kw)
    return Seq2SeqTransformer(Seq2SeqConfig(**cfg))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_forward_backward_shapes(rng, norm_first, positional):
    model = tiny(
        norm_first=norm_first, positional=positional, share_embeddings=False, tgt_vocab_size=7
    )
    src, tgt = rng.integers(0, 6, (3, 5)), rng.integers(0, 7, (3, 4))
    logits, loss = model(src, tgt, src_mask=np.ones((3, 5), bool), tgt_targets=tgt)
    assert logits.shape == (3, 4, 7) and logits.dtype == np.float32
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_source_padding_is_ignored(rng):
    model = tiny().to(dtype=np.float64)
    src, tgt = rng.integers(0, 4, (1, 4)), rng.integers(0, 4, (1, 3))
    padded = np.concatenate([src, [[0, 0, 0]]], axis=1)
    mask = np.array([[True] * 4 + [False] * 3])
    a, _ = model(src, tgt)
    b, _ = model(padded, tgt, src_mask=mask)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-12)


def test_loss_skips_masked_targets(rng):
    model = tiny().to(dtype=np.float64)
    src, tgt_in, tgt_out = (
        rng.integers(0, 6, (2, 4)),
        rng.integers(0, 6, (2, 3)),
        rng.integers(0, 6, (2, 3)),
    )
    mask = np.array([[True, True, False], [True, False, False]])
    logits, loss = model(src, tgt_in, tgt_targets=tgt_out, tgt_mask=mask)
    z = logits.data - logits.data.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, tgt_out[..., None], -1)[..., 0]
    np.testing.assert_allclose(loss.item(), -picked[mask].mean(), rtol=1e-12)
    padded = np.where(mask, tgt_out, 3)
    _, loss_pad = tiny(pad_id=3)(src, tgt_in, tgt_targets=padded)  # pad_id path (other weights)
    assert np.isfinite(loss_pad.item())


def test_bad_inputs():
    model = tiny()
    with pytest.raises(ValueError, match=r"src must be an integer array of shape \(B, T\)"):
        model(np.zeros(3, dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="out of range"):
        model(np.full((1, 3), 6), np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="longer than block_size"):
        model(np.zeros((1, 13), dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="share_embeddings"):
        Seq2SeqConfig(src_vocab_size=5, tgt_vocab_size=6)
    with pytest.raises(ValueError, match="bos_id"):
        tiny(bos_id=None).generate(np.zeros((1, 3), dtype=np.int64))


def _log_prob(model, src, seq):
    """log p(seq | src) by full (uncached) forward passes."""
    tgt_in = np.array([[model.config.bos_id, *seq[:-1]]])
    logits, _ = model(src, tgt_in)
    z = logits.data[0].astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    return float(sum(logp[i, t] for i, t in enumerate(seq)))


@pytest.mark.task9_5
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_search_equals_exhaustive_search(rng, alpha):
    """With a beam wider than the number of hypotheses, beam search is exact."""
    model = tiny(src_vocab_size=4, bos_id=2, eos_id=3).to(dtype=np.float64)
    src = rng.integers(0, 2, (1, 3))
    max_new = 3
    best, best_score = None, -np.inf
    for n in range(1, max_new + 1):  # finished sequences end with EOS, open ones have max length
        for body in itertools.product(range(4), repeat=n - 1):
            if 3 in body:
                continue
            for last in [3] if n < max_new else [0, 1, 2, 3]:
                seq = [*body, last]
                score = _log_prob(model, src, seq) / len(seq) ** alpha
                if score > best_score:
                    best, best_score = seq, score
    out = model.generate(src, max_new_tokens=max_new, beam_size=64, length_penalty=alpha)[0]
    expected = best[:-1] if best[-1] == 3 else best
    assert out.tolist() == expected


@pytest.mark.task9_4
def test_greedy_uses_cache_correctly(rng):
    model = tiny().to(dtype=np.float64)
    src = rng.integers(0, 4, (2, 5))
    outs = model.generate(src, max_new_tokens=6, beam_size=1)
    for row, out in zip(src, outs, strict=True):
        seq = [4]  # greedy by full recomputation
        for _ in range(6):
            logits, _ = model(row[None], np.array([seq]))
            nxt = int(logits.data[0, -1].argmax())
            if nxt == 5:
                break
            seq.append(nxt)
        assert out.tolist() == seq[1:]


@pytest.mark.task9_5
def test_learns_to_copy_and_beam_search_decodes_it(rng):
    from minroots.optim import AdamW

    minroots.manual_seed(1)
    model = tiny(n_embd=32, n_head=4)
    src = rng.integers(0, 4, (8, 4))
    tgt_in = np.concatenate([np.full((8, 1), 4), src], axis=1)
    tgt_out = np.concatenate([src, np.full((8, 1), 5)], axis=1)
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        _, loss = model(src, tgt_in, tgt_targets=tgt_out)
        model.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    outs = model.generate(src[:3], max_new_tokens=8, beam_size=3)
    for row, out in zip(src[:3], outs, strict=True):
        assert out.tolist() == row.tolist()


def test_save_and_load(tmp_path, rng):
    model = tiny()
    model.save(tmp_path / "s2s")
    loaded = Seq2SeqTransformer.load(tmp_path / "s2s")
    src, tgt = rng.integers(0, 6, (2, 4)), rng.integers(0, 6, (2, 3))
    np.testing.assert_array_equal(model(src, tgt)[0].data, loaded(src, tgt)[0].data)
    assert loaded.tgt_emb is loaded.src_emb or loaded.tgt_emb.weight is loaded.src_emb.weight
    from minroots.nn import TransformerModel

    with pytest.raises(ValueError, match="holds a Seq2SeqTransformer"):
        TransformerModel.load(tmp_path / "s2s")
