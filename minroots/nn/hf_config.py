r"""Hugging Face ``config.json`` <-> :class:`~minroots.nn.gpt.TransformerConfig`, for ``gpt2``,
``llama``, ``qwen2`` and ``qwen3``.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_models_hf_parity.py``.

Each family names the same numbers differently::

    minroots          gpt2                 llama / qwen2 / qwen3
    n_embd            n_embd               hidden_size
    n_layer           n_layer              num_hidden_layers
    n_head            n_head               num_attention_heads
    n_kv_head         -                    num_key_value_heads
    head_dim          -                    head_dim
    block_size        n_positions          max_position_embeddings
    mlp_hidden        n_inner              intermediate_size
    layer_norm_eps    layer_norm_epsilon   rms_norm_eps
    rope_theta        -                    rope_parameters.rope_theta (older files: rope_theta)
    tie_weights       tie_word_embeddings  tie_word_embeddings

and fixes the rest: GPT-2 has layer norm, learned positions, a GELU MLP and biases everywhere;
Llama has RMSNorm, rotary positions, SwiGLU, and biases only if ``attention_bias`` and
``mlp_bias`` say so; Qwen 2 has biases on the query/key/value projection only; Qwen 3 adds
QK-norm.

Reading is strict. A field that changes the architecture in a way minroots does not implement
(``rope_scaling`` other than the default, sliding-window layers, ``partial_rotary_factor``,
cross-attention, ...) raises a ``ValueError`` naming it; so does any field this module does not
know, since it might be one. Fields that do not change the logits (token ids, dropout rates,
generation defaults, bookkeeping such as ``transformers_version``) are ignored.
"""

from __future__ import annotations

from minroots.nn.swiglu import swiglu_hidden

__all__ = ["MODEL_TYPES", "config_from_hf", "config_to_hf", "hf_model_type"]

MODEL_TYPES = ("gpt2", "llama", "qwen2", "qwen3")
ARCHITECTURE_CLASSES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
                        "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}  # fmt: skip

# Fields of any transformers config that do not change a causal LM's logits: bookkeeping, token
# ids, dropout, and the generation defaults that old versions stored in config.json.
_IGNORED = {
    "architectures", "model_type", "dtype", "torch_dtype", "transformers_version",
    "_name_or_path", "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id",
    "decoder_start_token_id", "initializer_range", "use_cache", "return_dict",
    "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss",
    "chunk_size_feed_forward", "is_decoder", "max_length", "min_length", "do_sample",
    "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature",
    "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty",
    "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
    "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
    "suppress_tokens", "begin_suppress_tokens", "finetuning_task", "id2label", "label2id",
    "tokenizer_class", "prefix", "task_specific_params", "problem_type", "output_past",
    "attention_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_type",
    "summary_use_proj", "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
    "n_ctx", "pretraining_tp", "max_window_layers", "sliding_window",
}  # fmt: skip

# Fields whose value must be the one given here (else the architecture is not minroots').
_MUST_BE = {
    "is_encoder_decoder": (False,), "add_cross_attention": (False,), "tie_encoder_decoder": (False,),
    "cross_attention_hidden_size": (None,), "pruned_heads": ({}, None),
    "scale_attn_weights": (True,), "scale_attn_by_inverse_layer_idx": (False,),
    "reorder_and_upcast_attn": (False, True),  # only the precision of GPT-2's softmax
    "use_sliding_window": (False,), "hidden_act": ("silu",), "partial_rotary_factor": (1, 1.0),
}  # fmt: skip

_GPT2_USED = {"vocab_size", "n_positions", "n_layer", "n_head", "n_embd", "n_inner",
              "layer_norm_epsilon", "activation_function", "tie_word_embeddings"}  # fmt: skip
_LLAMA_USED = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "head_dim",
               "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings", "rope_theta",
               "rope_parameters", "rope_scaling", "attention_bias", "mlp_bias", "layer_types"}  # fmt: skip
_GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
                     "relu": "relu"}  # fmt: skip


