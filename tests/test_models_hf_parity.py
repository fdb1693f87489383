"""Hugging Face checkpoints both ways, offline.

Random ``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``Qwen2ForCausalLM`` and ``Qwen3ForCausalLM``
(the last three with grouped-query attention) saved by transformers open in minroots with the same
logits (float32 within 1e-4, float64 within 1e-10) and the same greedy generation, with and without
the KV cache; minroots models written by ``save_pretrained`` open in transformers with the same
logits and come back bit-identical; broken directories give one clear error naming the file and
the tensor or field (these tests need neither torch nor transformers).

The float64 reference. Whatever the model's dtype, transformers computes three things in float32:
the RMSNorm statistics (``LlamaRMSNorm`` casts to float32), the RoPE cos/sin tables, and eager
attention's softmax. A float64 transformers model therefore carries float32 rounding (1e-8 to 1e-7
in the logits), and no float64 implementation can match it to 1e-10. The float64 reference here
runs those three steps in float64: the RMSNorm and rotary modules' ``forward`` are replaced by the
same formulas without the casts (:func:`_float64_reference`), and attention uses SDPA.
"""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest
from safetensors.numpy import save_file

import minroots
from minroots.nn import TransformerConfig, TransformerModel, from_pretrained
from minroots.nn.pretrained import read_safetensors

TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
FAMILIES = ("gpt2", "llama", "qwen2", "qwen3")


def _hf_config(transformers, family: str):
    common = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=32)  # fmt: skip
    if family == "gpt2":
        return transformers.GPT2Config(vocab_size=101, n_positions=32, n_embd=32, n_layer=2,
                                       n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                       bos_token_id=0, eos_token_id=0)  # fmt: skip
    if family == "llama":
        return transformers.LlamaConfig(num_key_value_heads=2, rope_theta=500.0, **common)
    if family == "qwen2":
        return transformers.Qwen2Config(num_key_value_heads=2, **common)
    return transformers.Qwen3Config(num_key_value_heads=1, head_dim=16, tie_word_embeddings=True,
                                    **common)  # fmt: skip


