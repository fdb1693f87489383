"""``minroots.nn``: modules, layers, attention and the Transformer models built from them.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); the models are trained
in chapter 7 (``book/07_training.md``) and used for generation in chapter 9. Tests in
``tests/test_nn_*.py`` and ``tests/test_models_*.py``.

Bottom-up: :mod:`~minroots.nn.module` (Module, Parameter), :mod:`~minroots.nn.functional`
(fused kernels, imported as ``F``), the layers (Linear, Embedding, LayerNorm, Dropout,
SelfAttention, CrossAttention, FeedForward, TransformerBlock, positions), then the GPT
(:mod:`~minroots.nn.gpt`) and the encoder–decoder (:mod:`~minroots.nn.seq2seq`).
"""

from minroots.nn import functional
from minroots.nn.attention import CrossAttention, KVCache, MultiHeadAttention, SelfAttention
from minroots.nn.dropout import Dropout
from minroots.nn.embedding import Embedding
from minroots.nn.feed_forward import FeedForward
from minroots.nn.gpt import TransformerConfig, TransformerModel
from minroots.nn.layer_norm import LayerNorm
from minroots.nn.linear import Linear
from minroots.nn.module import Module, ModuleList, Parameter, Sequential
from minroots.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from minroots.nn.pretrained import from_pretrained
from minroots.nn.rms_norm import RMSNorm
from minroots.nn.seq2seq import Seq2SeqConfig, Seq2SeqTransformer
from minroots.nn.swiglu import SwiGLU
from minroots.nn.transformer_block import TransformerBlock

F = functional

__all__ = [
    "functional", "F", "Module", "Parameter", "ModuleList", "Sequential", "Linear", "Embedding",
    "LayerNorm", "Dropout", "MultiHeadAttention", "KVCache", "FeedForward", "TransformerBlock",
    "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding", "TransformerConfig",
    "TransformerModel", "Seq2SeqConfig", "Seq2SeqTransformer",
    "SelfAttention", "CrossAttention",
]  # fmt: skip
# the modern decoder (book chapter 12): its layers, and Hugging Face checkpoints
__all__ += ["RMSNorm", "SwiGLU", "from_pretrained"]
