r"""The GPT language model: ``TransformerConfig`` and ``TransformerModel`` (GPT-2's architecture).

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``) builds it; chapter 7,
"Training" (``book/07_training.md``) trains it; chapter 9 generates with it. Tests in
``tests/test_models_gpt.py`` and ``tests/test_models_gpt2_parity.py``.

Bottom-up, as in nanoGPT: token ids ``(B, T)`` -> token embeddings ``wte`` + learned position
embeddings ``wpe`` -> ``n_layer`` pre-LN blocks (causal self-attention with a fused ``c_attn``,
GELU-tanh MLP) -> final layer norm ``ln_f`` -> ``lm_head``, whose weight *is* ``wte``'s (tied):

.. math::  \text{logits} = \mathrm{LN}_f(h_L)\, W_{te}^\top, \qquad
           \text{loss} = \mathrm{cross\_entropy}(\text{logits}, \text{targets})

With the same weights, the logits equal Hugging Face's ``GPT2LMHeadModel`` (see
:mod:`minroots.nn.gpt2_loading`). Parameter names follow GPT-2's without the ``transformer.``
prefix: ``wte.weight``, ``h.0.attn.c_attn.weight``, ..., ``ln_f.bias``, ``lm_head.weight``.
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
from minroots.nn.gpt2_loading import load_gpt2
from minroots.nn.layer_norm import LayerNorm
from minroots.nn.linear import Linear
from minroots.nn.module import Module, ModuleList
from minroots.nn.positional import LearnedPositionalEmbedding
from minroots.nn.serialization import load_model, save_model
from minroots.nn.transformer_block import TransformerBlock
from minroots.validation import boolean, known_keys, multiple_of, positive_int, real, token_ids

__all__ = ["TransformerConfig", "TransformerModel"]


@dataclass
class TransformerConfig:
    """Shape of a GPT. The defaults are a "baby GPT" that trains on a laptop CPU in minutes
    (about 0.8 M parameters); GPT-2 small is ``TransformerConfig(50257, 1024, 12, 12, 768)``."""

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
    layer_norm_eps: float = 1e-5  # the epsilon of every layer norm (GPT-2: 1e-5)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            positive_int("TransformerConfig", name, getattr(self, name))
        multiple_of("TransformerConfig", "n_embd", self.n_embd, "n_head", self.n_head)
        real("TransformerConfig", "dropout", self.dropout, low=0, high=1, high_open=True)
        boolean("TransformerConfig", "bias", self.bias)  # "no" would otherwise be truthy
        boolean("TransformerConfig", "tie_weights", self.tie_weights)
        real("TransformerConfig", "layer_norm_eps", self.layer_norm_eps, low=0, low_open=True)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        """Build from a dict, rejecting unknown keys with a clear message."""
        return cls(**known_keys("TransformerConfig", d, [f.name for f in dataclasses.fields(cls)]))


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
        self.wpe = LearnedPositionalEmbedding(c.block_size, c.n_embd)
        self.drop = Dropout(c.dropout)
        self.h = ModuleList(
            TransformerBlock(c.n_embd, c.n_head, c.dropout, c.bias, norm_first=True,
                             activation="gelu_tanh", n_layer=c.n_layer, eps=c.layer_norm_eps)
            for _ in range(c.n_layer)
        )  # fmt: skip
        self.ln_f = LayerNorm(c.n_embd, eps=c.layer_norm_eps, bias=c.bias)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight  # one Parameter, two names
        self.checkpoint_activations = False  # recompute each block in the backward (chapter 13)

    # ------------------------------------------------------------------ forward
    def hidden_states(self, idx, caches: list[KVCache] | None = None) -> Tensor:
        """The final layer-normed states ``(B, T, C)``; with ``caches`` (one per block), ``idx``
        holds only the new tokens and positions continue after those already cached."""
        where = "TransformerModel"
        ids = token_ids(where, "idx", idx, ndim=2)
        b, t = ids.shape
        # positions continue after the cache: one offset, or one per row (B,) when the rows are
        # sequences of different lengths (batched serving, book/14_deployment.md)
        offset = caches[0].length if caches else 0
        if int(np.max(offset, initial=0)) + t > self.config.block_size:
            raise ValueError(
                f"{where}: sequence length {int(np.max(offset)) + t} is longer than block_size="
                f"{self.config.block_size}; crop the input to the last {self.config.block_size} tokens"
            )
        check_ids(ids, self.config.vocab_size, f"{where} (vocab_size={self.config.vocab_size})")
        kpm = caches[0].key_padding_mask(t) if caches else None  # (B, Tk) or None
        x = self.wte(ids) + self.wpe(t, offset)  # (B, T, C) + (T, C) or (B, T, C)
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
        """An empty key/value cache, one per block, sized for ``block_size`` positions."""
        return [KVCache(capacity=self.config.block_size) for _ in self.h]

    # ------------------------------------------------------------------ generation
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None,
                 top_p=None, eos_id=None, seed=None, use_cache: bool = True):  # fmt: skip
        """Continue ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens; see
        :func:`minroots.generation.generate` (greedy when ``temperature == 0``)."""
        return generation.generate(
            self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            eos_id=eos_id, seed=seed, use_cache=use_cache,
        )  # fmt: skip

    # ------------------------------------------------------------------ saving and loading
    def save(self, path) -> None:
        """Write weights (safetensors) and config (JSON); see :mod:`minroots.nn.serialization`."""
        save_model(self, path)

    @classmethod
    def load(cls, path, dtype=None) -> TransformerModel:
        """Read a model written by :meth:`save`."""
        return load_model(cls, TransformerConfig, path, dtype=dtype)

    @classmethod
    def from_pretrained_gpt2(cls, path, dtype=None) -> TransformerModel:
        """Load a Hugging Face GPT-2 directory (``config.json`` + ``model.safetensors``) from disk."""
        return load_gpt2(cls, TransformerConfig, path, dtype=dtype)

    def extra_repr(self) -> str:
        return f"{self.num_parameters():,} parameters"
