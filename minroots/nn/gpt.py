r"""The GPT language model: ``TransformerConfig`` and ``TransformerModel`` (GPT-2's architecture,
and the modern decoder's choices as options of the same model).

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``) builds it; chapter 7,
"Training" (``book/07_training.md``) trains it; chapter 9 generates with it; chapter 12, "A modern
decoder" (``book/12_modern_decoder.md``) turns it into a Llama or a Qwen 3. Tests in
``tests/test_models_gpt.py``, ``tests/test_models_modern.py`` and ``tests/test_models_hf_parity.py``.

Bottom-up, as in nanoGPT: token ids ``(B, T)`` -> token embeddings ``wte`` + learned position
embeddings ``wpe`` -> ``n_layer`` pre-LN blocks (causal self-attention with a fused ``c_attn``,
GELU-tanh MLP) -> final layer norm ``ln_f`` -> ``lm_head``, whose weight *is* ``wte``'s (tied):

.. math::  \text{logits} = \mathrm{LN}_f(h_L)\, W_{te}^\top, \qquad
           \text{loss} = \mathrm{cross\_entropy}(\text{logits}, \text{targets})

The Llama-style model (``TransformerConfig.from_arch("llama")``) changes four pieces and keeps the
rest: RMSNorm for the norms, rotary positions inside attention instead of ``wpe``, a SwiGLU MLP,
optionally fewer key/value heads (``n_kv_head``), and an untied ``lm_head`` without biases.

With the same weights, the logits equal Hugging Face's ``GPT2LMHeadModel``, ``LlamaForCausalLM``,
``Qwen2ForCausalLM`` and ``Qwen3ForCausalLM`` (see :mod:`minroots.nn.pretrained`, which reads and
writes their directories). Parameter names follow GPT-2's without the ``transformer.`` prefix:
``wte.weight``, ``h.0.attn.c_attn.weight``, ..., ``ln_f.bias``, ``lm_head.weight``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from minroots import generation
from minroots.autograd import Tensor
from minroots.autograd.checkpoint import checkpoint
from minroots.nn.attention import KVCache
from minroots.nn.dropout import Dropout
from minroots.nn.embedding import Embedding
from minroots.nn.functional.cross_entropy import cross_entropy
from minroots.nn.functional.embedding import check_ids
from minroots.nn.linear import Linear
from minroots.nn.module import Module, ModuleList
from minroots.nn.positional import LearnedPositionalEmbedding
from minroots.nn.serialization import load_model, save_model
from minroots.nn.transformer_block import INITS, MLPS, NORMS, TransformerBlock, make_norm
from minroots.validation import (
    boolean,
    known_keys,
    multiple_of,
    one_of,
    positive_int,
    real,
    token_ids,
)

__all__ = ["TransformerConfig", "TransformerModel", "ARCHITECTURES"]


@dataclass
class TransformerConfig:
    """Shape of a GPT. The defaults are a "baby GPT" that trains on a laptop CPU in minutes
    (about 0.8 M parameters); GPT-2 small is ``TransformerConfig(50257, 1024, 12, 12, 768)``.

    The fields after ``layer_norm_eps`` choose the architecture, with GPT-2's choices as defaults;
    :data:`ARCHITECTURES` names the sets that make a Llama or a Qwen 3
    (``TransformerConfig.from_arch("llama", n_layer=2)``). Every field is checked when the config
    is made: a wrong type or value raises, naming the field.
    """

    vocab_size: int = 76  # number of token ids: the 76 characters of the bundled Shakespeare
    block_size: int = 128  # longest context the model can attend over
    n_layer: int = 4  # number of Transformer blocks
    n_head: int = 4  # attention heads per block (must divide n_embd)
    n_embd: int = 128  # width of the residual stream
    dropout: float = (
        0.0  # dropout probability (0 for small data / fine-tuning; 0.1-0.2 to regularize)
    )
    bias: bool = True  # biases in linear layers and layer norms (GPT-2: True)
    tie_weights: bool = True  # lm_head shares the token-embedding matrix (GPT-2: True)
    layer_norm_eps: float = 1e-5  # the epsilon of every norm, layer norm or RMSNorm (GPT-2: 1e-5)
    # --- the architecture (book chapter 12, "A modern decoder"); GPT-2's choices by default
    norm: str = "layer"  # "layer" (layer norm, GPT-2) or "rms" (RMSNorm: Llama, Qwen)
    position: str = "learned"  # "learned" (a table of block_size vectors) or "rope" (rotary)
    rope_theta: float = 10000.0  # base of the rotary frequencies (Llama 2: 1e4, Llama 3: 5e5)
    mlp: str = "gelu_tanh"  # "gelu_tanh" (GPT-2), "gelu", "relu" or "swiglu" (gated: Llama)
    mlp_hidden: int | None = None  # MLP width (None: 4 n_embd, or 8 n_embd / 3 for swiglu)
    n_kv_head: int | None = None  # key/value heads (None: n_head; fewer: grouped-query attention)
    head_dim: int | None = None  # size of each head (None: n_embd // n_head)
    qk_norm: bool = False  # RMSNorm on each head's queries and keys (Qwen 3)
    qkv_bias: bool | None = None  # biases of the query/key/value projection (None: bias)
    init: str = "gpt2"  # "gpt2" (residual projections scaled by depth) or "llama" (all 0.02)

    def __post_init__(self):
        w = "TransformerConfig"
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            setattr(self, name, positive_int(w, name, getattr(self, name)))
        for name in ("mlp_hidden", "n_kv_head", "head_dim"):
            if getattr(self, name) is not None:
                setattr(self, name, positive_int(w, name, getattr(self, name)))
        if self.head_dim is None:
            multiple_of(w, "n_embd", self.n_embd, "n_head", self.n_head)
        if self.n_kv_head is not None:
            multiple_of(w, "n_head", self.n_head, "n_kv_head", self.n_kv_head)
        self.dropout = real(w, "dropout", self.dropout, low=0, high=1, high_open=True)
        self.layer_norm_eps = real(w, "layer_norm_eps", self.layer_norm_eps, low=0, low_open=True)
        self.rope_theta = real(w, "rope_theta", self.rope_theta, low=0, low_open=True)
        for name in ("bias", "tie_weights", "qk_norm"):
            setattr(self, name, boolean(w, name, getattr(self, name)))
        if self.qkv_bias is not None:
            self.qkv_bias = boolean(w, "qkv_bias", self.qkv_bias)
        one_of(w, "norm", self.norm, NORMS)
        one_of(w, "position", self.position, POSITIONS)
        one_of(w, "mlp", self.mlp, MLPS)
        one_of(w, "init", self.init, INITS)
        if self.position == "rope" and self.attention_head_dim % 2:
            raise ValueError(
                f"{w}: the head size must be even for rotary positions, got {self.attention_head_dim}"
            )

    @property
    def attention_head_dim(self) -> int:
        """The size of each attention head: ``head_dim``, or ``n_embd // n_head``."""
        return self.head_dim or self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads: ``n_kv_head``, or ``n_head``."""
        return self.n_kv_head or self.n_head

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        """Build from a dict, rejecting unknown keys with a clear message."""
        return cls(**known_keys("TransformerConfig", d, [f.name for f in dataclasses.fields(cls)]))

    @classmethod
    def from_arch(cls, arch: str, **fields) -> TransformerConfig:
        """The architecture ``arch`` (a key of :data:`ARCHITECTURES`) with ``fields`` changed.

        >>> c = TransformerConfig.from_arch("llama", n_layer=2)
        >>> c.norm, c.position, c.mlp, c.n_layer, c.tie_weights
        ('rms', 'rope', 'swiglu', 2, False)
        """
        one_of("TransformerConfig.from_arch", "arch", arch, tuple(ARCHITECTURES))
        return cls(**{**ARCHITECTURES[arch], **fields})


#: Named architectures: the fields that turn the default GPT-2 into another family. Sizes are
#: left to the caller (``from_arch("llama", n_layer=..., n_embd=...)``).
ARCHITECTURES: dict[str, dict] = {
    "gpt2": {},
    "llama": {"norm": "rms", "position": "rope", "mlp": "swiglu", "bias": False,
              "tie_weights": False, "init": "llama", "layer_norm_eps": 1e-5},
    "qwen3": {"norm": "rms", "position": "rope", "mlp": "swiglu", "bias": False,
              "tie_weights": False, "init": "llama", "layer_norm_eps": 1e-6, "qk_norm": True,
              "rope_theta": 1e6},
}  # fmt: skip
POSITIONS = ("learned", "rope")


class TransformerModel(Module):
    """A decoder-only Transformer language model with GPT-2's architecture.

    >>> model = TransformerModel(TransformerConfig(vocab_size=76, block_size=32, n_layer=2))
    >>> idx = np.zeros((3, 8), dtype=np.int64)                 # (B, T) token ids
    >>> logits, loss = model(idx, targets=idx)
    >>> logits.shape                                            # (B, T, vocab_size)
    (3, 8, 76)
    """

    def __init__(self, config: TransformerConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = TransformerConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, TransformerConfig):
            raise TypeError(
                f"TransformerModel: config must be a TransformerConfig, got {type(config).__name__}"
            )
        self.config = config
        c = config
        self.wte = Embedding(c.vocab_size, c.n_embd)
        rope = c.position == "rope"  # rotary positions turn queries and keys inside attention
        self.wpe = None if rope else LearnedPositionalEmbedding(c.block_size, c.n_embd)
        self.drop = Dropout(c.dropout)
        self.h = ModuleList(
            TransformerBlock(c.n_embd, c.n_head, c.dropout, c.bias, norm_first=True,
                             activation=c.mlp, n_layer=c.n_layer, eps=c.layer_norm_eps,
                             norm=c.norm, mlp_hidden=c.mlp_hidden, init=c.init,
                             n_kv_head=c.n_kv_head, head_dim=c.head_dim, qk_norm=c.qk_norm,
                             rope_theta=c.rope_theta if rope else None, qkv_bias=c.qkv_bias)
            for _ in range(c.n_layer)
        )  # fmt: skip
        self.ln_f = make_norm(c.norm, c.n_embd, c.layer_norm_eps, c.bias)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight  # one Parameter, two names
        self.checkpoint_activations = False  # recompute each block in the backward (chapter 13)

    # ------------------------------------------------------------------ forward
    def hidden_states(self, idx, caches: list[KVCache] | None = None) -> Tensor:
        """The final normed states ``(B, T, C)``; with ``caches`` (one per block), ``idx`` holds
        only the new tokens and positions continue after those already cached.

        With rotary positions and sliding-window caches (:meth:`new_cache`) positions may go past
        ``block_size``: each token then attends to the last ``block_size`` positions."""
        where = "TransformerModel"
        ids = token_ids(where, "idx", idx, ndim=2)
        b, t = ids.shape
        # positions continue after the cache: one offset, or one per row (B,) when the rows are
        # sequences of different lengths (batched serving, book/14_deployment.md)
        offset = caches[0].position if caches else 0
        sliding = self.wpe is None and caches and caches[0].window is not None
        # a sliding window holds the context, not the text
        length = t if sliding else int(np.max(offset, initial=0)) + t
        if length > self.config.block_size:
            raise ValueError(
                f"{where}: sequence length {length} is longer than block_size="
                f"{self.config.block_size}; crop the input to the last {self.config.block_size} tokens"
            )
        check_ids(ids, self.config.vocab_size, f"{where} (vocab_size={self.config.vocab_size})")
        kpm = caches[0].key_padding_mask(t) if caches else None  # (B, Tk) or None
        x = self.wte(ids)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(t, offset)  # + (T, C) or (B, T, C)
        x = self.drop(x)
        for i, block in enumerate(self.h):
            if self.checkpoint_activations and not caches:  # keep only x; see autograd/checkpoint
                x = checkpoint(block, x, is_causal=True)  # (B, T, C)
            else:
                cache = caches[i] if caches else None
                x = block(x, is_causal=True, key_padding_mask=kpm, cache=cache)  # (B, T, C)
        return self.ln_f(x)

    def forward(self, idx, targets=None, ignore_index: int = -100):
        """``(logits (B, T, V), loss)``; ``loss`` is ``None`` without ``targets`` ``(B, T)``."""
        x = self.hidden_states(idx)
        logits = self.lm_head(x)  # (B, T, V)
        if targets is None:
            return logits, None
        tg = token_ids("TransformerModel", "targets", targets, ndim=2)
        if tuple(tg.shape) != logits.shape[:2]:
            raise ValueError(
                f"TransformerModel: targets must have the shape of idx {logits.shape[:2]}, got {tuple(tg.shape)}"
            )
        return logits, cross_entropy(logits, tg, ignore_index=ignore_index)

    def new_cache(self) -> list[KVCache]:
        """An empty key/value cache, one per block, sized for ``block_size`` positions; with
        rotary positions a sliding window of ``block_size`` (generation past the context costs
        the same per token; learned positions have no vector past ``block_size``)."""
        window = self.config.block_size if self.wpe is None else None
        return [KVCache(capacity=self.config.block_size, window=window) for _ in self.h]

    # ------------------------------------------------------------------ generation
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None,
                 top_p=None, eos_id=None, seed=None, use_cache: bool = True):  # fmt: skip
        """Continue ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens; see
        :func:`minroots.generation.generate` (greedy when ``temperature == 0``)."""
        return generation.generate(
            self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            eos_id=eos_id, seed=seed, use_cache=use_cache,
        )  # fmt: skip

    def beam_search(self, idx, max_new_tokens=None, beam_size: int = 4, eos_id=None,
                    length_penalty: float = 1.0) -> list:  # fmt: skip
        """The best continuation of each prompt row by beam search, without EOS; see
        :func:`minroots.generation.beam_search_prompt`."""
        return generation.beam_search_prompt(self, idx, max_new_tokens, eos_id, beam_size,
                                             length_penalty)  # fmt: skip

    # ------------------------------------------------------------------ saving and loading
    def save(self, path) -> None:
        """Write weights (safetensors) and config (JSON); see :mod:`minroots.nn.serialization`."""
        save_model(self, path)

    @classmethod
    def load(cls, path, dtype=None) -> TransformerModel:
        """Read a model written by :meth:`save`."""
        return load_model(cls, TransformerConfig, path, dtype=dtype)

    @classmethod
    def from_pretrained(cls, path, dtype=None) -> TransformerModel:
        """Load a local Hugging Face directory of a ``gpt2``, ``llama``, ``qwen2`` or ``qwen3``
        model (:func:`minroots.nn.pretrained.from_pretrained`; nothing is downloaded)."""
        from minroots.nn.pretrained import from_pretrained  # it builds this class

        return from_pretrained(path, dtype=dtype)

    from_pretrained_gpt2 = from_pretrained  # the earlier name, from when only GPT-2 was read

    def save_pretrained(self, path, dtype=None, generation_config: dict | None = None) -> str:
        """Write a Hugging Face directory that ``transformers`` opens; returns its model_type
        (:func:`minroots.nn.pretrained.save_pretrained`)."""
        from minroots.nn.pretrained import save_pretrained

        return save_pretrained(self, path, dtype=dtype, generation_config=generation_config)

    def extra_repr(self) -> str:
        return f"{self.num_parameters():,} parameters"
