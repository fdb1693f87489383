"""``minroots.nn.functional``: the stateless operations layers are built from (``import ... as F``).

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``) and chapter 4,
"Cross-entropy" (``book/04_cross_entropy.md``); RMSNorm, RoPE and SwiGLU are chapter 12, "A modern
decoder" (``book/12_modern_decoder.md``). Tests in ``tests/test_nn_functional.py``.

Each fused kernel is one graph node with its forward and backward side by side, in a file of its
own, next to a short ``*_composed`` reference built from basic autograd ops (the tests check one
against the other and both against PyTorch).

>>> import minroots.nn.functional as F
>>> logits = minroots.tensor(np.zeros((2, 4)), requires_grad=True)    # 2 examples, 4 classes
>>> F.cross_entropy(logits, np.array([1, -100]), ignore_index=-100)   # ln 4; the 2nd is ignored
tensor(1.3863, dtype=float64, requires_grad=True)
"""

from minroots.autograd.gelu import gelu, gelu_composed
from minroots.autograd.softmax import log_softmax, log_softmax_composed, softmax, softmax_composed
from minroots.nn.functional.attention import (
    causal_mask,
    packed_self_attention,
    scaled_dot_product_attention,
    scaled_dot_product_attention_composed,
)
from minroots.nn.functional.cross_entropy import cross_entropy, cross_entropy_composed
from minroots.nn.functional.dropout import dropout
from minroots.nn.functional.embedding import embedding, embedding_composed
from minroots.nn.functional.flash_attention import flash_attention
from minroots.nn.functional.layer_norm import layer_norm, layer_norm_composed
from minroots.nn.functional.linear import linear, linear_composed
from minroots.nn.functional.rms_norm import rms_norm, rms_norm_composed
from minroots.nn.functional.rope import rope, rope_composed, rope_tables
from minroots.nn.functional.silu import silu, silu_composed, swiglu, swiglu_composed

__all__ = [
    "linear", "embedding", "softmax", "log_softmax", "gelu", "dropout", "layer_norm",
    "cross_entropy", "scaled_dot_product_attention", "packed_self_attention", "causal_mask",
    "linear_composed", "embedding_composed", "softmax_composed", "log_softmax_composed",
    "gelu_composed", "layer_norm_composed", "cross_entropy_composed",
    "scaled_dot_product_attention_composed",
]  # fmt: skip
__all__ += ["flash_attention"]

# the modern decoder's kernels (book chapter 12): RMSNorm, rotary positions, SiLU and SwiGLU
__all__ += ["rms_norm", "rope", "rope_tables", "silu", "swiglu",
            "rms_norm_composed", "rope_composed", "silu_composed", "swiglu_composed"]  # fmt: skip
