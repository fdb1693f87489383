r"""Hugging Face tensor names and layouts <-> minroots' parameters, for ``gpt2``, ``llama``,
``qwen2`` and ``qwen3``.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_models_hf_parity.py``.

minroots names every family's parameters as GPT-2 does (``h.0.attn.c_attn.weight``) and fuses
what is used together: the query, key and value projections are one ``c_attn`` (rows
``[Q | K | V]``, with ``n_kv_head`` heads each for K and V), SwiGLU's gate and up projections one
``c_fc`` (rows ``[gate | up]``). Hugging Face's Llama and Qwen keep them apart::

    h.{i}.ln_1.weight         model.layers.{i}.input_layernorm.weight
    h.{i}.attn.c_attn.weight  model.layers.{i}.self_attn.{q,k,v}_proj.weight   (stacked rows)
    h.{i}.attn.c_proj.weight  model.layers.{i}.self_attn.o_proj.weight
    h.{i}.attn.q_norm.weight  model.layers.{i}.self_attn.q_norm.weight         (Qwen 3; k_norm too)
    h.{i}.ln_2.weight         model.layers.{i}.post_attention_layernorm.weight
    h.{i}.mlp.c_fc.weight     model.layers.{i}.mlp.{gate,up}_proj.weight        (stacked rows)
    h.{i}.mlp.c_proj.weight   model.layers.{i}.mlp.down_proj.weight
    wte.weight, ln_f.weight   model.embed_tokens.weight, model.norm.weight
    lm_head.weight            lm_head.weight                                   (absent when tied)

GPT-2's names are minroots' with a ``transformer.`` prefix (OpenAI's original files have none;
both are read), but its ``Conv1D`` layers store their weight as ``(in, out)``: ``c_attn``,
``c_proj`` and ``c_fc`` weights are **transposed** into ``Linear``'s ``(out, in)`` and back.
Buffers that are not weights (GPT-2's causal masks ``attn.bias`` / ``attn.masked_bias``, old
Llama files' ``rotary_emb.inv_freq``) are skipped.
"""

from __future__ import annotations

import re

import numpy as np

from minroots import backend as B

__all__ = ["hf_names", "weights_from_hf", "weights_to_hf"]

_GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_LLAMA_LAYER = {
    "ln_1.weight": ["input_layernorm.weight"],
    "ln_2.weight": ["post_attention_layernorm.weight"],
    "attn.q_norm.weight": ["self_attn.q_norm.weight"],
    "attn.k_norm.weight": ["self_attn.k_norm.weight"],
    "attn.c_proj.weight": ["self_attn.o_proj.weight"],
    "attn.c_proj.bias": ["self_attn.o_proj.bias"],
    "mlp.c_proj.weight": ["mlp.down_proj.weight"],
    "mlp.c_proj.bias": ["mlp.down_proj.bias"],
    **{f"attn.c_attn.{p}": [f"self_attn.{x}_proj.{p}" for x in "qkv"] for p in ("weight", "bias")},
    **{f"mlp.c_fc.{p}": [f"mlp.{x}_proj.{p}" for x in ("gate", "up")] for p in ("weight", "bias")},
}
_LLAMA_TOP = {"wte.weight": "model.embed_tokens.weight", "ln_f.weight": "model.norm.weight",
              "lm_head.weight": "lm_head.weight"}  # fmt: skip
_SKIPPED = re.compile(r"(attn\.bias|attn\.masked_bias|rotary_emb\.inv_freq)$")


def hf_names(name: str, model_type: str) -> tuple[list[str], bool]:
    """The Hugging Face tensors that make up minroots' parameter ``name``, and whether they are
    stored transposed.

    >>> hf_names("h.0.attn.c_attn.weight", "llama")
    (['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight', 'model.layers.0.self_attn.v_proj.weight'], False)
    >>> hf_names("h.0.attn.c_attn.weight", "gpt2")
    (['transformer.h.0.attn.c_attn.weight'], True)
    """
    if model_type == "gpt2":
        if name == "lm_head.weight":
            return [name], False
        return [f"transformer.{name}"], name.endswith(_GPT2_CONV1D)
    layer = re.fullmatch(r"h\.(\d+)\.(.+)", name)
    if layer:
        return [f"model.layers.{layer[1]}.{x}" for x in _LLAMA_LAYER[layer[2]]], False
    return [_LLAMA_TOP[name]], False


def _row_splits(name: str, shape: tuple, config) -> list[int]:
    """Rows of each Hugging Face piece of a fused parameter (one piece for the others)."""
    if ".attn.c_attn." in name and config.position == "rope":
        q, kv = (
            config.n_head * config.attention_head_dim,
            config.kv_heads * config.attention_head_dim,
        )
        return [q, kv, kv]
    if ".mlp.c_fc." in name and config.mlp == "swiglu":
        return [shape[0] // 2, shape[0] // 2]
    return [shape[0]]


def _named_parameters(model):
    """``(name, array)`` of every weight, without the tied ``lm_head`` alias."""
    tied = model.config.tie_weights
    return [(n, a) for n, a in model.state_dict().items() if not (tied and n == "lm_head.weight")]


def weights_from_hf(arrays: dict, model, model_type: str, where: str = "model.safetensors"):
    """minroots' state dict for ``model`` from Hugging Face ``arrays`` (name -> array).

    Every tensor must be there with the shape the config implies, and none may be left over:
    a ``ValueError`` names the first missing, misshapen or unexpected tensor and ``where``.
    """
    if model_type == "gpt2":  # OpenAI's original names have no prefix
        arrays = {k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}": v
                  for k, v in arrays.items()}  # fmt: skip
    state, used = {}, set()
    for name, param in _named_parameters(model):
        names, transposed = hf_names(name, model_type)
        pieces = []
        for hf_name, rows in zip(names, _row_splits(name, param.shape, model.config), strict=True):
            if hf_name not in arrays:
                raise ValueError(f"{where}: tensor {hf_name!r} is missing (needed for {name})")
            expected = (rows, *param.shape[1:])
            expected = expected[::-1] if transposed else expected
            a = arrays[hf_name]
            if tuple(a.shape) != expected:
                raise ValueError(f"{where}: tensor {hf_name!r} has shape {tuple(a.shape)}, but "
                                 f"config.json implies {expected}")  # fmt: skip
            pieces.append(a.T if transposed else a)
            used.add(hf_name)
        state[name] = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
    if model.config.tie_weights:
        state["lm_head.weight"] = state["wte.weight"]  # one array under both names
        used.add("lm_head.weight")  # some files store the tied head anyway
    extra = sorted(k for k in arrays if k not in used and not _SKIPPED.search(k))
    if extra:
        raise ValueError(f"{where}: unexpected tensor {extra[0]!r} ({len(extra)} in all) that a "
                         f"{model_type} model of this config.json does not have")  # fmt: skip
    return state


def weights_to_hf(model, model_type: str) -> dict:
    """Hugging Face's name -> array for ``model`` (NumPy, C order); the tied head is left out."""
    out = {}
    for name, a in _named_parameters(model):
        names, transposed = hf_names(name, model_type)
        rows = np.cumsum(_row_splits(name, a.shape, model.config))[:-1]
        for hf_name, piece in zip(names, np.split(B.to_numpy(a), rows, axis=0), strict=True):
            out[hf_name] = np.ascontiguousarray(piece.T if transposed else piece)
    return out
