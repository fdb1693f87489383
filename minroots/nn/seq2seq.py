r"""The encoder–decoder Transformer of "Attention Is All You Need", for translation and summaries.

Book chapter 10, "Applications" (``book/10_applications.md``); tests in
``tests/test_models_seq2seq.py``.

The encoder reads the whole source with bidirectional self-attention (padding keys masked out);
the decoder reads the target so far with causal self-attention and looks at the encoder's output
through cross-attention::

    memory = encoder(embed(src) + pos)                        # (B, S, C)
    h      = decoder(embed(tgt_in) + pos, memory)             # (B, T, C)
    logits = h W_emb^T                                        # (B, T, V), tied to the embedding

Training uses teacher forcing: ``tgt_in`` is the target shifted right (starting with BOS) and
``tgt_targets`` the target shifted left (ending with EOS); see :mod:`minroots.data.pairs`.
Generation (greedy or beam search with a length penalty) is :meth:`Seq2SeqTransformer.generate`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from minroots import backend as B
from minroots import generation
from minroots.autograd import Tensor
from minroots.nn.attention import KVCache
from minroots.nn.dropout import Dropout
from minroots.nn.embedding import Embedding
from minroots.nn.functional.cross_entropy import cross_entropy
from minroots.nn.functional.embedding import check_ids
from minroots.nn.layer_norm import LayerNorm
from minroots.nn.linear import Linear
from minroots.nn.module import Module, ModuleList
from minroots.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from minroots.nn.serialization import load_model, save_model
from minroots.nn.transformer_block import TransformerBlock
from minroots.validation import (
    check_fields,
    integer,
    known_keys,
    multiple_of,
    one_of,
    positive_int,
    real,
    token_ids,
)

__all__ = ["Seq2SeqConfig", "Seq2SeqTransformer"]


@dataclass
class Seq2SeqConfig:
    """Shape of an encoder–decoder Transformer; defaults train on a laptop CPU in minutes."""

    src_vocab_size: int = 128  # source token ids
    tgt_vocab_size: int | None = None  # target token ids (None: the same as the source)
    block_size: int = 128  # longest source or target sequence
    n_layer: int = 2  # encoder blocks
    n_decoder_layer: int | None = None  # decoder blocks (None: the same as n_layer)
    n_head: int = 4  # attention heads (must divide n_embd)
    n_embd: int = 128  # model width
    dropout: float = 0.0  # dropout probability (the original paper: 0.1)
    bias: bool = True  # biases in linear layers and layer norms
    norm_first: bool = True  # pre-LN (True, stable) or post-LN (False, the original paper)
    share_embeddings: bool = True  # one embedding table for source and target (same vocab)
    tie_output: bool = True  # the output layer reuses the target embedding matrix
    positional: str = "sinusoidal"  # "sinusoidal" (the paper) or "learned" (GPT-2)
    activation: str = "gelu"  # feed-forward activation: "gelu", "gelu_tanh" or "relu" (the paper)
    pad_id: int | None = None  # target id ignored by the loss when no target mask is given
    bos_id: int | None = None  # start-of-sequence id fed first to the decoder when generating
    eos_id: int | None = None  # end-of-sequence id that stops generation

    def __post_init__(self):
        # types first, as strictly as a TOML file is read: bias="no" must not pass as True
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in check_fields(type(self), values).items():
            setattr(self, key, value)
        if self.tgt_vocab_size is None:
            self.tgt_vocab_size = self.src_vocab_size
        if self.n_decoder_layer is None:
            self.n_decoder_layer = self.n_layer
        where = "Seq2SeqConfig"
        for name in ("src_vocab_size", "tgt_vocab_size", "block_size", "n_layer",
                     "n_decoder_layer", "n_head", "n_embd"):  # fmt: skip
            positive_int(where, name, getattr(self, name))
        multiple_of(where, "n_embd", self.n_embd, "n_head", self.n_head)
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                f"{where}: share_embeddings needs src_vocab_size == tgt_vocab_size "
                f"(got {self.src_vocab_size} and {self.tgt_vocab_size})"
            )
        one_of(where, "positional", self.positional, ("sinusoidal", "learned"))
        one_of(where, "activation", self.activation, ("gelu", "gelu_tanh", "relu"))
        real(where, "dropout", self.dropout, low=0, high=1, high_open=True)
        for name in ("pad_id", "bos_id", "eos_id"):
            if getattr(self, name) is not None:
                integer(where, name, getattr(self, name), low=0)

    @classmethod
    def from_dict(cls, d: dict) -> Seq2SeqConfig:
        """Build from a dict, rejecting unknown keys with a clear message."""
        return cls(**known_keys("Seq2SeqConfig", d, [f.name for f in dataclasses.fields(cls)]))


class Seq2SeqTransformer(Module):
    """Encoder–decoder Transformer.

    >>> model = Seq2SeqTransformer(Seq2SeqConfig(src_vocab_size=40, tgt_vocab_size=30,
    ...                                          share_embeddings=False))
    >>> src = np.array([[5, 6, 7, 0]]); src_mask = np.array([[True, True, True, False]])
    >>> tgt_in, tgt_out = np.array([[1, 8, 9]]), np.array([[8, 9, 2]])    # shifted by one
    >>> logits, loss = model(src, tgt_in, src_mask=src_mask, tgt_targets=tgt_out)
    >>> logits.shape                                   # (B, T_target, tgt_vocab_size)
    (1, 3, 30)
    """

    def __init__(self, config: Seq2SeqConfig | None = None, **overrides):
        super().__init__()
        config = Seq2SeqConfig(**overrides) if config is None else (
            dataclasses.replace(config, **overrides) if overrides else config)  # fmt: skip
        self.config = c = config
        self.src_emb = Embedding(c.src_vocab_size, c.n_embd)
        self.tgt_emb = self.src_emb if c.share_embeddings else Embedding(c.tgt_vocab_size, c.n_embd)
        if c.positional == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(c.n_embd, c.block_size)
        else:
            self.pos = LearnedPositionalEmbedding(c.block_size, c.n_embd)
        self.drop = Dropout(c.dropout)
        n_total = c.n_layer + c.n_decoder_layer
        self.encoder = ModuleList(
            TransformerBlock(c.n_embd, c.n_head, c.dropout, c.bias, c.norm_first,
                             activation=c.activation, n_layer=n_total)
            for _ in range(c.n_layer)
        )  # fmt: skip
        self.decoder = ModuleList(
            TransformerBlock(c.n_embd, c.n_head, c.dropout, c.bias, c.norm_first,
                             cross_attention=True, activation=c.activation, n_layer=n_total)
            for _ in range(c.n_decoder_layer)
        )  # fmt: skip
        # pre-LN stacks end un-normalized, so each gets a final norm (post-LN blocks end with one)
        self.enc_ln = LayerNorm(c.n_embd, bias=c.bias) if c.norm_first else None
        self.dec_ln = LayerNorm(c.n_embd, bias=c.bias) if c.norm_first else None
        self.lm_head = Linear(c.n_embd, c.tgt_vocab_size, bias=False)
        if c.tie_output:
            self.lm_head.weight = self.tgt_emb.weight
        # with tied weights the embedding is small (std 0.02); sqrt(C) scales it up next to the
        # positional signal, as in the paper
        self.emb_scale = math.sqrt(c.n_embd)

    def _embed(self, emb: Embedding, ids, offset: int = 0) -> Tensor:
        t = ids.shape[1]
        if offset + t > self.config.block_size:
            raise ValueError(
                f"Seq2SeqTransformer: sequence length {offset + t} is longer than block_size={self.config.block_size}"
            )
        check_ids(ids, emb.num_embeddings, "Seq2SeqTransformer")
        return self.drop(emb(ids) * self.emb_scale + self.pos(t, offset))  # (B, T, C)

    def encode(self, src, src_mask=None) -> Tensor:
        """Encoder output ``(B, S, C)``; ``src_mask`` ``(B, S)`` is True on real tokens."""
        src = token_ids("Seq2SeqTransformer", "src", src, ndim=2)
        x = self._embed(self.src_emb, src)
        for block in self.encoder:
            x = block(x, is_causal=False, key_padding_mask=src_mask)
        return self.enc_ln(x) if self.enc_ln is not None else x

    def decode(self, tgt_in, memory: Tensor, src_mask=None, caches=None) -> Tensor:
        """Logits ``(B, T, V)`` for the target prefix ``tgt_in``; ``caches`` is a list of
        ``(self_cache, cross_cache)`` per decoder block (generation only)."""
        tgt_in = token_ids("Seq2SeqTransformer", "tgt_in", tgt_in, ndim=2)
        offset = caches[0][0].length if caches else 0
        x = self._embed(self.tgt_emb, tgt_in, offset)
        for i, block in enumerate(self.decoder):
            sc, cc = caches[i] if caches else (None, None)
            x = block(
                x, memory, is_causal=True, memory_padding_mask=src_mask, cache=sc, cross_cache=cc
            )
        if self.dec_ln is not None:
            x = self.dec_ln(x)
        return self.lm_head(x)

    def forward(self, src, tgt_in, src_mask=None, tgt_targets=None, tgt_mask=None):
        """``(logits (B, T, V), loss)``. The loss skips positions where ``tgt_mask`` is False
        (or, without a mask, where the target is ``config.pad_id``); ``None`` without targets."""
        if src_mask is not None:
            src_mask = B.get_array_module(src_mask).asarray(src_mask, dtype=bool)
        memory = self.encode(src, src_mask)
        logits = self.decode(tgt_in, memory, src_mask)
        if tgt_targets is None:
            return logits, None
        tg = token_ids("Seq2SeqTransformer", "tgt_targets", tgt_targets, ndim=2)
        if tuple(tg.shape) != logits.shape[:2]:
            raise ValueError(
                f"Seq2SeqTransformer: tgt_targets must have shape {logits.shape[:2]}, got {tuple(tg.shape)}"
            )
        xp = B.get_array_module(logits.data)
        tg = xp.asarray(tg)
        if tgt_mask is not None:
            tg = xp.where(xp.asarray(tgt_mask, dtype=bool), tg, -100)
        elif self.config.pad_id is not None:
            tg = xp.where(tg == self.config.pad_id, -100, tg)
        return logits, cross_entropy(logits, tg, ignore_index=-100)

    def new_cache(self) -> list[tuple[KVCache, KVCache]]:
        """Empty (self-attention, cross-attention) caches for every decoder block."""
        return [(KVCache(self.config.block_size), KVCache()) for _ in self.decoder]

    def generate(self, src, max_new_tokens: int | None = None, bos_id=None, eos_id=None,
                 beam_size: int = 1, length_penalty: float = 1.0, src_mask=None) -> list[np.ndarray]:  # fmt: skip
        """Translate/summarize each source row; see :func:`minroots.generation.beam_search`.

        Returns one 1-D int array per source row: the generated ids without BOS and EOS.
        """
        return generation.beam_search(
            self, src, max_new_tokens=max_new_tokens, bos_id=bos_id, eos_id=eos_id,
            beam_size=beam_size, length_penalty=length_penalty, src_mask=src_mask,
        )  # fmt: skip

    def save(self, path) -> None:
        save_model(self, path)

    @classmethod
    def load(cls, path, dtype=None) -> Seq2SeqTransformer:
        return load_model(cls, Seq2SeqConfig, path, dtype=dtype)

    def extra_repr(self) -> str:
        return f"{self.num_parameters():,} parameters"