def _float64_reference(hf):
    """``hf`` with its RMSNorm and RoPE computed in the model's dtype (see the module docstring)."""
    import torch

    def rms_norm(self, x):
        return self.weight * (
            x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        )

    def rotary(self, x, position_ids):
        d = 2 * self.inv_freq.shape[0]
        theta = self.config.rope_parameters["rope_theta"]
        inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        angles = position_ids[..., None].double() * inv
        emb = torch.cat([angles, angles], dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    for module in hf.modules():
        name = type(module).__name__
        if name.endswith("RMSNorm"):
            module.forward = types.MethodType(rms_norm, module)
        elif name.endswith("RotaryEmbedding"):
            module.forward = types.MethodType(rotary, module)
    return hf


def _hf_logits(hf, idx, dtype):
    import torch

    model = hf.to(getattr(torch, dtype))
    if dtype == "float64":
        _float64_reference(model)
    with torch.no_grad():
        return model(torch.tensor(idx)).logits.numpy()


@pytest.fixture(scope="module", params=FAMILIES)
def hf_dir(request, tmp_path_factory):
    """A random transformers model of one family, saved to a folder: ``(family, path, model)``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = _hf_config(transformers, request.param)
    hf = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    with torch.no_grad():  # norms and biases away from 1 and 0, so that a mix-up shows
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "norm" in name or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path)
    return request.param, path, hf


# ------------------------------------------------------------------ transformers -> minroots
@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_match_transformers(hf_dir, dtype):
    family, path, hf = hf_dir
    idx = np.random.default_rng(0).integers(0, 101, (2, 32))
    ref = _hf_logits(hf, idx, dtype)
    model = from_pretrained(path, dtype=dtype)
    assert model.wte.weight.dtype == np.dtype(dtype)
    assert model.config.position == ("learned" if family == "gpt2" else "rope")
    logits = model(idx)[0].data
    diff = float(np.abs(logits - ref).max())
    assert diff <= TOLERANCE[dtype], f"{family} {dtype}: max |logits difference| {diff:.3g}"


@pytest.mark.parity
def test_greedy_generation_matches_transformers_with_and_without_the_cache(hf_dir):
    import torch

    family, path, hf = hf_dir
    hf = _float64_reference(hf.to(torch.float64))
    model = from_pretrained(path, dtype="float64")
    prompt = np.array([[5, 17, 42]])
    with torch.no_grad():
        theirs = hf.generate(torch.tensor(prompt), max_new_tokens=20, do_sample=False,
                             pad_token_id=0, attention_mask=torch.ones(1, 3, dtype=torch.long)).numpy()  # fmt: skip
    for use_cache in (True, False):
        ours = model.generate(prompt, max_new_tokens=20, temperature=0, use_cache=use_cache)
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{family}, use_cache={use_cache}")


@pytest.mark.parity
@pytest.mark.parametrize("hf_dir", ["llama"], indirect=True)
def test_sharded_checkpoint_and_bfloat16_weights(hf_dir, tmp_path):
    import torch

    _, path, hf = hf_dir
    hf.to(torch.float32).save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    single, sharded = from_pretrained(path), from_pretrained(tmp_path / "sharded")
    for name, a in single.state_dict().items():
        np.testing.assert_array_equal(sharded.state_dict()[name], a, err_msg=name)
    hf.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    bf16 = from_pretrained(tmp_path / "bf16")  # every bfloat16 is a float32, exactly
    expected = hf.model.embed_tokens.weight.float().detach().numpy()
    np.testing.assert_array_equal(bf16.wte.weight.data, expected)


# ------------------------------------------------------------------ minroots -> transformers
CASES = {
    "gpt2-tied": TransformerConfig(),
    "gpt2-untied": TransformerConfig(tie_weights=False),
    "llama-gqa": TransformerConfig.from_arch("llama", n_kv_head=2),
    "llama-mqa-tied": TransformerConfig.from_arch("llama", n_kv_head=1, tie_weights=True),
    "llama-bias": TransformerConfig.from_arch("llama", bias=True),
    "qwen2": TransformerConfig.from_arch("llama", qkv_bias=True, n_kv_head=2),
    "qwen3": TransformerConfig.from_arch("qwen3", n_kv_head=2, head_dim=16),
}
MODEL_TYPE = {"gpt2-tied": "gpt2", "gpt2-untied": "gpt2", "llama-gqa": "llama",
              "llama-mqa-tied": "llama", "llama-bias": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}  # fmt: skip


def _minroots_model(case: str, dtype: str) -> TransformerModel:
    import dataclasses

    minroots.manual_seed(0)
    config = dataclasses.replace(CASES[case], vocab_size=101, block_size=32, n_layer=2, n_head=4,
                                 n_embd=32)  # fmt: skip
    model = TransformerModel(config).to(dtype=dtype)
    rng = np.random.default_rng(1)
    for name, p in model.named_parameters():  # norms and biases away from 1 and 0
        if "ln_" in name or "norm" in name or name.endswith("bias"):
            p.data += 0.1 * rng.standard_normal(p.shape).astype(p.dtype)
    return model


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_save_pretrained_opens_in_transformers_and_round_trips(case, dtype, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = _minroots_model(case, dtype)
    assert model.save_pretrained(tmp_path) == MODEL_TYPE[case]
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, attn_implementation="sdpa", dtype=getattr(torch, dtype)
    ).eval()
    assert (
        type(hf).__name__ == json.loads((tmp_path / "config.json").read_text())["architectures"][0]
    )
    idx = np.random.default_rng(0).integers(0, 101, (2, 32))
    diff = float(np.abs(model(idx)[0].data - _hf_logits(hf, idx, dtype)).max())
    assert diff <= TOLERANCE[dtype], f"{case} {dtype}: max |logits difference| {diff:.3g}"
    back = from_pretrained(tmp_path, dtype=dtype)  # minroots -> HF -> minroots: bit-identical
    assert back.config == model.config
    for name, a in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], a, err_msg=name)


# ------------------------------------------------------------------ bad input: one clear error
@pytest.fixture
def saved(tmp_path):
    """A small Llama-style model saved by minroots: ``(folder, model)``."""
    minroots.manual_seed(0)
    model = TransformerModel(TransformerConfig.from_arch("llama", vocab_size=20, block_size=8,
                                                         n_layer=1, n_head=2, n_embd=8))  # fmt: skip
    model.save_pretrained(tmp_path / "m")
    return tmp_path / "m", model


def _edit_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def _edit_weights(folder, fn):
    arrays, _ = read_safetensors(folder / "model.safetensors")
    arrays = {k: np.array(v) for k, v in arrays.items()}
    fn(arrays)
    save_file(arrays, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_missing_directory_or_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json' not found.*no download"):
        from_pretrained(tmp_path / "nope")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model_type="mistral"), "model_type 'mistral' is not supported; minroots reads 'gpt2'"),
        (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}),
         "field rope_scaling with rope_type='llama3' is not supported"),
        (dict(rope_parameters={"rope_type": "default", "rope_theta": 1e4, "factor": 2.0}),
         r"field rope_parameters.factor=2.0 is not supported"),
        (dict(hidden_act="gelu"), "field hidden_act='gelu' is not supported"),
        (dict(use_sliding_window=True), "field use_sliding_window=True is not supported"),
        (dict(layer_types=["sliding_attention"]), "field layer_types"),
        (dict(my_new_field=3), "field 'my_new_field' is not one minroots knows"),
        (dict(attention_bias=True), "attention_bias=True and mlp_bias=False differ"),
        (dict(num_hidden_layers=0), "num_hidden_layers must be a positive integer"),
        (dict(num_key_value_heads=3), "n_head must be divisible by n_kv_head=3"),
    ],
)  # fmt: skip
def test_unsupported_config_fields_are_named(saved, change, message):
    folder, _ = saved
    _edit_config(folder, **change)
    with pytest.raises(ValueError, match=message) as info:
        from_pretrained(folder)
    assert "config.json" in str(info.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda a: a.pop("model.layers.0.self_attn.k_proj.weight"),
         "tensor 'model.layers.0.self_attn.k_proj.weight' is missing"),
        (lambda a: a.update(extra=np.zeros(2, dtype=np.float32)), "unexpected tensor 'extra'"),
        (lambda a: a.update({"model.norm.weight": np.ones(9, dtype=np.float32)}),
         r"tensor 'model.norm.weight' has shape \(9,\), but config.json implies \(8,\)"),
        (lambda a: a.update({"model.norm.weight": np.ones(8, dtype=np.int8)}),
         "tensor 'model.norm.weight' has dtype 'I8', which minroots cannot hold"),
    ],
)  # fmt: skip
def test_bad_tensors_are_named_with_their_file(saved, edit, message):
    folder, _ = saved
    _edit_weights(folder, edit)
    with pytest.raises(ValueError, match=message) as info:
        from_pretrained(folder)
    assert "model.safetensors" in str(info.value)


def test_a_corrupt_safetensors_file_is_refused(saved):
    folder, _ = saved
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header promises bytes the file lacks
    with pytest.raises(ValueError, match="data_offsets .* lie outside the file"):
        from_pretrained(folder)
    path.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="not a safetensors file"):
        from_pretrained(folder)


def test_pickle_weights_are_refused(saved):
    folder, _ = saved
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not read")
    with pytest.raises(
        ValueError, match="pytorch_model.bin is a pickle.*convert it to safetensors"
    ):
        from_pretrained(folder)


def test_a_sharded_index_must_name_files_inside_the_folder(saved):
    folder, _ = saved
    (folder / "model.safetensors").rename(folder / "shard-1.safetensors")
    names = list(read_safetensors(folder / "shard-1.safetensors")[0])
    index = {"weight_map": {n: "shard-1.safetensors" for n in names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert from_pretrained(folder).config.n_layer == 1
    index["weight_map"][names[0]] = "../elsewhere.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="must be a file name inside the folder"):
        from_pretrained(folder)


def test_save_pretrained_refuses_an_architecture_no_family_has(tmp_path):
    model = TransformerModel(TransformerConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2,
                                               n_embd=8, norm="rms"))  # fmt: skip
    with pytest.raises(
        ValueError, match="GPT-2 \\(learned positions\\) needs norm='layer', got 'rms'"
    ):
        model.save_pretrained(tmp_path)
    odd = TransformerConfig.from_arch("llama", vocab_size=20, block_size=8, n_layer=1, n_head=2,
                                      n_embd=8, mlp="gelu")  # fmt: skip
    with pytest.raises(ValueError, match="needs mlp='swiglu', got 'gelu'"):
        TransformerModel(odd).save_pretrained(tmp_path)
