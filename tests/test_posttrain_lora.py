"""LoRA: the fused forward/backward against finite differences, the composed reference and float64
PyTorch; merging; choosing layers; freezing; adapters saved on their own.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/posttrain/lora.py`` and
``minroots/posttrain/lora_model.py``. Parity with Hugging Face ``peft`` is in
``tests/test_posttrain_lora_parity.py``.
"""

import numpy as np
import pytest

from minroots import Tensor, gradcheck, manual_seed
from minroots.nn import Linear, TransformerModel
from minroots.posttrain.lora import LoRALinear, lora_init_bound, lora_linear, lora_linear_composed
from minroots.posttrain.lora_model import LoRAConfig, apply_lora
from minroots.training import Trainer


def _inputs(rng, n=(2, 3), d_in=5, d_out=4, r=2, bias=True):
    x = Tensor(rng.standard_normal((*n, d_in)), requires_grad=True)
    w = Tensor(rng.standard_normal((d_out, d_in)))
    b = Tensor(rng.standard_normal(d_out)) if bias else None
    a = Tensor(rng.standard_normal((r, d_in)), requires_grad=True)
    bb = Tensor(rng.standard_normal((d_out, r)), requires_grad=True)
    return x, w, b, a, bb


# --- the fused kernel -------------------------------------------------------------------------
@pytest.mark.task10_2
def test_worked_example_by_hand():
    x = Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    w, a, b = Tensor(np.array([[1.0, 0.0]])), Tensor(np.array([[1.0, 1.0]]), requires_grad=True), \
        Tensor(np.array([[2.0]]), requires_grad=True)  # fmt: skip
    y = lora_linear(x, w, None, a, b, 1.0)
    assert y.data.tolist() == [[7.0]]  # 1 (frozen) + 2 * (1 + 2)
    y.sum().backward()
    assert b.grad.tolist() == [[3.0]]  # s * U
    assert a.grad.tolist() == [[2.0, 4.0]]  # s * B * x
    assert x.grad.tolist() == [[3.0, 2.0]]  # W + s * B * A


@pytest.mark.task10_2
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_match_central_differences_everywhere(bias):
    rng = np.random.default_rng(1)
    x, w, b, a, bb = _inputs(rng, bias=bias)
    result = gradcheck(lambda x, a, bb: lora_linear(x, w, b, a, bb, 0.75), [x, a, bb])
    assert result, str(result)