def _check_fields(hf: dict, model_type: str, used: set, where: str) -> None:
    """Refuse fields that would change the architecture, naming the first one."""
    for key, value in hf.items():
        if key in used or key in _IGNORED:
            continue
        if key in _MUST_BE:
            if value not in _MUST_BE[key]:
                allowed = " or ".join(repr(v) for v in _MUST_BE[key])
                raise ValueError(f"{where}: field {key}={value!r} is not supported by minroots "
                                 f"(only {allowed} is, for a model_type {model_type!r})")  # fmt: skip
            continue
        raise ValueError(
            f"{where}: field {key!r} is not one minroots knows for model_type {model_type!r}, so "
            "the model may differ from what minroots would build; remove it if it does not change "
            "the architecture"
        )


def _int(hf: dict, key: str, where: str, default=None):
    value = hf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: field {key} must be a positive integer, got {value!r}")
    return value


def _rope_theta(hf: dict, where: str) -> float:
    """``rope_parameters`` (transformers 5) or ``rope_theta`` + ``rope_scaling`` (older files)."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    for name, block in (("rope_parameters", params), ("rope_scaling", scaling)):
        if not isinstance(block, dict):
            raise ValueError(f"{where}: field {name} must be an object, got {block!r}")
        kind = block.get("rope_type", block.get("type", "default"))
        if kind != "default":
            raise ValueError(f"{where}: field {name} with rope_type={kind!r} is not supported "
                             "(minroots implements the default rotary positions only)")  # fmt: skip
        for key, value in block.items():
            if key in ("rope_type", "type", "rope_theta"):
                continue
            if key == "partial_rotary_factor" and value in (1, 1.0):
                continue
            raise ValueError(f"{where}: field {name}.{key}={value!r} is not supported")
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
        raise ValueError(f"{where}: rope_theta must be a positive number, got {theta!r}")
    return float(theta)


def config_from_hf(hf: dict, where: str = "config.json") -> tuple[dict, str]:
    """The :class:`TransformerConfig` fields of a Hugging Face config dict, and its model_type.

    Raises ``ValueError`` naming the field for anything minroots does not implement.
    """
    if not isinstance(hf, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(hf).__name__}")
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{where}: model_type {model_type!r} is not supported; minroots reads "
            + ", ".join(repr(m) for m in MODEL_TYPES)
        )
    if model_type == "gpt2":
        _check_fields(hf, model_type, _GPT2_USED, where)
        act = hf.get("activation_function", "gelu_new")
        if act not in _GPT2_ACTIVATIONS:
            raise ValueError(f"{where}: field activation_function={act!r} is not supported "
                             f"(one of {', '.join(map(repr, _GPT2_ACTIVATIONS))})")  # fmt: skip
        n_embd = _int(hf, "n_embd", where, 768)
        n_inner = hf.get("n_inner")
        fields = dict(
            vocab_size=_int(hf, "vocab_size", where, 50257),
            block_size=_int(hf, "n_positions", where, 1024),
            n_layer=_int(hf, "n_layer", where, 12), n_head=_int(hf, "n_head", where, 12),
            n_embd=n_embd, bias=True, tie_weights=hf.get("tie_word_embeddings", True),
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5), mlp=_GPT2_ACTIVATIONS[act],
            mlp_hidden=None if n_inner in (None, 4 * n_embd) else _int(hf, "n_inner", where),
        )  # fmt: skip
        return fields, model_type
    _check_fields(hf, model_type, _LLAMA_USED, where)
    layer_types = hf.get("layer_types") or []
    if any(kind != "full_attention" for kind in layer_types):
        raise ValueError(f"{where}: field layer_types holds {sorted(set(layer_types))}; minroots "
                         "implements full attention in every layer only")  # fmt: skip
    n_embd, n_head = _int(hf, "hidden_size", where), _int(hf, "num_attention_heads", where)
    head_dim = hf.get("head_dim")
    head_dim = None if head_dim in (None, n_embd // n_head) else _int(hf, "head_dim", where)
    n_kv = hf.get("num_key_value_heads")
    hidden = _int(hf, "intermediate_size", where)
    attention_bias, mlp_bias = hf.get("attention_bias", False), hf.get("mlp_bias", False)
    qkv_bias = None
    if model_type == "llama" and attention_bias != mlp_bias:
        raise ValueError(f"{where}: fields attention_bias={attention_bias} and mlp_bias={mlp_bias} "
                         "differ; minroots' one bias setting covers both, so they need to be equal")  # fmt: skip
    if model_type == "qwen3" and attention_bias:
        raise ValueError(f"{where}: field attention_bias=True is not supported for qwen3")
    if model_type == "qwen2":  # biases on q, k, v only
        attention_bias, qkv_bias = False, True
    fields = dict(
        vocab_size=_int(hf, "vocab_size", where), n_embd=n_embd, n_head=n_head,
        n_layer=_int(hf, "num_hidden_layers", where),
        block_size=_int(hf, "max_position_embeddings", where),
        mlp_hidden=None if hidden == swiglu_hidden(n_embd) else hidden, head_dim=head_dim,
        n_kv_head=None if n_kv in (None, n_head) else _int(hf, "num_key_value_heads", where),
        layer_norm_eps=hf.get("rms_norm_eps", 1e-6), rope_theta=_rope_theta(hf, where),
        tie_weights=hf.get("tie_word_embeddings", False), bias=attention_bias,
        qkv_bias=qkv_bias, norm="rms", position="rope", mlp="swiglu", init="llama",
        qk_norm=model_type == "qwen3",
    )  # fmt: skip
    return fields, model_type


def hf_model_type(config) -> str:
    """The Hugging Face family that has ``config``'s architecture, or a ``ValueError`` naming the
    field that keeps it from every one (learned positions: GPT-2; rotary: Llama or Qwen)."""
    c = config
    have = {name: getattr(c, name) for name in ("norm", "mlp", "bias", "qk_norm", "kv_heads",
                                                 "attention_head_dim")}  # fmt: skip
    have["qkv_bias"] = c.bias if c.qkv_bias is None else c.qkv_bias
    if c.position == "learned":
        if have["mlp"] == "swiglu":
            raise ValueError("save_pretrained: GPT-2 (learned positions) has no mlp='swiglu'")
        _need(
            have,
            "GPT-2 (learned positions)",
            norm="layer",
            bias=True,
            qkv_bias=True,
            qk_norm=False,
            kv_heads=c.n_head,
            attention_head_dim=c.n_embd // c.n_head,
        )
        return "gpt2"
    _need(have, "Llama or Qwen (rotary positions)", norm="rms", mlp="swiglu")
    if c.qk_norm:
        _need(have, "Qwen 3 (qk_norm=True)", bias=False, qkv_bias=False)
        return "qwen3"
    if have["qkv_bias"] and not c.bias:
        return "qwen2"
    _need(have, "Llama", qkv_bias=c.bias)
    return "llama"


def _need(have: dict, family: str, **wanted) -> None:
    for name, want in wanted.items():
        if have[name] != want:
            raise ValueError(f"save_pretrained: {family} needs {name}={want!r}, got "
                             f"{have[name]!r}; no Hugging Face family has this architecture")  # fmt: skip


def config_to_hf(config, model_type: str, dtype: str = "float32") -> dict:
    """The ``config.json`` of a Hugging Face model with ``config``'s architecture."""
    c = config
    common = {"architectures": [ARCHITECTURE_CLASSES[model_type]], "model_type": model_type,
              "vocab_size": c.vocab_size, "tie_word_embeddings": c.tie_weights, "dtype": dtype,
              "torch_dtype": dtype, "use_cache": True}  # fmt: skip
    if model_type == "gpt2":
        act = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}[c.mlp]
        return {**common, "n_positions": c.block_size, "n_layer": c.n_layer, "n_head": c.n_head,
                "n_embd": c.n_embd, "n_inner": c.mlp_hidden, "layer_norm_epsilon": c.layer_norm_eps,
                "activation_function": act, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                "attn_pdrop": 0.0, "bos_token_id": None, "eos_token_id": None}  # fmt: skip
    hf = {**common, "hidden_size": c.n_embd, "num_hidden_layers": c.n_layer,
          "num_attention_heads": c.n_head, "num_key_value_heads": c.kv_heads,
          "head_dim": c.attention_head_dim, "max_position_embeddings": c.block_size,
          "intermediate_size": c.mlp_hidden or swiglu_hidden(c.n_embd),
          "rms_norm_eps": c.layer_norm_eps, "hidden_act": "silu", "attention_dropout": 0.0,
          "rope_theta": c.rope_theta,
          "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
          "bos_token_id": None, "eos_token_id": None}  # fmt: skip
    if model_type == "llama":
        hf.update(attention_bias=c.bias, mlp_bias=c.bias)
    elif model_type == "qwen3":
        hf.update(attention_bias=False, use_sliding_window=False)
    else:
        hf.update(use_sliding_window=False)
    return hf
