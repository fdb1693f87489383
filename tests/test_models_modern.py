"""One model, configured: ``TransformerConfig``'s architecture fields (strictly checked), the named
architectures and run presets, and the Llama-style model's training and generation (the KV cache,
its memory per token with grouped heads, and the sliding window past ``block_size``)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import minroots
from minroots.cli import main
from minroots.nn import TransformerConfig, TransformerModel
from minroots.optim import AdamW
from minroots.training.checkpoint import load_model
from minroots.training.run_config import load_run_config

TINY = dict(vocab_size=31, block_size=12, n_layer=2, n_head=4, n_embd=16)
CONFIGS = {
    "gpt2": TransformerConfig(**TINY),
    "llama-gqa": TransformerConfig.from_arch("llama", n_kv_head=2, **TINY),
    "llama-mqa-tied": TransformerConfig.from_arch("llama", n_kv_head=1, tie_weights=True, **TINY),
    "qwen3": TransformerConfig.from_arch("qwen3", n_kv_head=2, head_dim=6, **TINY),
}


def _model(name, dtype="float64"):
    minroots.manual_seed(0)
    return TransformerModel(CONFIGS[name]).to(dtype=dtype)


# ------------------------------------------------------------------ the config
@pytest.mark.parametrize(
    "field, value, error, message",
    [
        ("bias", "no", TypeError, "bias must be True or False, got 'no'"),
        ("tie_weights", "false", TypeError, "tie_weights must be True or False, got 'false'"),
        ("qk_norm", 1, TypeError, "qk_norm must be True or False, got 1"),
        ("qkv_bias", "yes", TypeError, "qkv_bias must be True or False"),
        ("layer_norm_eps", 0.0, ValueError, "layer_norm_eps must be a finite number > 0"),
        ("layer_norm_eps", float("nan"), ValueError, "layer_norm_eps must be a finite number > 0"),
        ("layer_norm_eps", float("inf"), ValueError, "layer_norm_eps must be a finite number > 0"),
        ("rope_theta", -1.0, ValueError, "rope_theta must be a finite number > 0"),
        ("dropout", 1.0, ValueError, "dropout must be a finite number >= 0 and < 1"),
        ("n_layer", True, TypeError, "n_layer must be a positive integer, got True"),
        ("n_embd", 2.0, TypeError, "n_embd must be a positive integer"),
        ("mlp_hidden", 0, ValueError, "mlp_hidden must be a positive integer, got 0"),
        ("n_kv_head", 3, ValueError, "n_head must be divisible by n_kv_head=3"),
        ("norm", "rmsnorm", ValueError, "norm must be one of 'layer', 'rms'.*did you mean 'rms'"),
        ("position", "sinusoidal", ValueError, "position must be one of 'learned', 'rope'"),
        ("mlp", "swiglu2", ValueError, "mlp must be one of .*did you mean 'swiglu'"),
        ("init", "xavier", ValueError, "init must be one of 'gpt2', 'llama'"),
    ],
)  # fmt: skip
def test_config_refuses_wrong_types_and_values(field, value, error, message):
    with pytest.raises(error, match=f"TransformerConfig: {message}"):
        TransformerConfig(**{field: value})


def test_config_defaults_are_gpt2_and_odd_rotary_heads_are_refused():
    c = TransformerConfig()
    assert (c.norm, c.position, c.mlp, c.kv_heads, c.qk_norm, c.init) == (
        "layer", "learned", "gelu_tanh", c.n_head, False, "gpt2")  # fmt: skip
    assert TransformerConfig(n_head=4, n_embd=20).attention_head_dim == 5  # fine with learned
    with pytest.raises(ValueError, match="head size must be even for rotary positions, got 5"):
        TransformerConfig(n_head=4, n_embd=20, position="rope")
    assert TransformerConfig(n_head=4, n_embd=18, head_dim=6).attention_head_dim == 6
    assert type(TransformerConfig(n_layer=np.int64(2)).n_layer) is int  # JSON-ready values


def test_named_architectures():
    llama = TransformerConfig.from_arch("llama", n_layer=2)
    assert (llama.norm, llama.position, llama.mlp, llama.bias, llama.tie_weights, llama.init) == (
        "rms", "rope", "swiglu", False, False, "llama")  # fmt: skip
    qwen3 = TransformerConfig.from_arch("qwen3", tie_weights=True)
    assert qwen3.qk_norm and qwen3.rope_theta == 1e6 and qwen3.tie_weights
    assert TransformerConfig.from_arch("gpt2") == TransformerConfig()
    with pytest.raises(ValueError, match="arch must be one of 'gpt2', 'llama', 'qwen3'"):
        TransformerConfig.from_arch("mistral")


def test_llama_model_has_no_position_table_no_biases_and_its_own_head():
    model = _model("llama-gqa")
    names = [n for n, _ in model.named_parameters()]
    assert "wpe.weight" not in names and not any(n.endswith(".bias") for n in names)
    assert model.lm_head.weight is not model.wte.weight
    assert model.h[0].attn.c_attn.weight.shape == ((4 + 2 * 2) * 4, 16)  # [Q | K | V], 2 kv heads
    tied = _model("llama-mqa-tied")
    assert tied.lm_head.weight is tied.wte.weight
    assert [n for n, _ in _model("qwen3").named_parameters()][4:6] == [
        "h.0.attn.q_norm.weight", "h.0.attn.k_norm.weight"]  # fmt: skip


def test_initialization_of_each_family():
    """GPT-2 scales the residual projections down by sqrt(2 n_layer); Llama does not."""
    big = dict(TINY, n_embd=64, n_head=4, n_layer=8)
    minroots.manual_seed(0)
    gpt = TransformerModel(TransformerConfig(**big))
    llama = TransformerModel(TransformerConfig.from_arch("llama", **big))
    for model, std in ((gpt, 0.02 / math.sqrt(16)), (llama, 0.02)):
        assert abs(model.h[0].attn.c_proj.weight.data.std() / std - 1) < 0.1
        assert abs(model.h[0].attn.c_attn.weight.data.std() / 0.02 - 1) < 0.1
    assert (llama.ln_f.weight.data == 1).all()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_architecture_learns_a_fixed_batch(name):
    model = _model(name, dtype="float32")
    idx = np.random.default_rng(0).integers(0, 31, (4, 12))
    opt = AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_save_and_load_keep_the_architecture(tmp_path):
    model = _model("qwen3")
    model.save(tmp_path / "m")
    again = TransformerModel.load(tmp_path / "m", dtype="float64")
    assert again.config == model.config
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(again(idx)[0].data, model(idx)[0].data)


# ------------------------------------------------------------------ generation
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cached_generation_equals_uncached_within_the_window(name):
    model = _model(name)
    prompt = np.array([[3, 1, 4], [1, 5, 9]])
    n = model.config.block_size - 3  # fills the window exactly
    with_cache = model.generate(prompt, n, temperature=0)
    without = model.generate(prompt, n, temperature=0, use_cache=False)
    np.testing.assert_array_equal(with_cache, without)
    sampled = [
        model.generate(prompt, n, temperature=1.0, top_k=5, seed=3, use_cache=c) for c in (1, 0)
    ]
    np.testing.assert_array_equal(*sampled)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_beam_search_of_one_beam_is_greedy_and_a_wide_beam_is_exhaustive(name):
    """The beam search of encoder-decoders serves every configuration of the decoder-only model."""
    model = _model(name)
    prompt = np.array([3, 1, 4])
    greedy = model.generate(prompt, 5, temperature=0)[3:]
    assert model.beam_search(prompt, 5, beam_size=1)[0].tolist() == greedy.tolist()
    small = TransformerModel(dataclasses.replace(CONFIGS[name], vocab_size=4)).to(dtype="float64")
    prompt = np.array([[2, 0]])
    with minroots.no_grad():  # score all 4^3 continuations of three tokens by a full forward
        seqs = np.array(np.meshgrid(*[range(4)] * 3, indexing="ij")).reshape(3, -1).T
        full = np.concatenate([np.repeat(prompt, len(seqs), axis=0), seqs], axis=1)
        logp = small(full)[0].data[:, 1:-1]  # predictions of the three new tokens
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        scores = np.take_along_axis(logp, seqs[:, :, None], axis=-1).sum(axis=(1, 2))
    best = seqs[np.argmax(scores)].tolist()
    wide = small.beam_search(prompt, 3, beam_size=16, length_penalty=0.0)[0].tolist()
    assert wide == best


def _positions_per_step(model, steps: int) -> list[int]:
    """How many positions the model runs per generated token (a prompt of one token)."""
    seen, original = [], model.hidden_states

    def counting(idx, caches=None):
        seen.append(np.asarray(idx).shape[1])
        return original(idx, caches)

    model.hidden_states = counting
    try:
        model.generate(np.array([[1]]), steps, temperature=0)
    finally:
        del model.hidden_states
    return seen


def test_past_the_window_rotary_models_keep_one_position_per_token():
    """Learned positions: each token past block_size reruns the whole window. Rotary positions:
    the sliding-window cache keeps each step at one position however long the text."""
    block = CONFIGS["gpt2"].block_size
    learned = _positions_per_step(_model("gpt2"), 3 * block)
    rotary = _positions_per_step(_model("llama-gqa"), 3 * block)
    assert learned[:block] == [1] * block and learned[block:] == [block] * (2 * block)
    assert rotary == [1] * (3 * block)


def test_sliding_window_generation_equals_band_masked_forward():
    """Generating past the window with the sliding cache gives the logits of a full forward over
    the whole text in which every layer's query i sees keys i - block_size < j <= i."""
    model = _model("qwen3")
    w = model.config.block_size
    ids = np.random.default_rng(1).integers(0, 31, (1, 2 * w + 3))
    caches = model.new_cache()
    with minroots.no_grad():
        steps = [model.lm_head(model.hidden_states(ids[:, t : t + 1], caches)).data
                 for t in range(ids.shape[1])]  # fmt: skip
        i, j = np.arange(ids.shape[1])[:, None], np.arange(ids.shape[1])[None, :]
        band = (j <= i) & (j > i - w)
        x = model.wte(ids)
        for block in model.h:  # the pre-norm block, written out with the band mask
            x = x + block.attn(block.ln_1(x), attn_mask=band)
            x = x + block.mlp(block.ln_2(x))
        reference = model.lm_head(model.ln_f(x)).data
    np.testing.assert_allclose(np.concatenate(steps, axis=1), reference, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="longer than block_size"):
        model(ids)  # without a cache the context is still block_size


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_kv_cache_bytes_per_token_fall_with_the_key_value_heads(n_kv_head):
    """2 (K, V) x n_layer x n_kv_head x head_dim numbers per token: n_head / n_kv_head less."""
    model = TransformerModel(TransformerConfig.from_arch("llama", n_kv_head=n_kv_head, **TINY))
    caches = model.new_cache()
    with minroots.no_grad():
        model.hidden_states(np.zeros((1, 10), dtype=np.int64), caches)
    per_token = sum(c.nbytes for c in caches) / 10
    full = 2 * 2 * 4 * 4 * 4  # K and V, 2 layers, 4 heads of 4 numbers, 4 bytes (float32)
    assert per_token == full * n_kv_head / 4  # n_head / n_kv_head times less than full MHA