@pytest.mark.task10_2
def test_fused_equals_composed_values_and_gradients():
    rng = np.random.default_rng(2)
    ours = _inputs(rng, n=(3, 4), d_in=6, d_out=5, r=3)
    ref = [
        None if t is None else Tensor(t.data.copy(), requires_grad=t.requires_grad) for t in ours
    ]
    g = rng.standard_normal((3, 4, 5))
    y1, y2 = lora_linear(*ours, 2.0), lora_linear_composed(*ref, 2.0)
    np.testing.assert_allclose(y1.data, y2.data, rtol=1e-12, atol=1e-12)
    y1.backward(g)
    y2.backward(g)
    for t1, t2 in zip(ours, ref, strict=True):
        if t1 is not None and t1.requires_grad:
            np.testing.assert_allclose(t1.grad, t2.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.task10_2
def test_frozen_weight_gets_no_gradient_and_trainable_one_does():
    rng = np.random.default_rng(3)
    x, w, b, a, bb = _inputs(rng)
    lora_linear(x, w, b, a, bb, 1.0).sum().backward()
    assert w.grad is None and b.grad is None and a.grad is not None
    w2 = Tensor(w.data.copy(), requires_grad=True)
    lora_linear(x, w2, b, a, bb, 1.0).sum().backward()
    np.testing.assert_allclose(w2.grad, np.ones((2 * 3, 4)).T @ x.data.reshape(-1, 5))


@pytest.mark.parity
def test_matches_float64_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    ours = _inputs(rng, n=(2, 5), d_in=7, d_out=3, r=2)
    x, w, b, a, bb = [torch.tensor(t.data, requires_grad=t.requires_grad) for t in ours]
    theirs = x @ w.T + b + 0.5 * (x @ a.T) @ bb.T
    y = lora_linear(*ours, 0.5)
    np.testing.assert_allclose(y.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    theirs.backward(torch.tensor(g))
    for o, t in zip((ours[0], ours[3], ours[4]), (x, a, bb), strict=True):
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=1e-11, atol=1e-12)


# --- the layer and merging --------------------------------------------------------------------
def test_a_new_adapter_changes_nothing_and_its_init_follows_peft():
    base = Linear(256, 64)
    x = Tensor(np.random.default_rng(5).standard_normal((4, 256)).astype(np.float32))
    before = base(x).data.copy()
    layer = LoRALinear(base, rank=8, alpha=16)
    np.testing.assert_array_equal(layer(x).data, before)  # B = 0
    assert (layer.lora_B.data == 0).all() and layer.scale == 2.0
    a, bound = layer.lora_A.data, lora_init_bound(256)
    assert np.abs(a).max() <= bound and a.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert not layer.weight.requires_grad and layer.lora_A.requires_grad


@pytest.mark.task10_2
def test_merged_logits_equal_unmerged_to_float32_precision():
    model = TransformerModel(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16)
    lora = apply_lora(model, rank=4, alpha=8)
    rng = np.random.default_rng(6)
    for layer in lora.lora_layers().values():  # a trained adapter: B no longer zero
        layer.lora_B.data[:] = rng.standard_normal(layer.lora_B.shape).astype(np.float32) * 0.5
    x = rng.integers(0, 40, (2, 16))
    unmerged = lora(x)[0].data.copy()
    weights = {n: m.weight.data.copy() for n, m in lora.lora_layers().items()}
    lora.merge()
    merged = lora(x)[0].data
    np.testing.assert_allclose(merged, unmerged, rtol=1e-5, atol=1e-5)
    lora.unmerge()
    for n, m in lora.lora_layers().items():
        np.testing.assert_allclose(m.weight.data, weights[n], rtol=0, atol=1e-6)
    np.testing.assert_allclose(lora(x)[0].data, unmerged, rtol=1e-5, atol=1e-5)


# --- choosing layers, freezing, counting ------------------------------------------------------
def _model():
    return TransformerModel(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16)


def test_only_adapters_and_listed_parameters_train_and_the_share_is_counted():
    lora = apply_lora(_model(), LoRAConfig(rank=2, targets=["c_attn"], trainable=["wte.weight"]))
    trained = [n for n, p in lora.model.named_parameters() if p.requires_grad]
    assert trained == ["wte.weight", "h.0.attn.c_attn.lora_A", "h.0.attn.c_attn.lora_B",
                       "h.1.attn.c_attn.lora_A", "h.1.attn.c_attn.lora_B"]  # fmt: skip
    r = lora.trainable_report()
    per_layer = 2 * (16 + 48)  # r (in + out) for c_attn (16 -> 48)
    assert r["trainable"] == 40 * 16 + 2 * per_layer
    assert r["total"] == _model().num_parameters() + 2 * per_layer
    assert r["adamw_state_bytes"] == 2 * 4 * r["trainable"]  # two float32 moments per number


def test_training_changes_only_what_is_trainable(tmp_path):
    model = _model()
    lora = apply_lora(model, rank=2, targets=["c_attn", "c_fc"])
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    rng = np.random.default_rng(7)
    data = [(rng.integers(0, 40, 16), rng.integers(0, 40, 16)) for _ in range(16)]
    Trainer(lora, data, max_steps=3, batch_size=4, warmup=0, log_interval=0, eval_interval=0,
            out_dir=None).train()  # fmt: skip
    for n, p in model.named_parameters():
        if n in frozen:
            np.testing.assert_array_equal(p.data, frozen[n], err_msg=n)
    assert all(np.abs(m.lora_B.data).sum() > 0 for m in lora.lora_layers().values())


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"targets": ["q_proj"]}, ValueError, r"target 'q_proj' names no linear layer .*available: c_attn, c_fc, c_proj, lm_head"),
        ({"rank": 0}, ValueError, r"rank \(of h.0.attn.c_attn\) must be an integer in \[1, min\(in, out\) = 16\], got 0"),
        ({"rank": 17}, ValueError, r"must be an integer in \[1, min\(in, out\) = 16\], got 17"),
        ({"rank": 2.5}, TypeError, r"must be an integer in \[1"),
        ({"targets": ["lm_head"]}, ValueError, "shares its weight with another layer"),
        ({"trainable": ["wte.wieght"]}, ValueError, r"trainable names no parameter: 'wte.wieght' \(did you mean 'wte.weight'\?\)"),
        ({"targets": []}, ValueError, "targets must be a non-empty list"),
        ({"alpha": 0}, ValueError, "alpha must be a finite number > 0"),
    ],
)  # fmt: skip
def test_bad_lora_settings_are_clear(options, error, match):
    with pytest.raises(error, match=match):
        apply_lora(_model(), **options)


def test_full_names_select_single_layers_and_adapting_twice_is_refused():
    lora = apply_lora(_model(), rank=2, targets=["h.1.mlp.c_fc"])
    assert list(lora.lora_layers()) == ["h.1.mlp.c_fc"]
    with pytest.raises(ValueError, match="already has a LoRA adapter"):
        apply_lora(lora.model, rank=2, targets=["c_fc"])


# --- files ------------------------------------------------------------------------------------
def test_adapters_round_trip_and_a_different_base_is_refused(tmp_path):
    lora = apply_lora(_model(), rank=2)
    for layer in lora.lora_layers().values():
        layer.lora_B.data += 0.1
    lora.save_adapter(tmp_path)
    manual_seed(1)  # another random base
    with pytest.raises(ValueError, match="frozen base weights differ"):
        apply_lora(_model(), rank=2).restore(tmp_path)
    with pytest.raises(ValueError, match=r"saved for the layers .* this model adapts"):
        apply_lora(_base_copy(lora), rank=2, targets=["c_fc"]).restore(tmp_path)
    same_base = apply_lora(_base_copy(lora), rank=2)
    same_base.restore(tmp_path)
    for n, p in same_base.adapter_state_dict().items():
        np.testing.assert_array_equal(p, lora.adapter_state_dict()[n])
    size = (tmp_path / "adapter.safetensors").stat().st_size
    assert size < 0.3 * sum(p.data.nbytes for p in lora.model.parameters())


def _base_copy(lora):
    """A fresh model holding the frozen base weights of ``lora`` (adapters not included)."""
    model = _model()
    state = model.state_dict()
    for name, arr in lora.model.state_dict().items():
        if name in state and not name.endswith(("lora_A", "lora_B")):
            state[name][...] = arr
    return model
