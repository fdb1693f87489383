"""minroots: build, train, evaluate and use Transformer language models from scratch.

Book chapter 0, "Why language models" (``book/00_introduction.md``), maps the package:

- ``minroots.backend``: NumPy (CPU) or CuPy (GPU) arrays, one switch, seeded randomness.
- ``minroots.autograd``: the ``Tensor`` and reverse-mode automatic differentiation.
- ``minroots.nn``: layers, attention, the GPT ``TransformerModel`` and an encoder-decoder.
- ``minroots.optim``: SGD, Adam, AdamW, learning-rate schedules, gradient clipping.
- ``minroots.tokenizers``: text cleaning, character and byte-level BPE tokenizers.
- ``minroots.data``: the bundled corpora, datasets and data loaders.
- ``minroots.training``: the ``Trainer`` with checkpoints and loss curves.
- ``minroots.metrics``: perplexity, BLEU, chrF, ROUGE.
- ``minroots.generation``: sampling and beam search.

>>> from minroots import Trainer, TransformerModel
"""

import importlib

from minroots import backend
from minroots.allocator import keep_freed_memory
from minroots.autograd import (
    Tensor,
    arange,
    concatenate,
    detect_anomaly,
    empty,
    enable_grad,
    full,
    gradcheck,
    is_grad_enabled,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    split,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)  # fmt: skip
from minroots.backend import manual_seed

keep_freed_memory()  # reuse freed arrays instead of page-faulting fresh ones in (glibc; see module)

__version__ = "0.1.0"

# Names imported on first use, so `import minroots` stays light (no plotting or data loading).
_LAZY = {
    "TransformerModel": "minroots.nn",
    "TransformerConfig": "minroots.nn",
    "Seq2SeqTransformer": "minroots.nn",
    "Seq2SeqConfig": "minroots.nn",
    "Trainer": "minroots.training",
    "TrainerConfig": "minroots.training",
    "load_corpus": "minroots.data",
    "TextDataset": "minroots.data",
    "DataLoader": "minroots.data",
}
_SUBPACKAGES = (
    "nn",
    "optim",
    "tokenizers",
    "data",
    "training",
    "metrics",
    "generation",
    "assignments",
)

__all__ = [
    "backend", "manual_seed", "__version__", "Tensor", "tensor", "zeros", "ones", "full", "empty",
    "randn", "rand", "arange", "zeros_like", "ones_like", "no_grad", "enable_grad",
    "is_grad_enabled", "detect_anomaly", "gradcheck", "concatenate", "stack", "split", "where",
    *_LAZY, *_SUBPACKAGES,
]  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"minroots.{name}")
    raise AttributeError(f"module 'minroots' has no attribute {name!r}")