# ------------------------------------------------------------------ presets and the command line
def test_llama_run_presets_build_llama_models():
    for preset in ("llama", "llama-tiny"):
        model_table = load_run_config(preset)["model"]
        config = TransformerConfig(vocab_size=76, **model_table)
        assert (config.norm, config.position, config.mlp, config.bias) == (
            "rms",
            "rope",
            "swiglu",
            False,
        )
    default = TransformerModel(
        TransformerConfig(vocab_size=76, **load_run_config("default")["model"])
    )
    llama = TransformerModel(TransformerConfig(vocab_size=76, **load_run_config("llama")["model"]))
    assert abs(llama.num_parameters() / default.num_parameters() - 1) < 0.005  # equal size


def test_train_and_generate_with_the_llama_tiny_preset(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "llama-tiny", "--out", str(out), "max_steps=4",
                 "eval_interval=2", "save_interval=2", "sample.max_new_tokens=5"]) == 0  # fmt: skip
    assert "validation loss" in capsys.readouterr().out
    model = load_model(out)
    assert model.config.position == "rope" and model.config.kv_heads == 1
    assert main(["generate", "--checkpoint", str(out), "--prompt", "RO", "--max-new-tokens", "40",
                 "--seed", "1"]) == 0  # fmt: skip  # 40 > block_size 32: past the window
    assert capsys.readouterr().out.startswith("RO")
