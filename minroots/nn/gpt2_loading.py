"""Loading a Hugging Face GPT-2 checkpoint from a local directory, without ``transformers``.

Book chapter 9, "Generation" (``book/09_generation.md``); tests in
``tests/test_models_gpt2_parity.py``.

A Hugging Face GPT-2 directory holds ``config.json`` (``n_layer``, ``n_head``, ``n_embd``,
``n_positions``, ``vocab_size``, ``layer_norm_epsilon``, ...) and ``model.safetensors``. Two
details differ from minroots' layout:

- names start with ``transformer.`` (``transformer.h.0.attn.c_attn.weight``); OpenAI's original
  files have no prefix. Both are accepted.
- GPT-2's ``Conv1D`` layers store their weight as ``(in, out)``: ``c_attn``, ``c_proj`` and
  ``c_fc`` weights are **transposed** into ``nn.Linear``'s ``(out, in)``.

``lm_head.weight`` is usually absent (tied to ``wte``) and the causal-mask buffers
(``attn.bias``, ``attn.masked_bias``) of older files are skipped.
"""

from __future__ import annotations

import os

from minroots.nn.serialization import load_state_dict_file
from minroots.persistence import read_json

__all__ = ["load_gpt2", "convert_gpt2_state_dict"]

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def convert_gpt2_state_dict(arrays: dict) -> dict:
    """Hugging Face / OpenAI GPT-2 names and layouts -> minroots' (a new dict of arrays)."""
    out = {}
    for name, arr in arrays.items():
        key = name[len("transformer.") :] if name.startswith("transformer.") else name
        if key.split(".")[-2:] in (["attn", "bias"], ["attn", "masked_bias"]):
            continue  # causal-mask buffers, not weights
        if key.endswith(_CONV1D):
            arr = arr.T  # Conv1D (in, out) -> Linear (out, in)
        out[key] = arr
    return out


def load_gpt2(cls, config_cls, path, dtype=None):
    """Build a ``cls`` (TransformerModel) from a Hugging Face GPT-2 directory."""
    path = os.fspath(path)
    cfg_file = os.path.join(path, "config.json")
    weights = os.path.join(path, "model.safetensors")
    for f in (cfg_file, weights):
        if not os.path.isfile(f):
            raise FileNotFoundError(
                f"from_pretrained_gpt2: {f!r} not found; expected a local Hugging Face GPT-2 "
                "directory with config.json and model.safetensors (no download is attempted)"
            )
    hf = read_json(cfg_file, "from_pretrained_gpt2", expect=dict)
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(
            f"from_pretrained_gpt2: activation {act!r} unsupported (GPT-2 uses gelu_new)"
        )
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf.get(flag):
            raise ValueError(f"from_pretrained_gpt2: config option {flag}=True is not supported")
    if hf.get("scale_attn_weights") is False:
        raise ValueError("from_pretrained_gpt2: scale_attn_weights=False is not supported")
    n_embd = hf.get("n_embd", 768)
    n_inner = hf.get("n_inner")
    if n_inner not in (None, 4 * n_embd):
        raise ValueError(f"from_pretrained_gpt2: n_inner={n_inner} unsupported (need 4 * n_embd)")
    config = config_cls(
        vocab_size=hf.get("vocab_size", 50257),
        block_size=hf.get("n_positions", 1024),
        n_layer=hf.get("n_layer", 12),
        n_head=hf.get("n_head", 12),
        n_embd=n_embd,
        dropout=0.0,
        bias=True,
        tie_weights=hf.get("tie_word_embeddings", True),
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
    )
    model = cls(config)
    if dtype is not None:
        model.to(dtype=dtype)
    arrays, _ = load_state_dict_file(weights)
    state = convert_gpt2_state_dict(arrays)
    if config.tie_weights:
        state.setdefault("lm_head.weight", state.get("wte.weight"))
    model.load_state_dict(state, strict=True)
    return model
